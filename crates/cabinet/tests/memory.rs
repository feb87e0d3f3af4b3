//! Memory stays flat whatever the file size: a 1 GiB upload through the signed URL and its
//! download both stream, so the server's peak resident memory stays far below the file's size.
//!
//! Ignored by default (it moves 2 GiB); CI runs it with `--ignored`. `CABINET_MEMORY_TEST_BYTES`
//! changes the size.

mod process;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use process::{http_client, ServerProcess, Tenant};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

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
    let size = std::env::var("CABINET_MEMORY_TEST_BYTES")
        .map(|value| value.trim().parse::<u64>().expect("CABINET_MEMORY_TEST_BYTES must be a number"))
        .unwrap_or(DEFAULT_SIZE);
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
