//! The S3 figure: a presigned PUT of a random file through Cabinet's flow (reserve, PUT straight
//! to the bucket with the ticket's headers, complete; timed end to end) against a presigned PUT of
//! the same file straight to the same S3 server (s3s-fs), same client (curl), same signed headers
//! (content type, length, sha256 checksum and `If-None-Match: *`), so the server does the same
//! work for both. The bytes never touch Cabinet (with the sha256 declared they land at the file's
//! own key, so `complete` copies nothing): the ratio is what reserving and completing cost on top.
//! Then the stored file is downloaded through Cabinet, which reads it from S3 as its client takes
//! it, against the presigned GET straight from S3 that Cabinet hands out for it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cabinet_blob::{S3BlobStore, S3Config};
use cabinet_core::{BlobStore, FileId, Upload, UploadId, UploadStatus, WorkspaceId};
use serde_json::{json, Value};

use crate::client;
use crate::processes::{curl, Cabinet};
use crate::stats::{Row, Samples, Target};
use crate::transfer::random_file;
use crate::Bench;

const MIB: f64 = (1 << 20) as f64;
/// The baseline's object, under its own prefix (Cabinet's orphan sweep never sees it).
const BASELINE_KEY: &str = "big";

/// `s3://bucket?query` with `prefix` added to the bucket: `s3://bucket/prefix?query`.
fn with_prefix(url: &str, prefix: &str) -> Result<String> {
    let (location, query) = url.split_once('?').unwrap_or((url, ""));
    let location = location.trim_end_matches('/');
    if location.strip_prefix("s3://").is_none_or(|bucket| bucket.contains('/')) {
        bail!("expected s3://bucket?…, got {url:?}");
    }
    Ok(format!("{location}/{prefix}?{query}"))
}

/// curl arguments for a PUT of `file` to `url` with exactly these headers.
fn put_args(file: &str, url: &str, headers: &[(String, String)]) -> Vec<String> {
    let mut args = vec!["-T".to_owned(), file.to_owned()];
    for (name, value) in headers {
        args.push("-H".to_owned());
        args.push(format!("{name}: {value}"));
    }
    args.push(url.to_owned());
    args
}

fn run_curl(args: &[String]) -> Result<(Duration, u16, String)> {
    curl(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

struct S3Upload<'a> {
    bench: &'a Bench,
    cabinet: &'a Cabinet,
    key: &'a str,
    baseline: &'a S3BlobStore,
    file: &'a str,
    size: u64,
    sha256: &'a str,
    /// Cabinet's current file, purged before the next upload.
    stored: Option<String>,
}

impl S3Upload<'_> {
    /// Reserve, PUT to the returned URL with the returned headers, complete: timed end to end.
    async fn cabinet(&mut self) -> Result<Duration> {
        let http = &self.bench.http;
        if let Some(previous) = self.stored.take() {
            client::purge(http, &self.cabinet.url, self.key, &previous).await?;
        }
        let started = Instant::now();
        let body = json!({"name": "big.bin", "size": self.size, "sha256": self.sha256});
        let ticket =
            client::expect(http.post(self.cabinet.at("/v1/uploads")).bearer_auth(self.key).json(&body), 201)
                .await?;
        let (Some(id), Some(url)) = (ticket["id"].as_str(), ticket["upload_url"].as_str()) else {
            bail!("no id or upload_url in {ticket}");
        };
        let headers: Vec<(String, String)> = ticket["headers"]
            .as_object()
            .map(|headers| {
                headers
                    .iter()
                    .map(|(name, value)| (name.clone(), value.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let reserved = started.elapsed();
        let (put, status, answer) = run_curl(&put_args(self.file, url, &headers))?;
        if status != 200 {
            bail!("S3 answered Cabinet's presigned PUT with {status}: {answer}");
        }
        let completing = Instant::now();
        let complete = self.cabinet.at(&format!("/v1/uploads/{id}/complete"));
        let done: Value = client::expect(http.post(complete).bearer_auth(self.key), 200).await?;
        let took = started.elapsed();
        // Where the time went, so a miss points at its step.
        eprintln!(
            "  Cabinet: reserve {:.3} s, PUT {:.3} s, complete {:.3} s",
            reserved.as_secs_f64(),
            put.as_secs_f64(),
            completing.elapsed().as_secs_f64()
        );
        self.stored = Some(client::succeeded(&done, self.size, Some(self.sha256))?);
        Ok(took)
    }

    /// A presigned PUT of the same file straight to the bucket, signed like Cabinet signs one.
    async fn baseline(&self) -> Result<Duration> {
        self.baseline.delete(BASELINE_KEY).await.context("deleting the baseline's object")?;
        let presigned = self
            .baseline
            .presign_upload(BASELINE_KEY, &baseline_upload(self.size, self.sha256))
            .context("the S3 store did not presign a PUT")?;
        let (took, status, answer) = run_curl(&put_args(self.file, &presigned.url, &presigned.headers))?;
        if status != 200 {
            bail!("S3 answered the baseline's presigned PUT with {status}: {answer}");
        }
        let info = self.baseline.head(BASELINE_KEY).await?.context("the baseline's object is missing")?;
        if info.size != self.size || info.sha256.as_deref() != Some(self.sha256) {
            bail!("the baseline's object is not the file: {info:?}");
        }
        Ok(took)
    }
}

/// What `presign_upload` needs of an upload: size, sha256 and validity, as Cabinet would sign them;
/// the object is its own file key, so the PUT is signed as Cabinet signs one to a file's key.
fn baseline_upload(size: u64, sha256: &str) -> Upload {
    let now = chrono::Utc::now();
    let ws = WorkspaceId::generate();
    let file_id = FileId::generate();
    Upload {
        blob_key: BASELINE_KEY.to_owned(),
        workspace_id: ws,
        id: UploadId::generate(),
        name: "big.bin".to_owned(),
        size,
        size_known: true,
        declared_mime: None,
        sha256: Some(sha256.to_owned()),
        folder_id: None,
        status: UploadStatus::Waiting,
        failure_reason: None,
        file_id,
        created_at: now,
        updated_at: now,
        expires_at: now + chrono::Duration::hours(1),
        created_by: None,
        part_size: None,
        multipart_id: None,
        awaits_record: false,
    }
}

/// Runs the figure against the S3 server at `s3_url` (`s3://bucket?endpoint=…`, credentials from
/// the AWS variables, as `dev/s3-server` prints them).
pub async fn run(bench: &mut Bench, s3_url: &str) -> Result<()> {
    let size: u64 = if bench.quick { 8 << 20 } else { 1 << 30 };
    let label = if bench.quick { "8 MiB" } else { "1 GiB" };
    let file = bench.path("s3.bin");
    let sha256 = random_file(&file, size)?;
    let baseline_config =
        S3Config::from_url(&with_prefix(s3_url, "baseline")?).map_err(anyhow::Error::msg)?;
    let baseline = S3BlobStore::new(&baseline_config)?;
    let data = bench.path("cabinet-s3");
    let storage = with_prefix(s3_url, "cabinet")?;
    let cabinet = Cabinet::start(&bench.cabinet_bin, &data, &["--storage", &storage])?;
    let key = cabinet.key.clone().unwrap_or_default();
    let file_arg = file.to_string_lossy().into_owned();
    let mut up = S3Upload {
        bench,
        cabinet: &cabinet,
        key: &key,
        baseline: &baseline,
        file: &file_arg,
        size,
        sha256: &sha256,
        stored: None,
    };

    let (mut ours, mut theirs, mut ratio) = (Samples::default(), Samples::default(), Samples::default());
    for round in 0..bench.rounds {
        // Alternate who goes first, so drift over the run hits both alike.
        let (a, b) = in_turns!(round, up.cabinet().await?, up.baseline().await?);
        let (a, b) = (mib_per_second(size, a), mib_per_second(size, b));
        eprintln!("s3 round {round}: Cabinet {a:.0} MiB/s, straight to S3 {b:.0} MiB/s, ratio {:.2}", a / b);
        ours.push(a);
        theirs.push(b);
        ratio.push(a / b);
    }
    let stored = up.stored.take().context("no file was stored")?;
    baseline.delete(BASELINE_KEY).await?;
    bench.rows.push(Row {
        figure: format!(
            "S3 presigned PUT of {label} through Cabinet: reserve + PUT + complete, sha256 declared (MiB/s; ratio to a presigned PUT straight to s3s-fs)"
        ),
        cabinet: format!("{:.0} MiB/s", ours.median()),
        baseline: format!("presigned PUT to s3s-fs {:.0} MiB/s", theirs.median()),
        judged: ratio,
        judged_digits: 2,
        target: Target::AtLeast(0.95),
        unit: "×",
    });
    downloads_through_cabinet(bench, &cabinet, &key, &stored, size, label).await?;
    client::purge(&bench.http, &cabinet.url, &key, &stored).await?;
    drop(cabinet);
    std::fs::remove_dir_all(&data)?;
    remove(&file)
}

/// The stored file read through Cabinet (`/v1/files/{id}/content` with the key: the server reads
/// it from S3 as curl takes it) against the presigned GET Cabinet hands out for it, straight from
/// the same S3 server; each download checked whole.
async fn downloads_through_cabinet(
    bench: &mut Bench,
    cabinet: &Cabinet,
    key: &str,
    id: &str,
    size: u64,
    label: &str,
) -> Result<()> {
    let link_request = bench.http.get(cabinet.at(&format!("/v1/files/{id}/download-url"))).bearer_auth(key);
    let link = client::expect(link_request, 200).await?;
    let straight = link["url"].as_str().context("no url in the download link")?.to_owned();
    let through = cabinet.at(&format!("/v1/files/{id}/content"));
    let authorization = format!("Authorization: Bearer {key}");
    let get = |url: &str, headers: &[&str]| -> Result<f64> {
        let mut args = vec!["-o", "/dev/null", "-w", "%{size_download}\n%{http_code}"];
        args.extend_from_slice(headers);
        args.push(url);
        let (took, status, received) = curl(&args)?;
        if status != 200 || received.trim() != size.to_string() {
            bail!("GET {url} answered {status} with {received} bytes, not {size}");
        }
        Ok(mib_per_second(size, took))
    };
    let (mut ours, mut theirs, mut ratio) = (Samples::default(), Samples::default(), Samples::default());
    for round in 0..bench.rounds {
        let (a, b) = in_turns!(round, get(&through, &["-H", &authorization])?, get(&straight, &[])?);
        eprintln!("s3 download round {round}: through Cabinet {a:.0} MiB/s, straight from S3 {b:.0} MiB/s");
        ours.push(a);
        theirs.push(b);
        ratio.push(a / b);
    }
    bench.rows.push(Row {
        figure: format!(
            "S3: GET of {label} through Cabinet (`/v1/files/{{id}}/content` with a key) (MiB/s; ratio to its presigned GET straight from s3s-fs)"
        ),
        cabinet: format!("{:.0} MiB/s", ours.median()),
        baseline: format!("presigned GET from s3s-fs {:.0} MiB/s", theirs.median()),
        judged: ratio,
        judged_digits: 2,
        target: Target::None,
        unit: "×",
    });
    Ok(())
}

fn mib_per_second(size: u64, took: Duration) -> f64 {
    size as f64 / MIB / took.as_secs_f64()
}

fn remove(path: &Path) -> Result<()> {
    std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_go_between_bucket_and_query() {
        assert_eq!(
            with_prefix("s3://cabinet-test?endpoint=http://127.0.0.1:1&region=us-east-1", "baseline")
                .unwrap(),
            "s3://cabinet-test/baseline?endpoint=http://127.0.0.1:1&region=us-east-1"
        );
        assert!(with_prefix("s3://bucket/already?x=1", "p").is_err());
    }
}
