//! Folder arguments: an id (`fld_…`), `/` for the root, or a path like `/Photos/2024` found by
//! walking the tree from the root one name at a time (names compare case-insensitively, as the
//! server keeps them unique that way).

use serde_json::{json, Value};

use super::error::{CliError, CliResult};
use super::http::Api;

/// A folder: `None` is the root.
pub type FolderRef = Option<String>;

/// Whether an argument names a folder by id.
pub fn is_folder_id(arg: &str) -> bool {
    arg.starts_with("fld_")
}

/// The names along a path (`/Photos/2024/` → `["Photos", "2024"]`).
pub fn segments(path: &str) -> Vec<&str> {
    path.split('/').map(str::trim).filter(|s| !s.is_empty() && *s != ".").collect()
}

/// Resolves a folder argument; `None` (no argument) is the root.
pub async fn resolve(api: &Api, arg: Option<&str>) -> CliResult<FolderRef> {
    let Some(arg) = arg.map(str::trim) else { return Ok(None) };
    if arg.is_empty() || arg == "/" || arg.eq_ignore_ascii_case("root") {
        return Ok(None);
    }
    if is_folder_id(arg) {
        // Checked here so a wrong id fails with "not found" before anything is sent.
        let _: Value = api.get(&format!("/v1/folders/{arg}"), &[]).await?;
        return Ok(Some(arg.to_owned()));
    }
    let mut current: FolderRef = None;
    let mut walked = String::new();
    for name in segments(arg) {
        walked.push('/');
        walked.push_str(name);
        current = Some(
            child_named(api, current.as_deref(), name)
                .await?
                .ok_or_else(|| CliError::not_found(format!("no folder {walked}")))?,
        );
    }
    Ok(current)
}

/// The id of the live child folder of `parent` called `name`, if there is one.
pub async fn child_named(api: &Api, parent: Option<&str>, name: &str) -> CliResult<Option<String>> {
    let wanted = name.to_lowercase();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![
            ("parent_id", parent.unwrap_or("root").to_owned()),
            ("q", name.to_owned()),
            ("limit", "100".to_owned()),
        ];
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.clone()));
        }
        let page: Value = api.get("/v1/folders", &query).await?;
        for folder in page["data"].as_array().into_iter().flatten() {
            if folder["name"].as_str().is_some_and(|n| n.to_lowercase() == wanted) {
                return Ok(folder["id"].as_str().map(str::to_owned));
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(None),
        }
    }
}

/// The child folder `name` of `parent`, created if it is not there yet.
pub async fn ensure_child(api: &Api, parent: Option<&str>, name: &str) -> CliResult<String> {
    if let Some(id) = child_named(api, parent, name).await? {
        return Ok(id);
    }
    let created: CliResult<Value> =
        api.post("/v1/folders", &json!({"name": name, "parent_id": parent})).await;
    match created {
        Ok(folder) => Ok(folder["id"].as_str().unwrap_or_default().to_owned()),
        // Someone else (another job) made it meanwhile: use theirs.
        Err(err) if err.code == "name_taken" => child_named(api, parent, name)
            .await?
            .ok_or_else(|| CliError::new(err.exit, err.code.clone(), err.message.clone())),
        Err(err) => Err(err),
    }
}

/// Resolves a folder path, creating what is missing (`upload --folder /New/Place`).
pub async fn ensure_path(api: &Api, arg: Option<&str>) -> CliResult<FolderRef> {
    match arg.map(str::trim) {
        Some(arg) if !is_folder_id(arg) && !segments(arg).is_empty() => {
            let mut current: FolderRef = None;
            for name in segments(arg) {
                current = Some(ensure_child(api, current.as_deref(), name).await?);
            }
            Ok(current)
        }
        _ => resolve(api, arg).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_names() {
        assert_eq!(segments("/Photos/2024/"), vec!["Photos", "2024"]);
        assert_eq!(segments("Photos//./x"), vec!["Photos", "x"]);
        assert!(segments("/").is_empty());
    }
}
