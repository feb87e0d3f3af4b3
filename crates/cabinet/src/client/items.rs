//! What an argument names: a file or folder by id (`file_…`, `fld_…`) or by path
//! (`/Photos/2024/hello.txt`, `/Photos/2024/`), found by walking the folder tree from the root and
//! then listing the last folder's files; and the other way round, the path an item lives at, for
//! showing it. Names compare case-insensitively, as the server keeps folder names unique that way;
//! file names need not be unique, so a path naming several files is refused with their ids.

use std::collections::HashMap;

use serde_json::Value;

use super::error::{CliError, CliResult, Exit};
use super::folders::{self, FolderRef};
use super::http::Api;

/// A file or a folder, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    File(String),
    Folder(String),
}

impl Item {
    /// Its API path (`/v1/files/{id}` or `/v1/folders/{id}`).
    pub fn api_path(&self) -> String {
        match self {
            Item::File(id) => format!("/v1/files/{id}"),
            Item::Folder(id) => format!("/v1/folders/{id}"),
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Item::File(id) | Item::Folder(id) => id,
        }
    }
}

/// Which items a path may name: those in place, or those in the trash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Where {
    Live,
    Trash,
}

/// Whether an argument is a path in the workspace's tree rather than an id.
pub fn is_path(arg: &str) -> bool {
    arg.starts_with('/')
}

/// Resolves a file or folder argument: an id, or an absolute path.
pub async fn resolve(api: &Api, arg: &str, place: Where) -> CliResult<Item> {
    let arg = arg.trim();
    if arg.starts_with("file_") {
        return Ok(Item::File(arg.to_owned()));
    }
    if folders::is_folder_id(arg) {
        return Ok(Item::Folder(arg.to_owned()));
    }
    if !is_path(arg) {
        return Err(CliError::usage(format!(
            "{arg:?} is not a file id (file_…), a folder id (fld_…) or a path (/Folder/name)"
        )));
    }
    let names = folders::segments(arg);
    let Some((last, parents)) = names.split_last() else {
        return Err(CliError::usage("`/` is the root itself, not a file or folder"));
    };
    let parent_path = format!("/{}", parents.join("/"));
    let parent = folders::resolve(api, Some(&parent_path)).await?;
    let folder_only = arg.ends_with('/');
    let trashed = place == Where::Trash;

    let mut found_folders = named(api, "/v1/folders", "parent_id", parent.as_deref(), last, trashed).await?;
    if let Some(folder) = newest(&mut found_folders) {
        return Ok(Item::Folder(folder));
    }
    if !folder_only {
        let mut files = named(api, "/v1/files", "folder_id", parent.as_deref(), last, trashed).await?;
        if files.len() > 1 && !trashed {
            let ids: Vec<String> = files.iter().map(|f| super::text(f, "id")).collect();
            return Err(CliError::new(
                Exit::Conflict,
                "ambiguous_path",
                format!("{arg} names {} files; name one by id: {}", files.len(), ids.join(", ")),
            ));
        }
        if let Some(file) = newest(&mut files) {
            return Ok(Item::File(file));
        }
    }
    let what = if folder_only { "folder" } else { "file or folder" };
    let place = if trashed { " in the trash" } else { "" };
    Err(CliError::not_found(format!("no {what} {arg}{place}")))
}

/// Resolves an argument that must name a file.
pub async fn resolve_file(api: &Api, arg: &str, place: Where) -> CliResult<String> {
    match resolve(api, arg, place).await? {
        Item::File(id) => Ok(id),
        Item::Folder(_) => Err(CliError::usage(format!("{arg} is a folder; this command takes a file"))),
    }
}

/// The items of a list (`/v1/files` or `/v1/folders`) in `parent` called exactly `name`
/// (case-insensitively).
async fn named(
    api: &Api,
    list: &str,
    parent_field: &str,
    parent: Option<&str>,
    name: &str,
    trashed: bool,
) -> CliResult<Vec<Value>> {
    let wanted = name.to_lowercase();
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![
            (parent_field, parent.unwrap_or("root").to_owned()),
            ("q", name.to_owned()),
            ("limit", "100".to_owned()),
        ];
        if trashed {
            query.push(("trashed", "true".to_owned()));
        }
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.clone()));
        }
        let page: Value = api.get(list, &query).await?;
        found.extend(
            page["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|item| item["name"].as_str().is_some_and(|n| n.to_lowercase() == wanted))
                .cloned(),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(found),
        }
    }
}

/// The id of the most recently trashed (or, for live items, the only) item.
fn newest(items: &mut [Value]) -> Option<String> {
    items.sort_by_key(|item| item["trashed_at"].as_str().unwrap_or_default().to_owned());
    items.last().and_then(|item| item["id"].as_str()).map(str::to_owned)
}

/// Folder paths already looked up, so a listing asks once per folder.
#[derive(Default)]
pub struct PathBook {
    known: HashMap<String, String>,
}

impl PathBook {
    /// `/Photos/2024` for a folder id, `/` for the root; the id itself if it cannot be read.
    pub async fn folder(&mut self, api: &Api, folder: FolderRef) -> String {
        let Some(id) = folder else { return "/".into() };
        if let Some(path) = self.known.get(&id) {
            return path.clone();
        }
        let details: CliResult<Value> = api.get(&format!("/v1/folders/{id}"), &[]).await;
        let path = match details {
            Ok(details) => {
                let names: Vec<&str> = details["path"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["name"].as_str())
                    .collect();
                format!("/{}", names.join("/"))
            }
            Err(_) => id.clone(),
        };
        self.known.insert(id, path.clone());
        path
    }

    /// The path of a file or folder as the API renders it (`folder_id` or `parent_id` + `name`);
    /// a folder's ends with `/`.
    pub async fn of(&mut self, api: &Api, item: &Value) -> String {
        let is_folder = item.get("parent_id").is_some() || item["type"] == "folder";
        let parent = item
            .get("folder_id")
            .or_else(|| item.get("parent_id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut path = self.folder(api, parent).await;
        if !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(item["name"].as_str().unwrap_or_default());
        if is_folder {
            path.push('/');
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_trashed_item_is_chosen() {
        let mut items = vec![
            serde_json::json!({"id": "a", "trashed_at": "2026-01-02T00:00:00Z"}),
            serde_json::json!({"id": "b", "trashed_at": "2026-01-03T00:00:00Z"}),
            serde_json::json!({"id": "c", "trashed_at": "2026-01-01T00:00:00Z"}),
        ];
        assert_eq!(newest(&mut items).as_deref(), Some("b"));
        assert_eq!(newest(&mut []), None);
    }
}
