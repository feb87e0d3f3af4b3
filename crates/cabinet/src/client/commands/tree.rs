//! `mkdir` and `trash ls|restore|empty`: the shape of the folder tree, and what was taken out of it.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client::error::{CliError, CliResult, Exit};
use crate::client::items::PathBook;
use crate::client::table::Table;
use crate::client::units::human_size;
use crate::client::{folders, short_time, text, Connection, Ctx};

use super::edit::{self, RestoreArgs};

#[derive(Debug, Args)]
pub struct MkdirArgs {
    /// Folder paths to create (`/Archive`, `/Photos/2024`).
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// Create missing parents too, and say nothing of a folder that is already there.
    #[arg(long, short)]
    pub parents: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn mkdir(ctx: &Ctx, args: MkdirArgs) -> CliResult<()> {
    let mut made = Vec::new();
    for path in &args.paths {
        let names = folders::segments(path);
        let Some((last, parents)) = names.split_last() else {
            return Err(CliError::usage("`/` (the root) is always there"));
        };
        let parent_path = format!("/{}", parents.join("/"));
        let id = if args.parents {
            let parent = folders::ensure_path(&ctx.api, Some(&parent_path)).await?;
            folders::ensure_child(&ctx.api, parent.as_deref(), last).await?
        } else {
            let parent = folders::resolve(&ctx.api, Some(&parent_path)).await.map_err(|err| {
                if err.exit == Exit::NotFound {
                    CliError { message: format!("{}; use mkdir -p to create it too", err.message), ..err }
                } else {
                    err
                }
            })?;
            if folders::child_named(&ctx.api, parent.as_deref(), last).await?.is_some() {
                return Err(CliError::new(Exit::Conflict, "name_taken", format!("{path} already exists")));
            }
            let created: Value =
                ctx.api.post("/v1/folders", &json!({"name": last, "parent_id": parent})).await?;
            text(&created, "id")
        };
        let shown = format!("/{}", names.join("/"));
        if !ctx.json {
            println!("{shown} ({id})");
        }
        made.push(json!({"path": shown, "id": id}));
    }
    if ctx.json {
        ctx.print_json(&Value::Array(made));
    }
    Ok(())
}

/// `cabinet trash ls|restore|empty`.
#[derive(Debug, Subcommand)]
pub enum TrashCommand {
    /// List what is in the trash, with where each item was.
    Ls(TrashLsArgs),
    /// Put files and folders back where they were (ids, or the paths they had).
    Restore(RestoreArgs),
    /// Delete everything in the trash for good, reclaiming its space.
    Empty(TrashEmptyArgs),
}

impl TrashCommand {
    pub fn connection(&self) -> &Connection {
        match self {
            TrashCommand::Ls(args) => &args.conn,
            TrashCommand::Restore(args) => &args.conn,
            TrashCommand::Empty(args) => &args.conn,
        }
    }
}

#[derive(Debug, Args)]
pub struct TrashLsArgs {
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Debug, Args)]
pub struct TrashEmptyArgs {
    /// Really: nothing in the trash can be restored afterwards.
    #[arg(long, short)]
    pub yes: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn trash(ctx: &Ctx, command: TrashCommand) -> CliResult<()> {
    match command {
        TrashCommand::Ls(_) => trash_ls(ctx).await,
        TrashCommand::Restore(args) => edit::restore(ctx, args).await,
        TrashCommand::Empty(args) => trash_empty(ctx, args).await,
    }
}

async fn trash_ls(ctx: &Ctx) -> CliResult<()> {
    let listed: Value = ctx.api.get("/v1/trash", &[("limit", "500".into())]).await?;
    let mut items = listed["data"].as_array().cloned().unwrap_or_default();
    let mut paths = PathBook::default();
    for item in &mut items {
        let path = paths.of(&ctx.api, item).await;
        item["path"] = json!(path);
    }
    if ctx.json {
        ctx.print_json(&json!({"data": items}));
        return Ok(());
    }
    if items.is_empty() {
        ctx.note("(the trash is empty)");
        return Ok(());
    }
    let mut table = Table::new(&["TYPE", "WAS AT", "SIZE", "TRASHED", "ID"]);
    for item in &items {
        let is_folder = item["type"] == "folder" || item.get("parent_id").is_some();
        table.row(vec![
            if is_folder { "folder".into() } else { "file".into() },
            text(item, "path"),
            if is_folder { "-".into() } else { human_size(item["size"].as_u64().unwrap_or(0)) },
            short_time(&item["trashed_at"]),
            text(item, "id"),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

async fn trash_empty(ctx: &Ctx, args: TrashEmptyArgs) -> CliResult<()> {
    if !args.yes {
        return Err(CliError::usage(
            "this deletes everything in the trash for good; run `cabinet trash empty --yes`",
        ));
    }
    let purged: Value = ctx.api.delete("/v1/trash", &[]).await?;
    if ctx.json {
        ctx.print_json(&purged);
    } else {
        println!("{} items deleted for good", purged["purged"].as_u64().unwrap_or(0));
    }
    Ok(())
}
