//! `ls`, `find` and `quota`: reading the workspace.

use clap::Args;
use serde_json::{json, Value};

use crate::client::error::CliResult;
use crate::client::items::{self, Item, PathBook, Where};
use crate::client::table::Table;
use crate::client::units::human_size;
use crate::client::{folders, short_time, text, Connection, Ctx};

#[derive(Debug, Args)]
pub struct LsArgs {
    /// A folder id (`fld_…`) or path (`/Photos/2024`); the root when left out. A file's id or
    /// path lists that file.
    pub folder: Option<String>,
    /// Only favorites.
    #[arg(long)]
    pub favorites: bool,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Debug, Args)]
pub struct FindArgs {
    /// Part of a name (case-insensitive).
    pub query: String,
    /// Only within this folder and below it.
    #[arg(long)]
    pub folder: Option<String>,
    /// At most this many results.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Debug, Args)]
pub struct QuotaArgs {
    #[command(flatten)]
    pub conn: Connection,
}

/// Every page of a list, followed by cursor (at most `max` items).
async fn all_pages(
    ctx: &Ctx,
    path: &str,
    query: Vec<(&str, String)>,
    max: usize,
) -> CliResult<(Vec<Value>, u64)> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = query.clone();
        query.push(("limit", "100".into()));
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.clone()));
        }
        let page: Value = ctx.api.get(path, &query).await?;
        items.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) if items.len() < max => cursor = Some(next.to_owned()),
            _ => {
                items.truncate(max);
                return Ok((items, page["total"].as_u64().unwrap_or(0)));
            }
        }
    }
}

fn star(item: &Value) -> String {
    if item["is_favorite"] == true {
        "★".into()
    } else {
        " ".into()
    }
}

pub async fn ls(ctx: &Ctx, args: LsArgs) -> CliResult<()> {
    let folder = match args.folder.as_deref() {
        Some(arg)
            if arg.starts_with("file_") || (items::is_path(arg) && !folders::segments(arg).is_empty()) =>
        {
            match items::resolve(&ctx.api, arg, Where::Live).await? {
                Item::Folder(id) => Some(id),
                Item::File(id) => return ls_file(ctx, &id).await,
            }
        }
        other => folders::resolve(&ctx.api, other).await?,
    };
    let scope = folder.clone().unwrap_or_else(|| "root".into());
    let mut folder_query = vec![("parent_id", scope.clone()), ("sort", "name".into())];
    let mut file_query = vec![("folder_id", scope), ("sort", "name".into())];
    if args.favorites {
        folder_query.push(("favorite", "true".into()));
        file_query.push(("favorite", "true".into()));
    }
    let (subfolders, _) = all_pages(ctx, "/v1/folders", folder_query, usize::MAX).await?;
    let (files, _) = all_pages(ctx, "/v1/files", file_query, usize::MAX).await?;

    if ctx.json {
        ctx.print_json(&json!({"folder_id": folder, "folders": subfolders, "files": files}));
        return Ok(());
    }
    if subfolders.is_empty() && files.is_empty() {
        ctx.note("(empty)");
        return Ok(());
    }
    let mut table = Table::new(&["", "NAME", "SIZE", "MODIFIED", "ID"]);
    for sub in &subfolders {
        table.row(vec![
            star(sub),
            format!("{}/", text(sub, "name")),
            "-".into(),
            short_time(&sub["updated_at"]),
            text(sub, "id"),
        ]);
    }
    for file in &files {
        table.row(vec![
            star(file),
            text(file, "name"),
            human_size(file["size"].as_u64().unwrap_or(0)),
            short_time(&file["updated_at"]),
            text(file, "id"),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

/// `ls` of one file: its row, with its path.
async fn ls_file(ctx: &Ctx, id: &str) -> CliResult<()> {
    let mut file: Value = ctx.api.get(&format!("/v1/files/{id}"), &[]).await?;
    let path = PathBook::default().of(&ctx.api, &file).await;
    file["path"] = json!(path);
    if ctx.json {
        ctx.print_json(&json!({"folder_id": file["folder_id"], "folders": [], "files": [file]}));
        return Ok(());
    }
    let mut table = Table::new(&["", "PATH", "SIZE", "MODIFIED", "ID"]);
    table.row(vec![
        star(&file),
        text(&file, "path"),
        human_size(file["size"].as_u64().unwrap_or(0)),
        short_time(&file["updated_at"]),
        text(&file, "id"),
    ]);
    print!("{}", table.render());
    Ok(())
}

pub async fn find(ctx: &Ctx, args: FindArgs) -> CliResult<()> {
    let mut query = vec![("q", args.query.clone())];
    if let Some(folder) = folders::resolve(&ctx.api, args.folder.as_deref()).await? {
        query.push(("folder_id", folder));
        query.push(("recursive", "true".into()));
    }
    let (mut hits, total) = all_pages(ctx, "/v1/search", query, args.limit).await?;
    let mut paths = PathBook::default();
    for hit in &mut hits {
        let path = paths.of(&ctx.api, hit).await;
        hit["path"] = json!(path);
    }
    if ctx.json {
        ctx.print_json(&json!({"total": total, "data": hits}));
        return Ok(());
    }
    if hits.is_empty() {
        ctx.note(format!("nothing matches {:?}", args.query));
        return Ok(());
    }
    let mut table = Table::new(&["", "TYPE", "PATH", "SIZE", "MODIFIED", "ID"]);
    for hit in &hits {
        let is_folder = hit["type"] == "folder";
        table.row(vec![
            star(hit),
            text(hit, "type"),
            text(hit, "path"),
            if is_folder { "-".into() } else { human_size(hit["size"].as_u64().unwrap_or(0)) },
            short_time(&hit["updated_at"]),
            text(hit, "id"),
        ]);
    }
    print!("{}", table.render());
    if (hits.len() as u64) < total {
        ctx.note(format!("({} of {total} shown; --limit for more)", hits.len()));
    }
    Ok(())
}

pub async fn quota(ctx: &Ctx, _args: QuotaArgs) -> CliResult<()> {
    let quota: Value = ctx.api.get("/v1/quota", &[]).await?;
    if ctx.json {
        ctx.print_json(&quota);
        return Ok(());
    }
    let bytes = |field: &str| quota[field].as_u64().map(human_size);
    let used = bytes("used_bytes").unwrap_or_default();
    match (bytes("limit_bytes"), quota["percent_used"].as_f64()) {
        (Some(limit), Some(percent)) => println!("used       {used} of {limit} ({percent:.2}%)"),
        _ => println!("used       {used} (no limit)"),
    }
    println!("reserved   {}", bytes("reserved_bytes").unwrap_or_default());
    if let Some(available) = bytes("available_bytes") {
        println!("available  {available}");
    }
    println!("max file   {}", bytes("max_file_size_bytes").unwrap_or_default());
    Ok(())
}
