//! The crash test: SIGKILL the real server while uploads of every kind stream in, restart it, and
//! check that DESIGN.md's invariants held through the crash: every file ever reported stored is
//! whole, no partial file is visible, nothing temporary is left behind, and the quota ledger
//! equals what is really stored and reserved.
//!
//! `CABINET_CRASH_ROUNDS` (default 3) sets how many crashes; `CABINET_CRASH_SEED` replays the
//! sizes, contents, kinds, start times and kill moments of an earlier run (thread timing still
//! varies).

mod process;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use process::{files_under, http_client, ServerProcess, Tenant};
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

fn plan_round(round: usize, rng: &mut StdRng) -> Vec<PlannedUpload> {
    let routes = [Route::SignedPut, Route::SignedMultipart, Route::Direct];
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
}

/// A server on the crash test's data folder, and the key to talk to it.
struct Cabinet {
    server: ServerProcess,
    http: reqwest::Client,
    key: String,
}

impl Cabinet {
    fn start(data_dir: &Path, key: &str) -> Self {
        let server = ServerProcess::start(data_dir);
        assert_eq!(server.bootstrap_key, None, "a data folder with a workspace gets no bootstrap key");
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

    /// Starts a signed upload; returns its id and the URL its bytes go to.
    async fn start_upload(&self, plan: &PlannedUpload) -> (String, String) {
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
        (ticket["id"].as_str().unwrap().to_owned(), ticket["upload_url"].as_str().unwrap().to_owned())
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

/// Sends one upload's bytes: to its signed URL, or directly to `POST /v1/files`.
async fn transfer(
    http: reqwest::Client,
    base_url: String,
    key: String,
    plan: PlannedUpload,
    signed_url: Option<String>,
) -> Outcome {
    tokio::time::sleep(plan.start_after).await;
    let content = plan.content();
    let expected_sha256 = sha256_hex(&content);
    let file_part = || Part::bytes(content.clone()).file_name(plan.name.clone());
    let sent = match (plan.route, signed_url) {
        (Route::SignedPut, Some(url)) => http.put(url).body(content.clone()).send().await,
        (Route::SignedMultipart, Some(url)) => {
            http.post(url).multipart(Form::new().part("file", file_part())).send().await
        }
        (Route::Direct, None) => {
            let form = Form::new().part("file", file_part());
            http.post(format!("{base_url}/v1/files")).bearer_auth(key).multipart(form).send().await
        }
        (route, url) => unreachable!("{route:?} with signed URL {url:?}"),
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
            assert_eq!(body["status"], "SUCCESS", "a 200 from the storage endpoint is a finished upload");
            body["file"].clone()
        }
        // A killed server answers nothing; an error it did answer is a failure of its own.
        _ => panic!("{} was refused with {status}: {body}", plan.name),
    };
    let confirmed = ConfirmedFile {
        id: file["id"].as_str().unwrap_or_else(|| panic!("a file id in {body}")).to_owned(),
        size: file["size"].as_u64().unwrap_or_else(|| panic!("a file size in {body}")),
        sha256: file["sha256"].as_str().unwrap_or_else(|| panic!("a file sha256 in {body}")).to_owned(),
    };
    assert_eq!(confirmed.size, plan.size as u64, "the size reported for {}", plan.name);
    assert_eq!(confirmed.sha256, expected_sha256, "the sha256 reported for {}", plan.name);
    Outcome::Confirmed(confirmed)
}

/// What the checks after a restart found.
struct Survey {
    files: usize,
    files_read_back: usize,
    waiting_uploads: usize,
    failed_uploads: usize,
}

/// Checks, on a freshly restarted server, every invariant a crash must not break.
async fn check_after_restart(
    cabinet: &Cabinet,
    data_dir: &Path,
    ledger: &mut Ledger,
    rng: &mut StdRng,
) -> Survey {
    // Recovery runs before the server listens: by now no temporary file may remain.
    let leftovers = files_under(&data_dir.join("blobs").join("tmp"));
    assert!(leftovers.is_empty(), "temporary files survived the restart: {leftovers:?}");

    let mut listed: HashMap<String, Value> = HashMap::new();
    for file in cabinet.all_files().await {
        let id = file["id"].as_str().expect("a file id").to_owned();
        assert!(listed.insert(id.clone(), file).is_none(), "{id} is listed twice");
    }

    // No listed file is partial: each reads back whole, as exactly the bytes that were uploaded.
    // New files are read back in full; a few older ones are read again, in case a later crash
    // or recovery damaged them.
    let (mut to_read, older): (Vec<&String>, Vec<&String>) =
        listed.keys().partition(|id| !ledger.read_back.contains(*id));
    to_read.extend(rand::seq::IteratorRandom::choose_multiple(older.into_iter(), rng, REREAD_PER_ROUND));
    for id in &to_read {
        let file = &listed[*id];
        let name = file["name"].as_str().expect("a file name");
        let bytes = cabinet.content(id).await;
        assert_eq!(bytes.len() as u64, file["size"], "{name} ({id}) reads back as many bytes as its size");
        assert_eq!(sha256_hex(&bytes), file["sha256"], "{name} ({id}) hashes to its sha256");
        let plan =
            ledger.planned.get(name).unwrap_or_else(|| panic!("{name} ({id}) is not a file the test made"));
        assert!(bytes == plan.content(), "{name} ({id}) holds exactly the bytes that were uploaded");
    }
    let files_read_back = to_read.len();
    ledger.read_back.extend(to_read.into_iter().cloned());

    // Every file the client was told about is still there.
    for (name, confirmed) in &ledger.confirmed {
        let file = listed.get(&confirmed.id).unwrap_or_else(|| {
            panic!("{name} was reported stored as {} but is gone after the crash", confirmed.id)
        });
        assert_eq!(file["size"], confirmed.size, "{name}");
        assert_eq!(file["sha256"], confirmed.sha256.as_str(), "{name}");
    }

    // Every upload ended or is still waiting for its bytes; none is left receiving.
    let mut waiting_bytes = 0;
    let mut survey = Survey { files: listed.len(), files_read_back, waiting_uploads: 0, failed_uploads: 0 };
    for (upload_id, plan) in &ledger.sessions {
        let upload = cabinet.get_json(&format!("/v1/uploads/{upload_id}")).await;
        let confirmed = ledger.confirmed.get(&plan.name);
        match upload["status"].as_str() {
            Some("WAITING") => {
                assert!(confirmed.is_none(), "{} was reported stored but is WAITING: {upload}", plan.name);
                waiting_bytes += upload["size"].as_u64().expect("an upload size");
                survey.waiting_uploads += 1;
            }
            Some("SUCCESS") => {
                let file_id = upload["file"]["id"].as_str().unwrap_or_else(|| panic!("a file in {upload}"));
                assert!(listed.contains_key(file_id), "the file of SUCCESS upload {upload_id} is not listed");
                if let Some(confirmed) = confirmed {
                    assert_eq!(file_id, confirmed.id, "{}", plan.name);
                }
            }
            Some("FAILED") => {
                assert!(confirmed.is_none(), "{} was reported stored but FAILED: {upload}", plan.name);
                survey.failed_uploads += 1;
            }
            _ => panic!("after a restart no upload may be left receiving: {upload}"),
        }
    }

    // The ledger equals what is really stored and reserved.
    let used_bytes: u64 = listed.values().map(|file| file["size"].as_u64().unwrap()).sum();
    let quota = cabinet.get_json("/v1/quota").await;
    assert_eq!(quota["used_bytes"], used_bytes, "used_bytes is the sum of the files' sizes: {quota}");
    assert_eq!(
        quota["reserved_bytes"], waiting_bytes,
        "reserved_bytes is the sum of the waiting uploads' sizes: {quota}"
    );
    let usage = cabinet.get_json("/v1/usage").await;
    assert_eq!(usage["total_size"], used_bytes, "{usage}");
    assert_eq!(usage["file_count"], listed.len(), "{usage}");

    // Exactly one committed blob per file, of the file's size: none lost, none orphaned.
    let blobs: HashMap<String, u64> = files_under(&data_dir.join("blobs").join("objects"))
        .iter()
        .map(|path| {
            let size = std::fs::metadata(path).expect("a blob's metadata").len();
            (path.file_name().unwrap().to_string_lossy().into_owned(), size)
        })
        .collect();
    assert_eq!(blobs.len(), listed.len(), "one committed blob per file");
    for (id, file) in &listed {
        assert_eq!(blobs.get(id).copied(), file["size"].as_u64(), "the blob of file {id}");
    }
    survey
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.trim().parse().unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reported_uploads_survive_repeated_crashes_and_the_ledger_matches_the_disk() {
    let rounds = env_number("CABINET_CRASH_ROUNDS").unwrap_or(3) as usize;
    let seed = env_number("CABINET_CRASH_SEED").unwrap_or_else(|| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        now.as_secs() ^ u64::from(now.subsec_nanos())
    });
    println!("crash test: {rounds} rounds, seed {seed} (replay with CABINET_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let tenant = Tenant::create(&data_dir, "crash-test", None, "write");
    let mut ledger = Ledger::default();
    let mut cabinet = Cabinet::start(&data_dir, &tenant.key);

    for round in 1..=rounds {
        let round_started = Instant::now();
        let plans = plan_round(round, &mut rng);
        let kill_after = Duration::from_millis(rng.gen_range(0..=KILL_WINDOW_MS));
        for plan in &plans {
            ledger.planned.insert(plan.name.clone(), plan.clone());
        }

        // Sessions start before the kill clock runs: a session whose creation the kill cut off
        // would hold a reservation under an id the client never learned, and the ledger check
        // could not tell it from a leak.
        let signed: Vec<&PlannedUpload> = plans.iter().filter(|plan| plan.route != Route::Direct).collect();
        let tickets = join_all(signed.iter().map(|plan| cabinet.start_upload(plan))).await;
        let mut signed_urls = HashMap::new();
        for (plan, (upload_id, url)) in signed.into_iter().zip(tickets) {
            ledger.sessions.insert(upload_id, plan.clone());
            signed_urls.insert(plan.name.clone(), url);
        }

        let transfers: Vec<_> = plans
            .iter()
            .map(|plan| {
                let url = signed_urls.remove(&plan.name);
                tokio::spawn(transfer(
                    cabinet.http.clone(),
                    cabinet.server.url.clone(),
                    tenant.key.clone(),
                    plan.clone(),
                    url,
                ))
            })
            .collect();
        tokio::time::sleep(kill_after).await;
        cabinet.crash();

        let mut confirmed_this_round = 0;
        for (plan, outcome) in plans.iter().zip(join_all(transfers).await) {
            match outcome.expect("a transfer task panicked") {
                Outcome::Confirmed(file) => {
                    ledger.confirmed.insert(plan.name.clone(), file);
                    confirmed_this_round += 1;
                }
                Outcome::CutOff => {}
            }
        }

        cabinet = Cabinet::start(&data_dir, &tenant.key);
        let survey = check_after_restart(&cabinet, &data_dir, &mut ledger, &mut rng).await;
        println!(
            "round {round}: killed {} ms after the bytes started, {confirmed_this_round}/{UPLOADS_PER_ROUND} \
             confirmed before; now {} files ({} read back), {} uploads waiting, {} failed ({:.1?})",
            kill_after.as_millis(),
            survey.files,
            survey.files_read_back,
            survey.waiting_uploads,
            survey.failed_uploads,
            round_started.elapsed()
        );
    }
    println!("crash rounds: {rounds} passed (seed {seed})");
}
