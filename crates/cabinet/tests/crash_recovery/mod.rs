//! The crash test: SIGKILL the real server while uploads of every kind stream in, restart it, and
//! check that DESIGN.md's invariants held through the crash: every file ever reported stored is
//! whole, no partial file is visible, nothing temporary is left behind, and the quota ledger
//! equals what is really stored and reserved.
//!
//! It runs twice: on SQLite and the local folder, and on the PostgreSQL and S3 servers `dev/test`
//! starts. Each round counts the uploads its kill cut mid-flight (started sending, not yet
//! reported stored), and a run in which no round cut any fails: it would have proved nothing
//! about a crash during an upload. After each restart, `cabinet admin check` must find no orphan
//! object, no file without its object and no ledger drift.
//!
//! `CABINET_CRASH_ROUNDS` (default 3) and `CABINET_CRASH_ROUNDS_POSTGRES_S3` (default 2) set how
//! many crashes; `CABINET_CRASH_SEED` replays the sizes, contents, kinds, start times and kill
//! moments of an earlier run (thread timing still varies).

use crate::process;

mod rounds;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use process::{admin, admin_json, files_under, http_client, ServerProcess};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const UPLOADS_PER_ROUND: usize = 20;
/// The kill lands at most this long after the first bytes start flowing.
const KILL_WINDOW_MS: u64 = 400;
/// Each upload starts sending at a random moment in this window, so that whenever the kill lands
/// some uploads are done, some are mid-stream and some have not begun (started all at once, a
/// debug build finishes all 20 in about 200 ms and most kills would find nothing in flight).
const STAGGER_MS: u64 = 300;
/// Files read back whole in an earlier round are read back again only this many at a time, so
/// a round stays quick as files pile up; all of them are still listed and counted every round.
const REREAD_PER_ROUND: usize = 8;
const PAGE_SIZE: usize = 100;
/// The most a direct upload may hold (`--direct-upload-max-bytes`), above the largest planned
/// file: a direct upload's body length is unknown, so it reserves this much while it streams.
const DIRECT_UPLOAD_CAP: u64 = 16 * 1024 * 1024;

/// How an upload's bytes reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `POST /v1/uploads`, then the raw bytes with `PUT` to the signed URL.
    SignedPut,
    /// `POST /v1/uploads`, then a multipart `POST` to the signed URL.
    SignedMultipart,
    /// `POST /v1/files` with a multipart body.
    Direct,
}

/// An upload the test means to make. Its bytes are derived from `seed`, so they are made again
/// to compare with what the server stored rather than kept in memory across rounds.
#[derive(Debug, Clone)]
struct PlannedUpload {
    /// Unique across rounds: a listed file is matched to its upload by name.
    name: String,
    size: usize,
    seed: u64,
    route: Route,
    declare_sha256: bool,
    /// When, after the round's bytes start flowing, this upload starts sending.
    start_after: Duration,
}

impl PlannedUpload {
    fn content(&self) -> Vec<u8> {
        let mut bytes = vec![0; self.size];
        StdRng::seed_from_u64(self.seed).fill_bytes(&mut bytes);
        bytes
    }
}

/// 0–1 KiB, about 100 KiB, or 1–8 MiB.
fn random_size(rng: &mut StdRng) -> usize {
    match rng.gen_range(0..10) {
        0..=3 => rng.gen_range(0..=1024),
        4..=6 => rng.gen_range(90 * 1024..=110 * 1024),
        _ => rng.gen_range(1024 * 1024..=8 * 1024 * 1024),
    }
}

fn plan_round(round: usize, routes: &[Route], rng: &mut StdRng) -> Vec<PlannedUpload> {
    (0..UPLOADS_PER_ROUND)
        .map(|index| PlannedUpload {
            name: format!("round{round}-upload{index}.bin"),
            size: random_size(rng),
            seed: rng.gen(),
            route: routes[index % routes.len()],
            declare_sha256: rng.gen_bool(0.5),
            start_after: Duration::from_millis(rng.gen_range(0..=STAGGER_MS)),
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A file the server told the client it stored: an upload answered SUCCESS, or a direct upload
/// answered 201.
#[derive(Debug, Clone)]
struct ConfirmedFile {
    id: String,
    size: u64,
    sha256: String,
}

/// What one transfer ended with, as the client saw it.
#[derive(Debug)]
enum Outcome {
    Confirmed(ConfirmedFile),
    /// The connection died with the server: the client was told nothing.
    CutOff,
}

/// One transfer: when its client started sending, and how it ended.
#[derive(Debug)]
struct Transfer {
    started_at: Instant,
    outcome: Outcome,
}

/// How many of a round's transfers have started sending and how many have ended, so the kill
/// can be made to land while one is in flight.
#[derive(Default)]
struct Progress {
    started: AtomicUsize,
    ended: AtomicUsize,
}

impl Progress {
    fn in_flight(&self) -> usize {
        self.started.load(Ordering::SeqCst) - self.ended.load(Ordering::SeqCst)
    }
}

/// Where the server under test keeps its metadata and its blobs.
#[derive(Debug, Clone)]
enum Stores {
    /// SQLite and blobs under the data folder (the embedded default).
    Embedded,
    /// A fresh database on the test PostgreSQL and a fresh key prefix in the test S3 bucket:
    /// signed uploads send their bytes straight to S3 and are finished with `complete`.
    PostgresS3 { database_url: String, storage: String },
}

impl Stores {
    /// The flags that point `serve` and `admin` at these stores.
    fn flags(&self) -> Vec<&str> {
        match self {
            Stores::Embedded => Vec::new(),
            Stores::PostgresS3 { database_url, storage } => {
                vec!["--database-url", database_url, "--storage", storage]
            }
        }
    }

    /// The upload routes a round mixes. S3 takes a multipart `POST` only under a POST policy,
    /// which a `PUT` ticket does not carry, so on S3 the signed uploads are all `PUT`s.
    fn routes(&self) -> &'static [Route] {
        match self {
            Stores::Embedded => &[Route::SignedPut, Route::SignedMultipart, Route::Direct],
            Stores::PostgresS3 { .. } => &[Route::SignedPut, Route::Direct],
        }
    }

    fn is_s3(&self) -> bool {
        matches!(self, Stores::PostgresS3 { .. })
    }
}

/// A fresh PostgreSQL database and S3 key prefix on the servers `dev/test` starts, or `None`
/// (with a notice; a failure when `dev/test` said the servers are there) without them.
async fn postgres_and_s3(test: &str) -> Option<Stores> {
    let (Ok(database), Ok(s3)) =
        (std::env::var("CABINET_TEST_DATABASE_URL"), std::env::var("CABINET_TEST_S3_URL"))
    else {
        if std::env::var("CABINET_REQUIRE_POSTGRES").as_deref() == Ok("1")
            || std::env::var("CABINET_REQUIRE_S3").as_deref() == Ok("1")
        {
            panic!("{test} needs CABINET_TEST_DATABASE_URL and CABINET_TEST_S3_URL (dev/test sets them)");
        }
        eprintln!("skipping {test}: no PostgreSQL or S3 test server (dev/test starts them)");
        return None;
    };
    let name = format!("crash_{}", ulid::Ulid::new().to_string().to_lowercase());
    let admin = sqlx::PgPool::connect(&database).await.expect("the test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.expect("create database");
    admin.close().await;
    let (base, _) = database.rsplit_once('/').expect("a database URL");
    let (bucket, query) = s3.split_once('?').unwrap_or((&s3, ""));
    Some(Stores::PostgresS3 {
        database_url: format!("{base}/{name}"),
        storage: format!("{}/{name}?{query}", bucket.trim_end_matches('/')),
    })
}

/// What the client knows, across rounds.
#[derive(Default)]
struct Ledger {
    /// Every upload it started (upload id → upload).
    sessions: HashMap<String, PlannedUpload>,
    /// Every file it was told was stored (upload name → file).
    confirmed: HashMap<String, ConfirmedFile>,
    /// Every upload it planned (name → upload), to know which bytes a listed file should hold.
    planned: HashMap<String, PlannedUpload>,
    /// Files already read back whole after some restart (file ids).
    read_back: HashSet<String>,
    /// Direct uploads a kill cut mid-stream, in every round so far.
    direct_uploads_cut: u64,
}

/// A server on the crash test's stores, and the key to talk to it.
struct Cabinet {
    server: ServerProcess,
    http: reqwest::Client,
    key: String,
}

/// A signed upload's ticket: its id, and where and how its bytes go.
#[derive(Debug, Clone)]
struct Ticket {
    upload_id: String,
    url: String,
    headers: Vec<(String, String)>,
}

/// Creates the crash test's workspace and a write key for it with the admin CLI; returns the key.
fn create_tenant(data_dir: &Path, stores: &Stores) -> String {
    let mut args = vec!["create-workspace", "--name", "crash-test", "--json"];
    args.extend(stores.flags());
    let workspace = admin_json(data_dir, &args);
    let workspace_id = workspace["id"].as_str().expect("a workspace id");
    let mut args = vec!["create-key", "--workspace", workspace_id, "--role", "write", "--json"];
    args.extend(stores.flags());
    admin_json(data_dir, &args)["key"].as_str().expect("a key secret").to_owned()
}

/// `cabinet admin check`: no orphan object, no file without its object, no ledger drift.
fn assert_stores_agree(data_dir: &Path, stores: &Stores) {
    let mut args = vec!["check", "--json"];
    args.extend(stores.flags());
    let run = admin(data_dir, &args);
    assert!(
        run.status.success(),
        "cabinet admin check found a problem ({}):\n{}\n{}",
        run.status,
        run.stdout,
        run.stderr
    );
    let report: Value = serde_json::from_str(run.stdout.trim()).expect("a JSON report");
    for problem in ["orphan_objects", "files_without_objects", "ledger_drift"] {
        assert_eq!(report[problem], json!([]), "cabinet admin check: {report}");
    }
}

impl Cabinet {
    fn start(data_dir: &Path, key: &str, stores: &Stores) -> Self {
        let cap = DIRECT_UPLOAD_CAP.to_string();
        let mut flags = stores.flags();
        flags.extend(["--direct-upload-max-bytes", &cap]);
        let server = ServerProcess::start_with(data_dir, &flags);
        assert_eq!(server.bootstrap_key, None, "stores with a workspace get no bootstrap key");
        Cabinet { server, http: http_client(), key: key.to_owned() }
    }

    /// SIGKILL: no shutdown code runs, whatever was in flight is cut off.
    fn crash(self) {
        self.server.kill();
    }

    async fn get_json(&self, path: &str) -> Value {
        let response = self.http.get(self.server.at(path)).bearer_auth(&self.key).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// Starts a signed upload.
    async fn start_upload(&self, plan: &PlannedUpload) -> Ticket {
        let mut request = json!({"name": plan.name, "size": plan.size});
        if plan.declare_sha256 {
            request["sha256"] = json!(sha256_hex(&plan.content()));
        }
        let response =
            self.http.post(self.server.at("/v1/uploads")).bearer_auth(&self.key).json(&request).send().await;
        let response = response.unwrap();
        let status = response.status();
        let ticket: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "starting upload {}: {ticket}", plan.name);
        assert_eq!(ticket["status"], "WAITING", "{ticket}");
        assert_eq!(ticket["method"], "PUT", "{ticket}");
        let headers = ticket["headers"].as_object().into_iter().flatten();
        Ticket {
            upload_id: ticket["id"].as_str().unwrap().to_owned(),
            url: ticket["upload_url"].as_str().unwrap().to_owned(),
            headers: headers
                .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_owned()))
                .collect(),
        }
    }

    /// Every file of the workspace, paging through with the cursor.
    async fn all_files(&self) -> Vec<Value> {
        let mut files = Vec::new();
        let mut path = format!("/v1/files?limit={PAGE_SIZE}");
        loop {
            let page = self.get_json(&path).await;
            files.extend(page["data"].as_array().expect("a data array").iter().cloned());
            match (page["has_more"].as_bool(), page["next_cursor"].as_str()) {
                (Some(true), Some(cursor)) => path = format!("/v1/files?limit={PAGE_SIZE}&cursor={cursor}"),
                (Some(false), None) => return files,
                _ => panic!("a page says whether there is more and how to get it: {page}"),
            }
        }
    }

    async fn content(&self, file_id: &str) -> Vec<u8> {
        let url = self.server.at(&format!("/v1/files/{file_id}/content"));
        let response = self.http.get(url).bearer_auth(&self.key).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "reading file {file_id}");
        response.bytes().await.unwrap().to_vec()
    }
}

/// Sends one upload's bytes: to its signed URL (then, on S3, `complete` through Cabinet), or
/// directly to `POST /v1/files`.
async fn transfer(
    http: reqwest::Client,
    base_url: String,
    key: String,
    plan: PlannedUpload,
    ticket: Option<Ticket>,
    progress: Arc<Progress>,
) -> Transfer {
    tokio::time::sleep(plan.start_after).await;
    let content = plan.content();
    progress.started.fetch_add(1, Ordering::SeqCst);
    let started_at = Instant::now();
    let outcome = send(&http, &base_url, &key, &plan, ticket, content).await;
    progress.ended.fetch_add(1, Ordering::SeqCst);
    Transfer { started_at, outcome }
}

async fn send(
    http: &reqwest::Client,
    base_url: &str,
    key: &str,
    plan: &PlannedUpload,
    ticket: Option<Ticket>,
    content: Vec<u8>,
) -> Outcome {
    let expected_sha256 = sha256_hex(&content);
    let file_part = || Part::bytes(content.clone()).file_name(plan.name.clone());
    let sent = match (plan.route, ticket) {
        (Route::SignedPut, Some(ticket)) => {
            let mut request = http.put(&ticket.url).body(content.clone());
            for (name, value) in &ticket.headers {
                request = request.header(name, value);
            }
            let sent = request.send().await;
            if ticket.url.starts_with(base_url) {
                sent
            } else {
                // The bytes went to S3, which the kill does not touch; the upload is stored only
                // once Cabinet has verified them.
                let answer = sent.expect("the S3 server answers");
                let status = answer.status();
                if !status.is_success() {
                    let body = answer.text().await.unwrap_or_default();
                    panic!("S3 refused the bytes of {} ({plan:?}): {status} {body}", plan.name);
                }
                let complete = format!("{base_url}/v1/uploads/{}/complete", ticket.upload_id);
                http.post(complete).bearer_auth(key).send().await
            }
        }
        (Route::SignedMultipart, Some(ticket)) => {
            http.post(&ticket.url).multipart(Form::new().part("file", file_part())).send().await
        }
        (Route::Direct, None) => {
            let form = Form::new().part("file", file_part());
            http.post(format!("{base_url}/v1/files")).bearer_auth(key).multipart(form).send().await
        }
        (route, ticket) => unreachable!("{route:?} with ticket {ticket:?}"),
    };
    let response = match sent {
        Ok(response) => response,
        Err(_) => return Outcome::CutOff,
    };
    let status = response.status();
    let body: Value = match response.json().await {
        Ok(body) => body,
        Err(_) => return Outcome::CutOff,
    };
    let file = match plan.route {
        Route::Direct if status == StatusCode::CREATED => body.clone(),
        Route::SignedPut | Route::SignedMultipart if status == StatusCode::OK => {
            assert_eq!(body["status"], "SUCCESS", "a 200 for a signed upload is a finished upload");
            body["file"].clone()
        }
        // A killed server answers nothing; an error it did answer is a failure of its own.
        _ => panic!("{} was refused with {status}: {body}", plan.name),
    };
    let confirmed = confirmed_file(&file, &body);
    assert_eq!(confirmed.size, plan.size as u64, "the size reported for {}", plan.name);
    assert_eq!(confirmed.sha256, expected_sha256, "the sha256 reported for {}", plan.name);
    Outcome::Confirmed(confirmed)
}

fn confirmed_file(file: &Value, body: &Value) -> ConfirmedFile {
    ConfirmedFile {
        id: file["id"].as_str().unwrap_or_else(|| panic!("a file id in {body}")).to_owned(),
        size: file["size"].as_u64().unwrap_or_else(|| panic!("a file size in {body}")),
        sha256: file["sha256"].as_str().unwrap_or_else(|| panic!("a file sha256 in {body}")).to_owned(),
    }
}

/// On S3 the bytes of a signed upload can have landed while the server was down, with nobody
/// left to finish it but a reconciler that runs whenever it likes: the client finishes every
/// upload still waiting (as a client whose `complete` was cut off would retry it). An upload whose
/// bytes did not all arrive stays waiting; one the restarted server's reconciler is verifying
/// answers `upload_in_progress` and is settled by the time the snapshot is taken.
async fn settle_uploads_sent_to_s3(cabinet: &Cabinet, ledger: &mut Ledger) {
    for (upload_id, plan) in &ledger.sessions {
        if ledger.confirmed.contains_key(&plan.name) {
            continue;
        }
        // A `complete` the kill cut mid-verification leaves its upload UPLOADING until the
        // sweeper's grace ends it; completing it again would only wait out the server's bound.
        let upload = cabinet.get_json(&format!("/v1/uploads/{upload_id}")).await;
        if upload["status"] != "WAITING" {
            continue;
        }
        let url = cabinet.server.at(&format!("/v1/uploads/{upload_id}/complete"));
        let response = cabinet.http.post(url).bearer_auth(&cabinet.key).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(!status.is_server_error(), "completing {} after the restart: {status} {body}", plan.name);
        if status == StatusCode::OK && body["status"] == "SUCCESS" {
            let confirmed = confirmed_file(&body["file"], &body);
            assert_eq!(confirmed.sha256, sha256_hex(&plan.content()), "{}", plan.name);
            ledger.confirmed.insert(plan.name.clone(), confirmed);
        }
    }
}

/// How long, after a restart, uploads may keep changing state (a reconciler verifying arrived
/// bytes) before the test gives up on a consistent picture of the workspace.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(60);

/// The workspace as one consistent picture: every upload's state, every file, the quota and the
/// usage, read while no upload changed state. The server's reconciler may finish an upload at
/// any moment; an upload seen SUCCESS before the listing has its file in it (both are committed in
/// one transaction), and one seen unchanged after the listing and the ledger reads did not move
/// the ledger in between.
struct Snapshot {
    /// Upload id → the upload as `GET /v1/uploads/{id}` answered.
    uploads: HashMap<String, Value>,
    /// File id → the file as listed.
    files: HashMap<String, Value>,
    quota: Value,
    usage: Value,
}

/// What an upload's state is, for telling whether it changed: its status and its file.
fn upload_state(upload: &Value) -> (Value, Value) {
    (upload["status"].clone(), upload["file"]["id"].clone())
}

impl Cabinet {
    async fn upload_states(&self, ledger: &Ledger) -> HashMap<String, Value> {
        let mut uploads = HashMap::new();
        for upload_id in ledger.sessions.keys() {
            uploads.insert(upload_id.clone(), self.get_json(&format!("/v1/uploads/{upload_id}")).await);
        }
        uploads
    }

    /// Reads the uploads, then the files and the ledger, then the uploads again, until no upload
    /// changed state in between (bounded by `SNAPSHOT_WAIT`).
    async fn consistent_snapshot(&self, ledger: &Ledger) -> Snapshot {
        let deadline = Instant::now() + SNAPSHOT_WAIT;
        loop {
            let uploads = self.upload_states(ledger).await;
            let mut files: HashMap<String, Value> = HashMap::new();
            for file in self.all_files().await {
                let id = file["id"].as_str().expect("a file id").to_owned();
                assert!(files.insert(id.clone(), file).is_none(), "{id} is listed twice");
            }
            let quota = self.get_json("/v1/quota").await;
            let usage = self.get_json("/v1/usage").await;
            let again = self.upload_states(ledger).await;
            let moved: Vec<&String> = uploads
                .iter()
                .filter(|(id, upload)| upload_state(upload) != upload_state(&again[*id]))
                .map(|(id, _)| id)
                .collect();
            if moved.is_empty() {
                return Snapshot { uploads, files, quota, usage };
            }
            assert!(
                Instant::now() < deadline,
                "uploads still changed state {SNAPSHOT_WAIT:?} after the restart: {moved:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// What the checks after a restart found.
struct Survey {
    files: usize,
    files_read_back: usize,
    waiting_uploads: usize,
    failed_uploads: usize,
}
