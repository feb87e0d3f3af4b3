//! Memory stays flat whatever the file size: a 1 GiB upload through the signed URL and its
//! download both stream, so the server's peak resident memory stays far below the file's size.
//! And requests without credentials cost next to nothing: 64 at once of the largest body each
//! route takes, on every route that takes one, are refused before their bodies are read; nor do
//! downloads whose clients read nothing cost more than a chunk each.
//!
//! The large-file tests are ignored by default (they move gigabytes); CI runs them with
//! `--ignored`. Each moves its full size (1 GiB; 5 GiB multipart; tus 1 GiB, 5 GiB with
//! `CABINET_LONG=1`) when the disk under the temporary folder holds it with 512 MiB to spare, or
//! as much as it does, never less than 256 MiB (four times `PEAK_RESIDENT_LIMIT`, so a server that
//! held the file would still fail); `CABINET_MEMORY_TEST_BYTES`, `CABINET_MULTIPART_TEST_BYTES`
//! and `CABINET_TUS_TEST_BYTES` set the sizes. The unauthenticated budget runs with every test (a
//! few seconds).

use crate::process;
use crate::support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use process::{http_client, ServerProcess, Tenant};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::raw;
use support::routes::{body_operations, BodyOperation};

const DEFAULT_SIZE: u64 = 1 << 30;
const CHUNK: usize = 1 << 20;
/// The most resident memory the server may ever use while moving the file.
const PEAK_RESIDENT_LIMIT: u64 = 64 << 20;

/// An endless pseudo-random byte sequence, made on the fly one chunk at a time: a random block
/// stamped with the chunk's number, so no two chunks are alike and none is kept.
struct Pattern {
    block: Vec<u8>,
}

impl Pattern {
    fn new(chunk_len: usize, seed: u64) -> Self {
        let mut block = vec![0; chunk_len];
        StdRng::seed_from_u64(seed).fill_bytes(&mut block);
        Pattern { block }
    }

    /// Chunk `index`, cut to `len` bytes (the last chunk may be short).
    fn chunk(&self, index: u64, len: usize) -> Vec<u8> {
        let mut chunk = self.block[..len].to_vec();
        for (byte, stamp) in chunk.iter_mut().zip(index.to_le_bytes()) {
            *byte ^= stamp;
        }
        chunk
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn mib_per_second(bytes: u64, elapsed: Duration) -> f64 {
    mib(bytes) / elapsed.as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "moves 2 GiB through the server; CI runs it with --ignored"]
async fn a_large_upload_and_its_download_stream_in_bounded_server_memory() {
    let size = test_size("CABINET_MEMORY_TEST_BYTES", DEFAULT_SIZE, 1);
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::create(dir.path(), "memory", None, "write");
    let server = ServerProcess::start(dir.path());
    let http = http_client();
    println!("server peak resident memory at start: {:.1} MiB", mib(server.peak_resident_bytes()));

    let response = http
        .post(server.at("/v1/uploads"))
        .bearer_auth(&tenant.key)
        .json(&json!({"name": "big.bin", "size": size}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let ticket: Value = response.json().await.unwrap();
    let upload_url = ticket["upload_url"].as_str().expect("an upload URL").to_owned();

    // The sha256 is taken as the bytes are sent, and compared with what the server computed.
    let pattern = Pattern::new(CHUNK, 0x6361_6269_6e65_7400);
    let sent_hash = Arc::new(Mutex::new(Sha256::new()));
    let chunks = size.div_ceil(CHUNK as u64);
    let body = stream::iter(0..chunks).map({
        let sent_hash = sent_hash.clone();
        move |index| {
            let len = (size - index * CHUNK as u64).min(CHUNK as u64) as usize;
            let chunk = pattern.chunk(index, len);
            sent_hash.lock().unwrap().update(&chunk);
            Ok::<_, std::io::Error>(chunk)
        }
    });
    let started = Instant::now();
    let response = http.put(&upload_url).body(reqwest::Body::wrap_stream(body)).send().await.unwrap();
    let status = response.status();
    let upload: Value = response.json().await.unwrap();
    let upload_time = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{upload}");
    assert_eq!(upload["status"], "SUCCESS", "{upload}");
    let sent_sha256 = hex::encode(sent_hash.lock().unwrap().clone().finalize());
    assert_eq!(upload["file"]["size"], size);
    assert_eq!(upload["file"]["sha256"], sent_sha256.as_str(), "the server hashed what was sent");
    let peak_after_upload = server.peak_resident_bytes();
    println!(
        "upload:   {:.0} MiB in {upload_time:.1?} = {:.0} MiB/s; server peak resident memory {:.1} MiB",
        mib(size),
        mib_per_second(size, upload_time),
        mib(peak_after_upload)
    );
    assert!(
        peak_after_upload < PEAK_RESIDENT_LIMIT,
        "the server's peak resident memory reached {:.1} MiB during the upload",
        mib(peak_after_upload)
    );

    let file_id = upload["file"]["id"].as_str().expect("a file id");
    let started = Instant::now();
    let response =
        http.get(server.at(&format!("/v1/files/{file_id}/content"))).bearer_auth(&tenant.key).send().await;
    let response = response.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut received = 0u64;
    let mut received_hash = Sha256::new();
    let mut content = response.bytes_stream();
    while let Some(chunk) = content.next().await {
        let chunk = chunk.expect("the download continues");
        received += chunk.len() as u64;
        received_hash.update(&chunk);
    }
    let download_time = started.elapsed();
    assert_eq!(received, size, "the whole file comes back");
    assert_eq!(hex::encode(received_hash.finalize()), sent_sha256, "the same bytes come back");
    let peak_after_download = server.peak_resident_bytes();
    println!(
        "download: {:.0} MiB in {download_time:.1?} = {:.0} MiB/s; server peak resident memory {:.1} MiB",
        mib(size),
        mib_per_second(size, download_time),
        mib(peak_after_download)
    );
    assert!(
        peak_after_download < PEAK_RESIDENT_LIMIT,
        "the server's peak resident memory reached {:.1} MiB during the download",
        mib(peak_after_download)
    );
}

const MULTIPART_DEFAULT_SIZE: u64 = 5 << 30;

/// The size of the multipart memory tests: `CABINET_MULTIPART_TEST_BYTES`, else 5 GiB as the disk
/// allows (a multipart upload needs twice its size while it is assembled: its parts and the file).
fn multipart_test_size() -> u64 {
    test_size("CABINET_MULTIPART_TEST_BYTES", MULTIPART_DEFAULT_SIZE, 2)
}

/// What the disk may keep free beside a test's files.
const DISK_TO_SPARE: u64 = 512 << 20;
/// The smallest upload that still shows the server streams.
const SMALLEST_TEST_SIZE: u64 = 4 * PEAK_RESIDENT_LIMIT;

/// `variable` when set; else `full`, or less when the disk under the temporary folder cannot hold
/// `copies` of it with `DISK_TO_SPARE` left over (said on stdout), and never less than
/// `SMALLEST_TEST_SIZE`: below that the test fails, as it could not tell streaming from holding.
fn test_size(variable: &str, full: u64, copies: u64) -> u64 {
    if let Ok(value) = std::env::var(variable) {
        return value.trim().parse().unwrap_or_else(|_| panic!("{variable} must be a number of bytes"));
    }
    let temp = std::env::temp_dir();
    let disk = rustix::fs::statvfs(&temp).expect("statvfs of the temporary folder");
    let free = disk.f_bavail * disk.f_frsize;
    let fits = free.saturating_sub(DISK_TO_SPARE) / copies;
    assert!(
        fits >= SMALLEST_TEST_SIZE,
        "this test needs {} MiB free under {}; {} MiB are (or set {variable})",
        (SMALLEST_TEST_SIZE * copies + DISK_TO_SPARE) >> 20,
        temp.display(),
        free >> 20
    );
    if fits < full {
        let size = fits >> 20 << 20;
        println!(
            "{variable}: {} MiB, not {} (that needs {} MiB free under {}; {} MiB are)",
            size >> 20,
            full >> 20,
            (full * copies + DISK_TO_SPARE) >> 20,
            temp.display(),
            free >> 20
        );
        return size;
    }
    full
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "moves 5 GiB through the server; dev/test runs it with --ignored"]
async fn a_5_gib_multipart_upload_assembles_in_bounded_server_memory_on_the_local_folder() {
    multipart_upload_in_bounded_memory(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "moves 5 GiB through S3 and reads it back; dev/test runs it with --ignored"]
async fn a_5_gib_multipart_upload_assembles_in_bounded_server_memory_on_s3() {
    let Some(storage) = s3_storage_under("memory") else { return };
    multipart_upload_in_bounded_memory(Some(storage)).await;
}

/// The test S3 server as a `--storage` URL under a key prefix of this run's own (like every S3
/// test), or `None` (a failure when `CABINET_REQUIRE_S3=1`) without one.
fn s3_storage_under(name: &str) -> Option<String> {
    let Some(url) = std::env::var("CABINET_TEST_S3_URL").ok().filter(|url| !url.is_empty()) else {
        assert!(std::env::var("CABINET_REQUIRE_S3").as_deref() != Ok("1"), "CABINET_REQUIRE_S3=1 but no S3");
        eprintln!("skipping: no S3 server (CABINET_TEST_S3_URL is not set; dev/test starts one)");
        return None;
    };
    let (location, query) = url.split_once('?').unwrap_or((&url, ""));
    let run = ulid::Ulid::new().to_string().to_ascii_lowercase();
    Some(format!("{}/{name}-{run}?{query}", location.trim_end_matches('/')))
}

/// Sends `multipart_test_size()` bytes as 64 MiB parts generated on the fly (never held whole),
/// completes, and checks the server's sha256 and peak resident memory; then purges the file.
async fn multipart_upload_in_bounded_memory(storage: Option<String>) {
    let size = multipart_test_size();
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::create(dir.path(), "memory", None, "write");
    let mut args = vec![];
    if let Some(storage) = &storage {
        args = vec!["--storage", storage.as_str()];
    }
    let server = ServerProcess::start_with(dir.path(), &args);
    let http = http_client();
    let at_start = server.peak_resident_bytes();
    println!("server peak resident memory at start: {:.1} MiB", mib(at_start));

    let response = http
        .post(server.at("/v1/uploads"))
        .bearer_auth(&tenant.key)
        .json(&json!({"name": "huge.bin", "size": size, "multipart": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let ticket: Value = response.json().await.unwrap();
    let id = ticket["id"].as_str().unwrap().to_owned();
    let part_size = ticket["multipart"]["part_size"].as_u64().unwrap();
    let part_count = ticket["multipart"]["part_count"].as_u64().unwrap() as u32;

    let pattern = Arc::new(Pattern::new(CHUNK, 0x6d75_6c74_6970_6172));
    let mut sent_hash = Sha256::new();
    let started = Instant::now();
    for first in (1..=part_count).step_by(100) {
        let numbers: Vec<u32> = (first..=(first + 99).min(part_count)).collect();
        let response = http
            .post(server.at(&format!("/v1/uploads/{id}/parts")))
            .bearer_auth(&tenant.key)
            .json(&json!({ "part_numbers": numbers }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let urls: Value = response.json().await.unwrap();
        for url in urls["parts"].as_array().unwrap() {
            let number = url["part_number"].as_u64().unwrap();
            let part_len = url["size"].as_u64().unwrap();
            let start = (number - 1) * part_size;
            // Chunk indexes count from the start of the file, so every part differs.
            let body = stream::iter((start..start + part_len).step_by(CHUNK)).map({
                let pattern = pattern.clone();
                move |offset| {
                    let len = (start + part_len - offset).min(CHUNK as u64) as usize;
                    Ok::<_, std::io::Error>(pattern.chunk(offset / CHUNK as u64, len))
                }
            });
            let mut offset = start;
            while offset < start + part_len {
                let len = (start + part_len - offset).min(CHUNK as u64) as usize;
                sent_hash.update(pattern.chunk(offset / CHUNK as u64, len));
                offset += len as u64;
            }
            let mut request = http.put(url["url"].as_str().unwrap());
            for (name, value) in url["headers"].as_object().unwrap() {
                request = request.header(name, value.as_str().unwrap());
            }
            let response = request
                .header(reqwest::header::CONTENT_LENGTH, part_len)
                .body(reqwest::Body::wrap_stream(body))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "part {number}: {}", response.status());
        }
    }
    let upload_time = started.elapsed();
    let started = Instant::now();
    let response = http
        .post(server.at(&format!("/v1/uploads/{id}/complete")))
        .bearer_auth(&tenant.key)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let done: Value = response.json().await.unwrap();
    let complete_time = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "SUCCESS", "{done}");
    assert_eq!(done["file"]["size"], size);
    assert_eq!(done["file"]["sha256"], hex::encode(sent_hash.finalize()), "the server hashed what was sent");
    let peak = server.peak_resident_bytes();
    println!(
        "multipart ({}): {:.0} MiB in {part_count} parts in {upload_time:.1?} = {:.0} MiB/s; complete (assemble + \
         verify) {complete_time:.1?}; server peak resident memory {:.1} MiB (+{:.1} MiB from start)",
        if storage.is_some() { "S3" } else { "local folder" },
        mib(size),
        mib_per_second(size, upload_time),
        mib(peak),
        mib(peak.saturating_sub(at_start)),
    );
    // Leave no 5 GiB behind: the bucket outlives the test's folder.
    let file_id = done["file"]["id"].as_str().unwrap();
    let response = http
        .delete(server.at(&format!("/v1/files/{file_id}?permanent=true")))
        .bearer_auth(&tenant.key)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "purging the file: {}", response.status());
    assert!(
        peak.saturating_sub(at_start) < PEAK_RESIDENT_LIMIT,
        "the server's peak resident memory grew by {:.1} MiB during the multipart upload",
        mib(peak.saturating_sub(at_start))
    );
}

/// The size of the tus upload: 1 GiB, 5 GiB with `CABINET_LONG=1`, or `CABINET_TUS_TEST_BYTES`; as
/// the disk allows (the upload and the file it becomes).
fn tus_test_size() -> u64 {
    let full = if std::env::var("CABINET_LONG").as_deref() == Ok("1") {
        MULTIPART_DEFAULT_SIZE
    } else {
        DEFAULT_SIZE
    };
    test_size("CABINET_TUS_TEST_BYTES", full, 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "moves 1 GiB (5 GiB with CABINET_LONG=1) through tus; dev/test runs it with --ignored"]
async fn a_tus_upload_stays_in_bounded_server_memory_on_the_local_folder() {
    tus_upload_in_bounded_memory(None).await;
}

/// On S3 the bytes go to the bucket as multipart parts while they arrive, two parts in memory at
/// most, and are read back once to be hashed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "moves 1 GiB (5 GiB with CABINET_LONG=1) through tus to S3; dev/test runs it with --ignored"]
async fn a_tus_upload_stays_in_bounded_server_memory_on_s3() {
    let Some(storage) = s3_storage_under("memory-tus") else { return };
    tus_upload_in_bounded_memory(Some(storage)).await;
}

/// Sends `tus_test_size()` bytes as tus PATCHes of 256 MiB generated on the fly, and checks the
/// server's sha256 and peak resident memory; then purges the file.
async fn tus_upload_in_bounded_memory(storage: Option<String>) {
    let size = tus_test_size();
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::create(dir.path(), "memory", None, "write");
    let mut args = vec![];
    if let Some(storage) = &storage {
        args = vec!["--storage", storage.as_str()];
    }
    let server = ServerProcess::start_with(dir.path(), &args);
    let http = http_client();
    let at_start = server.peak_resident_bytes();
    let response = http
        .post(server.at("/tus/v1/"))
        .bearer_auth(&tenant.key)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", size)
        .header("Upload-Metadata", "filename aHVnZS5iaW4=")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let url = response.headers()["location"].to_str().unwrap().to_owned();
    // PATCHes of 256 MiB, each streamed from chunks made on the fly.
    const REQUEST: u64 = 256 << 20;
    let pattern = Arc::new(Pattern::new(CHUNK, 0x7475_7375_706c_6f61));
    let mut sent_hash = Sha256::new();
    let started = Instant::now();
    let mut offset = 0;
    while offset < size {
        let end = (offset + REQUEST).min(size);
        let body = stream::iter((offset..end).step_by(CHUNK)).map({
            let pattern = pattern.clone();
            move |at| {
                Ok::<_, std::io::Error>(
                    pattern.chunk(at / CHUNK as u64, (end - at).min(CHUNK as u64) as usize),
                )
            }
        });
        let mut at = offset;
        while at < end {
            let len = (end - at).min(CHUNK as u64) as usize;
            sent_hash.update(pattern.chunk(at / CHUNK as u64, len));
            at += len as u64;
        }
        let response = http
            .patch(&url)
            .bearer_auth(&tenant.key)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", offset)
            .header("Content-Type", "application/offset+octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, end - offset)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "PATCH at {offset}");
        offset = response.headers()["upload-offset"].to_str().unwrap().parse().unwrap();
        assert_eq!(offset, end);
    }
    let elapsed = started.elapsed();
    let id = url.rsplit('/').next().unwrap();
    let done: Value = http
        .get(server.at(&format!("/v1/uploads/{id}")))
        .bearer_auth(&tenant.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "SUCCESS", "{done}");
    assert_eq!(done["file"]["sha256"], hex::encode(sent_hash.finalize()), "the server hashed what was sent");
    let peak = server.peak_resident_bytes();
    let (stores, completion) = match storage {
        None => ("local folder", "the last one joins the segments into the file"),
        Some(_) => ("S3", "bytes sent as multipart parts, the last one completes and reads the object back"),
    };
    println!(
        "tus ({stores}): {:.0} MiB in PATCHes of 256 MiB in {elapsed:.1?} = {:.0} MiB/s ({completion}); \
         server peak resident memory {:.1} MiB (+{:.1} MiB from start)",
        mib(size),
        mib_per_second(size, elapsed),
        mib(peak),
        mib(peak.saturating_sub(at_start)),
    );
    // Leave nothing behind: the bucket outlives the test's folder.
    let file_id = done["file"]["id"].as_str().unwrap();
    let response = http
        .delete(server.at(&format!("/v1/files/{file_id}?permanent=true")))
        .bearer_auth(&tenant.key)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "purging the file: {}", response.status());
    assert!(
        peak.saturating_sub(at_start) < PEAK_RESIDENT_LIMIT,
        "the server's peak resident memory grew by {:.1} MiB during the tus upload",
        mib(peak.saturating_sub(at_start))
    );
}

/// How much the server's resident memory may grow while unauthenticated requests hit it.
const UNAUTHENTICATED_BUDGET: u64 = 64 << 20;
/// Requests sent at once to each route.
const AT_ONCE: usize = 64;

/// The largest body a request to `operation` may declare: the JSON upload limit for JSON (every
/// other JSON route stops at 2 MiB), and for forms and raw bytes, whose limit is the file's, 64 MiB.
fn largest_body(operation: &BodyOperation) -> u64 {
    if operation.content_type == "application/json" {
        16 << 20
    } else {
        64 << 20
    }
}

/// A body of `total` bytes for `operation`, costly to take: JSON that parses to a million
/// values per 2 MiB, a form of a `tags` field every 60 bytes, or raw bytes.
fn costly_body(operation: &BodyOperation, total: u64) -> Box<dyn Iterator<Item = bytes::Bytes> + Send> {
    match operation.content_type {
        "application/json" => Box::new(raw::json_zeros(total)),
        "multipart/form-data" => Box::new(raw::tags_form(total)),
        _ => Box::new(raw::body_of(b"", &[0], b"", total)),
    }
}

/// Sends `AT_ONCE` unauthenticated requests to `operation` at once, half without credentials and
/// half with a key that matches nothing; each must be refused (401, or 403 for a signed URL)
/// within a minute. The body is sent for as long as the server has not answered (after a short
/// wait for an answer to the head alone), so a server that reads it gets all of it. Returns the
/// refusals, each with how much of its body the sockets took.
async fn unauthenticated_at_once(
    server: &ServerProcess,
    operation: &BodyOperation,
    total: u64,
) -> Vec<(raw::RawResponse, u64)> {
    let address = raw::address_of(&server.url);
    let path = operation.path();
    let content_type = operation.content_type_header(raw::BOUNDARY);
    let requests = (0..AT_ONCE).map(|i| {
        let mut headers = vec![("Content-Type".to_owned(), content_type.clone())];
        if i % 2 == 1 {
            headers.push((
                "Authorization".to_owned(),
                "Bearer cab_0123456789abcdefghijklmnopqrstuvwxyzABCD".to_owned(),
            ));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let head = raw::head(&operation.method, &path, Some(total), &headers);
        let body = costly_body(operation, total);
        tokio::spawn(async move {
            let stream = raw::connect_from(std::net::Ipv4Addr::LOCALHOST.into(), address).await?;
            let answer =
                tokio::time::timeout(Duration::from_secs(60), raw::send_while_unanswered(stream, head, body));
            answer
                .await
                .map_err(|_| std::io::Error::other("no answer within 60 s: the body is being read"))?
        })
    });
    let mut refusals = Vec::with_capacity(AT_ONCE);
    for request in requests.collect::<Vec<_>>() {
        let (response, sent) = request
            .await
            .unwrap()
            .unwrap_or_else(|err| panic!("{} {}: {err}", operation.method, operation.template));
        let expected = if operation.signed { 403 } else { 401 };
        assert_eq!(
            response.status,
            expected,
            "{} {}: {:?}",
            operation.method,
            operation.template,
            response.json()
        );
        refusals.push((response, sent));
    }
    refusals
}

/// A server for the budget tests: no rate limit, so that every refusal is the credentials'.
fn budget_server(dir: &std::path::Path) -> ServerProcess {
    ServerProcess::start_with(dir, &["--rate-limit-per-minute", "0"])
}

/// Asserts the server's peak resident memory grew by less than the budget since `baseline`.
fn assert_within_budget(server: &ServerProcess, baseline: u64, what: &str) {
    let peak = server.peak_resident_bytes();
    let growth = peak.saturating_sub(baseline);
    println!(
        "{what}: resident {:.1} MiB before, peak {:.1} MiB (+{:.1} MiB)",
        mib(baseline),
        mib(peak),
        mib(growth)
    );
    assert!(
        growth < UNAUTHENTICATED_BUDGET,
        "{what}: the server's peak resident memory grew by {:.1} MiB (budget {:.0} MiB)",
        mib(growth),
        mib(UNAUTHENTICATED_BUDGET)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_cms_forms_of_63_mb_of_tags_are_refused_unread_in_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = budget_server(dir.path());
    let upload = BodyOperation {
        template: "/compat/cms/files/".into(),
        method: "POST".into(),
        content_type: "multipart/form-data",
        signed: false,
    };
    unauthenticated_at_once(&server, &upload, 1 << 20).await;
    let baseline = server.resident_bytes();
    for template in ["/compat/cms/files/", "/compat/cms/files"] {
        let upload = BodyOperation { template: template.into(), ..upload.clone() };
        for (refusal, _) in unauthenticated_at_once(&server, &upload, 63 << 20).await {
            let detail = refusal.json()["detail"].as_str().map(str::to_owned);
            assert!(
                matches!(
                    detail.as_deref(),
                    Some("Authentication credentials were not provided." | "Invalid token.")
                ),
                "{:?}",
                refusal.json()
            );
        }
    }
    assert_within_budget(&server, baseline, "64 unauthenticated 63 MB CMS forms at once, twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_largest_bodies_on_every_body_route_stay_within_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let server = budget_server(dir.path());
    let operations = body_operations(&http_client(), &server.url).await;
    // One round first, so that what any server allocates once (worker threads, pools) is in
    // the baseline.
    for operation in &operations {
        unauthenticated_at_once(&server, operation, 1 << 20).await;
    }
    let baseline = server.resident_bytes();
    let started = Instant::now();
    for operation in &operations {
        unauthenticated_at_once(&server, operation, largest_body(operation)).await;
    }
    println!("{} routes × {AT_ONCE} requests in {:.1?}", operations.len(), started.elapsed());
    assert_within_budget(
        &server,
        baseline,
        &format!("{AT_ONCE} unauthenticated largest bodies at once on each of {} routes", operations.len()),
    );
}

/// Clients that ask for a download and then read nothing hold only what their connections could
/// not send: 600 of them at once on a signed URL (anyone holding it, no key) stay within the
/// 64 MiB all downloads may hold in larger chunks, plus 128 KiB each (a 16 KiB chunk once that is
/// reached, and the connection's own state, ~65 KiB in a debug build); with 256 KiB chunks read
/// through a second buffer, each held ~550 KiB. A client that reads is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_whose_clients_read_nothing_hold_bounded_memory() {
    const CLIENTS: usize = 600;
    let dir = tempfile::tempdir().unwrap();
    let server = budget_server(dir.path());
    let key = server.bootstrap_key.clone().unwrap();
    let bytes: Vec<u8> = Pattern::new(CHUNK, 7).block.repeat(8);
    let id = server.upload_file(&key, "unread.bin", bytes.clone()).await;
    let link: Value = http_client()
        .get(server.at(&format!("/v1/files/{id}/download-url")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = link["url"].as_str().unwrap();
    let path = &url[url.find("/storage/").expect("a signed storage URL")..];
    let baseline = server.resident_bytes();

    let unread = start_unread_downloads(&server, CLIENTS, path, &[]).await;
    let whole = http_client().get(url).send().await.unwrap();
    assert_read_whole_and_unread_within_budget(&server, baseline, whole, &bytes, CLIENTS, "").await;
    drop(unread);
}

/// The same on S3, through Cabinet: the file's content with a key (a public file's route reads it
/// the same way, with none), within the same budget. Each holds what its S3 connection read and
/// could not pass on, 64 KiB reads (16 KiB once reads hold 64 MiB), and its two connections' own
/// state; with reqwest's connections, which read ~400 KiB at a time, 600 grew the server by
/// 250–278 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_through_cabinet_whose_clients_read_nothing_hold_bounded_memory_on_s3() {
    const CLIENTS: usize = 600;
    let Some(storage) = s3_storage_under("memory-unread") else { return };
    let dir = tempfile::tempdir().unwrap();
    let server =
        ServerProcess::start_with(dir.path(), &["--rate-limit-per-minute", "0", "--storage", &storage]);
    let key = server.bootstrap_key.clone().unwrap();
    let bytes: Vec<u8> = Pattern::new(CHUNK, 11).block.repeat(8);
    let id = server.upload_file(&key, "unread.bin", bytes.clone()).await;
    let path = format!("/v1/files/{id}/content");
    let baseline = server.resident_bytes();

    let authorization = format!("Bearer {key}");
    let unread = start_unread_downloads(&server, CLIENTS, &path, &[("Authorization", &authorization)]).await;
    let whole = http_client().get(server.at(&path)).bearer_auth(&key).send().await.unwrap();
    assert_read_whole_and_unread_within_budget(&server, baseline, whole, &bytes, CLIENTS, " from S3").await;
    drop(unread);
}

/// Asserts that a client reading its download was sent the file whole meanwhile, and that the
/// `clients` unread downloads grew the server's peak by less than the 64 MiB all downloads may
/// hold in larger chunks and 128 KiB each.
async fn assert_read_whole_and_unread_within_budget(
    server: &ServerProcess,
    baseline: u64,
    whole: reqwest::Response,
    bytes: &[u8],
    clients: usize,
    from: &str,
) {
    assert_eq!(whole.status(), StatusCode::OK);
    assert!(whole.bytes().await.unwrap() == bytes, "a reading client was not sent the file");
    let growth = server.peak_resident_bytes().saturating_sub(baseline);
    let budget = (64 << 20) + clients as u64 * (128 << 10);
    println!("{clients} unread downloads{from}: +{:.1} MiB (budget {:.0} MiB)", mib(growth), mib(budget));
    assert!(growth < budget, "{clients} unread downloads{from} grew the server by {:.1} MiB", mib(growth));
}

/// Sends `clients` requests for `path`, each on a connection of its own with a 4 KiB receive
/// buffer, 200 from each loopback address (within the per-address cap), and reads none of their
/// answers; gives the server 3 s to fill what it will.
async fn start_unread_downloads(
    server: &ServerProcess,
    clients: usize,
    path: &str,
    headers: &[(&str, &str)],
) -> Vec<tokio::net::TcpStream> {
    let address = raw::address_of(&server.url);
    let mut unread = Vec::new();
    for n in 0..clients {
        let source = std::net::Ipv4Addr::new(127, 0, 30 + (n / 200) as u8, 1 + (n % 200) as u8);
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.bind((source, 0).into()).unwrap();
        let mut stream = socket.connect(address).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stream, raw::head("GET", path, None, headers).as_bytes())
            .await
            .unwrap();
        unread.push(stream);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    unread
}
