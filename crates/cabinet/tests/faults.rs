//! The fault-injection suite: the real binary while the ground gives way under it. After each
//! fault: every upload the client saw SUCCESS reads back byte for byte, no temporary or orphan
//! object is left, the quota ledger is exact (`cabinet admin check` finds nothing wrong), and
//! clients were told clearly (an error status with the documented JSON error shape, never a
//! hang past a bounded wait, never a panic in the server's log).
//!
//! Three scenarios, each printing one summary line that starts with its name: a full disk (the
//! data folder on a small tmpfs), PostgreSQL restarted mid-traffic (a private cluster made by
//! `dev/postgres`), and S3 failing (a private s3s-fs behind a fault-injecting proxy, and killed
//! mid-upload).
//!
//! The full-disk scenario mounts a tmpfs, which needs root; the others need PostgreSQL and the
//! s3s-fs binary `dev/s3-server` installs. Where one cannot run it fails the test when
//! `CABINET_REQUIRE_FAULTS=1` or `CI` is set (as `dev/test` does), and is reported skipped otherwise.

mod process;

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

/// A small tmpfs, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("small-disk");
        std::fs::create_dir(&dir).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output();
        match output {
            Ok(output) if output.status.success() => Some(Tmpfs { dir, _parent: parent }),
            Ok(output) => {
                let why = String::from_utf8_lossy(&output.stderr).into_owned();
                assert!(!must_have_faults(), "mounting a tmpfs failed (the suite needs root): {why}");
                eprintln!("SKIPPED: mounting a tmpfs failed (the suite needs root): {why}");
                None
            }
            Err(err) => {
                assert!(!must_have_faults(), "running mount failed: {err}");
                eprintln!("SKIPPED: running mount failed: {err}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
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

/// Fills the file system holding `dir` with a ballast file, leaving about `leave` bytes free.
fn ballast(dir: &Path, leave: u64) -> PathBuf {
    use std::io::Write;
    let path = dir.join("ballast");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    loop {
        let free = free_bytes(dir);
        if free <= leave + chunk.len() as u64 {
            break;
        }
        if file.write_all(&chunk).is_err() {
            break;
        }
        file.sync_data().ok();
    }
    path
}

fn free_bytes(dir: &Path) -> u64 {
    let output = Command::new("df").args(["-B1", "--output=avail"]).arg(dir).output().expect("df");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .nth(1)
        .expect("df's figure")
        .trim()
        .parse()
        .expect("a number")
}

/// 1. A full disk mid-upload: the data folder (SQLite and blobs) on a small tmpfs. Uploads that
/// run it out of space fail cleanly (FAILED, reservation released, temporary removed); once space
/// is freed new uploads succeed, and the files stored before are intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_uploads_cleanly_and_space_freed_lets_them_succeed_again() {
    let Some(disk) = Tmpfs::mount("8m") else { return };
    let data_dir = disk.dir.join("data");
    let tenant = Tenant::create(&data_dir, "full-disk", None, "write");
    let server = ServerProcess::start(&data_dir);
    let client = Client::new(&server, &tenant.key);

    let mut stored = Vec::new();
    for (i, size) in [1000usize, 100_000, 300_000].into_iter().enumerate() {
        match client.signed_upload(&format!("before-{i}.bin"), content(i as u8, size)).await {
            Attempt::Stored { id, sha256, bytes } => stored.push((id, sha256, bytes)),
            refused => panic!("with room to spare an upload succeeds: {refused:?}"),
        }
    }

    // Leave about 1 MiB free, then send uploads of 3 MiB by both routes.
    let ballast = ballast(&disk.dir, 1024 * 1024);
    let mut refused_uploads = Vec::new();
    for (i, route) in ["signed", "direct", "signed"].into_iter().enumerate() {
        let bytes = content(100 + i as u8, 3 * 1024 * 1024);
        let attempt = match route {
            "signed" => client.signed_upload(&format!("too-big-{i}.bin"), bytes).await,
            _ => client.direct_upload(&format!("too-big-{i}.bin"), bytes).await,
        };
        match attempt {
            Attempt::Stored { id, .. } => panic!("a 3 MiB upload onto 1 MiB of free disk was stored as {id}"),
            Attempt::Refused { upload, status, code } => {
                // The server's trouble, not the client's, and one a retry may get past: never a 500.
                assert_eq!(
                    (status, code.as_str()),
                    (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                    "a full disk is answered 503 unavailable"
                );
                println!("full disk, {route} upload: {status} {code}");
                refused_uploads.extend(upload.map(|upload| upload.id));
            }
        }
    }
    // Each refused signed upload FAILED and holds no reservation; no temporary is left behind.
    for upload_id in &refused_uploads {
        let upload = client.get_json(&format!("/v1/uploads/{upload_id}")).await;
        assert_eq!(upload["status"], "FAILED", "{upload}");
    }
    let quota = client.get_json("/v1/quota").await;
    assert_eq!(quota["reserved_bytes"], 0, "every failed upload's reservation is released: {quota}");
    let used: usize = stored.iter().map(|(_, _, bytes)| bytes.len()).sum();
    assert_eq!(quota["used_bytes"], used, "{quota}");
    let temporaries = files_under(&data_dir.join("blobs").join("tmp"));
    assert!(temporaries.is_empty(), "temporaries of failed uploads are removed: {temporaries:?}");
    client.assert_all_readable(&stored).await;

    // Space freed: new uploads succeed, by both routes, and nothing stored before was harmed.
    std::fs::remove_file(ballast).unwrap();
    for (i, route) in ["signed", "direct"].into_iter().enumerate() {
        let bytes = content(200 + i as u8, 2 * 1024 * 1024);
        let attempt = match route {
            "signed" => client.signed_upload(&format!("after-{i}.bin"), bytes).await,
            _ => client.direct_upload(&format!("after-{i}.bin"), bytes).await,
        };
        match attempt {
            Attempt::Stored { id, sha256, bytes } => stored.push((id, sha256, bytes)),
            refused => panic!("with space freed an upload succeeds again: {refused:?}"),
        }
    }
    client.assert_all_readable(&stored).await;
    let files = client.get_json("/v1/files?limit=100").await;
    assert_eq!(
        files["data"].as_array().unwrap().len(),
        stored.len(),
        "only the stored files are listed: {files}"
    );

    let log = server.log_tail();
    server.kill();
    assert_no_panic(&log);
    assert_check_clean(&data_dir);
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

/// Ends every signed upload whose bytes were refused during a fault, as its client would: one
/// refused before the server took its bytes still waits for them at the same URL, and takes them
/// now; one refused while taking them ends FAILED, its reservation released (the server may have
/// had to wait for the dependency to come back to record that), or SUCCESS when it was committed
/// just before its answer failed. Returns the files stored that way.
async fn settle_refused_uploads(client: &Client, refused_uploads: Vec<RefusedUpload>) -> Vec<StoredFile> {
    let mut stored = Vec::new();
    let deadline = Instant::now() + RECORDED_WITHIN;
    for refused in refused_uploads {
        let upload = loop {
            let upload = client.get_json(&format!("/v1/uploads/{}", refused.id)).await;
            if upload["status"] != "UPLOADING" {
                break upload;
            }
            assert!(Instant::now() < deadline, "a signed upload refused mid-fault ends: {upload}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
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

/// A PostgreSQL cluster of the test's own, made by `dev/postgres`, so that it can be stopped and
/// started again without disturbing the tests that share `dev/test`'s cluster.
struct PrivatePostgres {
    dir: String,
    url: String,
    port: String,
    bin: PathBuf,
}

impl PrivatePostgres {
    fn start() -> Option<PrivatePostgres> {
        let must = must_have_faults() || std::env::var("CABINET_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let output = Command::new(dev_script("postgres")).arg("start").output();
        let exports = match output {
            Ok(output) if output.status.success() => String::from_utf8(output.stdout).unwrap(),
            Ok(output) => {
                let why = format!("dev/postgres start failed: {}", String::from_utf8_lossy(&output.stderr));
                assert!(!must, "{why}");
                eprintln!("SKIPPED: {why}");
                return None;
            }
            Err(err) => {
                assert!(!must, "running dev/postgres failed: {err}");
                eprintln!("SKIPPED: running dev/postgres failed: {err}");
                return None;
            }
        };
        let export = |name: &str| {
            exports
                .lines()
                .find_map(|line| line.strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("dev/postgres printed no {name}: {exports}"))
                .to_owned()
        };
        let url = export("CABINET_TEST_DATABASE_URL");
        let port =
            url.rsplit_once(':').and_then(|(_, rest)| rest.split('/').next()).expect("a port").to_owned();
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("dev/postgres installed PostgreSQL under /usr/lib/postgresql")
            .map(|entry| entry.unwrap().path())
            .collect();
        versions.sort_by_key(|path| path.file_name().unwrap().to_string_lossy().parse::<u32>().unwrap_or(0));
        let bin = versions.pop().expect("a PostgreSQL version").join("bin");
        let postgres = PrivatePostgres { dir: export("CABINET_PG_DIR"), url, port, bin };
        // dev/postgres commits asynchronously, for speed: a crash of PostgreSQL itself then loses
        // the last commits, files included. This cluster is to be crashed, so it commits durably.
        postgres.pg_ctl(&["-D", &format!("{}/data", postgres.dir), "-m", "fast", "-w", "stop"]);
        postgres.start_again();
        Some(postgres)
    }

    /// `pg_ctl` as the cluster's owner (`dev/postgres` runs it as `postgres` when root).
    fn pg_ctl(&self, args: &[&str]) {
        let pg_ctl = self.bin.join("pg_ctl");
        let root = Command::new("id").arg("-u").output().is_ok_and(|id| id.stdout.trim_ascii() == b"0");
        let mut command = if root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(pg_ctl);
            command
        } else {
            Command::new(pg_ctl)
        };
        let output = command.args(args).output().expect("running pg_ctl");
        assert!(output.status.success(), "pg_ctl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// Stops the cluster: `fast` terminates its sessions and checkpoints; `immediate` stops it
    /// the way a crash would, with no checkpoint.
    fn stop(&self, shutdown: &str) {
        self.pg_ctl(&["-D", &format!("{}/data", self.dir), "-m", shutdown, "-w", "stop"]);
    }

    /// Starts the stopped cluster on its port (after a crash it first recovers from its log), with
    /// synchronous commits: a commit is in the log before it is acknowledged. (`fsync=off` stays:
    /// the machine does not crash, only PostgreSQL, and the log's writes are in the OS's cache.)
    fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=on -c max_connections=100",
            self.port, self.dir
        );
        let log = format!("{}/server.log", self.dir);
        self.pg_ctl(&[
            "-D",
            &format!("{}/data", self.dir),
            "-l",
            &log,
            "-w",
            "-t",
            "60",
            "-o",
            &options,
            "start",
        ]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new(dev_script("postgres")).args(["stop", &self.dir]).status();
    }
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

/// How long the clients may take to see a fault, and to see the server recover from it. A request
/// waiting for a database connection gives up after the pool's 30 s acquire timeout.
const FAULT_SEEN_WITHIN: Duration = Duration::from_secs(90);

/// 2. PostgreSQL stopped and started again while clients upload, list and download, twice: a
/// fast shutdown (sessions terminated) and an immediate one (as in a crash; it recovers from its
/// log). Meanwhile clients are told 503 `unavailable`, and the server recovers by itself, without
/// a restart, as its pool reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarted_mid_traffic_is_answered_unavailable_and_the_server_recovers_by_itself() {
    let Some(postgres) = PrivatePostgres::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let flags = ["--database-url", postgres.url.as_str()];
    let key = tenant_on(&data_dir, &flags, &[], "postgres-restart");
    let server = ServerProcess::start_with(&data_dir, &flags);
    let client = Arc::new(Client::new(&server, &key));

    let traffic = Traffic::start(&client);
    traffic
        .wait_for("uploads succeed before the fault", FAULT_SEEN_WITHIN, |told| {
            told.ok(BEFORE, "uploads") >= 6
        })
        .await;
    // After a fast shutdown PostgreSQL is started again as soon as a client was refused; after the
    // immediate one it stays down until every client was, so that requests also wait out the
    // pool's acquire timeout (answered 503 too) rather than only fail on a cut session.
    for (fault, shutdown, refusals) in [(0, "fast", 1), (1, "immediate", CLIENTS)] {
        traffic.enter(during(fault));
        postgres.stop(shutdown);
        traffic
            .wait_for("clients are told PostgreSQL is gone", FAULT_SEEN_WITHIN, |told| {
                told.refused(during(fault)) >= refusals
            })
            .await;
        postgres.start_again();
        traffic.enter(after(fault));
        traffic
            .wait_for("every operation succeeds again without a server restart", FAULT_SEEN_WITHIN, |told| {
                ["uploads", "lists", "downloads"]
                    .iter()
                    .all(|operation| told.ok(after(fault), operation) >= 2)
            })
            .await;
    }
    let (mut stored, refused_uploads, told) = traffic.stop().await;

    stored.extend(settle_refused_uploads(&client, refused_uploads).await);
    let files = assert_nothing_lost(&client, &stored).await;
    let temporaries = files_under(&data_dir.join("blobs").join("tmp"));
    assert!(temporaries.is_empty(), "no temporary outlives its upload: {temporaries:?}");
    println!(
        "postgres restarted mid-traffic (fast, then immediate shutdown): {}; {} files stored, all \
         whole; recovered both times without a restart",
        told.summary(),
        files
    );
    let first_panic = server.first_panic();
    let log = server.log_tail();
    server.kill();
    assert!(first_panic.is_none(), "the server panicked: {first_panic:?}; its log:\n{log}");
    assert_check_clean_on(&data_dir, &flags, &[]);
}

/// The credentials and bucket of the test's own S3 server (as `dev/s3-server` uses).
const S3_ACCESS_KEY: &str = "cabinet-test-key";
const S3_SECRET_KEY: &str = "cabinet-test-secret";
const S3_BUCKET: &str = "cabinet-test";

/// An s3s-fs of the test's own, on a data folder that outlives it, so that it can be killed and
/// started again (on another port: the proxy in front of it hides that) without disturbing the
/// tests that share `dev/test`'s.
struct PrivateS3 {
    binary: PathBuf,
    data: tempfile::TempDir,
    server: std::process::Child,
    address: std::net::SocketAddr,
}

impl PrivateS3 {
    fn start() -> Option<PrivateS3> {
        let must = must_have_faults() || std::env::var("CABINET_REQUIRE_S3").is_ok_and(|v| v == "1");
        let tools = std::env::var("CABINET_TOOLS_DIR").map(PathBuf::from).unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/cabinet-tools")
        });
        let binary = tools.join("bin/s3s-fs");
        if !binary.exists() {
            let why = format!("no s3s-fs at {} (dev/s3-server installs it)", binary.display());
            assert!(!must, "{why}");
            eprintln!("SKIPPED: {why}");
            return None;
        }
        let data = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(data.path().join("objects").join(S3_BUCKET)).unwrap();
        let (server, address) = Self::launch(&binary, data.path());
        Some(PrivateS3 { binary, data, server, address })
    }

    /// Starts s3s-fs on a free port and waits (bounded) for the address it logs.
    // The child is handed to `PrivateS3`, whose `kill` and `Drop` reap it.
    #[allow(clippy::zombie_processes)]
    fn launch(binary: &Path, data: &Path) -> (std::process::Child, std::net::SocketAddr) {
        let log_path = data.join(format!("server-{}.log", ulid::Ulid::new()));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut server = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", "0", "--access-key", S3_ACCESS_KEY])
            .args(["--secret-key", S3_SECRET_KEY])
            .arg(data.join("objects"))
            .env("RUST_LOG", "s3s_fs=info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting s3s-fs");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let logged = std::fs::read_to_string(&log_path).unwrap_or_default();
            let address = logged
                .split("server is running at http://")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':')).next())
                .and_then(|address| address.parse().ok());
            if let Some(address) = address {
                return (server, address);
            }
            if Instant::now() >= deadline {
                let _ = server.kill();
                let _ = server.wait();
                panic!("s3s-fs logged no address within 30 s:\n{logged}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: whatever it was receiving is cut off.
    fn kill(&mut self) {
        self.server.kill().expect("killing s3s-fs");
        self.server.wait().expect("reaping s3s-fs");
    }

    /// Starts it again on the same data folder; returns its new address.
    fn start_again(&mut self) -> std::net::SocketAddr {
        let (server, address) = Self::launch(&self.binary, self.data.path());
        (self.server, self.address) = (server, address);
        address
    }
}

impl Drop for PrivateS3 {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// What the proxy in front of S3 does to each new connection.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ProxyFault {
    /// Relays bytes both ways.
    Pass,
    /// Accepts, then closes at once, as a server going away does.
    Refuse,
    /// Answers this share of new connections' first request with a 503 or a 500 (at random), in
    /// S3's XML error shape, and relays the others.
    FailShare(f64),
    /// Relays, but cuts the connection once this many bytes of the request went through.
    CutAfter(u64),
}

/// A TCP proxy in front of S3 that injects faults. A change of fault closes every open
/// connection, so that the clients' pooled connections meet the new fault at once.
struct FaultyProxy {
    address: std::net::SocketAddr,
    upstream: Arc<Mutex<std::net::SocketAddr>>,
    fault: Arc<Mutex<ProxyFault>>,
    generation: tokio::sync::watch::Sender<u64>,
    /// Request bytes relayed to S3 so far.
    relayed: Arc<std::sync::atomic::AtomicU64>,
    accepting: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    async fn start(upstream: std::net::SocketAddr) -> FaultyProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let upstream = Arc::new(Mutex::new(upstream));
        let fault = Arc::new(Mutex::new(ProxyFault::Pass));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let relayed = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let accepting = tokio::spawn({
            let (upstream, fault, relayed) = (upstream.clone(), fault.clone(), relayed.clone());
            let generation = generation.subscribe();
            async move {
                let mut accepted = 0usize;
                while let Ok((client, _)) = listener.accept().await {
                    accepted += 1;
                    let to = *upstream.lock().unwrap();
                    let fault = *fault.lock().unwrap();
                    let generation = generation.clone();
                    tokio::spawn(serve_connection(client, to, fault, accepted, generation, relayed.clone()));
                }
            }
        });
        FaultyProxy { address, upstream, fault, generation, relayed, accepting }
    }

    fn set(&self, fault: ProxyFault) {
        *self.fault.lock().unwrap() = fault;
        self.generation.send_modify(|generation| *generation += 1);
    }

    fn point_at(&self, upstream: std::net::SocketAddr) {
        *self.upstream.lock().unwrap() = upstream;
        self.generation.send_modify(|generation| *generation += 1);
    }

    fn relayed(&self) -> u64 {
        self.relayed.load(Ordering::SeqCst)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn serve_connection(
    mut client: tokio::net::TcpStream,
    upstream: std::net::SocketAddr,
    fault: ProxyFault,
    accepted: usize,
    mut generation: tokio::sync::watch::Receiver<u64>,
    relayed: Arc<std::sync::atomic::AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Only a change of fault after this connection was accepted closes it.
    generation.borrow_and_update();
    let limit = match fault {
        ProxyFault::Refuse => return,
        ProxyFault::FailShare(share) if rand::random::<f64>() < share => {
            // Read the request's head (its body, if any, is left unread: the connection closes).
            let mut head = Vec::new();
            let mut chunk = [0u8; 4096];
            while !head.windows(4).any(|window| window == b"\r\n\r\n") && head.len() < 64 * 1024 {
                match tokio::time::timeout(Duration::from_secs(10), client.read(&mut chunk)).await {
                    Ok(Ok(read)) if read > 0 => head.extend_from_slice(&chunk[..read]),
                    _ => return,
                }
            }
            let (status, code) = if accepted.is_multiple_of(2) {
                ("503 Slow Down", "SlowDown")
            } else {
                ("500 Internal Server Error", "InternalError")
            };
            let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test</Message></Error>");
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(answer.as_bytes()).await;
            return;
        }
        ProxyFault::CutAfter(bytes) => bytes,
        ProxyFault::Pass | ProxyFault::FailShare(_) => u64::MAX,
    };
    // S3 itself down: the client sees its connection closed, as if refused.
    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else { return };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let request = async {
        let mut sent = 0u64;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let read = match client_read.read(&mut chunk).await {
                Ok(0) | Err(_) => return true,
                Ok(read) => read,
            };
            let take = (read as u64).min(limit - sent) as usize;
            if server_write.write_all(&chunk[..take]).await.is_err() {
                return false;
            }
            sent += take as u64;
            relayed.fetch_add(take as u64, Ordering::SeqCst);
            if sent == limit {
                return false;
            }
        }
    };
    let answer = tokio::io::copy(&mut server_read, &mut client_write);
    tokio::pin!(request, answer);
    let mut request_ended = false;
    loop {
        tokio::select! {
            ended_whole = &mut request, if !request_ended => {
                if !ended_whole {
                    return; // cut: both connections close as this returns
                }
                request_ended = true;
            }
            _ = &mut answer => return,
            _ = generation.changed() => return,
        }
    }
}

/// A signed upload on S3 that has not succeeded yet: its ticket and its bytes, and whether they
/// reached the bucket.
#[derive(Debug)]
struct PendingUpload {
    id: String,
    url: String,
    headers: Vec<(String, String)>,
    bytes: Vec<u8>,
    bytes_in_bucket: bool,
}

impl Client {
    /// `POST /v1/uploads` on S3: the ticket of a signed PUT straight to the bucket.
    async fn start_s3_upload(&self, name: &str, bytes: Vec<u8>) -> PendingUpload {
        let request = json!({"name": name, "size": bytes.len(), "sha256": sha256_hex(&bytes)});
        let (status, ticket) = self
            .send(self.http.post(format!("{}/v1/uploads", self.base)).bearer_auth(&self.key).json(&request))
            .await;
        assert_eq!(status, StatusCode::CREATED, "starting an upload needs no S3: {ticket}");
        let headers = ticket["headers"].as_object().expect("the ticket's headers");
        PendingUpload {
            id: ticket["id"].as_str().expect("an upload id").to_owned(),
            url: ticket["upload_url"].as_str().expect("an upload URL").to_owned(),
            headers: headers
                .iter()
                .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_owned()))
                .collect(),
            bytes,
            bytes_in_bucket: false,
        }
    }

    /// The client's own PUT to the bucket (through the proxy): whether S3 took the bytes.
    async fn put_to_bucket(&self, upload: &mut PendingUpload, told: &Told) {
        let mut request = self.http.put(&upload.url).body(upload.bytes.clone());
        for (name, value) in &upload.headers {
            request = request.header(name, value);
        }
        let sent = tokio::time::timeout(BOUNDED_WAIT, request.send())
            .await
            .expect("S3 answers within the bounded wait");
        upload.bytes_in_bucket = sent.is_ok_and(|response| response.status().is_success());
        told.record(
            "PUTs straight to S3 (not Cabinet)",
            if upload.bytes_in_bucket { "ok" } else { "failed" }.to_owned(),
        );
    }

    /// `complete` through Cabinet, which verifies the bytes in the bucket: the stored file, or the
    /// status and code it was refused with.
    async fn complete(&self, upload: &PendingUpload) -> Result<StoredFile, (StatusCode, String)> {
        let url = format!("{}/v1/uploads/{}/complete", self.base, upload.id);
        let (status, body) = self.send(self.http.post(url).bearer_auth(&self.key)).await;
        if status != StatusCode::OK {
            return Err((status, error_code(status, &body)));
        }
        assert_eq!(body["status"], "SUCCESS", "{body}");
        let sha256 = sha256_hex(&upload.bytes);
        assert_eq!(body["file"]["sha256"], sha256, "{body}");
        Ok((body["file"]["id"].as_str().expect("a file id").to_owned(), sha256, upload.bytes.clone()))
    }
}

/// An answer to a client while S3 fails: success, or the documented error with 503 (or 502:
/// the gateway's trouble), never a 500.
fn assert_unavailable_or_bad_gateway(operation: &str, status: StatusCode, code: &str) {
    assert!(
        matches!(
            (status, code),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable") | (StatusCode::BAD_GATEWAY, _)
        ),
        "a {operation} while S3 fails is answered 503 unavailable (or 502), not {status} {code}"
    );
}

/// What one step of the S3 scenario did: direct uploads, uploads sent to the bucket and
/// completed, downloads; every answer counted, every file stored kept.
struct S3Step<'a> {
    client: &'a Client,
    told: &'a Told,
    stored: Vec<StoredFile>,
    pending: Vec<PendingUpload>,
}

impl S3Step<'_> {
    async fn direct_upload(&mut self, name: &str, bytes: Vec<u8>) -> bool {
        match self.client.direct_upload(name, bytes).await {
            Attempt::Stored { id, sha256, bytes } => {
                self.told.record("direct uploads", "ok".to_owned());
                self.stored.push((id, sha256, bytes));
                true
            }
            Attempt::Refused { status, code, .. } => {
                assert_unavailable_or_bad_gateway("direct upload", status, &code);
                self.told.record("direct uploads", format!("{} {code}", status.as_u16()));
                false
            }
        }
    }

    /// Completes an upload whose bytes are in the bucket; one refused is kept to complete later.
    async fn complete(&mut self, upload: PendingUpload) -> bool {
        match self.client.complete(&upload).await {
            Ok(file) => {
                self.told.record("completes", "ok".to_owned());
                self.stored.push(file);
                true
            }
            Err((status, code)) => {
                assert_unavailable_or_bad_gateway("complete", status, &code);
                self.told.record("completes", format!("{} {code}", status.as_u16()));
                self.pending.push(upload);
                false
            }
        }
    }

    async fn signed_upload(&mut self, name: &str, bytes: Vec<u8>) {
        let mut upload = self.client.start_s3_upload(name, bytes).await;
        self.client.put_to_bucket(&mut upload, self.told).await;
        if upload.bytes_in_bucket {
            self.complete(upload).await;
        } else {
            self.pending.push(upload);
        }
    }

    async fn download(&mut self, id: &str, bytes: &[u8]) -> bool {
        match self.client.read(id).await {
            Ok(read) => {
                assert!(read == bytes, "{id} reads back byte for byte");
                self.told.record("downloads", "ok".to_owned());
                true
            }
            Err((status, code)) => {
                assert_unavailable_or_bad_gateway("download", status, &code);
                self.told.record("downloads", format!("{} {code}", status.as_u16()));
                false
            }
        }
    }
}

/// 3. S3 failing under the server: answering a share of requests 503/500, refusing connections,
/// cutting them mid-body, and killed mid-upload then started again. Meanwhile clients are told
/// 503 `unavailable` (or 502) in the JSON error shape within the bounded wait; once S3 is back,
/// every upload the client retries succeeds, and nothing stored before is harmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_failing_or_killed_mid_upload_is_answered_unavailable_and_uploads_succeed_once_it_is_back() {
    let Some(mut s3) = PrivateS3::start() else { return };
    let proxy = FaultyProxy::start(s3.address).await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let storage = format!("s3://{S3_BUCKET}?endpoint=http://{}&region=us-east-1", proxy.address);
    let flags = ["--storage", storage.as_str()];
    let env = [("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)];
    let key = tenant_on(&data_dir, &flags, &env, "s3-faults");
    let server = ServerProcess::start_with_env(&data_dir, &flags, &env);
    let client = Client::new(&server, &key);
    let told = Told::default();
    let mut step = S3Step { client: &client, told: &told, stored: Vec::new(), pending: Vec::new() };
    let mut seed = 0u8;
    let mut next_bytes = |size: usize| {
        seed = seed.wrapping_add(1);
        content(seed, size)
    };

    // Before any fault, both routes work.
    for i in 0..2 {
        assert!(step.direct_upload(&format!("before-direct-{i}.bin"), next_bytes(300_000)).await);
        step.signed_upload(&format!("before-signed-{i}.bin"), next_bytes(300_000)).await;
    }
    assert_eq!((step.stored.len(), step.pending.len()), (4, 0), "with S3 healthy every upload succeeds");

    // A third of new connections answered 503 or 500: the server's retries may get past them,
    // and what they do not is answered 503.
    told.phase.store(during(0), Ordering::SeqCst);
    proxy.set(ProxyFault::FailShare(1.0 / 3.0));
    for i in 0..4 {
        step.direct_upload(&format!("flaky-direct-{i}.bin"), next_bytes(200_000)).await;
        step.signed_upload(&format!("flaky-signed-{i}.bin"), next_bytes(200_000)).await;
    }
    for (id, _, bytes) in step.stored.clone() {
        step.download(&id, &bytes).await;
    }

    // Connections refused: a direct upload, a `complete` of bytes already in the bucket and a
    // download are each answered 503, within the bounded wait.
    told.phase.store(during(1), Ordering::SeqCst);
    proxy.set(ProxyFault::Pass);
    let mut landed = client.start_s3_upload("landed-before-refusal.bin", next_bytes(150_000)).await;
    client.put_to_bucket(&mut landed, &told).await;
    assert!(landed.bytes_in_bucket, "S3 takes bytes while it is healthy");
    proxy.set(ProxyFault::Refuse);
    assert!(!step.direct_upload("refused-direct.bin", next_bytes(150_000)).await, "stored with S3 refusing");
    assert!(!step.complete(landed).await, "completed with S3 refusing");
    let (id, _, bytes) = step.stored[0].clone();
    assert!(!step.download(&id, &bytes).await, "downloaded with S3 refusing");

    // Every connection cut after 64 KiB of its request: a 1 MiB direct upload cannot get through.
    told.phase.store(during(2), Ordering::SeqCst);
    proxy.set(ProxyFault::CutAfter(64 * 1024));
    assert!(
        !step.direct_upload("cut-direct.bin", next_bytes(1024 * 1024)).await,
        "stored through cut connections"
    );

    // s3s-fs killed while a direct upload streams into it, then started again.
    told.phase.store(during(3), Ordering::SeqCst);
    proxy.set(ProxyFault::Pass);
    let killed_mid_upload = {
        let relayed_before = proxy.relayed();
        let bytes = next_bytes(32 * 1024 * 1024);
        let upload = step.client.direct_upload("killed-mid-upload.bin", bytes);
        tokio::pin!(upload);
        let deadline = Instant::now() + BOUNDED_WAIT;
        // Kill once the upload's bytes are flowing into S3 (polled; the upload runs meanwhile).
        let attempt = loop {
            tokio::select! {
                attempt = &mut upload => break Some(attempt),
                () = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
            if proxy.relayed() >= relayed_before + 1024 * 1024 {
                break None;
            }
            assert!(Instant::now() < deadline, "the upload's bytes reach S3 within the bounded wait");
        };
        assert!(attempt.is_none(), "32 MiB streamed through before 1 MiB reached S3: {attempt:?}");
        s3.kill();
        upload.await
    };
    match killed_mid_upload {
        Attempt::Refused { status, code, .. } => {
            assert_unavailable_or_bad_gateway("direct upload", status, &code);
            told.record("direct uploads", format!("{} {code}", status.as_u16()));
        }
        Attempt::Stored { id, .. } => panic!("an upload whose S3 was killed mid-stream was stored as {id}"),
    }
    proxy.point_at(s3.start_again());

    // S3 back: every upload a client retries succeeds, new ones too, and nothing stored before
    // was harmed.
    told.phase.store(after(3), Ordering::SeqCst);
    for mut upload in std::mem::take(&mut step.pending) {
        if !upload.bytes_in_bucket {
            client.put_to_bucket(&mut upload, &told).await;
            assert!(upload.bytes_in_bucket, "S3 takes a retried PUT once it is back");
        }
        assert!(step.complete(upload).await, "a retried complete succeeds once S3 is back");
    }
    for i in 0..2 {
        assert!(step.direct_upload(&format!("after-direct-{i}.bin"), next_bytes(300_000)).await);
        step.signed_upload(&format!("after-signed-{i}.bin"), next_bytes(300_000)).await;
    }
    assert!(step.pending.is_empty(), "with S3 back every upload succeeds: {:?}", step.pending);
    for (id, _, bytes) in step.stored.clone() {
        assert!(step.download(&id, &bytes).await, "{id} downloads once S3 is back");
    }
    let files = assert_nothing_lost(&client, &step.stored).await;
    // Nothing temporary is left in the bucket: no staged object, no unverified arrival.
    let bucket = s3.data.path().join("objects").join(S3_BUCKET);
    for leftovers in ["tmp", "incoming"] {
        let found = files_under(&bucket.join(leftovers));
        assert!(found.is_empty(), "objects left under {leftovers}/ after the faults: {found:?}");
    }
    println!("s3 failing or killed mid-upload: {}; {} files stored, all whole", told.summary(), files);
    let first_panic = server.first_panic();
    let log = server.log_tail();
    server.kill();
    assert!(first_panic.is_none(), "the server panicked: {first_panic:?}; its log:\n{log}");
    assert_check_clean_on(&data_dir, &flags, &env);
}
