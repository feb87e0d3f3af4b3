//! Caching in front of Cabinet: nginx's `proxy_cache` keyed by URL, as a CDN stands. Many
//! clients each ask Cabinet for the download URLs of the same files and fetch the bytes through
//! the cache; the figure is the cache's hit ratio, and how many byte requests reached Cabinet.
//! Clients arrive evenly over half a minute, as page views do. The baseline is the same run with a
//! one-second URL window (`--url-window 1`): URLs that change every second, as expiring URLs did
//! before windows, so the cache holds each for a second at most and a file read less than once a
//! second never hits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rand::RngCore;

use crate::client;
use crate::processes::{Cabinet, Nginx};
use crate::stats::{Row, Samples, Target};
use crate::Bench;

/// The URL window the cache keeps responses for, and Cabinet's default.
const WINDOW_SECS: u64 = 600;
const FILE_BYTES: usize = 16 * 1024;
/// Seconds over which the clients arrive (a full run).
const SPREAD_SECS: u64 = 30;

/// What one run through the cache counted.
#[derive(Debug, Default)]
struct Tally {
    hits: AtomicU64,
    fetches: AtomicU64,
}

impl Tally {
    fn hit_ratio(&self) -> f64 {
        self.hits.load(Ordering::Relaxed) as f64 / self.fetches.load(Ordering::Relaxed).max(1) as f64
    }

    fn reached_cabinet(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed) - self.hits.load(Ordering::Relaxed)
    }
}

pub async fn run(bench: &mut Bench) -> Result<()> {
    let (clients, files) = if bench.quick { (20, 10) } else { (1_000, 100) };
    let mut ratios = [Samples::default(), Samples::default()];
    let mut reached = [Samples::default(), Samples::default()];
    for round in 0..bench.rounds {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let window = if which == 0 { WINDOW_SECS } else { 1 };
            let tally =
                through_cache(bench, &format!("cache-{round}-{which}"), window, clients, files).await?;
            eprintln!(
                "cache round {round}, --url-window {window}: hit ratio {:.4}, {} of {} byte requests reached Cabinet",
                tally.hit_ratio(),
                tally.reached_cabinet(),
                tally.fetches.load(Ordering::Relaxed)
            );
            ratios[which].push(tally.hit_ratio() * 100.0);
            reached[which].push(tally.reached_cabinet() as f64);
        }
    }
    bench.rows.push(Row {
        figure: format!(
            "download URLs through a caching proxy (nginx proxy_cache): {clients} clients × the same {files} files, \
             hit ratio"
        ),
        cabinet: format!(
            "--url-window {WINDOW_SECS}: {:.2}% hits, {:.0} of {} byte requests reached Cabinet",
            ratios[0].median(),
            reached[0].median(),
            clients * files
        ),
        baseline: format!(
            "--url-window 1: {:.2}% hits, {:.0} reached Cabinet",
            ratios[1].median(),
            reached[1].median()
        ),
        judged: ratios[0].clone(),
        judged_digits: 2,
        target: Target::AtLeast(99.0),
        unit: "%",
    });
    Ok(())
}

/// Starts Cabinet behind a caching nginx, puts `files` files in, and lets `clients` clients each
/// ask for every file's download URL and fetch its bytes through the cache.
async fn through_cache(
    bench: &Bench,
    name: &str,
    window: u64,
    clients: usize,
    files: usize,
) -> Result<Arc<Tally>> {
    // Cabinet hands out URLs at the proxy's address: it is what clients reach it at.
    let proxy_port = crate::processes::free_port()?;
    let proxy_url = format!("http://127.0.0.1:{proxy_port}");
    let cabinet = Cabinet::start(
        &bench.cabinet_bin,
        &bench.path(name),
        &["--url-window", &window.to_string(), "--public-url", &proxy_url],
    )?;
    let nginx = Nginx::caching_proxy_on(
        &bench.path(&format!("{name}-nginx")),
        &cabinet.url,
        WINDOW_SECS,
        proxy_port,
    )?;
    let key = cabinet.key.clone().context("a fresh Cabinet has a bootstrap key")?;
    let mut ids = Vec::with_capacity(files);
    for n in 0..files {
        let mut body = vec![0u8; FILE_BYTES];
        rand::thread_rng().fill_bytes(&mut body);
        ids.push(client::upload_bytes(&bench.http, &cabinet.url, &key, &format!("f{n}.bin"), body).await?);
    }
    let tally = Arc::new(Tally::default());
    // Clients arrive evenly over the spread, as page views do, and each fetches every file in turn.
    let spread = std::time::Duration::from_secs(if bench.quick { 2 } else { SPREAD_SECS });
    let begin = tokio::time::Instant::now();
    let ids = Arc::new(ids);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..clients {
        let arrives = begin + spread.mul_f64(n as f64 / clients as f64);
        let (http, api, key, tally, ids) =
            (bench.http.clone(), cabinet.url.clone(), key.clone(), tally.clone(), ids.clone());
        let proxy = nginx.url.clone();
        tasks.spawn(async move {
            tokio::time::sleep_until(arrives).await;
            for file in ids.iter() {
                fetch_through(&http, &api, &key, file, &proxy, &tally).await?;
            }
            anyhow::Ok(())
        });
    }
    let mut results = Vec::new();
    while let Some(done) = tasks.join_next().await {
        results.push(done.context("a client task")?);
    }
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(tally)
}

/// Asks Cabinet for a file's download URL, fetches it through the proxy, checks the bytes
/// arrived, and counts whether the cache had them.
async fn fetch_through(
    http: &reqwest::Client,
    api: &str,
    key: &str,
    file: &str,
    proxy: &str,
    tally: &Tally,
) -> Result<()> {
    let url = client::download_url(http, api, key, file).await?;
    if !url.starts_with(proxy) {
        bail!("the download URL {url} is not at the proxy {proxy}");
    }
    let response = http.get(&url).send().await?;
    let status = response.status();
    let cache = response
        .headers()
        .get("x-cache-status")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = response.bytes().await?;
    if status != 200 || bytes.len() != FILE_BYTES {
        bail!("{url}: {status} with {} bytes", bytes.len());
    }
    tally.fetches.fetch_add(1, Ordering::Relaxed);
    if cache == "HIT" {
        tally.hits.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}
