//! `mv`, `rm`, `restore`, `fav` and `tag`: changing files and folders.

use clap::Args;
use serde_json::{json, Map, Value};

use crate::client::error::{CliError, CliResult, Exit};
use crate::client::items::{self, Item, Where};
use crate::client::{folders, text, usage, Connection, Ctx};

#[derive(Debug, Args)]
pub struct MvArgs {
    /// The file or folder: an id, or a path (`/Photos/2024/hello.txt`).
    pub id: String,
    /// The folder to move it into (id or path; `/` is the root).
    pub dest: Option<String>,
    /// A new name.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn mv(ctx: &Ctx, args: MvArgs) -> CliResult<()> {
    if args.dest.is_none() && args.name.is_none() {
        return Err(usage("say where to move it (DEST) and/or its new name (--name)"));
    }
    let item = items::resolve(&ctx.api, &args.id, Where::Live).await?;
    let mut change = Map::new();
    if let Some(dest) = &args.dest {
        let folder = folders::resolve(&ctx.api, Some(dest)).await.map_err(|err| match err.exit {
            Exit::NotFound if items::is_path(dest) => CliError {
                message: format!("{} (create it with `cabinet mkdir -p {dest}`)", err.message),
                ..err
            },
            _ => err,
        })?;
        let field = if matches!(item, Item::File(_)) { "folder_id" } else { "parent_id" };
        change.insert(field.into(), json!(folder));
    }
    if let Some(name) = &args.name {
        change.insert("name".into(), json!(name));
    }
    let updated: Value = ctx.api.patch(&item.api_path(), &Value::Object(change)).await?;
    if ctx.json {
        ctx.print_json(&updated);
    } else {
        let place = items::PathBook::default().of(&ctx.api, &updated).await;
        println!("{} ({}) is now {place}", text(&updated, "name"), text(&updated, "id"));
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Files and folders: ids, or paths (`/Photos/old.jpg`, `/Photos/2019`).
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// A folder with everything in it.
    #[arg(long, short)]
    pub recursive: bool,
    /// Delete at once instead of moving to the trash (frees the quota now).
    #[arg(long)]
    pub permanent: bool,
    /// Delete even if something uses the file.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn rm(ctx: &Ctx, args: RmArgs) -> CliResult<()> {
    let mut done = Vec::new();
    for arg in &args.ids {
        let item = items::resolve(&ctx.api, arg, Where::Live).await?;
        let mut query = vec![("permanent", args.permanent.to_string()), ("force", args.force.to_string())];
        if matches!(item, Item::Folder(_)) {
            query.push(("recursive", args.recursive.to_string()));
        }
        let deleted: Value =
            ctx.api.delete(&item.api_path(), &query).await.map_err(|err| match err.code.as_str() {
                "folder_not_empty" => CliError {
                    message: format!("{arg} is not empty; use rm -r to remove it with its contents"),
                    ..err
                },
                "file_in_use" => CliError {
                    message: format!("{arg}: {}", err.message.replace("pass force=true", "use --force")),
                    ..err
                },
                _ => err,
            })?;
        if !ctx.json {
            let how = if args.permanent { "deleted" } else { "moved to the trash" };
            println!("{} ({}) {how}", text(&deleted, "name"), text(&deleted, "id"));
        }
        done.push(deleted);
    }
    if ctx.json {
        ctx.print_json(&Value::Array(done));
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Files and folders in the trash: ids, or the paths they had (`/Photos/old.jpg`).
    #[arg(required = true)]
    pub ids: Vec<String>,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn restore(ctx: &Ctx, args: RestoreArgs) -> CliResult<()> {
    let mut done = Vec::new();
    for arg in &args.ids {
        let item = items::resolve(&ctx.api, arg, Where::Trash).await?;
        let restored: Value = ctx.api.post(&format!("{}/restore", item.api_path()), &json!({})).await?;
        if !ctx.json {
            let thing = restored.get("file").or_else(|| restored.get("folder")).cloned().unwrap_or_default();
            let mut line = format!("{} ({}) restored", text(&thing, "name"), text(&thing, "id"));
            if restored["restore"]["restored_to_root"] == true {
                line.push_str(" to the root (its folder is gone)");
            }
            if let Some(renamed) = restored["restore"]["renamed_to"].as_str() {
                line.push_str(&format!(" as {renamed:?} (its name was taken)"));
            }
            println!("{line}");
        }
        done.push(restored);
    }
    if ctx.json {
        ctx.print_json(&Value::Array(done));
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct FavArgs {
    /// The file or folder: an id or a path.
    pub id: String,
    /// Mark it a favorite (instead of toggling).
    #[arg(long, conflicts_with = "off")]
    pub on: bool,
    /// Unmark it (instead of toggling).
    #[arg(long)]
    pub off: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn fav(ctx: &Ctx, args: FavArgs) -> CliResult<()> {
    let item = items::resolve(&ctx.api, &args.id, Where::Live).await?;
    let result: Value = if args.on || args.off {
        let updated: Value = ctx.api.patch(&item.api_path(), &json!({"is_favorite": args.on})).await?;
        json!({"id": updated["id"], "is_favorite": updated["is_favorite"]})
    } else {
        ctx.api.post(&format!("{}/favorite", item.api_path()), &json!({})).await?
    };
    if ctx.json {
        ctx.print_json(&result);
    } else if result["is_favorite"] == true {
        println!("★ {} is a favorite", text(&result, "id"));
    } else {
        println!("  {} is not a favorite", text(&result, "id"));
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// The file: an id or a path.
    pub id: String,
    /// `+tag` adds a tag, `-tag` removes one (a bare `tag` adds it).
    #[arg(allow_hyphen_values = true)]
    pub changes: Vec<String>,
    /// Replace all tags with these (comma-separated; empty clears them).
    #[arg(long, value_name = "TAGS")]
    pub set: Option<String>,
    #[command(flatten)]
    pub conn: Connection,
}

impl TagArgs {
    /// Takes back the command's own flags that `+a -b` swallowed (`tag ID -b --json`): the
    /// changes accept values starting with `-`, so clap hands every later word to them.
    pub fn lift_flags(&mut self) {
        let mut changes = Vec::new();
        let mut words = std::mem::take(&mut self.changes).into_iter();
        while let Some(word) = words.next() {
            let (flag, inline) = match word.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.to_owned())),
                _ => (word.clone(), None),
            };
            match flag.as_str() {
                "--json" => self.conn.json = true,
                "--quiet" | "-q" => self.conn.quiet = true,
                "--url" => self.conn.url = inline.or_else(|| words.next()),
                "--key" => self.conn.key = inline.or_else(|| words.next()),
                "--profile" => self.conn.profile = inline.or_else(|| words.next()),
                "--set" => self.set = inline.or_else(|| words.next()),
                _ => changes.push(word),
            }
        }
        self.changes = changes;
    }
}

/// The tags after applying `+a`/`-b`/`a` changes, in order, without duplicates.
fn apply_tag_changes(mut tags: Vec<String>, changes: &[String]) -> Vec<String> {
    for change in changes {
        if let Some(tag) = change.strip_prefix('-') {
            tags.retain(|t| !t.eq_ignore_ascii_case(tag.trim()));
        } else {
            let tag = change.strip_prefix('+').unwrap_or(change).trim();
            if !tag.is_empty() && !tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
                tags.push(tag.to_owned());
            }
        }
    }
    tags
}

pub async fn tag(ctx: &Ctx, args: TagArgs) -> CliResult<()> {
    let id = match items::resolve(&ctx.api, &args.id, Where::Live).await? {
        Item::File(id) => id,
        Item::Folder(_) => return Err(usage(format!("tags belong to files: {} is a folder", args.id))),
    };
    let path = format!("/v1/files/{id}");
    let file: Value = if args.set.is_none() && args.changes.is_empty() {
        ctx.api.get(&path, &[]).await?
    } else {
        let base: Vec<String> = match &args.set {
            Some(set) => set.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect(),
            None => {
                let file: Value = ctx.api.get(&path, &[]).await?;
                serde_json::from_value(file["tags"].clone())
                    .map_err(|_| CliError::other("invalid_response", "the file's tags are not a list"))?
            }
        };
        let tags = apply_tag_changes(base, &args.changes);
        ctx.api.patch(&path, &json!({"tags": tags})).await?
    };
    if ctx.json {
        ctx.print_json(&json!({"id": file["id"], "tags": file["tags"]}));
    } else {
        let tags: Vec<&str> =
            file["tags"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        println!(
            "{}: {}",
            text(&file, "id"),
            if tags.is_empty() { "(no tags)".into() } else { tags.join(", ") }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_after_the_changes_are_the_commands_own() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            tag: TagArgs,
        }
        let mut args =
            Cli::parse_from(["tag", "file_1", "+a", "-b", "--json", "--key=cab_x", "--profile", "p"]).tag;
        args.lift_flags();
        assert_eq!(args.changes, vec!["+a", "-b"]);
        assert!(args.conn.json);
        assert_eq!(args.conn.key.as_deref(), Some("cab_x"));
        assert_eq!(args.conn.profile.as_deref(), Some("p"));
    }

    #[test]
    fn tag_changes_add_and_remove_in_order() {
        let tags = vec!["a".to_owned(), "b".to_owned()];
        let changes: Vec<String> = ["+c", "-a", "b", "d", "-zz"].iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(apply_tag_changes(tags, &changes), vec!["b", "c", "d"]);
    }
}
