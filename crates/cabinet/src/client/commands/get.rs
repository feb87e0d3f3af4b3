//! `cabinet get ID` (stream to disk with progress; a shorter file already at the target is resumed
//! with `Range` + `If-Range`, and the whole file's SHA-256 is checked at the end) and
//! `cabinet url ID` (a signed, expiring download URL).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use futures::StreamExt;
use reqwest_tls::{Method, StatusCode};
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
    let mut hasher = Sha256::new();
    let existing = std::fs::metadata(&target).map(|m| m.len()).ok();
    let mut offset = match existing {
        Some(len) if len > 0 && len <= size => hash_prefix(&target, &mut hasher)?,
        _ => 0,
    };
    if offset > 0 && offset == size {
        if hex::encode(hasher.clone().finalize()) == sha256 {
            return report(ctx, &file, &target, offset, 0);
        }
        // Same length, other bytes: fetch it all again.
        hasher = Sha256::new();
        offset = 0;
    }

    let mut request = ctx.api.request(Method::GET, &content);
    if offset > 0 {
        request =
            request.header("range", format!("bytes={offset}-")).header("if-range", format!("\"{sha256}\""));
    }
    let response = checked(request.send().await).await?;
    let resumed_from = if response.status() == StatusCode::PARTIAL_CONTENT { offset } else { 0 };
    if resumed_from == 0 && offset > 0 {
        hasher = Sha256::new();
    }
    let mut out = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed_from > 0)
        .truncate(resumed_from == 0)
        .open(&target)
        .await
        .map_err(|err| CliError::io(target.display(), err))?;

    let progress = Progress::new(ctx.progress(), size, &name);
    let bar = progress.file(&name, size);
    bar.advance(resumed_from);
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| {
            let mut err = CliError::transport(err);
            err.message = format!("{} (run the same command again to resume)", err.message);
            err
        })?;
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(|err| CliError::io(target.display(), err))?;
        bar.advance(chunk.len() as u64);
    }
    out.flush().await.map_err(|err| CliError::io(target.display(), err))?;
    drop(out);
    bar.finish();
    progress.finish();
    if let Err(err) = check_sum(&hex::encode(hasher.finalize()), &sha256) {
        // A corrupt file must not be resumed from next time.
        let _ = std::fs::remove_file(&target);
        return Err(err);
    }
    report(ctx, &file, &target, size, resumed_from)
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

fn report(ctx: &Ctx, file: &Value, target: &Path, size: u64, resumed_from: u64) -> CliResult<()> {
    if ctx.json {
        ctx.print_json(&json!({
            "id": file["id"],
            "name": file["name"],
            "path": target,
            "size": size,
            "sha256": file["sha256"],
            "resumed_from": resumed_from,
        }));
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
