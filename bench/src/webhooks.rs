//! Webhook delivery, against a receiver in this process (axum on loopback, answering 204 to every
//! POST): how long after an upload's answer its `file.created` event reaches the receiver while
//! 1 KiB uploads (`POST /v1/files`) arrive at a steady 200 a second, and what an endpoint that
//! receives every event costs upload throughput — wrk rounds with the endpoint and without it,
//! alternating, on one server. Both sides write the events (the outbox is part of every change);
//! the second side has no endpoint to send them to.
//!
//! And what the outbox itself costs: the same wrk rounds against two fresh servers, one as it
//! is and one whose database had its event triggers (which write every change's event in the
//! change's transaction) dropped after it started, alternating.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::SqlitePool;

use crate::client;
use crate::processes::{wrk, Cabinet};
use crate::rates::{checked, ingest_script, seconds, CONNECTIONS};
use crate::stats::{Row, Samples, Target};
use crate::Bench;

/// The steady upload rate the latency is measured under.
const UPLOADS_PER_SECOND: u64 = 200;

/// What the receiver saw.
#[derive(Default)]
struct Arrivals {
    /// When each file's or folder's `*.created` arrived, by its id.
    created: HashMap<String, Instant>,
    /// Every delivery, of any type.
    deliveries: u64,
}

type Shared = Arc<Mutex<Arrivals>>;

async fn receive(State(shared): State<Shared>, body: axum::body::Bytes) -> StatusCode {
    let at = Instant::now();
    let Ok(event) = serde_json::from_slice::<Value>(&body) else { return StatusCode::BAD_REQUEST };
    let mut arrivals = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    arrivals.deliveries += 1;
    if event["type"] == "file.created" || event["type"] == "folder.created" {
        if let Some(file) = event["object_id"].as_str() {
            arrivals.created.entry(file.to_owned()).or_insert(at);
        }
    }
    StatusCode::NO_CONTENT
}

/// Starts the receiver; returns its URL.
async fn start_receiver(shared: Shared) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(shared);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// One 1 KiB direct upload; the file id and when its answer came.
async fn upload(http: reqwest::Client, base: String, key: String, n: u64) -> Result<(String, Instant)> {
    let name = format!("w{n}.bin");
    let mut bytes = name.clone().into_bytes();
    bytes.resize(1024, b'x');
    let form =
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name(name));
    let answer = http.post(format!("{base}/v1/files")).bearer_auth(&key).multipart(form).send().await?;
    let status = answer.status();
    let text = answer.text().await?;
    let answered = Instant::now();
    if status != reqwest::StatusCode::CREATED {
        bail!("POST /v1/files answered {status}: {text}");
    }
    let file: Value = serde_json::from_str(&text)?;
    Ok((file["id"].as_str().context("a file id")?.to_owned(), answered))
}

/// Makes a folder and waits (at most `limit`) for its `folder.created` at the receiver: as each
/// endpoint's events arrive in order, every event before it has arrived too.
async fn wait_for_marker(
    bench: &Bench,
    cabinet: &Cabinet,
    key: &str,
    shared: &Shared,
    limit: Duration,
) -> Result<()> {
    let name = format!("marker-{}", shared.lock().unwrap_or_else(|p| p.into_inner()).deliveries);
    let folder = client::expect(
        bench.http.post(cabinet.at("/v1/folders")).bearer_auth(key).json(&json!({"name": name})),
        201,
    )
    .await?;
    let folder = folder["id"].as_str().context("a folder id")?.to_owned();
    let deadline = Instant::now() + limit;
    while !shared.lock().unwrap_or_else(|p| p.into_inner()).created.contains_key(&folder) {
        if Instant::now() > deadline {
            bail!("webhooks: the endpoint did not catch up within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn create_endpoint(bench: &Bench, cabinet: &Cabinet, key: &str, url: &str) -> Result<String> {
    let hook = client::expect(
        bench.http.post(cabinet.at("/v1/webhooks")).bearer_auth(key).json(&json!({"url": url})),
        201,
    )
    .await?;
    Ok(hook["id"].as_str().context("a webhook id")?.to_owned())
}

async fn delete_endpoint(bench: &Bench, cabinet: &Cabinet, key: &str, hook: &str) -> Result<()> {
    let answer =
        bench.http.delete(cabinet.at(&format!("/v1/webhooks/{hook}"))).bearer_auth(key).send().await?;
    if !answer.status().is_success() {
        bail!("deleting the webhook answered {}", answer.status());
    }
    Ok(())
}

pub async fn run(bench: &mut Bench) -> Result<()> {
    // Uploads are sent on a schedule, not one per connection: when answers slow down, more are
    // open at once than the per-address connection cap allows.
    let limits = [
        "--webhook-allow-private",
        "--max-uploads-per-key",
        "4096",
        "--max-uploads-per-workspace",
        "4096",
        "--max-connections-per-address",
        "0",
    ];
    let cabinet = Cabinet::start(&bench.cabinet_bin, &bench.path("cabinet-webhooks"), &limits)?;
    let key = cabinet.key.clone().unwrap_or_default();
    let shared: Shared = Arc::default();
    let receiver = start_receiver(shared.clone()).await?;
    latency(bench, &cabinet, &key, &receiver, &shared).await?;
    throughput(bench, &cabinet, &key, &receiver, &shared).await?;
    drop(cabinet);
    std::fs::remove_dir_all(bench.path("cabinet-webhooks"))?;
    Ok(())
}

/// A SQLite pool on a server's own database (`<data-dir>/cabinet.db`).
async fn database_of(data_dir: &std::path::Path) -> Result<SqlitePool> {
    let url = format!("sqlite://{}", data_dir.join("cabinet.db").display());
    let options = SqliteConnectOptions::from_str(&url)?.busy_timeout(Duration::from_secs(30));
    Ok(SqlitePoolOptions::new().max_connections(1).connect_with(options).await?)
}

async fn events_written(db: &SqlitePool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(db).await?)
}

/// The threads that run SQLite's statements (sqlx's workers, one a connection).
const DATABASE_THREADS: &str = "sqlx-sqlite";

/// One side of an outbox round, summed over its turns.
#[derive(Default)]
struct Ingested {
    files: f64,
    seconds: f64,
    /// The server's CPU time, all threads.
    cpu_seconds: f64,
    /// The database threads' CPU time.
    database_seconds: f64,
}

impl Ingested {
    fn files_per_second(&self) -> f64 {
        self.files / self.seconds
    }

    /// The server's CPU time a file, all threads, µs.
    fn cpu_us(&self) -> f64 {
        self.cpu_seconds / self.files * 1e6
    }

    /// The database threads' CPU time a file, µs.
    fn database_us(&self) -> f64 {
        self.database_seconds / self.files * 1e6
    }
}

/// Upload throughput with the outbox (every change's event written in its transaction, as
/// always) against a server whose event triggers were dropped, and the outbox's share of the CPU
/// a file. Each round starts both servers afresh, so neither keeps an advantage of its own (where
/// its folder landed, what its caches hold) from round to round; within a round they take turns.
pub async fn outbox_cost(bench: &mut Bench) -> Result<()> {
    if !bench.quick {
        // ext4 without a journal steps past every inode freed in the last 30 s (35 while its block
        // is dirty) when it allocates one, and the figures before this one free them by the
        // hundred thousand: a server whose folder lands among them pays for it on every file.
        std::thread::sleep(Duration::from_secs(35));
    }
    let limits = ["--max-uploads-per-key", "128", "--max-uploads-per-workspace", "128"];
    let secs = seconds(bench);
    // Each side's `secs` a round, in turns of two seconds (one in the quick mode).
    let turn_secs = secs.min(2);
    let turns = (secs / turn_secs) as usize;
    let (mut with, mut without, mut ratio) = (Samples::default(), Samples::default(), Samples::default());
    let (mut cpu_with, mut db_with, mut db_without, mut share) =
        (Samples::default(), Samples::default(), Samples::default(), Samples::default());
    // Removed at the end, not round by round: the inodes freed would slow the next round's
    // servers (see the pause above).
    let mut dirs = Vec::new();
    for round in 0..bench.rounds {
        let (on_dir, off_dir) = (
            bench.path(&format!("cabinet-outbox-on-{round}")),
            bench.path(&format!("cabinet-outbox-off-{round}")),
        );
        let on = Cabinet::start(&bench.cabinet_bin, &on_dir, &limits)?;
        let off = Cabinet::start(&bench.cabinet_bin, &off_dir, &limits)?;
        let (on_db, off_db) = (database_of(&on_dir).await?, database_of(&off_dir).await?);
        dirs.extend([on_dir, off_dir]);
        let triggers: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'events\\_%' ESCAPE '\\'",
        )
        .fetch_all(&off_db)
        .await?;
        if triggers.is_empty() {
            bail!("outbox: the database has no event triggers to drop");
        }
        for trigger in &triggers {
            sqlx::query(&format!("DROP TRIGGER \"{trigger}\"")).execute(&off_db).await?;
        }
        let (on_before, off_before) = (events_written(&on_db).await?, events_written(&off_db).await?);
        // Both servers take turns of a few seconds (which goes first alternating), so a slower
        // spell of the machine, which lasts longer than one turn, falls on both alike.
        let (mut a, mut b) = (Ingested::default(), Ingested::default());
        for turn in 0..turns {
            let on_first = (round + turn) % 2 == 0;
            for on_side in [on_first, !on_first] {
                let (cabinet, side, tag) = if on_side { (&on, &mut a, "on") } else { (&off, &mut b, "off") };
                let script = bench.path(&format!("outbox-{tag}-{round}-{turn}.lua"));
                // Names unique to the turn: each file is a new one.
                std::fs::write(&script, ingest_script(round * 1000 + turn, true))?;
                let script = script.to_string_lossy().into_owned();
                let auth = format!("Authorization: Bearer {}", cabinet.key.clone().unwrap_or_default());
                let extra = ["-H", auth.as_str(), "-s", script.as_str(), "--timeout", "30s"];
                let (cpu, db) = (cabinet.cpu_seconds()?, cabinet.threads_cpu_seconds(DATABASE_THREADS)?);
                let result = checked(
                    wrk(&cabinet.at("/v1/files"), CONNECTIONS, turn_secs, &extra)?,
                    "POST /v1/files",
                )?;
                side.files += result.requests_per_second * f64::from(turn_secs);
                side.seconds += f64::from(turn_secs);
                side.cpu_seconds += cabinet.cpu_seconds()? - cpu;
                side.database_seconds += cabinet.threads_cpu_seconds(DATABASE_THREADS)? - db;
            }
        }
        // What was measured is what it says: one side wrote an event per file, the other none.
        let stored = a.files;
        let (on_events, off_events) =
            (events_written(&on_db).await? - on_before, events_written(&off_db).await? - off_before);
        if (on_events as f64) < stored * 0.9 || off_events != 0 {
            bail!("outbox: {on_events} events written for about {stored:.0} files, {off_events} without triggers");
        }
        on_db.close().await;
        off_db.close().await;
        // What the triggers add on the threads that run them, against all a file costs.
        let outbox_share = (a.database_us() - b.database_us()) / a.cpu_us();
        eprintln!(
            "outbox round {round}: events written {:.0} files/s (CPU a file {:.0} µs, database threads {:.0} µs), \
             event triggers dropped {:.0} files/s ({:.0} µs, {:.0} µs); ratio {:.3}, the outbox's share of the CPU {:.1}%",
            a.files_per_second(),
            a.cpu_us(),
            a.database_us(),
            b.files_per_second(),
            b.cpu_us(),
            b.database_us(),
            a.files_per_second() / b.files_per_second(),
            outbox_share * 100.0
        );
        with.push(a.files_per_second());
        without.push(b.files_per_second());
        ratio.push(a.files_per_second() / b.files_per_second());
        cpu_with.push(a.cpu_us());
        db_with.push(a.database_us());
        db_without.push(b.database_us());
        share.push(outbox_share * 100.0);
    }
    bench.rows.push(Row {
        figure: format!(
            "upload throughput with the outbox (every change's event written in its transaction) vs without: 1 KiB \
             `POST /v1/files`, wrk -t2 -c{CONNECTIONS}, {secs} s a side a round in turns of {turn_secs} s, fresh servers each round (req/s ratio)"
        ),
        cabinet: format!("{:.0} files/s, an event written for each", with.median()),
        baseline: format!("a server whose event triggers were dropped: {:.0} files/s", without.median()),
        judged: ratio,
        judged_digits: 3,
        target: Target::AtLeast(0.95),
        unit: "×",
    });
    bench.rows.push(Row {
        figure: "the outbox's share of the server's CPU per file: what its database threads spend a file with the \
                 event triggers beyond what they spend without (user and system, `/proc/PID/task/TID/stat`), over \
                 all the server spends a file with them, the same runs (%)"
            .into(),
        cabinet: format!(
            "database threads {:.0} µs a file with the triggers, of {:.0} µs in all",
            db_with.median(),
            cpu_with.median()
        ),
        baseline: format!("database threads {:.0} µs a file without them", db_without.median()),
        judged: share,
        judged_digits: 1,
        target: Target::Below(5.0),
        unit: "%",
    });
    for dir in dirs {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(())
}

/// Delivery latency at a steady `UPLOADS_PER_SECOND`: each round sends uploads on a fixed
/// schedule (each on a task of its own, so a slow answer does not delay the next), then waits for
/// every `file.created`; latency is from the upload's answer to its event's arrival.
async fn latency(
    bench: &mut Bench,
    cabinet: &Cabinet,
    key: &str,
    receiver: &str,
    shared: &Shared,
) -> Result<()> {
    let hook = create_endpoint(bench, cabinet, key, receiver).await?;
    let secs = if bench.quick { 2 } else { 10 };
    let (mut p99s, mut all) = (Samples::default(), Samples::default());
    let mut sent = 0;
    let mut rates = Samples::default();
    for round in 0..bench.rounds {
        let started = Instant::now();
        let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / UPLOADS_PER_SECOND));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut uploads = Vec::new();
        for _ in 0..UPLOADS_PER_SECOND * secs {
            ticker.tick().await;
            sent += 1;
            uploads.push(tokio::spawn(upload(bench.http.clone(), cabinet.url.clone(), key.to_owned(), sent)));
        }
        let mut answered = Vec::with_capacity(uploads.len());
        for upload in uploads {
            answered.push(upload.await??);
        }
        let rate = answered.len() as f64 / started.elapsed().as_secs_f64();
        rates.push(rate);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut round_latencies = Samples::default();
        let mut early = 0;
        loop {
            let found: Option<Vec<Instant>> = {
                let arrivals = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                answered.iter().map(|(file, _)| arrivals.created.get(file).copied()).collect()
            };
            if let Some(arrived) = found {
                for ((_, answered_at), arrived) in answered.iter().zip(arrived) {
                    // A delivery can beat the client to its own answer: counted as 0.
                    early += usize::from(arrived < *answered_at);
                    round_latencies
                        .push(arrived.saturating_duration_since(*answered_at).as_secs_f64() * 1000.0);
                }
                break;
            }
            if Instant::now() > deadline {
                bail!("webhooks: not every file.created arrived within 60 s of the last upload");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "webhooks latency round {round}: {rate:.0} uploads/s, delivery p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
             ({early} arrived before their upload's answer)",
            round_latencies.percentile(50.0),
            round_latencies.percentile(99.0),
            round_latencies.max()
        );
        p99s.push(round_latencies.percentile(99.0));
        all.extend(&round_latencies);
    }
    delete_endpoint(bench, cabinet, key, &hook).await?;
    bench.rows.push(Row {
        figure: format!(
            "webhook delivery latency, upload answered → `file.created` at a receiver on loopback, {UPLOADS_PER_SECOND} \
             uploads/s of 1 KiB (`POST /v1/files`), {secs} s rounds (p99 of each round, ms)"
        ),
        cabinet: format!(
            "p50 {:.1} ms, p99 {:.1} ms over {} deliveries at {:.0} uploads/s",
            all.percentile(50.0),
            all.percentile(99.0),
            all.len(),
            rates.median()
        ),
        baseline: "—".to_owned(),
        judged: p99s,
        judged_digits: 1,
        target: Target::Below(1000.0),
        unit: " ms",
    });
    Ok(())
}

/// Upload throughput with an endpoint receiving every event against none, same server, rounds
/// alternating which goes first. A round with the endpoint waits, after wrk, for the endpoint to
/// acknowledge everything, so the next round starts with no delivery left over; what was still
/// to deliver when wrk stopped is reported.
async fn throughput(
    bench: &mut Bench,
    cabinet: &Cabinet,
    key: &str,
    receiver: &str,
    shared: &Shared,
) -> Result<()> {
    let auth = format!("Authorization: Bearer {key}");
    let files_url = cabinet.at("/v1/files");
    let secs = seconds(bench);
    let (mut with, mut without, mut ratio, mut behind) =
        (Samples::default(), Samples::default(), Samples::default(), Samples::default());
    for round in 0..bench.rounds {
        let run = |tag: &str| -> Result<f64> {
            let script = bench.path(&format!("webhooks-{tag}-{round}.lua"));
            std::fs::write(&script, ingest_script(round * 2 + usize::from(tag == "with"), true))?;
            let script = script.to_string_lossy().into_owned();
            // A shared machine stalls a request now and then past wrk's 2 s: not a failure here.
            let extra = ["-H", auth.as_str(), "-s", script.as_str(), "--timeout", "30s"];
            let result = checked(wrk(&files_url, CONNECTIONS, secs, &extra)?, "POST /v1/files")?;
            Ok(result.requests_per_second)
        };
        let with_endpoint = || async {
            let hook = create_endpoint(bench, cabinet, key, receiver).await?;
            let deliveries = || shared.lock().unwrap_or_else(|p| p.into_inner()).deliveries;
            let before = deliveries();
            let rate = run("with")?;
            let at_stop = deliveries() - before;
            wait_for_marker(bench, cabinet, key, shared, Duration::from_secs(300)).await?;
            // Every event of the round, without the marker's.
            let events = (deliveries() - before).saturating_sub(1).max(1);
            delete_endpoint(bench, cabinet, key, &hook).await?;
            anyhow::Ok((rate, events.saturating_sub(at_stop) as f64 / events as f64))
        };
        let ((a, left), b) = in_turns!(round, with_endpoint().await?, run("without")?);
        eprintln!(
            "webhooks throughput round {round}: with an endpoint {a:.0} files/s ({:.0}% of its events still to \
             deliver when wrk stopped), without {b:.0} files/s, ratio {:.3}",
            left * 100.0,
            a / b
        );
        with.push(a);
        without.push(b);
        ratio.push(a / b);
        behind.push(left * 100.0);
    }
    bench.rows.push(Row {
        figure: format!(
            "upload throughput with a webhook endpoint receiving every event vs none: 1 KiB `POST /v1/files`, wrk -t2 \
             -c{CONNECTIONS} -d{secs}s, rounds alternating (req/s ratio)"
        ),
        cabinet: format!(
            "{:.0} files/s with the endpoint ({:.0}% of events still to deliver when wrk stopped)",
            with.median(),
            behind.median()
        ),
        baseline: format!("the same server, no endpoint: {:.0} files/s", without.median()),
        judged: ratio,
        judged_digits: 3,
        target: Target::AtLeast(0.95),
        unit: "×",
    });
    Ok(())
}
