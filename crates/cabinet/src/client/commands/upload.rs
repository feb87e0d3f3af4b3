//! `cabinet upload PATH…`: files and whole folders, in parallel, each verified by its SHA-256.
//!
//! Running it again is safe: each file is first compared with the files of its target folder,
//! and one whose name and SHA-256 are already there is skipped (and said so in the summary); a
//! different file of the same name is skipped, renamed, replaced or refused (`--on-conflict`).
//!
//! Small files take one signed `PUT` (`POST /v1/uploads` → `PUT upload_url` → `complete`). Files
//! at or above `--multipart-threshold` go in parts (`"multipart": true`), several at a time, each
//! part streamed from its range of the file; the upload is recorded in the resume book first, so
//! running the same command again after an interruption sends only the parts the server lacks.
//! A server without multipart uploads answers with a plain ticket, and the file goes in one `PUT`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{Read, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use reqwest_tls::{Body, Method};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::client::error::{CliError, CliResult, Exit};
use crate::client::http::checked;
use crate::client::items::PathBook;
use crate::client::progress::{FileBar, Progress};
use crate::client::resume::{mtime_of, ResumeBook, UploadRecord};
use crate::client::table::Table;
use crate::client::units::{human_size, parse_size};
use crate::client::{folders, text, Connection, Ctx};

/// Bytes read from disk per chunk of a request body.
const CHUNK: usize = 256 * 1024;
/// Part numbers asked for per `POST /v1/uploads/{id}/parts` (the API's limit).
const PARTS_PER_CALL: usize = 100;
/// Tries per part before the file is given up (and left to resume).
const PART_ATTEMPTS: u32 = 3;
/// The API's part sizes and count: 5 MiB to 5 GiB, at most 10,000 parts.
const MIN_PART: u64 = 5 << 20;
const MAX_PART: u64 = 5 << 30;
const MAX_PARTS: u64 = 10_000;
/// The part size unless told otherwise: small enough that an interrupted upload loses little
/// (at most one part per part in flight, 4 × 8 MiB with the defaults), large enough that the
/// per-part requests cost next to nothing.
const DEFAULT_PART: u64 = 8 << 20;

/// The part size for a file of `size` bytes: `--part-size`, else 8 MiB, raised (in whole MiB)
/// only as far as the 10,000-part limit needs.
fn part_size_for(chosen: Option<u64>, size: u64) -> u64 {
    chosen.unwrap_or_else(|| {
        let needed = size.div_ceil(MAX_PARTS).div_ceil(1 << 20) << 20;
        DEFAULT_PART.max(needed).clamp(MIN_PART, MAX_PART)
    })
}

pub(super) fn size_arg(raw: &str) -> Result<u64, String> {
    parse_size(raw).map_err(|err| err.message)
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Files and folders; a folder is uploaded with its whole tree.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Where to put them: a folder id or path (created if missing); the root by default.
    #[arg(long)]
    pub folder: Option<String>,
    /// A tag for every uploaded file (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Files (and parts) sent at once.
    #[arg(long, short = 'j', default_value_t = 4)]
    pub jobs: usize,
    /// Files this large or larger are sent in parts and can be resumed.
    #[arg(long, default_value = "16MiB", value_parser = size_arg)]
    pub multipart_threshold: u64,
    /// The size of each part (5MiB to 5GiB). By default 8MiB, larger only where a file would need
    /// more than 10,000 parts: an interruption loses at most one part per part in flight.
    #[arg(long, value_parser = size_arg)]
    pub part_size: Option<u64>,
    /// When the target folder already has a file of the same name: `skip` it (a file whose name
    /// and SHA-256 are already there is always skipped), upload under a free `rename`d name
    /// (`name (1).ext`), `replace` it (the old one goes to the trash), or `fail`.
    #[arg(long, value_enum, default_value_t = OnConflict::Skip)]
    pub on_conflict: OnConflict,
    /// Send at most this many bytes per second, over all files (e.g. 10MiB).
    #[arg(long, value_parser = size_arg)]
    pub limit_rate: Option<u64>,
    #[command(flatten)]
    pub conn: Connection,
}

/// What to do about a file of the same name in the target folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnConflict {
    /// Leave the file there and do not upload this one.
    Skip,
    /// Upload this one under a free name: `name (1).ext`.
    Rename,
    /// Upload this one, then move the other to the trash.
    Replace,
    /// Count it as a failed upload (exit code 5).
    Fail,
}

/// One local file to send.
#[derive(Debug, Clone)]
struct Job {
    path: PathBuf,
    name: String,
    folder_id: Option<String>,
    /// The target folder as the user reads it (`/Photos/2024`), for messages.
    remote_dir: String,
    size: u64,
    /// Known when it had to be computed to compare with a file already there.
    sha256: Option<String>,
    /// Files of the same name this upload replaces (trashed once it succeeded).
    replaces: Vec<String>,
}

/// What to do with one planned file, once compared with the target folder.
enum Decision {
    Upload(Job),
    Skip(Job, Value),
    Fail(Job, CliError),
}

/// Keeps all uploads of a command under a byte rate.
struct RateLimit {
    bytes_per_second: u64,
    start: Instant,
    sent: AtomicU64,
}

impl RateLimit {
    async fn take(&self, bytes: u64) {
        let sent = self.sent.fetch_add(bytes, Ordering::SeqCst) + bytes;
        let due = self.start + Duration::from_secs_f64(sent as f64 / self.bytes_per_second as f64);
        tokio::time::sleep_until(due.into()).await;
    }
}

/// What every file's upload shares.
struct Shared<'a> {
    ctx: &'a Ctx,
    args: &'a UploadArgs,
    book: ResumeBook,
    progress: Progress,
    rate: Option<Arc<RateLimit>>,
}

pub async fn run(ctx: &Ctx, args: UploadArgs) -> CliResult<()> {
    if args.jobs == 0 {
        return Err(CliError::usage("--jobs must be at least 1"));
    }
    if args.part_size.is_some_and(|size| !(MIN_PART..=MAX_PART).contains(&size)) {
        return Err(CliError::usage("--part-size must be between 5MiB and 5GiB"));
    }
    for path in &args.paths {
        std::fs::metadata(path).map_err(|err| CliError::io(path.display(), err))?;
    }
    let target = folders::ensure_path(&ctx.api, args.folder.as_deref()).await?;
    let target_dir = PathBook::default().folder(&ctx.api, target.clone()).await;
    let mut planned = Vec::new();
    for path in &args.paths {
        plan(ctx, path, target.clone(), &target_dir, &mut planned).await?;
    }
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    let mut refused = Vec::new();
    for decision in against_the_target(ctx, planned, args.on_conflict).await? {
        match decision {
            Decision::Upload(job) => jobs.push(job),
            Decision::Skip(job, why) => skipped.push(why_skipped(&job, why)),
            Decision::Fail(job, err) => refused.push((job, Err(err))),
        }
    }
    let mut outcomes = send(ctx, &args, jobs).await;
    outcomes.extend(refused);

    let mut uploaded = Vec::new();
    let mut failed = Vec::new();
    let mut first_error: Option<CliError> = None;
    for (job, outcome) in outcomes {
        match outcome {
            Ok(done) => uploaded.push(done),
            Err(err) => {
                failed.push(json!({"path": job.path, "error": err.to_json()["error"]}));
                first_error.get_or_insert(err);
            }
        }
    }
    uploaded.sort_by_key(|a| text(a, "path"));
    skipped.sort_by_key(|a| text(a, "path"));
    if ctx.json {
        ctx.print_json(&json!({"uploaded": uploaded, "skipped": skipped, "failed": failed}));
    } else {
        let mut table = Table::new(&["PATH", "SIZE", "ID", "HOW"]);
        for done in &uploaded {
            let how = if done["multipart"] == true {
                let resumed = if done["resumed"] == true { ", resumed" } else { "" };
                format!("{} parts sent of {}{resumed}", done["parts_sent"], done["parts_total"])
            } else {
                "single".into()
            };
            table.row(vec![
                text(done, "path"),
                human_size(done["size"].as_u64().unwrap_or(0)),
                text(&done["file"], "id"),
                how,
            ]);
        }
        for skip in &skipped {
            table.row(vec![
                text(skip, "path"),
                human_size(skip["size"].as_u64().unwrap_or(0)),
                text(&skip["file"], "id"),
                format!("skipped: {}", text(skip, "reason")),
            ]);
        }
        if !uploaded.is_empty() || !skipped.is_empty() {
            print!("{}", table.render());
        }
        println!("{}", summary_line(uploaded.len(), &skipped, failed.len()));
    }
    match first_error {
        None => Ok(()),
        Some(err) => {
            let message = format!(
                "{} of {} uploads failed; the first: {}",
                failed.len(),
                failed.len() + uploaded.len(),
                err.message
            );
            Err(CliError { message, ..err })
        }
    }
}

/// Uploads `jobs`, `--jobs` at a time, with the bars and the rate limit; each file's outcome.
async fn send(ctx: &Ctx, args: &UploadArgs, jobs: Vec<Job>) -> Vec<(Job, CliResult<Value>)> {
    let total: u64 = jobs.iter().map(|job| job.size).sum();
    let shared = Shared {
        ctx,
        args,
        book: ResumeBook::open(),
        progress: Progress::new(ctx.progress(), total, &format!("{} files", jobs.len())),
        rate: args.limit_rate.filter(|rate| *rate > 0).map(|rate| {
            Arc::new(RateLimit { bytes_per_second: rate, start: Instant::now(), sent: AtomicU64::new(0) })
        }),
    };
    let outcomes = futures::stream::iter(jobs)
        .map(|job| {
            let shared = &shared;
            async move {
                let outcome = upload_one(shared, &job).await;
                if let (Err(err), false) = (&outcome, shared.ctx.json) {
                    shared.progress.println(&format!("cabinet: {}: {}", job.path.display(), err.message));
                }
                (job, outcome)
            }
        })
        .buffer_unordered(args.jobs.max(1))
        .collect()
        .await;
    shared.progress.finish();
    outcomes
}

/// A local file for [`send_files`].
pub(super) struct Outgoing {
    pub path: PathBuf,
    pub folder_id: Option<String>,
    pub name: String,
    pub size: u64,
    pub sha256: Option<String>,
    pub replaces: Vec<String>,
}

/// Uploads local files to given folders under given names, replacing the files named in each
/// (which go to the trash once the new one is verified): `sync`'s way in.
pub(super) async fn send_files(
    ctx: &Ctx,
    conn: &Connection,
    jobs: usize,
    files: Vec<Outgoing>,
) -> Vec<(PathBuf, CliResult<Value>)> {
    let args = UploadArgs {
        paths: Vec::new(),
        folder: None,
        tags: Vec::new(),
        jobs,
        multipart_threshold: 16 << 20,
        part_size: None,
        on_conflict: OnConflict::Replace,
        limit_rate: None,
        conn: conn.clone(),
    };
    let jobs = files
        .into_iter()
        .map(|file| Job {
            path: file.path,
            name: file.name,
            folder_id: file.folder_id,
            remote_dir: String::new(),
            size: file.size,
            sha256: file.sha256,
            replaces: file.replaces,
        })
        .collect();
    send(ctx, &args, jobs).await.into_iter().map(|(job, outcome)| (job.path, outcome)).collect()
}

/// `uploaded 3, skipped 2 (already there), failed 0`.
fn summary_line(uploaded: usize, skipped: &[Value], failed: usize) -> String {
    let identical = skipped.iter().filter(|s| s["identical"] == true).count();
    let mut line = format!("uploaded {uploaded}, skipped {}", skipped.len());
    match (identical, skipped.len() - identical) {
        (0, 0) => {}
        (same, 0) => line.push_str(&format!(" ({same} already there)")),
        (0, other) => {
            line.push_str(&format!(" ({other} with a different file of that name there; --on-conflict)"))
        }
        (same, other) => line.push_str(&format!(
            " ({same} already there, {other} with a different file of that name there; --on-conflict)"
        )),
    }
    line.push_str(&format!(", failed {failed}"));
    line
}

fn why_skipped(job: &Job, why: Value) -> Value {
    json!({
        "path": job.path,
        "name": job.name,
        "size": job.size,
        "remote_path": remote_path(job),
        "identical": why["identical"],
        "reason": why["reason"],
        "file": why["file"],
    })
}

fn remote_path(job: &Job) -> String {
    format!("{}/{}", job.remote_dir.trim_end_matches('/'), job.name)
}

/// Compares each planned file with the files already in its target folder (listed once per
/// folder): an identical one (same name, same SHA-256) is skipped; a different one of the same
/// name is handled as `--on-conflict` says.
async fn against_the_target(ctx: &Ctx, planned: Vec<Job>, mode: OnConflict) -> CliResult<Vec<Decision>> {
    let mut listings: HashMap<Option<String>, Vec<Value>> = HashMap::new();
    let mut decisions = Vec::new();
    for mut job in planned {
        if !listings.contains_key(&job.folder_id) {
            let files = files_in(ctx, job.folder_id.as_deref()).await?;
            listings.insert(job.folder_id.clone(), files);
        }
        let listing = listings.get_mut(&job.folder_id).expect("listed above");
        let wanted = job.name.to_lowercase();
        let same_name: Vec<Value> =
            listing.iter().filter(|f| text(f, "name").to_lowercase() == wanted).cloned().collect();
        if same_name.is_empty() {
            listing.push(json!({"name": job.name}));
            decisions.push(Decision::Upload(job));
            continue;
        }
        if same_name.iter().any(|f| f["size"].as_u64() == Some(job.size)) {
            let sha256 = sha256_of(&job.path).await?;
            if let Some(same) = same_name.iter().find(|f| text(f, "sha256") == sha256) {
                let why = json!({"identical": true, "reason": "already there", "file": same});
                decisions.push(Decision::Skip(job, why));
                continue;
            }
            job.sha256 = Some(sha256);
        }
        match mode {
            OnConflict::Skip => {
                let why = json!({
                    "identical": false,
                    "reason": "a different file has this name there",
                    "file": same_name[0],
                });
                decisions.push(Decision::Skip(job, why));
            }
            OnConflict::Fail => {
                let err = CliError::new(
                    Exit::Conflict,
                    "name_taken",
                    format!(
                        "{} already exists with other content (--on-conflict rename, replace or skip)",
                        remote_path(&job)
                    ),
                );
                decisions.push(Decision::Fail(job, err));
            }
            OnConflict::Rename => {
                let taken: HashSet<String> = listing.iter().map(|f| text(f, "name").to_lowercase()).collect();
                job.name = free_name(&job.name, &taken);
                listing.push(json!({"name": job.name}));
                decisions.push(Decision::Upload(job));
            }
            OnConflict::Replace => {
                job.replaces = same_name.iter().map(|f| text(f, "id")).collect();
                decisions.push(Decision::Upload(job));
            }
        }
    }
    Ok(decisions)
}

/// Every live file directly in a folder.
async fn files_in(ctx: &Ctx, folder: Option<&str>) -> CliResult<Vec<Value>> {
    let mut files = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("folder_id", folder.unwrap_or("root").to_owned()), ("limit", "100".to_owned())];
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.clone()));
        }
        let page: Value = ctx.api.get("/v1/files", &query).await?;
        files.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(files),
        }
    }
}

/// `report.pdf` → `report (1).pdf`, the first such name not taken (lowercase names).
fn free_name(name: &str, taken: &HashSet<String>) -> String {
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if dot > 0 => (&name[..dot], &name[dot..]),
        _ => (name, ""),
    };
    (1..)
        .map(|n| format!("{stem} ({n}){ext}"))
        .find(|candidate| !taken.contains(&candidate.to_lowercase()))
        .expect("some number is free")
}

/// Adds the files under `path` to `jobs`, creating a folder for each local folder.
async fn plan(
    ctx: &Ctx,
    path: &Path,
    folder: Option<String>,
    remote_dir: &str,
    jobs: &mut Vec<Job>,
) -> CliResult<()> {
    let meta = std::fs::metadata(path).map_err(|err| CliError::io(path.display(), err))?;
    let name = std::fs::canonicalize(path)
        .map_err(|err| CliError::io(path.display(), err))?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if meta.is_file() {
        jobs.push(Job {
            path: path.to_owned(),
            name,
            folder_id: folder,
            remote_dir: remote_dir.to_owned(),
            size: meta.len(),
            sha256: None,
            replaces: Vec::new(),
        });
        return Ok(());
    }
    if !meta.is_dir() {
        return Ok(());
    }
    let here = folders::ensure_child(&ctx.api, folder.as_deref(), &name).await?;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|err| CliError::io(path.display(), err))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|err| CliError::io(path.display(), err))?;
    entries.sort();
    let here_dir = format!("{}/{name}", remote_dir.trim_end_matches('/'));
    for entry in entries {
        Box::pin(plan(ctx, &entry, Some(here.clone()), &here_dir, jobs)).await?;
    }
    Ok(())
}

/// The SHA-256 of a file, read off the async threads.
pub(super) async fn sha256_of(path: &Path) -> CliResult<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path).map_err(|err| CliError::io(path.display(), err))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(|err| CliError::io(path.display(), err))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hex::encode(hasher.finalize()))
    })
    .await
    .map_err(|err| CliError::other("internal", err.to_string()))?
}

/// A request body of `len` bytes of the file from `offset`, counted on the bar (and in `sent`).
async fn body_of(
    path: &Path,
    offset: u64,
    len: u64,
    bar: FileBar,
    sent: Arc<AtomicU64>,
    rate: Option<Arc<RateLimit>>,
) -> CliResult<Body> {
    let mut file = tokio::fs::File::open(path).await.map_err(|err| CliError::io(path.display(), err))?;
    file.seek(SeekFrom::Start(offset)).await.map_err(|err| CliError::io(path.display(), err))?;
    let stream = futures::stream::unfold((file, len), move |(mut file, remaining)| {
        let (bar, sent, rate) = (bar.clone(), sent.clone(), rate.clone());
        async move {
            if remaining == 0 {
                return None;
            }
            let mut buf = vec![0u8; remaining.min(CHUNK as u64) as usize];
            match file.read(&mut buf).await {
                Ok(0) => Some((
                    Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file got shorter")),
                    (file, 0),
                )),
                Ok(n) => {
                    buf.truncate(n);
                    if let Some(rate) = &rate {
                        rate.take(n as u64).await;
                    }
                    bar.advance(n as u64);
                    sent.fetch_add(n as u64, Ordering::SeqCst);
                    Some((Ok(buf), (file, remaining - n as u64)))
                }
                Err(err) => Some((Err(err), (file, 0))),
            }
        }
    });
    Ok(Body::wrap_stream(stream))
}

/// Sends bytes to a signed URL with the headers it came with.
async fn send_bytes(
    shared: &Shared<'_>,
    target: &Value,
    url_field: &str,
    path: &Path,
    offset: u64,
    len: u64,
    bar: &FileBar,
) -> CliResult<()> {
    let url = target[url_field].as_str().ok_or_else(|| {
        CliError::other("invalid_response", format!("no {url_field} in the server's answer"))
    })?;
    let method = target["method"].as_str().unwrap_or("PUT");
    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::PUT);
    let sent = Arc::new(AtomicU64::new(0));
    let body = body_of(path, offset, len, bar.clone(), sent.clone(), shared.rate.clone()).await?;
    let mut request = shared.ctx.api.http().request(method, url).header("content-length", len.to_string());
    for (name, value) in target["headers"].as_object().into_iter().flatten() {
        if let Some(value) = value.as_str() {
            request = request.header(name.as_str(), value);
        }
    }
    let outcome = checked(request.body(body).send().await).await.map(drop);
    if outcome.is_err() {
        bar.rewind(sent.load(Ordering::SeqCst));
    }
    outcome
}

/// Uploads one file and checks what the server stored.
async fn upload_one(shared: &Shared<'_>, job: &Job) -> CliResult<Value> {
    let bar = shared.progress.file(&job.name, job.size);
    let outcome = if job.size >= shared.args.multipart_threshold {
        upload_in_parts(shared, job, &bar).await
    } else {
        let sha256 = match &job.sha256 {
            Some(known) => known.clone(),
            None => {
                bar.set_message(&format!("{} (hashing)", job.name));
                sha256_of(&job.path).await?
            }
        };
        bar.set_message(&job.name);
        let ticket = start(shared, job, &sha256, false).await?;
        upload_single(shared, job, &sha256, &ticket, &bar).await
    };
    bar.finish();
    let mut done = outcome?;
    // The new file is in place and verified: a refusal to trash the old one (say, it is in use)
    // is reported beside the upload, not as its failure.
    let mut replaced = Vec::new();
    for old in &job.replaces {
        let trashed: CliResult<Value> = shared.ctx.api.delete(&format!("/v1/files/{old}"), &[]).await;
        match trashed {
            Ok(_) => replaced.push(json!(old)),
            Err(err) => {
                if !shared.ctx.json {
                    shared.progress.println(&format!(
                        "cabinet: {}: kept {old}: {}",
                        job.path.display(),
                        err.message
                    ));
                }
                done["not_replaced"] = json!({"id": old, "error": err.to_json()["error"]});
            }
        }
    }
    if !job.replaces.is_empty() {
        done["replaced"] = json!(replaced);
    }
    if !shared.args.tags.is_empty() {
        let id = text(&done["file"], "id");
        let file: Value =
            shared.ctx.api.patch(&format!("/v1/files/{id}"), &json!({"tags": shared.args.tags})).await?;
        done["file"] = file;
    }
    Ok(done)
}

/// `POST /v1/uploads`.
async fn start(shared: &Shared<'_>, job: &Job, sha256: &str, multipart: bool) -> CliResult<Value> {
    let mut request =
        json!({"name": job.name, "size": job.size, "sha256": sha256, "folder_id": job.folder_id});
    if multipart {
        request["multipart"] = json!(true);
        request["part_size"] = json!(part_size_for(shared.args.part_size, job.size));
    }
    shared.ctx.api.post("/v1/uploads", &request).await
}

fn upload_id_of(ticket: &Value) -> String {
    ticket["id"].as_str().or_else(|| ticket["upload"]["id"].as_str()).unwrap_or_default().to_owned()
}

/// `POST /v1/uploads/{id}/complete`, and the check that the file is the one sent.
async fn complete(shared: &Shared<'_>, upload_id: &str, sha256: &str) -> CliResult<Value> {
    let upload: Value = shared.ctx.api.post(&format!("/v1/uploads/{upload_id}/complete"), &json!({})).await?;
    verified(upload, sha256)
}

fn verified(upload: Value, sha256: &str) -> CliResult<Value> {
    if upload["status"] != "SUCCESS" {
        return Err(CliError::other(
            "upload_failed",
            format!("the upload ended {} ({})", text(&upload, "status"), text(&upload, "reason")),
        ));
    }
    let stored = upload["file"]["sha256"].as_str().unwrap_or_default();
    if stored != sha256 {
        return Err(CliError::other(
            "checksum_mismatch",
            format!("the server stored sha256 {stored}, the local file has {sha256}"),
        ));
    }
    Ok(upload)
}

fn summary(job: &Job, sha256: &str, upload: &Value) -> Value {
    json!({
        "path": job.path,
        "name": job.name,
        "remote_path": remote_path(job),
        "size": job.size,
        "sha256": sha256,
        "upload_id": upload["id"],
        "file": upload["file"],
        "multipart": false,
        "resumed": false,
    })
}

async fn upload_single(
    shared: &Shared<'_>,
    job: &Job,
    sha256: &str,
    ticket: &Value,
    bar: &FileBar,
) -> CliResult<Value> {
    let mut attempt = 1;
    while let Err(err) = send_bytes(shared, ticket, "upload_url", &job.path, 0, job.size, bar).await {
        // 429 and 503 leave the upload waiting for its bytes: the same URL takes them again.
        // After a network failure (the answer lost, or the request never reached the server) the
        // upload is asked, while another attempt is left: one still waiting takes them again too.
        let refused_for_now = matches!(err.status, Some(429 | 503));
        let send_again = attempt < PART_ATTEMPTS
            && (refused_for_now
                || (err.status.is_none()
                    && err.exit == Exit::Unavailable
                    && still_waiting(shared, &upload_id_of(ticket)).await));
        if send_again {
            tokio::time::sleep(wait_before_sending_again(&err, attempt)).await;
            attempt += 1;
            continue;
        }
        if refused_for_now {
            // Given up on, it would hold its reservation until it expired. Not after a network
            // failure: the bytes may have landed with the answer lost (on S3 the server finishes
            // such an upload itself).
            let _: CliResult<Value> =
                shared.ctx.api.delete(&format!("/v1/uploads/{}", upload_id_of(ticket)), &[]).await;
        }
        return Err(err);
    }
    let upload = complete(shared, &upload_id_of(ticket), sha256).await?;
    Ok(summary(job, sha256, &upload))
}

/// A multipart session: new, or found in the resume book and still open on the server.
struct Session {
    upload_id: String,
    sha256: String,
    part_size: u64,
    part_count: u64,
    resumed: bool,
}

async fn upload_in_parts(shared: &Shared<'_>, job: &Job, bar: &FileBar) -> CliResult<Value> {
    let api = &shared.ctx.api;
    let canonical = std::fs::canonicalize(&job.path).map_err(|err| CliError::io(job.path.display(), err))?;
    let mtime_ns = mtime_of(&job.path)?;
    let mut session = None;
    if let Some(record) =
        shared.book.find(api.base_url(), &canonical, job.folder_id.as_deref(), &job.name).await
    {
        if record.size == job.size && record.mtime_ns == mtime_ns {
            let upload: CliResult<Value> = api.get(&format!("/v1/uploads/{}", record.upload_id), &[]).await;
            match upload {
                Ok(upload) if upload["status"] == "SUCCESS" => {
                    shared.book.remove(&record.upload_id).await?;
                    bar.advance(job.size);
                    let mut done = summary(job, &record.sha256, &verified(upload, &record.sha256)?);
                    done["resumed"] = json!(true);
                    return Ok(done);
                }
                Ok(upload)
                    if (upload["status"] == "WAITING" || upload["status"] == "UPLOADING")
                        && !expires_soon(&upload) =>
                {
                    session = Some(Session {
                        upload_id: record.upload_id.clone(),
                        sha256: record.sha256.clone(),
                        part_size: record.part_size,
                        part_count: job.size.div_ceil(record.part_size).max(1),
                        resumed: true,
                    });
                }
                // Failed, expired or gone: start over.
                Ok(_) => shared.book.remove(&record.upload_id).await?,
                Err(err) if err.exit == Exit::NotFound => shared.book.remove(&record.upload_id).await?,
                Err(err) => return Err(err),
            }
        } else {
            shared.book.remove(&record.upload_id).await?;
        }
    }
    let session = match session {
        Some(session) => session,
        None => {
            let sha256 = match &job.sha256 {
                Some(known) => known.clone(),
                None => {
                    bar.set_message(&format!("{} (hashing)", job.name));
                    sha256_of(&job.path).await?
                }
            };
            bar.set_message(&job.name);
            let ticket = start(shared, job, &sha256, true).await?;
            let Some(parts) = ticket.get("multipart").filter(|m| m.is_object()) else {
                // This server has no multipart uploads: one PUT it is.
                return upload_single(shared, job, &sha256, &ticket, bar).await;
            };
            let upload_id = upload_id_of(&ticket);
            let part_size =
                parts["part_size"].as_u64().unwrap_or_else(|| part_size_for(shared.args.part_size, job.size));
            shared
                .book
                .put(UploadRecord {
                    upload_id: upload_id.clone(),
                    server: api.base_url().to_owned(),
                    path: canonical.clone(),
                    folder_id: job.folder_id.clone(),
                    name: job.name.clone(),
                    size: job.size,
                    mtime_ns: mtime_ns.clone(),
                    part_size,
                    sha256: sha256.clone(),
                })
                .await?;
            Session {
                upload_id,
                sha256,
                part_size,
                part_count: parts["part_count"]
                    .as_u64()
                    .unwrap_or_else(|| job.size.div_ceil(part_size).max(1)),
                resumed: false,
            }
        }
    };

    let mut parts_sent = 0u64;
    let mut parts_skipped = None;
    // A second round only if `complete` says parts are missing after the first.
    for _round in 0..2 {
        let received = received_parts(shared, &session).await?;
        if parts_skipped.is_none() {
            parts_skipped = Some(received.len() as u64);
            let have: u64 = received.iter().map(|n| part_len(&session, job.size, *n)).sum();
            bar.advance(have);
        }
        let missing: Vec<u64> = (1..=session.part_count).filter(|n| !received.contains(n)).collect();
        for batch in missing.chunks(PARTS_PER_CALL) {
            let answer: Value = api
                .post(&format!("/v1/uploads/{}/parts", session.upload_id), &json!({"part_numbers": batch}))
                .await?;
            let targets = answer["parts"].as_array().cloned().unwrap_or_default();
            if targets.len() != batch.len() {
                return Err(CliError::other(
                    "invalid_response",
                    "the server did not sign every part asked for",
                ));
            }
            futures::stream::iter(targets)
                .map(|target| send_part(shared, &session, job, target, bar))
                .buffer_unordered(shared.args.jobs)
                .try_collect::<Vec<()>>()
                .await?;
            parts_sent += batch.len() as u64;
        }
        match complete(shared, &session.upload_id, &session.sha256).await {
            Ok(upload) => {
                shared.book.remove(&session.upload_id).await?;
                let mut done = summary(job, &session.sha256, &upload);
                done["multipart"] = json!(true);
                done["resumed"] = json!(session.resumed);
                done["part_size"] = json!(session.part_size);
                done["parts_total"] = json!(session.part_count);
                done["parts_sent"] = json!(parts_sent);
                done["parts_skipped"] = json!(parts_skipped.unwrap_or(0));
                return Ok(done);
            }
            Err(err) if err.code == "parts_missing" => continue,
            Err(err) => {
                if err.exit != Exit::Unavailable {
                    // A failed session cannot be resumed; a network failure can.
                    shared.book.remove(&session.upload_id).await?;
                }
                return Err(err);
            }
        }
    }
    Err(CliError::new(
        Exit::Conflict,
        "parts_missing",
        "the server still misses parts; run the command again",
    ))
}

/// Whether an open upload ends within the minute (the sweeper may not have failed it yet).
fn expires_soon(upload: &Value) -> bool {
    upload["expires_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t.with_timezone(&chrono::Utc) < chrono::Utc::now() + chrono::Duration::seconds(60))
}

/// The exact size of part `n` (1-based).
fn part_len(session: &Session, size: u64, n: u64) -> u64 {
    let offset = (n - 1) * session.part_size;
    size.saturating_sub(offset).min(session.part_size)
}

/// The parts the server has, with the size they must have.
async fn received_parts(shared: &Shared<'_>, session: &Session) -> CliResult<BTreeSet<u64>> {
    let listed: Value = shared.ctx.api.get(&format!("/v1/uploads/{}/parts", session.upload_id), &[]).await?;
    Ok(listed["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|part| Some((part["part_number"].as_u64()?, part["size"].as_u64()?)))
        .filter(|(n, size)| (1..=session.part_count).contains(n) && *size > 0)
        .map(|(n, _)| n)
        .collect())
}

/// Whether the upload still waits for its bytes (false when that cannot be known).
async fn still_waiting(shared: &Shared<'_>, upload_id: &str) -> bool {
    let upload: CliResult<Value> = shared.ctx.api.get(&format!("/v1/uploads/{upload_id}"), &[]).await;
    upload.is_ok_and(|upload| upload["status"] == "WAITING")
}

/// How long to wait before an upload's bytes are sent again after `err`: the server's
/// `Retry-After` when it gave one (at most a minute), else longer with each attempt.
fn wait_before_sending_again(err: &CliError, attempt: u32) -> Duration {
    const MOST: Duration = Duration::from_secs(60);
    err.retry_after.map_or(Duration::from_millis(500 * u64::from(attempt + 1)), |wait| wait.min(MOST))
}

async fn send_part(
    shared: &Shared<'_>,
    session: &Session,
    job: &Job,
    target: Value,
    bar: &FileBar,
) -> CliResult<()> {
    let number = target["part_number"]
        .as_u64()
        .ok_or_else(|| CliError::other("invalid_response", "a part without a part_number"))?;
    let len = target["size"].as_u64().unwrap_or_else(|| part_len(session, job.size, number));
    let offset = (number - 1) * session.part_size;
    if offset + len > job.size {
        return Err(CliError::other(
            "invalid_response",
            format!("part {number} lies beyond the end of the file"),
        ));
    }
    let mut attempt = 1;
    loop {
        match send_bytes(shared, &target, "url", &job.path, offset, len, bar).await {
            Ok(()) => return Ok(()),
            Err(err) if attempt < PART_ATTEMPTS && matches!(err.exit, Exit::Unavailable | Exit::Other) => {
                tokio::time::sleep(wait_before_sending_again(&err, attempt)).await;
                attempt += 1;
            }
            Err(err) => {
                return Err(CliError {
                    message: format!("part {number}: {} (run the same command again to resume)", err.message),
                    ..err
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_8_mib_unless_the_file_needs_more_than_10000() {
        const MIB: u64 = 1 << 20;
        assert_eq!(part_size_for(None, 300 * MIB), 8 * MIB);
        assert_eq!(part_size_for(None, 78 * 1024 * MIB), 8 * MIB);
        let huge = 200 * 1024 * MIB;
        let part = part_size_for(None, huge);
        assert!(huge.div_ceil(part) <= MAX_PARTS && part.is_multiple_of(MIB) && part <= 21 * MIB, "{part}");
        assert_eq!(part_size_for(Some(5 * MIB), 300 * MIB), 5 * MIB, "--part-size wins");
    }

    #[test]
    fn a_free_name_counts_up_before_the_extension() {
        let taken: HashSet<String> =
            ["report.pdf", "report (1).pdf"].iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(free_name("report.pdf", &taken), "report (2).pdf");
        assert_eq!(free_name(".env", &HashSet::new()), ".env (1)");
        assert_eq!(free_name("README", &HashSet::new()), "README (1)");
    }
}
