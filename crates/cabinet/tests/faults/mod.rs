//! The fault-injection suite: the real binary while the ground gives way under it. After each
//! fault: every upload the client saw SUCCESS reads back byte for byte, no temporary or orphan
//! object is left, the quota ledger is exact (`cabinet admin check` finds nothing wrong), and
//! clients were told clearly (an error status with the documented JSON error shape, never a
//! hang past a bounded wait, never a panic in the server's log).
//!
//! The scenarios, each printing one summary line that starts with its name: a full disk (the
//! data folder on a small tmpfs), PostgreSQL restarted mid-traffic (a private cluster made by
//! `dev/postgres`), the answer to a file's `COMMIT` lost (a proxy in front of that cluster), and
//! S3 failing (a private s3s-fs behind a fault-injecting proxy, and killed mid-upload).
//!
//! The full-disk scenario mounts a tmpfs, which needs root; the others need PostgreSQL and the
//! s3s-fs binary `dev/s3-server` installs. Where one cannot run it fails the test when
//! `CABINET_REQUIRE_FAULTS=1` or `CI` is set (as `dev/test` does), and is reported skipped otherwise.

use crate::process;

mod disk;
mod postgres;
mod s3;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use process::{admin_json_with_env, admin_with_env, files_under, http_client, ServerProcess, Tenant};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// No request of this suite may take longer: a fault must turn into an answer, not a hang.
const BOUNDED_WAIT: Duration = Duration::from_secs(60);

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Bytes that differ from one file to the next (a counter mixed into each byte).
fn content(seed: u8, size: usize) -> Vec<u8> {
    (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8)).collect()
}

fn must_have_faults() -> bool {
    std::env::var("CABINET_REQUIRE_FAULTS").is_ok_and(|v| v == "1") || std::env::var("CI").is_ok()
}

/// The client side of one server and one key.
struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// What an upload attempt ended with, as the client saw it.
#[derive(Debug)]
enum Attempt {
    /// The server said SUCCESS (or 201 for a direct upload): this file must never be lost.
    Stored { id: String, sha256: String, bytes: Vec<u8> },
    /// The server refused, with this status and error code (the JSON error shape checked).
    Refused { upload: Option<RefusedUpload>, status: StatusCode, code: String },
}

/// A signed upload whose bytes were refused: its ticket and its bytes, to send them again.
#[derive(Debug)]
struct RefusedUpload {
    id: String,
    url: String,
    bytes: Vec<u8>,
}

/// Checks an error answer has the documented shape, and returns its code.
fn error_code(status: StatusCode, body: &Value) -> String {
    assert!(status.is_client_error() || status.is_server_error(), "{status}: {body}");
    let code = body["error"]["code"].as_str().unwrap_or_else(|| panic!("an error code in {status}: {body}"));
    assert!(body["error"]["message"].is_string(), "an error message in {status}: {body}");
    code.to_owned()
}

impl Client {
    fn new(server: &ServerProcess, key: &str) -> Client {
        Client { http: http_client(), base: server.url.clone(), key: key.to_owned() }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = tokio::time::timeout(BOUNDED_WAIT, request.send())
            .await
            .expect("the server answers within the bounded wait")
            .expect("the server answers (the connection is not dropped)");
        let status = response.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // 503 says to retry; it says when.
            let retry_after = response.headers().get(reqwest::header::RETRY_AFTER);
            let seconds = retry_after.and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
            assert!(seconds.is_some_and(|seconds| seconds > 0), "a 503 without Retry-After: {retry_after:?}");
        }
        let body = tokio::time::timeout(BOUNDED_WAIT, response.bytes())
            .await
            .expect("the body arrives within the bounded wait")
            .expect("a body");
        let body: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("{status}: a JSON body, not {:?}", String::from_utf8_lossy(&body)));
        (status, body)
    }

    async fn get_json(&self, path: &str) -> Value {
        let (status, body) =
            self.send(self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.key)).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// A signed upload: start it, PUT the bytes to its URL.
    async fn signed_upload(&self, name: &str, bytes: Vec<u8>) -> Attempt {
        let request = json!({"name": name, "size": bytes.len(), "sha256": sha256_hex(&bytes)});
        let (status, ticket) = self
            .send(self.http.post(format!("{}/v1/uploads", self.base)).bearer_auth(&self.key).json(&request))
            .await;
        if status != StatusCode::CREATED {
            return Attempt::Refused { upload: None, status, code: error_code(status, &ticket) };
        }
        let upload_id = ticket["id"].as_str().expect("an upload id").to_owned();
        let url = ticket["upload_url"].as_str().expect("an upload URL").to_owned();
        let (status, body) = self.send(self.http.put(&url).body(bytes.clone())).await;
        if status == StatusCode::OK {
            assert_eq!(body["status"], "SUCCESS", "{body}");
            let file = &body["file"];
            assert_eq!(file["sha256"], sha256_hex(&bytes), "{body}");
            return Attempt::Stored {
                id: file["id"].as_str().expect("a file id").to_owned(),
                sha256: sha256_hex(&bytes),
                bytes,
            };
        }
        let code = error_code(status, &body);
        Attempt::Refused { upload: Some(RefusedUpload { id: upload_id, url, bytes }), status, code }
    }

    /// A direct upload: `POST /v1/files` with a multipart body.
    async fn direct_upload(&self, name: &str, bytes: Vec<u8>) -> Attempt {
        let part = reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_owned());
        let form = reqwest::multipart::Form::new().part("file", part);
        let (status, body) = self
            .send(self.http.post(format!("{}/v1/files", self.base)).bearer_auth(&self.key).multipart(form))
            .await;
        if status == StatusCode::CREATED {
            assert_eq!(body["sha256"], sha256_hex(&bytes), "{body}");
            return Attempt::Stored {
                id: body["id"].as_str().expect("a file id").to_owned(),
                sha256: sha256_hex(&bytes),
                bytes,
            };
        }
        Attempt::Refused { upload: None, status, code: error_code(status, &body) }
    }

    /// One part of a multipart upload: start the upload, sign part 1, PUT its bytes. The upload is
    /// left waiting (its other parts are never sent); its id and what the part's PUT was answered.
    async fn multipart_first_part(&self, name: &str, size: usize) -> (String, StatusCode, Value) {
        let request = json!({"name": name, "size": size, "multipart": true});
        let (status, ticket) = self
            .send(self.http.post(format!("{}/v1/uploads", self.base)).bearer_auth(&self.key).json(&request))
            .await;
        assert_eq!(status, StatusCode::CREATED, "a multipart upload starts: {ticket}");
        let id = ticket["id"].as_str().expect("an upload id").to_owned();
        let part_size = ticket["multipart"]["part_size"].as_u64().expect("a part size") as usize;
        let signing = json!({"part_numbers": [1]});
        let (status, urls) = self
            .send(
                self.http
                    .post(format!("{}/v1/uploads/{id}/parts", self.base))
                    .bearer_auth(&self.key)
                    .json(&signing),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "part 1 is signed: {urls}");
        let url = urls["parts"][0]["url"].as_str().expect("a part URL");
        let (status, body) = self.send(self.http.put(url).body(content(7, part_size.min(size)))).await;
        (id, status, body)
    }

    /// A tus upload of `size` bytes in one PATCH: its id and what the PATCH was answered.
    async fn tus_upload(&self, size: usize) -> (String, StatusCode, String) {
        let created = tokio::time::timeout(
            BOUNDED_WAIT,
            self.http
                .post(format!("{}/tus/v1/", self.base))
                .bearer_auth(&self.key)
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Length", size.to_string())
                .header("Upload-Metadata", "filename dG9vLWJpZy50dXM=") // too-big.tus
                .send(),
        )
        .await
        .expect("the server answers within the bounded wait")
        .expect("the server answers");
        assert_eq!(created.status(), StatusCode::CREATED, "a tus upload is created");
        let location = created.headers()["location"].to_str().unwrap().to_owned();
        let id = location.rsplit('/').next().expect("an upload id").to_owned();
        let url = if location.starts_with("http") { location } else { format!("{}{location}", self.base) };
        let response = tokio::time::timeout(
            BOUNDED_WAIT,
            self.http
                .patch(url)
                .bearer_auth(&self.key)
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Offset", "0")
                .header("Content-Type", "application/offset+octet-stream")
                .body(content(8, size))
                .send(),
        )
        .await
        .expect("the server answers within the bounded wait")
        .expect("the server answers");
        let status = response.status();
        (id, status, response.text().await.unwrap_or_default())
    }

    /// Cancels an upload (`DELETE /v1/uploads/{id}`), releasing what it reserved.
    async fn cancel_upload(&self, id: &str) {
        let (status, body) = self
            .send(self.http.delete(format!("{}/v1/uploads/{id}", self.base)).bearer_auth(&self.key))
            .await;
        assert!(status.is_success(), "upload {id} is cancelled: {status} {body}");
    }

    /// Every stored file reads back byte for byte.
    async fn assert_all_readable(&self, stored: &[(String, String, Vec<u8>)]) {
        for (id, sha256, bytes) in stored {
            let url = format!("{}/v1/files/{id}/content", self.base);
            let response =
                tokio::time::timeout(BOUNDED_WAIT, self.http.get(url).bearer_auth(&self.key).send())
                    .await
                    .expect("a bounded read")
                    .expect("a read");
            assert_eq!(response.status(), StatusCode::OK, "reading {id}");
            let read = response.bytes().await.expect("the file's bytes");
            assert_eq!(&sha256_hex(&read), sha256, "{id} hashes to its sha256");
            assert!(read.as_ref() == bytes.as_slice(), "{id} reads back byte for byte");
        }
    }
}

/// `cabinet admin check --json` on a stopped server's data folder finds nothing wrong.
fn assert_check_clean(data_dir: &Path) {
    assert_check_clean_on(data_dir, &[], &[]);
}

/// `cabinet admin check --json` on these stores (`--database-url`, `--storage` flags and their
/// environment) finds nothing wrong.
fn assert_check_clean_on(data_dir: &Path, flags: &[&str], env: &[(&str, &str)]) {
    let mut args = vec!["check", "--json"];
    args.extend(flags);
    let run = admin_with_env(data_dir, &args, env);
    let report: Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|_| panic!("admin check printed no JSON:\n{}\n{}", run.stdout, run.stderr));
    assert!(run.status.success(), "admin check found something wrong: {report}\n{}", run.stderr);
    assert_eq!(report["orphan_objects"], json!([]), "{report}");
    assert_eq!(report["files_without_objects"], json!([]), "{report}");
    assert_eq!(report["ledger_drift"], json!([]), "{report}");
}

fn assert_no_panic(log: &str) {
    assert!(!log.contains("panicked"), "the server panicked; its log:\n{log}");
}

// Clients running traffic while a dependency fails under the server.

/// How many clients run traffic at once in the scenarios below.
const CLIENTS: usize = 3;

/// Where a scenario stands, so that every answer is counted under the phase it arrived in: before
/// any fault, then for each fault, while it lasts and after it is over.
const BEFORE: usize = 0;
fn during(fault: usize) -> usize {
    2 * fault + 1
}
fn after(fault: usize) -> usize {
    2 * fault + 2
}

/// How long a failure the server could not record while a dependency was down may take to be
/// recorded once it is back (the server retries it with backoff).
const RECORDED_WITHIN: Duration = Duration::from_secs(30);

/// A file a client was told was stored: its id, sha256 and bytes.
type StoredFile = (String, String, Vec<u8>);

/// What the clients of a scenario were told: per phase, operation and answer (`ok`, or the status
/// and error code), how many times.
#[derive(Default)]
struct Told {
    phase: AtomicUsize,
    answers: Mutex<BTreeMap<(usize, &'static str, String), usize>>,
}

impl Told {
    fn record(&self, operation: &'static str, answer: String) {
        let phase = self.phase.load(Ordering::SeqCst);
        *self.answers.lock().unwrap().entry((phase, operation, answer)).or_default() += 1;
    }

    fn ok(&self, phase: usize, operation: &str) -> usize {
        self.answers.lock().unwrap().get(&(phase, operation, "ok".to_owned())).map_or(0, |n| *n)
    }

    fn refused(&self, phase: usize) -> usize {
        let answers = self.answers.lock().unwrap();
        answers.iter().filter(|((at, _, answer), _)| *at == phase && answer != "ok").map(|(_, n)| n).sum()
    }

    /// `uploads: 12 ok, 3 × 503 unavailable; lists: …` over every phase.
    fn summary(&self) -> String {
        let mut by_operation: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
        let answers = self.answers.lock().unwrap();
        for ((_, operation, answer), n) in answers.iter() {
            *by_operation.entry(operation).or_default().entry(answer).or_default() += n;
        }
        by_operation
            .iter()
            .map(|(operation, answers)| {
                let answers: Vec<String> = answers
                    .iter()
                    .map(
                        |(answer, n)| {
                            if *answer == "ok" {
                                format!("{n} ok")
                            } else {
                                format!("{n} × {answer}")
                            }
                        },
                    )
                    .collect();
                format!("{operation}: {}", answers.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A refusal while a dependency fails: the documented JSON error (checked by `error_code`) with
/// 503 `unavailable`: the server's trouble, which a retry may get past; never a 500.
fn assert_unavailable(operation: &str, status: StatusCode, code: &str) {
    assert_eq!(
        (status, code),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "a {operation} while a dependency fails is answered 503 unavailable"
    );
}

/// Clients uploading (signed and direct), listing and downloading what they stored, in turn,
/// until stopped; every answer counted in `told`.
struct Traffic {
    told: Arc<Told>,
    stored: Arc<Mutex<Vec<StoredFile>>>,
    /// Signed uploads whose bytes were refused.
    refused_uploads: Arc<Mutex<Vec<RefusedUpload>>>,
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    fn start(client: &Arc<Client>) -> Traffic {
        let mut traffic = Traffic {
            told: Arc::default(),
            stored: Arc::default(),
            refused_uploads: Arc::default(),
            stop: Arc::default(),
            clients: Vec::new(),
        };
        for index in 0..CLIENTS {
            traffic.clients.push(tokio::spawn(run_client(
                client.clone(),
                index,
                traffic.told.clone(),
                traffic.stored.clone(),
                traffic.refused_uploads.clone(),
                traffic.stop.clone(),
            )));
        }
        traffic
    }

    /// Moves every client on to the next phase of the scenario.
    fn enter(&self, phase: usize) {
        self.told.phase.store(phase, Ordering::SeqCst);
    }

    /// Polls until the clients were told what `condition` asks, failing after `limit`.
    async fn wait_for(&self, what: &str, limit: Duration, condition: impl Fn(&Told) -> bool) {
        let deadline = Instant::now() + limit;
        while !condition(&self.told) {
            assert!(
                Instant::now() < deadline,
                "{what} within {limit:?}; the clients were told {}",
                self.told.summary()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the clients (each finishes the request it is in) and returns what they stored.
    async fn stop(self) -> (Vec<StoredFile>, Vec<RefusedUpload>, Arc<Told>) {
        self.stop.store(true, Ordering::SeqCst);
        for client in self.clients {
            client.await.expect("a client of the traffic panicked");
        }
        let stored = std::mem::take(&mut *self.stored.lock().unwrap());
        let refused = std::mem::take(&mut *self.refused_uploads.lock().unwrap());
        (stored, refused, self.told)
    }
}

async fn run_client(
    client: Arc<Client>,
    index: usize,
    told: Arc<Told>,
    stored: Arc<Mutex<Vec<StoredFile>>>,
    refused_uploads: Arc<Mutex<Vec<RefusedUpload>>>,
    stop: Arc<AtomicBool>,
) {
    let mut turn = 0usize;
    while !stop.load(Ordering::SeqCst) {
        turn += 1;
        match turn % 4 {
            0 | 1 => {
                let name = format!("client{index}-{turn}.bin");
                let bytes = content((index * 64 + turn) as u8, 20_000 + (turn * 7919) % 200_000);
                let attempt = if turn.is_multiple_of(4) {
                    client.signed_upload(&name, bytes).await
                } else {
                    client.direct_upload(&name, bytes).await
                };
                match attempt {
                    Attempt::Stored { id, sha256, bytes } => {
                        told.record("uploads", "ok".to_owned());
                        stored.lock().unwrap().push((id, sha256, bytes));
                    }
                    Attempt::Refused { upload, status, code } => {
                        assert_unavailable("upload", status, &code);
                        told.record("uploads", format!("{} {code}", status.as_u16()));
                        refused_uploads.lock().unwrap().extend(upload);
                    }
                }
            }
            2 => {
                let (status, body) = client
                    .send(
                        client
                            .http
                            .get(format!("{}/v1/files?limit=20", client.base))
                            .bearer_auth(&client.key),
                    )
                    .await;
                if status == StatusCode::OK {
                    assert!(body["data"].is_array(), "{body}");
                    told.record("lists", "ok".to_owned());
                } else {
                    let code = error_code(status, &body);
                    assert_unavailable("list", status, &code);
                    told.record("lists", format!("{} {code}", status.as_u16()));
                }
            }
            _ => {
                let file = {
                    let stored = stored.lock().unwrap();
                    stored.get(turn % stored.len().max(1)).map(|(id, _, bytes)| (id.clone(), bytes.clone()))
                };
                let Some((id, bytes)) = file else { continue };
                match client.read(&id).await {
                    Ok(read) => {
                        assert!(read == bytes, "{id} reads back byte for byte");
                        told.record("downloads", "ok".to_owned());
                    }
                    Err((status, code)) => {
                        assert_unavailable("download", status, &code);
                        told.record("downloads", format!("{} {code}", status.as_u16()));
                    }
                }
            }
        }
    }
}

impl Client {
    /// A file's bytes, or the status and code of the documented error it was refused with.
    async fn read(&self, id: &str) -> Result<Vec<u8>, (StatusCode, String)> {
        let url = format!("{}/v1/files/{id}/content", self.base);
        let response = tokio::time::timeout(BOUNDED_WAIT, self.http.get(url).bearer_auth(&self.key).send())
            .await
            .expect("a read answers within the bounded wait")
            .expect("a read is answered (the connection is not dropped)");
        let status = response.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // 503 says to retry; it says when.
            let retry_after = response.headers().get(reqwest::header::RETRY_AFTER);
            let seconds = retry_after.and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
            assert!(seconds.is_some_and(|seconds| seconds > 0), "a 503 without Retry-After: {retry_after:?}");
        }
        let body = tokio::time::timeout(BOUNDED_WAIT, response.bytes())
            .await
            .expect("a read's body arrives within the bounded wait")
            .expect("a read's body arrives whole");
        if status == StatusCode::OK {
            return Ok(body.to_vec());
        }
        let body: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("{status}: a JSON body, not {:?}", String::from_utf8_lossy(&body)));
        Err((status, error_code(status, &body)))
    }

    /// Every file of the workspace, paging through with the cursor.
    async fn all_files(&self) -> Vec<Value> {
        let mut files = Vec::new();
        let mut path = "/v1/files?limit=100".to_owned();
        loop {
            let page = self.get_json(&path).await;
            files.extend(page["data"].as_array().expect("a data array").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("/v1/files?limit=100&cursor={cursor}"),
                None => return files,
            }
        }
    }
}

/// An upload's state once it is no longer UPLOADING: what a refusal left of it is recorded within
/// `RECORDED_WITHIN` (in the background while the store did not answer).
async fn status_once_settled(client: &Client, upload_id: &str) -> Value {
    let deadline = Instant::now() + RECORDED_WITHIN;
    loop {
        let upload = client.get_json(&format!("/v1/uploads/{upload_id}")).await;
        if upload["status"] != "UPLOADING" {
            return upload;
        }
        assert!(Instant::now() < deadline, "a signed upload refused mid-fault ends: {upload}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ends every signed upload whose bytes were refused during a fault, as its client would: one
/// answered 503 waits again for its bytes at the same URL (once the server could record that,
/// maybe only after the dependency came back), and takes them now; one refused otherwise ends
/// FAILED, its reservation released, or SUCCESS when it was committed just before its answer
/// failed. Returns the files stored that way.
async fn settle_refused_uploads(client: &Client, refused_uploads: Vec<RefusedUpload>) -> Vec<StoredFile> {
    let mut stored = Vec::new();
    for refused in refused_uploads {
        let upload = status_once_settled(client, &refused.id).await;
        match upload["status"].as_str() {
            Some("FAILED") => {}
            Some("WAITING") => {
                let (status, body) =
                    client.send(client.http.put(&refused.url).body(refused.bytes.clone())).await;
                assert_eq!(
                    (status, &body["status"]),
                    (StatusCode::OK, &json!("SUCCESS")),
                    "sent again: {body}"
                );
                let sha256 = sha256_hex(&refused.bytes);
                assert_eq!(body["file"]["sha256"], sha256, "{body}");
                stored.push((
                    body["file"]["id"].as_str().expect("a file id").to_owned(),
                    sha256,
                    refused.bytes,
                ));
            }
            // Committed just before the fault cut off the answer (as when the answer's own
            // read failed): the client learns of its file by asking, and it must be whole.
            Some("SUCCESS") => {
                let sha256 = sha256_hex(&refused.bytes);
                assert_eq!(upload["file"]["sha256"], sha256, "{upload}");
                let id = upload["file"]["id"].as_str().expect("a file id").to_owned();
                stored.push((id, sha256, refused.bytes));
            }
            _ => panic!("a signed upload refused mid-fault has ended or still waits: {upload}"),
        }
    }
    stored
}

/// The checks after a fault, on the running server: every file the clients were told was stored
/// is listed and reads back byte for byte, every listed file reads back as its sha256, and the
/// quota holds exactly the listed files and nothing else. Returns how many files are listed.
async fn assert_nothing_lost(client: &Client, stored: &[StoredFile]) -> usize {
    client.assert_all_readable(stored).await;
    let listed = client.all_files().await;
    for (id, _, _) in stored {
        assert!(listed.iter().any(|file| file["id"] == id.as_str()), "{id} was stored but is not listed");
    }
    // A file committed just as the fault cut off its answer is listed though its client was told
    // otherwise: it is whole all the same.
    for file in &listed {
        let id = file["id"].as_str().expect("a file id");
        let bytes = client.read(id).await.unwrap_or_else(|refused| panic!("reading {id}: {refused:?}"));
        assert_eq!(sha256_hex(&bytes), file["sha256"], "{id} reads back as its sha256");
    }
    let used: u64 = listed.iter().map(|file| file["size"].as_u64().expect("a size")).sum();
    // An upload whose failure could not be recorded during the fault is failed in the background
    // once the store answers again (with backoff): its reservation goes within a bounded wait.
    let deadline = std::time::Instant::now() + BOUNDED_WAIT;
    let quota = loop {
        let quota = client.get_json("/v1/quota").await;
        if quota["reserved_bytes"] == 0 || std::time::Instant::now() > deadline {
            break quota;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(quota["used_bytes"], used, "used_bytes is the listed files' sizes: {quota}");
    assert_eq!(quota["reserved_bytes"], 0, "no reservation outlives its refused upload: {quota}");
    listed.len()
}

fn dev_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dev").join(name)
}

/// A workspace and a write key on these stores, made with the admin CLI.
fn tenant_on(data_dir: &Path, flags: &[&str], env: &[(&str, &str)], name: &str) -> String {
    let mut args = vec!["create-workspace", "--name", name, "--json"];
    args.extend(flags);
    let workspace = admin_json_with_env(data_dir, &args, env);
    let workspace_id = workspace["id"].as_str().expect("a workspace id");
    let mut args = vec!["create-key", "--workspace", workspace_id, "--role", "write", "--json"];
    args.extend(flags);
    admin_json_with_env(data_dir, &args, env)["key"].as_str().expect("a key secret").to_owned()
}
