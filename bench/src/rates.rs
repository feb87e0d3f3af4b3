//! Request rates under wrk (`-t2 -c64`): a small signed GET and `GET /v1/files/{id}` against
//! nginx serving the same 1 KiB file statically, and `POST /v1/uploads` (reserve + sign) against
//! the raw single-row insert rate of SQLite in WAL mode with the same durability setting.

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use rand::RngCore;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::client;
use crate::processes::{admin, wrk, Cabinet, Nginx, WrkResult};
use crate::stats::{Row, Samples, Target};
use crate::Bench;

pub(crate) const CONNECTIONS: u32 = 64;

pub(crate) fn seconds(bench: &Bench) -> u32 {
    if bench.quick {
        1
    } else {
        10
    }
}

pub(crate) fn checked(result: WrkResult, what: &str) -> Result<WrkResult> {
    if result.errors > 0 {
        bail!("{what}: {} failed requests under wrk", result.errors);
    }
    Ok(result)
}

/// The small GETs with Cabinet's metadata on SQLite, or on the PostgreSQL at `postgres` (a key
/// made with `cabinet admin`, since that database may already hold workspaces).
pub async fn small_gets(bench: &mut Bench, postgres: Option<&str>) -> Result<()> {
    let nginx = Nginx::start(&bench.path("nginx-small"))?;
    let data = bench.path("cabinet-small");
    let (cabinet, key, metadata) = match postgres {
        None => {
            let cabinet = Cabinet::start(&bench.cabinet_bin, &data, &[])?;
            let key = cabinet.key.clone().unwrap_or_default();
            (cabinet, key, "")
        }
        Some(url) => {
            let cabinet = Cabinet::start(&bench.cabinet_bin, &data, &["--database-url", url])?;
            // Named afresh, since an earlier run may have left its own in that database.
            let name = format!("small-gets-{}", rand::random::<u32>());
            let ws = admin(&bench.cabinet_bin, &data, Some(url), &["create-workspace", "--name", &name])?;
            let ws = ws["id"].as_str().context("a workspace id")?.to_owned();
            let key = admin(&bench.cabinet_bin, &data, Some(url), &["create-key", "--workspace", &ws])?;
            (cabinet, key["key"].as_str().context("a key secret")?.to_owned(), ", PostgreSQL metadata")
        }
    };
    let mut body = vec![0u8; 1024];
    rand::thread_rng().fill_bytes(&mut body);
    std::fs::write(nginx.root.join("small.bin"), &body)?;
    let file = client::upload_bytes(&bench.http, &cabinet.url, &key, "small.bin", body).await?;
    let signed = client::download_url(&bench.http, &cabinet.url, &key, &file).await?;
    let details = cabinet.at(&format!("/v1/files/{file}"));
    let static_url = format!("{}/small.bin", nginx.url);
    let auth = format!("Authorization: Bearer {key}");
    let secs = seconds(bench);

    let mut rates = [Samples::default(), Samples::default(), Samples::default()];
    let mut p99 = [Samples::default(), Samples::default(), Samples::default()];
    let (mut signed_ratio, mut details_ratio) = (Samples::default(), Samples::default());
    for round in 0..bench.rounds {
        let mut run = |which: usize| -> Result<WrkResult> {
            let result = match which {
                0 => checked(wrk(&static_url, CONNECTIONS, secs, &[])?, "nginx GET")?,
                1 => checked(wrk(&signed, CONNECTIONS, secs, &[])?, "signed GET")?,
                _ => checked(wrk(&details, CONNECTIONS, secs, &["-H", &auth])?, "GET /v1/files/{id}")?,
            };
            rates[which].push(result.requests_per_second);
            p99[which].push(result.p99_ms);
            Ok(result)
        };
        let order: [usize; 3] = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        let mut got = [None; 3];
        for which in order {
            got[which] = Some(run(which)?);
        }
        let [Some(n), Some(s), Some(d)] = got else { unreachable!() };
        eprintln!(
            "small{metadata} round {round}: nginx {:.0}/s, signed GET {:.0}/s (p99 {:.1} ms), GET /v1/files/{{id}} {:.0}/s (p99 {:.1} ms)",
            n.requests_per_second, s.requests_per_second, s.p99_ms, d.requests_per_second, d.p99_ms
        );
        signed_ratio.push(s.requests_per_second / n.requests_per_second);
        details_ratio.push(d.requests_per_second / n.requests_per_second);
    }
    let baseline =
        format!("nginx 1 KiB static GET {:.0} req/s, p99 {:.1} ms", rates[0].median(), p99[0].median());
    bench.rows.push(Row {
        figure: format!(
            "small signed GET (1 KiB){metadata}, wrk -t2 -c{CONNECTIONS} -d{secs}s (req/s ratio)"
        ),
        cabinet: format!("{:.0} req/s, p99 {:.1} ms", rates[1].median(), p99[1].median()),
        baseline: baseline.clone(),
        judged: signed_ratio,
        judged_digits: 2,
        target: Target::AtLeast(if postgres.is_some() { 0.3 } else { 0.8 }),
        unit: "×",
    });
    bench.rows.push(Row {
        figure: format!("`GET /v1/files/{{id}}`{metadata}, wrk -t2 -c{CONNECTIONS} -d{secs}s (req/s ratio)"),
        cabinet: format!("{:.0} req/s, p99 {:.1} ms", rates[2].median(), p99[2].median()),
        baseline,
        judged: details_ratio,
        judged_digits: 2,
        target: Target::AtLeast(if postgres.is_some() { 0.3 } else { 0.6 }),
        unit: "×",
    });
    drop(cabinet);
    drop(nginx);
    std::fs::remove_dir_all(bench.path("cabinet-small"))?;
    std::fs::remove_dir_all(bench.path("nginx-small"))?;
    Ok(())
}

/// Single-row inserts, one transaction each, into a fresh WAL database with Cabinet's durability
/// setting (`synchronous = FULL`), for `secs` seconds; returns rows per second.
async fn raw_sqlite_inserts(path: &std::path::Path, secs: u32) -> Result<f64> {
    let _ = std::fs::remove_file(path);
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
    sqlx::query(
        "CREATE TABLE uploads (workspace_id TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, \
         size INTEGER NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (workspace_id, id))",
    )
    .execute(&pool)
    .await?;
    let started = Instant::now();
    let mut rows = 0u64;
    while started.elapsed() < Duration::from_secs(secs.into()) {
        sqlx::query(
            "INSERT INTO uploads (workspace_id, id, name, size, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind("ws_bench")
        .bind(format!("upl_{rows:026}"))
        .bind("r.bin")
        .bind(1i64)
        .bind(rows as i64)
        .execute(&pool)
        .await?;
        rows += 1;
    }
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    pool.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(rate)
}

pub async fn reserve(bench: &mut Bench) -> Result<()> {
    let cabinet = Cabinet::start(&bench.cabinet_bin, &bench.path("cabinet-reserve"), &[])?;
    let key = cabinet.key.clone().unwrap_or_default();
    let script = bench.path("reserve.lua");
    std::fs::write(
        &script,
        "wrk.method = \"POST\"\nwrk.body = '{\"name\":\"r.bin\",\"size\":1}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
    )?;
    let script = script.to_string_lossy().into_owned();
    let auth = format!("Authorization: Bearer {key}");
    let url = cabinet.at("/v1/uploads");
    // One request by hand first: the route must answer 201 (wrk counts only non-2xx as errors).
    client::reserve(&bench.http, &cabinet.url, &key, "r.bin", 1, None).await?;
    let secs = seconds(bench);
    let raw_db = bench.path("raw-insert.db");
    let (mut ours, mut theirs, mut p99, mut ratio) =
        (Samples::default(), Samples::default(), Samples::default(), Samples::default());
    for round in 0..bench.rounds {
        let (a, b) = in_turns!(
            round,
            checked(wrk(&url, CONNECTIONS, secs, &["-H", &auth, "-s", &script])?, "POST /v1/uploads")?,
            raw_sqlite_inserts(&raw_db, secs).await?
        );
        eprintln!(
            "reserve round {round}: Cabinet {:.0}/s (p99 {:.1} ms), raw SQLite insert {b:.0}/s",
            a.requests_per_second, a.p99_ms
        );
        ours.push(a.requests_per_second);
        p99.push(a.p99_ms);
        theirs.push(b);
        ratio.push(a.requests_per_second / b);
    }
    bench.rows.push(Row {
        figure: format!(
            "`POST /v1/uploads` (reserve + sign), wrk -t2 -c{CONNECTIONS} -d{secs}s (req/s ratio)"
        ),
        cabinet: format!("{:.0} req/s, p99 {:.1} ms", ours.median(), p99.median()),
        baseline: format!(
            "raw single-row SQLite insert, WAL, synchronous=FULL: {:.0} rows/s",
            theirs.median()
        ),
        judged: ratio,
        judged_digits: 2,
        // Issue 22's bar: concurrent reservations committed together, each durable before its answer.
        target: Target::AtLeast(5.0),
        unit: "×",
    });
    drop(cabinet);
    std::fs::remove_dir_all(bench.path("cabinet-reserve"))?;
    Ok(())
}

/// A wrk script sending 1 KiB bodies, each to a name of its own: `round`, the wrk thread and a
/// counter make it unique, and the counter is also written into the bytes so that no two bodies
/// are the same. `multipart` sends them as `POST` form data (`file`, as `POST /v1/files` takes it);
/// otherwise each is a `PUT` to `/<name>`.
pub(crate) fn ingest_script(round: usize, multipart: bool) -> String {
    let request = if multipart {
        "local body = '--cabinetbench\\r\\nContent-Disposition: form-data; name=\"file\"; filename=\"' .. name .. \
         '\"\\r\\nContent-Type: application/octet-stream\\r\\n\\r\\n' .. bytes .. '\\r\\n--cabinetbench--\\r\\n'\n  \
         return wrk.format('POST', nil, nil, body)"
    } else {
        "return wrk.format('PUT', '/ingest/' .. name, nil, bytes)"
    };
    let content_type =
        if multipart { "multipart/form-data; boundary=cabinetbench" } else { "application/octet-stream" };
    format!(
        "local threads = 0\n\
         function setup(thread) threads = threads + 1; thread:set('tid', threads) end\n\
         wrk.headers['Content-Type'] = '{content_type}'\n\
         local filler = string.rep('x', 1024)\n\
         counter = 0\n\
         request = function()\n  \
         counter = counter + 1\n  \
         local name = 'r{round}-t' .. tid .. '-' .. counter .. '.bin'\n  \
         local bytes = string.sub(name .. filler, 1, 1024)\n  \
         {request}\n\
         end\n"
    )
}

/// Small-file ingest: 1 KiB direct uploads (`POST /v1/files`, each hashed, fsync'd and committed
/// as a file before its answer) from 64 connections, against nginx's dav module taking `PUT`s of
/// 1 KiB (written, never fsync'd) in the same run, rounds alternating who goes first.
pub async fn ingest(bench: &mut Bench) -> Result<()> {
    let nginx = Nginx::start(&bench.path("nginx-ingest"))?;
    // One key sends all 64 at once: past the default of 32 uploads in progress per key.
    let concurrency = ["--max-uploads-per-key", "128", "--max-uploads-per-workspace", "128"];
    let cabinet = Cabinet::start(&bench.cabinet_bin, &bench.path("cabinet-ingest"), &concurrency)?;
    let key = cabinet.key.clone().unwrap_or_default();
    let auth = format!("Authorization: Bearer {key}");
    let files_url = cabinet.at("/v1/files");
    let secs = seconds(bench);
    let (mut ours, mut theirs, mut p99, mut theirs_p99, mut ratio) =
        (Samples::default(), Samples::default(), Samples::default(), Samples::default(), Samples::default());
    let mut stored = 0.0;
    for round in 0..bench.rounds {
        let cabinet_script = bench.path(&format!("ingest-cabinet-{round}.lua"));
        std::fs::write(&cabinet_script, ingest_script(round, true))?;
        let nginx_script = bench.path(&format!("ingest-nginx-{round}.lua"));
        std::fs::write(&nginx_script, ingest_script(round, false))?;
        let cabinet_script = cabinet_script.to_string_lossy().into_owned();
        let nginx_script = nginx_script.to_string_lossy().into_owned();
        let run_cabinet = || {
            checked(
                wrk(&files_url, CONNECTIONS, secs, &["-H", &auth, "-s", &cabinet_script])?,
                "POST /v1/files (1 KiB)",
            )
        };
        let run_nginx =
            || checked(wrk(&nginx.url, CONNECTIONS, secs, &["-s", &nginx_script])?, "nginx dav PUT (1 KiB)");
        let (a, b) = in_turns!(round, run_cabinet()?, run_nginx()?);
        eprintln!(
            "ingest round {round}: Cabinet {:.0} files/s (p99 {:.1} ms), nginx dav PUT {:.0}/s (p99 {:.1} ms)",
            a.requests_per_second, a.p99_ms, b.requests_per_second, b.p99_ms
        );
        stored += a.requests_per_second * f64::from(secs);
        ours.push(a.requests_per_second);
        p99.push(a.p99_ms);
        theirs.push(b.requests_per_second);
        theirs_p99.push(b.p99_ms);
        ratio.push(a.requests_per_second / b.requests_per_second);
    }
    // Every answer was a 2xx (`checked`); the files are there too, each of 1 KiB.
    let quota = client::expect(bench.http.get(cabinet.at("/v1/quota")).bearer_auth(&key), 200).await?;
    let used = quota["used_bytes"].as_f64().unwrap_or(0.0);
    if used < 1024.0 * stored * 0.9 {
        bail!("ingest: about {stored:.0} uploads answered but only {used} bytes are stored");
    }
    bench.rows.push(Row {
        figure: format!(
            "small-file ingest: 1 KiB direct upload (`POST /v1/files`, hashed, fsync'd, committed), wrk -t2 -c{CONNECTIONS} -d{secs}s (req/s ratio)"
        ),
        cabinet: format!("{:.0} files/s, p99 {:.1} ms", ours.median(), p99.median()),
        baseline: format!(
            "nginx dav PUT of 1 KiB (not fsync'd) {:.0} req/s, p99 {:.1} ms",
            theirs.median(),
            theirs_p99.median()
        ),
        judged: ratio,
        judged_digits: 2,
        target: Target::AtLeast(0.5),
        unit: "×",
    });
    drop(cabinet);
    drop(nginx);
    std::fs::remove_dir_all(bench.path("cabinet-ingest"))?;
    std::fs::remove_dir_all(bench.path("nginx-ingest"))?;
    Ok(())
}

/// Uploads another workspace has reserved and left waiting, at the start of each crowded run.
const WAITING_ELSEWHERE: usize = 50_000;
/// The workspace's own uploads sent in each run (reserved first), 64 at a time.
const SENT_HERE: usize = 10_000;

/// Signed 1 KiB PUTs of one workspace while another holds `WAITING_ELSEWHERE` reservations it has
/// not sent, against the same PUTs with none waiting: what another tenant's live uploads cost a
/// workspace's uploads (uploads finished together read their rows, and must find them by key
/// however many others are live). A fresh server each side of each round; every upload is
/// reserved before the clock starts, then sent 64 at a time and each answer checked.
pub async fn waiting_reservations(bench: &mut Bench) -> Result<()> {
    let (elsewhere, sent) = if bench.quick { (2_000, 1_000) } else { (WAITING_ELSEWHERE, SENT_HERE) };
    let (mut quiet, mut crowded, mut ratio) = (Samples::default(), Samples::default(), Samples::default());
    for round in 0..bench.rounds {
        let mut rates = [0.0; 2];
        let sides = if round % 2 == 0 { [false, true] } else { [true, false] };
        for crowd in sides {
            // Each side starts with nothing of the run before it still going to the disk: the
            // ingest figure's nginx never flushes, and behind a long enough writeback every fsync
            // waits, past the 30 s the server waits for its database before it answers 503.
            crate::transfer::settle_disk()?;
            let dir = bench.path(&format!("cabinet-waiting-{round}-{crowd}"));
            let cabinet = Cabinet::start(
                &bench.cabinet_bin,
                &dir,
                &["--max-uploads-per-key", "0", "--max-uploads-per-workspace", "0"],
            )?;
            if crowd {
                let ws = admin(&bench.cabinet_bin, &dir, None, &["create-workspace", "--name", "elsewhere"])?;
                let ws = ws["id"].as_str().context("a workspace id")?.to_owned();
                let key = admin(&bench.cabinet_bin, &dir, None, &["create-key", "--workspace", &ws])?;
                let key = key["key"].as_str().context("a key secret")?.to_owned();
                reserve_many(bench, &cabinet, &key, elsewhere).await?;
            }
            let urls =
                reserve_many(bench, &cabinet, cabinet.key.as_deref().unwrap_or_default(), sent).await?;
            let started = Instant::now();
            let answers = futures::stream::iter(urls)
                .map(|url| {
                    let http = bench.http.clone();
                    async move { client::expect(http.put(url).body(vec![b'x'; 1024]), 200).await }
                })
                .buffer_unordered(CONNECTIONS as usize)
                .collect::<Vec<_>>()
                .await;
            let elapsed = started.elapsed().as_secs_f64();
            for answer in answers {
                answer.and_then(|answer| client::succeeded(&answer, 1024, None)).map_err(|err| {
                    err.context(format!("the server's warnings and errors:\n{}", cabinet.log_trouble(40)))
                })?;
            }
            rates[usize::from(crowd)] = sent as f64 / elapsed;
            drop(cabinet);
            std::fs::remove_dir_all(&dir)?;
        }
        eprintln!(
            "waiting round {round}: signed PUTs {:.0}/s with {elsewhere} uploads waiting elsewhere, {:.0}/s with none",
            rates[1], rates[0]
        );
        quiet.push(rates[0]);
        crowded.push(rates[1]);
        ratio.push(rates[1] / rates[0]);
    }
    bench.rows.push(Row {
        figure: format!(
            "{sent} signed 1 KiB PUTs of one workspace, {CONNECTIONS} at a time, while another holds {elsewhere} \
             reserved uploads it has not sent, fresh servers (PUTs/s ratio)"
        ),
        cabinet: format!("{:.0} PUTs/s", crowded.median()),
        baseline: format!("the same with none waiting: {:.0} PUTs/s", quiet.median()),
        judged: ratio,
        judged_digits: 2,
        // Cabinet's own bar (issue 12: no tenant can slow another).
        target: Target::AtLeast(0.8),
        unit: "×",
    });
    Ok(())
}

/// `count` uploads of 1 KiB reserved in `key`'s workspace, 64 at a time; their upload URLs.
async fn reserve_many(bench: &Bench, cabinet: &Cabinet, key: &str, count: usize) -> Result<Vec<String>> {
    let reserved = futures::stream::iter(0..count)
        .map(|n| async move {
            client::reserve(&bench.http, &cabinet.url, key, &format!("w{n}.bin"), 1024, None).await
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    reserved.into_iter().collect()
}
