//! SIGKILL of the real server during 20 concurrent tus uploads, in rounds: after each restart,
//! every offset a `204` acknowledged is still there (HEAD reports at least it, and never more
//! than the upload's length), every upload whose last `204` was received is a file, and every
//! upload, resumed from the offset HEAD reports, becomes a file with exactly its bytes.
//!
//! `CABINET_TUS_CRASH_ROUNDS` (default 3; `CABINET_LONG=1`: 10) sets how many kills on SQLite and
//! the local folder (bytes kept as segments); `CABINET_TUS_CRASH_ROUNDS_S3` (default half as many)
//! on S3, where they are the parts of a multipart upload.

use crate::process;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use process::{admin, http_client, ServerProcess};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

const UPLOADS: usize = 20;
const MIB: usize = 1024 * 1024;

/// One upload and what the server acknowledged of it.
#[derive(Debug, Clone)]
struct Tracked {
    name: String,
    seed: u64,
    size: usize,
    /// The upload's path (`/tus/v1/upl_…`).
    url: Option<String>,
    acknowledged: u64,
    completed: bool,
}

impl Tracked {
    fn bytes(&self) -> Vec<u8> {
        let mut bytes = vec![0; self.size];
        StdRng::seed_from_u64(self.seed).fill_bytes(&mut bytes);
        bytes
    }
}

fn rounds() -> usize {
    if let Ok(rounds) = std::env::var("CABINET_TUS_CRASH_ROUNDS") {
        return rounds.parse().expect("CABINET_TUS_CRASH_ROUNDS is a number");
    }
    if std::env::var("CABINET_LONG").as_deref() == Ok("1") {
        10
    } else {
        3
    }
}

fn metadata(name: &str) -> String {
    use base64::Engine;
    format!("filename {}", base64::engine::general_purpose::STANDARD.encode(name))
}

/// Creates (unless it has a URL) and sends an upload from `from` in chunks, recording each
/// acknowledged offset; stops at the first failure (the server was killed).
async fn send(client: reqwest::Client, base: String, key: String, state: Arc<Mutex<Tracked>>, chunk: usize) {
    let (name, size, url) = {
        let tracked = state.lock().unwrap();
        (tracked.name.clone(), tracked.size, tracked.url.clone())
    };
    let bytes = state.lock().unwrap().bytes();
    let url = match url {
        Some(url) => url,
        None => {
            let Ok(created) = client
                .post(format!("{base}/tus/v1/"))
                .bearer_auth(&key)
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Length", size)
                .header("Upload-Metadata", metadata(&name))
                .send()
                .await
            else {
                return;
            };
            if created.status() != StatusCode::CREATED {
                return;
            }
            // The path only: a restarted server listens on another port.
            let location = created.headers()["location"].to_str().unwrap();
            let path = &location[location.find("/tus/").expect("a tus URL")..];
            state.lock().unwrap().url = Some(path.to_owned());
            path.to_owned()
        }
    };
    let url = format!("{base}{url}");
    let Ok(head) = client.head(&url).bearer_auth(&key).header("Tus-Resumable", "1.0.0").send().await else {
        return;
    };
    if head.status() != StatusCode::OK {
        return;
    }
    let mut offset: usize = head.headers()["upload-offset"].to_str().unwrap().parse().unwrap();
    if offset == size {
        state.lock().unwrap().completed = true;
    }
    while offset < size {
        let end = (offset + chunk).min(size);
        let Ok(answer) = client
            .patch(&url)
            .bearer_auth(&key)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", offset)
            .header("Content-Type", "application/offset+octet-stream")
            .body(bytes[offset..end].to_vec())
            .send()
            .await
        else {
            return;
        };
        if answer.status() != StatusCode::NO_CONTENT {
            return;
        }
        offset = answer.headers()["upload-offset"].to_str().unwrap().parse().unwrap();
        let mut tracked = state.lock().unwrap();
        tracked.acknowledged = offset as u64;
        tracked.completed = offset == size;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_offsets_survive_sigkill() {
    crash_rounds("SQLite and the local folder", &[], rounds()).await;
}

/// On S3 the bytes are the parts of a multipart upload and a tail (see `resumable/in_parts.rs`):
/// a kill may land between a part and its tail, or between the parts' joining and the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_offsets_survive_sigkill_on_s3() {
    let Ok(s3) = std::env::var("CABINET_TEST_S3_URL") else {
        if std::env::var("CABINET_REQUIRE_S3").as_deref() == Ok("1") {
            panic!("CABINET_REQUIRE_S3=1 but CABINET_TEST_S3_URL is not set (run dev/test)");
        }
        eprintln!(
            "skipping the tus crash test on S3: CABINET_TEST_S3_URL is not set (dev/test starts a server)"
        );
        return;
    };
    let (bucket, query) = s3.split_once('?').unwrap_or((&s3, ""));
    let prefix = format!("tus-crash-{}", ulid::Ulid::new().to_string().to_lowercase());
    let storage = format!("{}/{prefix}?{query}", bucket.trim_end_matches('/'));
    let rounds = std::env::var("CABINET_TUS_CRASH_ROUNDS_S3").map_or(rounds().div_ceil(2), |rounds| {
        rounds.parse().expect("CABINET_TUS_CRASH_ROUNDS_S3 is a number")
    });
    crash_rounds("SQLite and S3", &["--storage", &storage], rounds).await;
}

async fn crash_rounds(stores: &str, flags: &[&str], rounds: usize) {
    let seed: u64 = rand::thread_rng().gen();
    eprintln!("tus crash test seed {seed} ({stores})");
    let mut rng = StdRng::seed_from_u64(seed);
    let data = tempfile::tempdir().unwrap();
    let client = http_client();
    let mut server = ServerProcess::start_with(data.path(), flags);
    let key = server.bootstrap_key.clone().expect("a bootstrap key");
    let mut cut_mid_upload = 0;
    let mut whole_request_failed = 0;
    for round in 0..rounds {
        let uploads: Vec<Arc<Mutex<Tracked>>> = (0..UPLOADS)
            .map(|i| {
                Arc::new(Mutex::new(Tracked {
                    name: format!("r{round}-u{i}.bin"),
                    seed: rng.gen::<u64>(),
                    size: if i % 10 == 0 { rng.gen_range(0..2) } else { rng.gen_range(MIB..16 * MIB) },
                    url: None,
                    acknowledged: 0,
                    completed: false,
                }))
            })
            .collect();
        let tasks: Vec<_> = uploads
            .iter()
            .map(|state| {
                let chunk = rng.gen_range(64 * 1024..MIB);
                tokio::spawn(send(client.clone(), server.url.clone(), key.clone(), state.clone(), chunk))
            })
            .collect();
        // The kill lands at a random moment once some uploads are part-way (acknowledged, not
        // complete), so every round cuts uploads in the middle.
        let part_way = || {
            uploads
                .iter()
                .filter(|state| {
                    let tracked = state.lock().unwrap();
                    tracked.acknowledged > 0 && !tracked.completed
                })
                .count()
        };
        for _ in 0..1000 {
            if part_way() >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..150))).await;
        let _ = server.kill();
        for task in tasks {
            let _ = task.await;
        }
        server = ServerProcess::start_with(data.path(), flags);
        // What every acknowledged offset must still be.
        for state in &uploads {
            let tracked = state.lock().unwrap().clone();
            let Some(path) = tracked.url.clone() else { continue };
            let url = format!("{}{path}", server.url);
            let head =
                client.head(&url).bearer_auth(&key).header("Tus-Resumable", "1.0.0").send().await.unwrap();
            if head.status() == StatusCode::GONE {
                // An upload whose one request carried all its bytes keeps no segment: a kill while
                // that request was becoming the file fails it at restart. Nothing of it had been
                // acknowledged; the client starts it again (tus-js-client does so on 410).
                assert_eq!(tracked.acknowledged, 0, "{}: acknowledged bytes are gone", tracked.name);
                state.lock().unwrap().url = None;
                whole_request_failed += 1;
                continue;
            }
            assert_eq!(head.status(), StatusCode::OK, "{}: HEAD after the restart", tracked.name);
            let offset: u64 = head.headers()["upload-offset"].to_str().unwrap().parse().unwrap();
            assert!(
                offset >= tracked.acknowledged,
                "{}: {offset} bytes after the restart, {} were acknowledged",
                tracked.name,
                tracked.acknowledged
            );
            assert!(offset <= tracked.size as u64, "{}: {offset} past its length", tracked.name);
            if !tracked.completed && tracked.acknowledged > 0 {
                cut_mid_upload += 1;
            }
        }
        // Every upload resumes from where the server stands and becomes a file of its bytes.
        let resumes: Vec<_> = uploads
            .iter()
            .map(|state| {
                tokio::spawn(send(client.clone(), server.url.clone(), key.clone(), state.clone(), MIB))
            })
            .collect();
        for resume in resumes {
            resume.await.unwrap();
        }
        for state in &uploads {
            let tracked = state.lock().unwrap().clone();
            assert!(tracked.completed, "{} completed after resuming", tracked.name);
            let url = tracked.url.clone().expect("an upload URL");
            let upload_id = url.rsplit('/').next().unwrap();
            let upload: serde_json::Value = client
                .get(format!("{}/v1/uploads/{upload_id}", server.url))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(upload["status"], "SUCCESS", "{}: {upload}", tracked.name);
            let file = &upload["file"];
            assert_eq!(file["name"], tracked.name.as_str(), "{upload}");
            assert_eq!(file["size"], tracked.size, "{}", tracked.name);
            assert_eq!(file["sha256"], hex::encode(Sha256::digest(tracked.bytes())), "{}", tracked.name);
            let content = client
                .get(format!("{}/v1/files/{}/content", server.url, file["id"].as_str().unwrap()))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert!(
                content.as_ref() == tracked.bytes().as_slice(),
                "{} reads back as its bytes",
                tracked.name
            );
        }
        // No orphan object (segments of live uploads are kept, of ended ones removed), no file
        // without its object, no drift between the quota ledger and what is stored and reserved.
        let check = admin(data.path(), &[&["check", "--json"], flags].concat());
        assert!(check.status.success(), "cabinet admin check:\n{}\n{}", check.stdout, check.stderr);
        let report: serde_json::Value = serde_json::from_str(check.stdout.trim()).expect("a JSON report");
        for problem in ["orphan_objects", "files_without_objects", "ledger_drift"] {
            assert_eq!(report[problem], serde_json::json!([]), "cabinet admin check: {report}");
        }
        eprintln!("tus crash round {round} ({stores}): killed, every acknowledged offset kept, all {UPLOADS} uploads resumed to verified files");
    }
    assert!(cut_mid_upload > 0, "no kill landed in the middle of an upload: the test proved nothing");
    eprintln!(
        "tus crash rounds on {stores}: {cut_mid_upload} uploads were cut mid-upload; {whole_request_failed} sent whole in one \
         request were failed by the kill (nothing acknowledged) and started again"
    );
    let _ = server.kill();
}
