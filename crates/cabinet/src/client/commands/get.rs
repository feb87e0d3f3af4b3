//! `cabinet get ID|PATH` (streams to `NAME.cabinet-partial`, with a sidecar naming the file and
//! version it holds, then renames it into place once the whole file's SHA-256 checks; an
//! interrupted download is resumed with `Range` + `If-Range` only from such a partial file of its
//! own, and a file it did not write is never removed or overwritten without `--force`) and
//! `cabinet url ID` (a signed, expiring download URL).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use futures::StreamExt;
use reqwest_tls::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::client::error::{CliError, CliResult, Exit};
use crate::client::http::checked;
use crate::client::items::{self, Where};
use crate::client::progress::Progress;
use crate::client::units::{human_size, parse_duration};
use crate::client::{text, Connection, Ctx};

/// The longest lifetime of a signed URL (the API's limit: 7 days).
const MAX_URL_SECONDS: u64 = 7 * 86_400;

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The file: its id, or its path (`/Photos/2024/hello.txt`).
    pub id: String,
    /// Where to write it: a path, a folder (the file's name inside it), or `-` for stdout;
    /// its own name in the current folder by default.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Overwrite a different file already at the target.
    #[arg(long)]
    pub force: bool,
    /// Receive at most this many bytes per second (e.g. 10MiB).
    #[arg(long, value_parser = super::upload::size_arg)]
    pub limit_rate: Option<u64>,
    #[command(flatten)]
    pub conn: Connection,
}

/// Hashes what is already on disk (the part to resume after).
fn hash_prefix(path: &Path, hasher: &mut Sha256) -> CliResult<u64> {
    let mut file = std::fs::File::open(path).map_err(|err| CliError::io(path.display(), err))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = file.read(&mut buf).map_err(|err| CliError::io(path.display(), err))?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

pub async fn get(ctx: &Ctx, args: GetArgs) -> CliResult<()> {
    let id = items::resolve_file(&ctx.api, &args.id, Where::Live).await?;
    let file: Value = ctx.api.get(&format!("/v1/files/{id}"), &[]).await?;
    let name = text(&file, "name");
    let size = file["size"].as_u64().unwrap_or(0);
    let sha256 = text(&file, "sha256");
    let content = format!("/v1/files/{id}/content");

    if args.output.as_deref() == Some(Path::new("-")) {
        let response = checked(ctx.api.request(Method::GET, &content).send().await).await?;
        let mut hasher = Sha256::new();
        let mut stream = response.bytes_stream();
        let mut stdout = std::io::stdout().lock();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(CliError::transport)?;
            hasher.update(&chunk);
            stdout.write_all(&chunk).map_err(|err| CliError::io("stdout", err))?;
        }
        return check_sum(&hex::encode(hasher.finalize()), &sha256);
    }

    let target = match &args.output {
        Some(path) if path.is_dir() => path.join(safe_name(&name)),
        Some(path) => path.clone(),
        None => PathBuf::from(safe_name(&name)),
    };
    let (resumed_from, already_there) =
        download(ctx, &file, &target, args.force, args.limit_rate, true).await?;
    report(ctx, &file, &target, size, resumed_from, already_there)
}

/// Downloads a file (its JSON as the API renders it) to `target` through its own partial file;
/// the offset it resumed from, and whether `target` already held this file.
pub(super) async fn download(
    ctx: &Ctx,
    file: &Value,
    target: &Path,
    force: bool,
    limit_rate: Option<u64>,
    bars: bool,
) -> CliResult<(u64, bool)> {
    let id = text(file, "id");
    let name = text(file, "name");
    let size = file["size"].as_u64().unwrap_or(0);
    let sha256 = text(file, "sha256");
    let content = format!("/v1/files/{id}/content");
    if target.exists() {
        let mut hasher = Sha256::new();
        if std::fs::metadata(target).map(|m| m.len()).ok() == Some(size)
            && hash_prefix(target, &mut hasher).is_ok()
            && hex::encode(hasher.finalize()) == sha256
        {
            return Ok((size, true));
        }
        if !force {
            return Err(CliError::new(
                Exit::Conflict,
                "exists",
                format!("{} exists and is not this file; use --force to overwrite it", target.display()),
            ));
        }
    }
    let partial = Partial::beside(target);
    let ours = PartialRecord {
        server: ctx.api.base_url().to_owned(),
        file_id: id.clone(),
        sha256: sha256.clone(),
        size,
    };
    let mut hasher = Sha256::new();
    let mut offset = match partial.record()? {
        Some(record) if record == ours => match std::fs::metadata(&partial.bytes) {
            Ok(meta) if meta.len() < size => hash_prefix(&partial.bytes, &mut hasher)?,
            _ => 0,
        },
        // Ours, of another file or version: not worth keeping.
        Some(_) => 0,
        None if partial.bytes.exists() => {
            return Err(CliError::new(
                Exit::Conflict,
                "exists",
                format!(
                    "{} is in the way and was not written by cabinet get; move it away to download here",
                    partial.bytes.display()
                ),
            ))
        }
        None => 0,
    };
    partial.claim(&ours)?;

    let mut request = ctx.api.request(Method::GET, &content);
    if offset > 0 {
        request =
            request.header("range", format!("bytes={offset}-")).header("if-range", format!("\"{sha256}\""));
    }
    let response = checked(request.send().await).await?;
    if response.status() != StatusCode::PARTIAL_CONTENT && offset > 0 {
        hasher = Sha256::new();
        offset = 0;
    }
    let resumed_from = offset;
    let mut out = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed_from > 0)
        .truncate(resumed_from == 0)
        .open(&partial.bytes)
        .await
        .map_err(|err| CliError::io(partial.bytes.display(), err))?;

    let progress = Progress::new(bars && ctx.progress(), size, &name);
    let bar = progress.file(&name, size);
    bar.advance(resumed_from);
    let started = std::time::Instant::now();
    let mut received = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| {
            let mut err = CliError::transport(err);
            err.message = format!("{} (run the same command again to resume)", err.message);
            err
        })?;
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(|err| CliError::io(partial.bytes.display(), err))?;
        bar.advance(chunk.len() as u64);
        received += chunk.len() as u64;
        if let Some(rate) = limit_rate.filter(|rate| *rate > 0) {
            out.flush().await.map_err(|err| CliError::io(partial.bytes.display(), err))?;
            let due = started + std::time::Duration::from_secs_f64(received as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
    }
    out.flush().await.map_err(|err| CliError::io(partial.bytes.display(), err))?;
    out.sync_all().await.map_err(|err| CliError::io(partial.bytes.display(), err))?;
    drop(out);
    bar.finish();
    progress.finish();
    if let Err(err) = check_sum(&hex::encode(hasher.finalize()), &sha256) {
        // A corrupt partial file must not be resumed from next time; it is ours to remove.
        partial.discard();
        return Err(err);
    }
    std::fs::rename(&partial.bytes, target).map_err(|err| CliError::io(target.display(), err))?;
    partial.discard();
    Ok((resumed_from, false))
}

/// What the sidecar of a partial download records: whose bytes these are.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PartialRecord {
    server: String,
    file_id: String,
    sha256: String,
    size: u64,
}

/// A download in progress: `NAME.cabinet-partial` and, beside it, `NAME.cabinet-partial.json`
/// saying which file and version it holds. Only such a pair is ever resumed or removed.
struct Partial {
    bytes: PathBuf,
    sidecar: PathBuf,
}

impl Partial {
    fn beside(target: &Path) -> Self {
        let mut bytes = target.as_os_str().to_owned();
        bytes.push(".cabinet-partial");
        let mut sidecar = bytes.clone();
        sidecar.push(".json");
        Partial { bytes: bytes.into(), sidecar: sidecar.into() }
    }

    /// The record, if a sidecar is there and reads as one.
    fn record(&self) -> CliResult<Option<PartialRecord>> {
        match std::fs::read(&self.sidecar) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(CliError::io(self.sidecar.display(), err)),
        }
    }

    /// Writes the sidecar before any byte of the partial file.
    fn claim(&self, record: &PartialRecord) -> CliResult<()> {
        let bytes = serde_json::to_vec(record).expect("the record serializes");
        std::fs::write(&self.sidecar, bytes).map_err(|err| CliError::io(self.sidecar.display(), err))
    }

    fn discard(&self) {
        let _ = std::fs::remove_file(&self.bytes);
        let _ = std::fs::remove_file(&self.sidecar);
    }
}

/// A name from the server, made safe as one path component.
fn safe_name(name: &str) -> String {
    let cleaned: String =
        name.chars().map(|c| if c == '/' || c == '\\' || c == '\0' { '_' } else { c }).collect();
    match cleaned.as_str() {
        "" | "." | ".." => "download".into(),
        _ => cleaned,
    }
}

fn check_sum(got: &str, expected: &str) -> CliResult<()> {
    if got != expected {
        return Err(CliError::other(
            "checksum_mismatch",
            format!("the downloaded bytes have sha256 {got}, the server says {expected}"),
        ));
    }
    Ok(())
}

fn report(
    ctx: &Ctx,
    file: &Value,
    target: &Path,
    size: u64,
    resumed_from: u64,
    already_there: bool,
) -> CliResult<()> {
    if ctx.json {
        ctx.print_json(&json!({
            "id": file["id"],
            "name": file["name"],
            "path": target,
            "size": size,
            "sha256": file["sha256"],
            "resumed_from": resumed_from,
            "already_there": already_there,
        }));
    } else if already_there {
        println!("{} → {} is already there", text(file, "id"), target.display());
    } else {
        let resumed = if resumed_from > 0 {
            format!(" (resumed at {})", human_size(resumed_from))
        } else {
            String::new()
        };
        println!("{} → {} {}{resumed}", text(file, "id"), target.display(), human_size(size));
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct UrlArgs {
    /// The file: its id, or its path.
    pub id: String,
    /// How long the URL works: 30s, 15m, 1h, 7d (at most 7 days).
    #[arg(long, default_value = "1h")]
    pub expires: String,
    /// Make it a download (Content-Disposition: attachment) rather than inline.
    #[arg(long)]
    pub download: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn url(ctx: &Ctx, args: UrlArgs) -> CliResult<()> {
    let seconds = parse_duration(&args.expires)?;
    if seconds == 0 || seconds > MAX_URL_SECONDS {
        return Err(CliError::new(Exit::Usage, "usage", "--expires must be between 1s and 7d"));
    }
    let id = items::resolve_file(&ctx.api, &args.id, Where::Live).await?;
    let signed: Value = ctx
        .api
        .get(
            &format!("/v1/files/{id}/download-url"),
            &[("expires_in", seconds.to_string()), ("download", args.download.to_string())],
        )
        .await
        .map_err(|err| match err.code.as_str() {
            // This server allows less than 7 days: say so with the flag the user typed.
            "invalid_expires_in" => CliError {
                message: format!("--expires {} is longer than this server allows", args.expires),
                ..err
            },
            _ => err,
        })?;
    if ctx.json {
        ctx.print_json(&signed);
    } else {
        println!("{}", text(&signed, "url"));
        ctx.note(format!("expires {}", text(&signed, "expires_at")));
    }
    Ok(())
}
