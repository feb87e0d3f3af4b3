//! `cabinet sync SOURCE DEST`: a one-way mirror between a local folder and a folder of the
//! workspace, either way, like `rclone sync --checksum`. A file is the same on both sides when its
//! relative path (case-insensitively) and SHA-256 are; a missing one is copied, a different one
//! replaced (on the server the old version goes to the trash), and with `--delete` what only the
//! destination has is removed (on the server: to the trash). `--dry-run` says what it would do.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use clap::Args;
use futures::StreamExt;
use serde_json::{json, Value};

use super::get;
use super::upload::{self, Outgoing};
use crate::client::error::{CliError, CliResult};
use crate::client::progress::Progress;
use crate::client::units::human_size;
use crate::client::{folders, text, Connection, Ctx};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Where from: a local folder, or a workspace folder (`/Photos`; write `:/Photos` when a local
    /// folder has the same absolute path; `fld_…` works too).
    pub source: String,
    /// Where to: a workspace folder when the source is local, a local folder when it is not.
    pub dest: String,
    /// Say what would be copied, replaced and deleted, and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Also delete what only the destination has (on the server: to the trash).
    #[arg(long)]
    pub delete: bool,
    /// Files sent or fetched at once.
    #[arg(long, short = 'j', default_value_t = 4)]
    pub jobs: usize,
    #[command(flatten)]
    pub conn: Connection,
}

/// One side of a sync.
enum Side {
    Local(PathBuf),
    Remote(String),
}

fn side(arg: &str) -> (Side, bool) {
    if let Some(remote) = arg.strip_prefix("cabinet:").or_else(|| arg.strip_prefix(':')) {
        return (Side::Remote(if remote.is_empty() { "/".into() } else { remote.to_owned() }), true);
    }
    if folders::is_folder_id(arg) {
        return (Side::Remote(arg.to_owned()), true);
    }
    if !arg.starts_with('/') || Path::new(arg).exists() {
        return (Side::Local(PathBuf::from(arg)), false);
    }
    (Side::Remote(arg.to_owned()), false)
}

/// A file on the server, under the synced folder.
struct RemoteFile {
    rel: String,
    file: Value,
}

/// A file on disk, under the synced folder.
struct LocalFile {
    rel: String,
    path: PathBuf,
    size: u64,
}

/// The comparison key of a relative path.
fn key(rel: &str) -> String {
    rel.to_lowercase()
}

/// Every folder and file under a workspace folder, by relative path.
async fn walk_remote(
    ctx: &Ctx,
    root: Option<String>,
) -> CliResult<(BTreeMap<String, (String, String)>, BTreeMap<String, RemoteFile>)> {
    let mut dirs = BTreeMap::new();
    let mut files = BTreeMap::new();
    let mut queue = vec![(root, String::new())];
    while let Some((folder, prefix)) = queue.pop() {
        let scope = folder.clone().unwrap_or_else(|| "root".into());
        for sub in list_all(ctx, "/v1/folders", "parent_id", &scope).await? {
            let rel = format!("{prefix}{}", text(&sub, "name"));
            dirs.insert(key(&rel), (rel.clone(), text(&sub, "id")));
            queue.push((Some(text(&sub, "id")), format!("{rel}/")));
        }
        for file in list_all(ctx, "/v1/files", "folder_id", &scope).await? {
            let rel = format!("{prefix}{}", text(&file, "name"));
            // Two files of one name: the first listed stands for the path.
            files.entry(key(&rel)).or_insert(RemoteFile { rel, file });
        }
    }
    Ok((dirs, files))
}

async fn list_all(ctx: &Ctx, list: &str, field: &str, scope: &str) -> CliResult<Vec<Value>> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![(field, scope.to_owned()), ("limit", "100".to_owned())];
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.clone()));
        }
        let page: Value = ctx.api.get(list, &query).await?;
        items.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(items),
        }
    }
}

/// Every folder and file under a local folder, by relative path (`/`-separated).
fn walk_local(root: &Path) -> CliResult<(BTreeMap<String, String>, BTreeMap<String, LocalFile>)> {
    let mut dirs = BTreeMap::new();
    let mut files = BTreeMap::new();
    let mut queue = vec![(root.to_owned(), String::new())];
    while let Some((dir, prefix)) = queue.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|err| CliError::io(dir.display(), err))?;
        for entry in entries {
            let entry = entry.map_err(|err| CliError::io(dir.display(), err))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("{prefix}{name}");
            let meta =
                std::fs::metadata(entry.path()).map_err(|err| CliError::io(entry.path().display(), err))?;
            if meta.is_dir() {
                dirs.insert(key(&rel), rel.clone());
                queue.push((entry.path(), format!("{rel}/")));
            } else if meta.is_file() {
                files.insert(key(&rel), LocalFile { rel, path: entry.path(), size: meta.len() });
            }
        }
    }
    Ok((dirs, files))
}

/// Whether a local file holds what a server file does: same size, then same SHA-256.
async fn same_content(local: &LocalFile, remote: &Value) -> CliResult<Option<String>> {
    if remote["size"].as_u64() != Some(local.size) {
        return Ok(None);
    }
    let sha256 = upload::sha256_of(&local.path).await?;
    Ok((sha256 == text(remote, "sha256")).then_some(sha256))
}

/// What a sync did (or, with --dry-run, would do).
#[derive(Default)]
struct Report {
    copied: Vec<String>,
    updated: Vec<String>,
    deleted: Vec<String>,
    unchanged: usize,
    bytes: u64,
    failed: Vec<Value>,
    first_error: Option<CliError>,
}

impl Report {
    fn fail(&mut self, rel: &str, err: CliError) {
        self.failed.push(json!({"path": rel, "error": err.to_json()["error"]}));
        self.first_error.get_or_insert(err);
    }
}

pub async fn sync(ctx: &Ctx, args: SyncArgs) -> CliResult<()> {
    let (source, source_marked) = side(&args.source);
    let (dest, dest_marked) = side(&args.dest);
    let (up, local, remote) = match (source, dest) {
        (Side::Local(local), Side::Remote(remote)) => (true, local, remote),
        (Side::Remote(remote), Side::Local(local)) => (false, local, remote),
        (Side::Local(_), Side::Local(_)) if !source_marked && !dest_marked => {
            return Err(CliError::usage(
                "both are local folders; write the workspace folder with a leading colon (:/Photos)",
            ))
        }
        // Neither is on disk: a local source would have to be, so the destination is the local one.
        (Side::Remote(remote), Side::Remote(_)) if !dest_marked => (false, PathBuf::from(&args.dest), remote),
        _ => return Err(CliError::usage("one side must be a local folder and the other a workspace folder")),
    };
    let mut report = Report::default();
    if up {
        sync_up(ctx, &args, &local, &remote, &mut report).await?;
    } else {
        sync_down(ctx, &args, &local, &remote, &mut report).await?;
    }

    if ctx.json {
        ctx.print_json(&json!({
            "direction": if up { "upload" } else { "download" },
            "dry_run": args.dry_run,
            "copied": report.copied,
            "updated": report.updated,
            "deleted": report.deleted,
            "unchanged": report.unchanged,
            "bytes": report.bytes,
            "failed": report.failed,
        }));
    } else {
        let verbs = if args.dry_run {
            ("would copy", "would update", "would delete")
        } else {
            ("copied", "updated", "deleted")
        };
        println!(
            "{} {}, {} {}, {} {}, unchanged {}, failed {} ({}){}",
            verbs.0,
            report.copied.len(),
            verbs.1,
            report.updated.len(),
            verbs.2,
            report.deleted.len(),
            report.unchanged,
            report.failed.len(),
            human_size(report.bytes),
            if args.dry_run { "; nothing was changed (--dry-run)" } else { "" }
        );
    }
    match report.first_error {
        None => Ok(()),
        Some(err) => Err(CliError {
            message: format!("{} of the changes failed; the first: {}", report.failed.len(), err.message),
            ..err
        }),
    }
}

/// A line per change, for people (not with --json or --quiet).
fn say(ctx: &Ctx, dry_run: bool, verb: &str, rel: &str) {
    ctx.note(format!("{}{verb} {rel}", if dry_run { "would " } else { "" }));
}

async fn sync_up(
    ctx: &Ctx,
    args: &SyncArgs,
    local: &Path,
    remote: &str,
    report: &mut Report,
) -> CliResult<()> {
    if !local.is_dir() {
        return Err(CliError::not_found(format!("{}: no such local folder", local.display())));
    }
    let root = if args.dry_run {
        match folders::resolve(&ctx.api, Some(remote)).await {
            Ok(root) => Some(root),
            Err(err) if err.exit == crate::client::error::Exit::NotFound => None,
            Err(err) => return Err(err),
        }
    } else {
        Some(folders::ensure_path(&ctx.api, Some(remote)).await?)
    };
    let (local_dirs, local_files) = walk_local(local)?;
    let (remote_dirs, remote_files) = match &root {
        Some(root) => walk_remote(ctx, root.clone()).await?,
        None => Default::default(),
    };

    let mut outgoing = Vec::new();
    let mut kinds = HashMap::new();
    for (k, file) in &local_files {
        let (verb, replaces, sha256) = match remote_files.get(k) {
            None => ("copy", Vec::new(), None),
            Some(there) => match same_content(file, &there.file).await? {
                Some(_) => {
                    report.unchanged += 1;
                    continue;
                }
                None => ("update", vec![text(&there.file, "id")], None),
            },
        };
        say(ctx, args.dry_run, verb, &file.rel);
        report.bytes += file.size;
        kinds.insert(file.path.clone(), (verb, file.rel.clone()));
        outgoing.push((file, replaces, sha256));
    }

    if !args.dry_run {
        let root = root.clone().flatten();
        let mut made: HashMap<String, Option<String>> = HashMap::new();
        made.insert(String::new(), root.clone());
        for (k, (_, id)) in &remote_dirs {
            made.insert(k.clone(), Some(id.clone()));
        }
        let mut files = Vec::new();
        for (file, replaces, sha256) in outgoing {
            let (dir, name) = match file.rel.rsplit_once('/') {
                Some((dir, name)) => (dir.to_owned(), name.to_owned()),
                None => (String::new(), file.rel.clone()),
            };
            let folder_id = folder_for(ctx, &mut made, &dir).await?;
            files.push(Outgoing {
                path: file.path.clone(),
                folder_id,
                name,
                size: file.size,
                sha256,
                replaces,
            });
        }
        for (path, outcome) in upload::send_files(ctx, &args.conn, args.jobs, files).await {
            let (verb, rel) = kinds.remove(&path).unwrap_or(("copy", path.display().to_string()));
            match outcome {
                Ok(_) if verb == "copy" => report.copied.push(rel),
                Ok(_) => report.updated.push(rel),
                Err(err) => report.fail(&rel, err),
            }
        }
    } else {
        for (verb, rel) in kinds.into_values() {
            if verb == "copy" {
                report.copied.push(rel);
            } else {
                report.updated.push(rel);
            }
        }
    }

    if args.delete {
        // Top-most folders only: their contents go with them.
        let gone_dirs: BTreeSet<&String> =
            remote_dirs.keys().filter(|k| !local_dirs.contains_key(*k)).collect();
        let under_gone = |k: &str| gone_dirs.iter().any(|d| k.starts_with(&format!("{d}/")));
        for (k, (rel, id)) in &remote_dirs {
            if gone_dirs.contains(k) && !under_gone(k) {
                delete_remote(ctx, args, report, &format!("{rel}/"), &format!("/v1/folders/{id}"), true)
                    .await;
            }
        }
        for (k, there) in &remote_files {
            if !local_files.contains_key(k) && !under_gone(k) {
                let path = format!("/v1/files/{}", text(&there.file, "id"));
                delete_remote(ctx, args, report, &there.rel, &path, false).await;
            }
        }
    }
    report.copied.sort();
    report.updated.sort();
    Ok(())
}

/// The server folder for a relative folder path, created (with its parents) if missing.
async fn folder_for(
    ctx: &Ctx,
    made: &mut HashMap<String, Option<String>>,
    dir: &str,
) -> CliResult<Option<String>> {
    if let Some(id) = made.get(&key(dir)) {
        return Ok(id.clone());
    }
    let (parent, name) = match dir.rsplit_once('/') {
        Some((parent, name)) => (parent, name),
        None => ("", dir),
    };
    let parent_id = Box::pin(folder_for(ctx, made, parent)).await?;
    let id = Some(folders::ensure_child(&ctx.api, parent_id.as_deref(), name).await?);
    made.insert(key(dir), id.clone());
    Ok(id)
}

async fn delete_remote(ctx: &Ctx, args: &SyncArgs, report: &mut Report, rel: &str, path: &str, folder: bool) {
    say(ctx, args.dry_run, "delete", rel);
    if !args.dry_run {
        let query = if folder { vec![("recursive", "true".to_owned())] } else { Vec::new() };
        let deleted: CliResult<Value> = ctx.api.delete(path, &query).await;
        if let Err(err) = deleted {
            report.fail(rel, err);
            return;
        }
    }
    report.deleted.push(rel.to_owned());
}

async fn sync_down(
    ctx: &Ctx,
    args: &SyncArgs,
    local: &Path,
    remote: &str,
    report: &mut Report,
) -> CliResult<()> {
    let root = folders::resolve(&ctx.api, Some(remote)).await?;
    let (remote_dirs, remote_files) = walk_remote(ctx, root).await?;
    let (local_dirs, local_files) = if local.is_dir() { walk_local(local)? } else { Default::default() };

    let mut wanted = Vec::new();
    for (k, there) in &remote_files {
        let verb = match local_files.get(k) {
            None => "copy",
            Some(file) => match same_content(file, &there.file).await? {
                Some(_) => {
                    report.unchanged += 1;
                    continue;
                }
                None => "update",
            },
        };
        say(ctx, args.dry_run, verb, &there.rel);
        report.bytes += there.file["size"].as_u64().unwrap_or(0);
        // An existing file keeps the spelling it has on disk.
        let target = local_files.get(k).map(|f| f.path.clone()).unwrap_or_else(|| local.join(&there.rel));
        wanted.push((verb, there, target));
    }

    if args.dry_run {
        for (verb, there, _) in &wanted {
            if *verb == "copy" {
                report.copied.push(there.rel.clone())
            } else {
                report.updated.push(there.rel.clone())
            }
        }
    } else {
        for (rel, _) in remote_dirs.values() {
            let dir = local.join(rel);
            std::fs::create_dir_all(&dir).map_err(|err| CliError::io(dir.display(), err))?;
        }
        std::fs::create_dir_all(local).map_err(|err| CliError::io(local.display(), err))?;
        let progress = Progress::new(ctx.progress(), report.bytes, &format!("{} files", wanted.len()));
        let bar = progress.file("sync", report.bytes);
        let outcomes: Vec<_> = futures::stream::iter(wanted)
            .map(|(verb, there, target)| {
                let bar = bar.clone();
                async move {
                    let outcome = get::download(ctx, &there.file, &target, true, None, false).await;
                    bar.advance(there.file["size"].as_u64().unwrap_or(0));
                    (verb, there, outcome)
                }
            })
            .buffer_unordered(args.jobs.max(1))
            .collect()
            .await;
        bar.finish();
        progress.finish();
        for (verb, there, outcome) in outcomes {
            match outcome {
                Ok(_) if verb == "copy" => report.copied.push(there.rel.clone()),
                Ok(_) => report.updated.push(there.rel.clone()),
                Err(err) => report.fail(&there.rel, err),
            }
        }
    }

    if args.delete {
        for (k, file) in &local_files {
            if remote_files.contains_key(k) {
                continue;
            }
            say(ctx, args.dry_run, "delete", &file.rel);
            if !args.dry_run {
                if let Err(err) = std::fs::remove_file(&file.path) {
                    report.fail(&file.rel, CliError::io(file.path.display(), err));
                    continue;
                }
            }
            report.deleted.push(file.rel.clone());
        }
        // Folders the server does not have, deepest first, once empty.
        let mut gone: Vec<&String> =
            local_dirs.iter().filter(|(k, _)| !remote_dirs.contains_key(*k)).map(|(_, rel)| rel).collect();
        gone.sort_by_key(|rel| std::cmp::Reverse(rel.len()));
        for rel in gone {
            say(ctx, args.dry_run, "delete", &format!("{rel}/"));
            if args.dry_run || std::fs::remove_dir(local.join(rel)).is_ok() {
                report.deleted.push(format!("{rel}/"));
            }
        }
    }
    report.copied.sort();
    report.updated.sort();
    Ok(())
}
