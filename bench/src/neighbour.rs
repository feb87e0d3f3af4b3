//! Noisy neighbour: while one tenant (A, connecting from its own loopback address so it has its
//! own per-address budgets, as a tenant on another machine would) runs each attack of the
//! hostile-tenant list, another tenant (B) uploads, downloads, lists and searches at a steady
//! pace. B's p99 of each operation under each attack is judged against its p99 with A quiet,
//! taken in quiet phases alternating with the attack's. Nothing B asks may fail, and each attack
//! must be answered the way the server promises (a refusal with its status, never a 5xx and never
//! a request left hanging), so an attack that stopped doing anything cannot pass as harmless.
//!
//! A's client runs in a process of its own (this binary, re-run with `--neighbour-attacker`) at
//! the lowest CPU priority: a hostile tenant's machine is not the server's, and on one machine an
//! attacker's client sharing B's runtime would delay B's requests before they reached the server.
//! The server's work for A competes with its work for B at equal priority, which is what is judged.
//!
//! Each of B's rounds also times the data folder's disk alone (a file of B's upload size written
//! and fsync'd beside the server's folder), reported next to B's figures and not judged: B's
//! uploads are fsync'd before their answer, so their p99 is read against what the device alone did
//! in the same phases. `--work` on a tmpfs takes the device out.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinSet;

use crate::client::{download_url, expect, upload_bytes};
use crate::processes::{admin, Cabinet};
use crate::stats::{Row, Samples, Target};
use crate::Bench;

/// Where A connects from: Linux answers all of 127.0.0.0/8 on loopback.
const ATTACKER_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// How much slower B's p99 may get under an attack (`--assert-neighbour-ratio` judges it).
pub const TARGET_RATIO: f64 = 2.0;
/// B's files at the start: what it lists, searches and downloads.
const VICTIM_FILES: usize = 40;
/// What B uploads each round.
const VICTIM_UPLOAD_BYTES: usize = 64 * 1024;
/// The quota of A's second workspace, the one its unknown-size uploads try to overrun.
const ATTACKER_QUOTA_BYTES: u64 = 20 << 20;
/// The folder depth the server allows: A builds a chain exactly this deep.
const MAX_FOLDER_DEPTH: usize = cabinet_core::folders::MAX_FOLDER_DEPTH as usize;

/// The attacker process's niceness: the lowest priority, standing in for a machine of its own.
const ATTACKER_NICENESS: &str = "19";

/// B's operations, in the order of a round.
const OPERATIONS: [&str; 4] = ["upload", "download", "list", "search"];
/// What the data folder's disk takes alone, timed in each of B's rounds beside its operations:
/// a file of B's upload size written and fsync'd in a folder next to the server's. Reported, not
/// judged: it shows how far the device's own p99 moves between phases, which B's uploads (each
/// fsync'd before its answer) carry.
const DISK_ALONE: &str = "disk alone";

/// What an attack's requests were answered, by status (or by what went wrong on the connection).
#[derive(Default)]
struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    fn count(&self, outcome: impl Into<String>) {
        *self.0.lock().unwrap().entry(outcome.into()).or_default() += 1;
    }

    fn status(&self, result: reqwest::Result<reqwest::Response>) {
        match result {
            Ok(response) => self.count(response.status().as_u16().to_string()),
            Err(err) if err.is_timeout() => self.count("timeout"),
            // The server answered early (401, 413, 429) and closed while the body was still going.
            Err(_) => self.count("connection closed"),
        }
    }

    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap().clone()
    }

    fn add(&self, counts: BTreeMap<String, u64>) {
        let mut mine = self.0.lock().unwrap();
        for (outcome, count) in counts {
            *mine.entry(outcome).or_default() += count;
        }
    }
}

/// The two tenants and what they hold.
#[derive(Clone, Serialize, Deserialize)]
struct Tenants {
    victim_key: String,
    attacker_key: String,
    quota_key: String,
    /// A second key of the quota workspace, for the check at the end: the attack's key may be
    /// deep in debt with the rate limiter by then (refused uploads are charged what they sent).
    quota_check_key: String,
}

/// One attack: how A runs it until told to stop, and the answers it must have had.
struct Attack {
    /// What `--neighbour-attacks` calls it.
    short: &'static str,
    name: &'static str,
    /// At least one of these outcomes must have been counted (the attack reached the server);
    /// none for the control, which sends nothing.
    expected: &'static [&'static str],
    /// Rounds of the attack per second, shared by its tasks: A spends its whole request allowance
    /// (the default rate limit, 100 requests a second per key and per address) on it. `None`: as
    /// fast as the client can go, far past the limit.
    per_second: Option<f64>,
}

/// A's request allowance under the default rate limit (6,000 a minute).
const ALLOWANCE_PER_SECOND: f64 = 100.0;

const ATTACKS: [Attack; 10] = [
    Attack {
        short: "chain",
        name: "folder chain at the depth cap: moves into its own subtree, recursive lists and searches",
        expected: &["409"],
        per_second: Some(ALLOWANCE_PER_SECOND / 3.0),
    },
    Attack {
        short: "unauthenticated",
        name: "unauthenticated 63 MB multipart bodies, 64 at once",
        expected: &["401", "connection closed"],
        per_second: Some(ALLOWANCE_PER_SECOND),
    },
    Attack {
        short: "trickle",
        name: "80 uploads trickling a byte every 2 s, past the per-workspace cap",
        expected: &["429"],
        per_second: None,
    },
    Attack {
        short: "unknown-size",
        name: "uploads of unknown size past the quota, 8 at once",
        expected: &["507"],
        per_second: Some(ALLOWANCE_PER_SECOND),
    },
    Attack {
        short: "images",
        name: "images: a decoding bomb and large flat PNGs, with their thumbnails",
        expected: &["422"],
        per_second: Some(ALLOWANCE_PER_SECOND / 3.0),
    },
    Attack {
        short: "slow-headers",
        name: "300 connections sending a header byte every 2 s",
        expected: &["connected"],
        per_second: None,
    },
    Attack {
        short: "nul",
        name: "NUL bytes in name filters",
        expected: &["400"],
        per_second: Some(ALLOWANCE_PER_SECOND / 3.0),
    },
    Attack {
        short: "flood",
        name: "flood: NUL-byte filters as fast as one client sends, past the rate limit",
        expected: &["400", "429"],
        per_second: None,
    },
    Attack {
        short: "photos",
        name: "12 MP JPEG photos, each uploaded and its thumbnail asked for",
        expected: &["200"],
        per_second: Some(ALLOWANCE_PER_SECOND / 3.0),
    },
    // The control: phases run exactly as an attack's, A's process started and stopped, but A sends
    // nothing. Its ratio is the spread of the measurement itself (quiet against quiet), the
    // yardstick for the attacks' ratios; it is reported, not judged.
    Attack {
        short: "idle",
        name: "none (the control: A's process runs, sends nothing)",
        expected: &[],
        per_second: None,
    },
];

/// The control's place in [`ATTACKS`].
const CONTROL: usize = ATTACKS.len() - 1;

/// The attacks' short names, for `--neighbour-attacks`.
pub fn attack_names() -> Vec<&'static str> {
    ATTACKS.iter().map(|attack| attack.short).collect()
}

/// Runs the attacks named in `only` (all when it is empty), each in `pairs` of a quiet phase and
/// an attack phase (2 by default, 1 with `--quick`).
pub async fn run(
    bench: &mut Bench,
    assert_ratio: Option<f64>,
    only: &[String],
    pairs: Option<usize>,
) -> Result<()> {
    let data = bench.path("neighbour");
    let key_of = |ws: &str| -> Result<String> {
        let key = admin(&bench.cabinet_bin, &data, None, &["create-key", "--workspace", ws])?;
        Ok(key["key"].as_str().context("a key secret")?.to_owned())
    };
    let create = |name: &str, quota: Option<u64>| -> Result<(String, String)> {
        let mut args = vec!["create-workspace".to_owned(), "--name".into(), name.into()];
        if let Some(quota) = quota {
            args.extend(["--quota-bytes".into(), quota.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ws = admin(&bench.cabinet_bin, &data, None, &args)?;
        let ws = ws["id"].as_str().context("a workspace id")?.to_owned();
        let key = key_of(&ws)?;
        Ok((ws, key))
    };
    let (quota_workspace, quota_key) = create("attacker-quota", Some(ATTACKER_QUOTA_BYTES))?;
    let tenants = Tenants {
        victim_key: create("victim", None)?.1,
        attacker_key: create("attacker", None)?.1,
        quota_key,
        quota_check_key: key_of(&quota_workspace)?,
    };
    // The deployment's defaults (rate limits included): what a hostile tenant meets in production.
    let server = Cabinet::start(&bench.cabinet_bin, &data, &["--rate-limit-per-minute", "6000"])?;
    let base = server.url.clone();
    let attacker = attacker_client()?;

    let mut victim = Victim {
        http: bench.http.clone(),
        base: base.clone(),
        key: tenants.victim_key.clone(),
        files: vec![],
        disk_probe: bench.path("neighbour-disk-probe"),
    };
    for n in 0..VICTIM_FILES {
        let id =
            upload_bytes(&victim.http, &base, &victim.key, &format!("report {n}.txt"), vec![n as u8; 4096])
                .await?;
        victim.files.push(id);
    }
    let setup = AttackSetup::prepare(&attacker, &base, &tenants, &bench.path("neighbour-images"))
        .await
        .context("preparing the attacks")?;

    // Each attack alternates with quiet phases (quiet, attack, quiet, attack), so B's quiet p99 is
    // taken next to the attack's, in the same state of the machine and of B's workspace.
    let (phase_rounds, repeats) = if bench.quick { (8, 1) } else { (50, 2) };
    let repeats = pairs.unwrap_or(repeats).max(1);
    // B's pace: a round every 150 ms keeps it well inside its own rate limit.
    let pace = Duration::from_millis(150);
    let warm_up = Duration::from_secs(if bench.quick { 2 } else { 3 });
    let mut under_attack = Vec::new();
    for (index, attack) in ATTACKS.iter().enumerate() {
        if !only.is_empty() && !only.iter().any(|name| name == attack.short) {
            continue;
        }
        let tally = Arc::new(Tally::default());
        let mut quiet: BTreeMap<&'static str, Samples> = BTreeMap::new();
        let mut timed: BTreeMap<&'static str, Samples> = BTreeMap::new();
        for _ in 0..repeats {
            for (op, samples) in &victim.rounds(phase_rounds, pace).await.context("B with A quiet")? {
                quiet.entry(op).or_default().extend(samples);
            }
            let attack_process = setup.spawn(index, &base, &tenants).await?;
            // Let the attack reach its steady state before B is timed.
            tokio::time::sleep(warm_up).await;
            let phase = victim
                .rounds(phase_rounds, pace)
                .await
                .with_context(|| format!("B under attack: {}", attack.name));
            tally.add(attack_process.stop().await.with_context(|| format!("stopping {:?}", attack.name))?);
            for (op, samples) in &phase? {
                timed.entry(op).or_default().extend(samples);
            }
        }
        let answers = tally.snapshot();
        if let Some(status) = answers.keys().find(|status| {
            (status.starts_with('5') && status.as_str() != "507") || status.as_str() == "timeout"
        }) {
            bail!("attack {:?} got a {status} from the server: {answers:?}", attack.name);
        }
        if index != CONTROL && !attack.expected.iter().any(|wanted| answers.contains_key(*wanted)) {
            bail!("attack {:?} never got any of {:?}: {answers:?}", attack.name, attack.expected);
        }
        under_attack.push((index, attack, quiet, timed, answers));
    }
    let quiet_used = setup.quota_used(&attacker, &base, &tenants).await?;
    if quiet_used > ATTACKER_QUOTA_BYTES {
        bail!("A's quota workspace holds {quiet_used} bytes, more than its quota of {ATTACKER_QUOTA_BYTES}");
    }

    let p99s = |samples: &BTreeMap<&'static str, Samples>| -> String {
        OPERATIONS
            .iter()
            .chain([&DISK_ALONE])
            .map(|op| format!("{op} {:.1}", samples.get(op).map_or(f64::NAN, |s| s.percentile(99.0))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut missed = Vec::new();
    for (index, attack, quiet, timed, answers) in under_attack {
        let mut worst = Samples::default();
        let ratio = OPERATIONS
            .iter()
            .map(|op| timed[op].percentile(99.0) / quiet[op].percentile(99.0))
            .fold(0.0, f64::max);
        worst.push(ratio);
        println!(
            "under \"{}\": B's p99 (ms) {} (quiet beside it: {}); worst ratio {ratio:.2}; A was answered {answers:?}",
            attack.name,
            p99s(&timed),
            p99s(&quiet)
        );
        let control = index == CONTROL;
        if !control && assert_ratio.is_some_and(|limit| ratio >= limit) {
            missed.push(format!("{} ({ratio:.2}×)", attack.name));
        }
        bench.rows.push(Row {
            figure: if control {
                "another tenant's p99 with A idle (the control: the measurement's own spread)".to_owned()
            } else {
                format!("another tenant's p99 under: {}", attack.name)
            },
            cabinet: p99s(&timed),
            baseline: format!("quiet: {}", p99s(&quiet)),
            judged: worst,
            judged_digits: 2,
            target: if control { Target::None } else { Target::Below(TARGET_RATIO) },
            unit: "×",
        });
    }
    drop(server);
    if !missed.is_empty() {
        bail!("B's p99 grew past the limit under: {}", missed.join("; "));
    }
    Ok(())
}

/// What every task of an attack holds: A's client and key, the attack's tally and its gate.
#[derive(Clone)]
struct Attacker {
    http: reqwest::Client,
    base: String,
    key: String,
    tally: Arc<Tally>,
    gate: Gate,
}

impl Attacker {
    /// Uploads `image` under a new name each round (`name_of(round)`) and asks for its
    /// thumbnail, until the gate closes: every upload is a render the server has not made.
    async fn thumbnails_of(self, image: Bytes, name_of: impl Fn(u64) -> String) {
        let Attacker { http, base, key, tally, gate } = self;
        let mut round = 0;
        while gate.open().await {
            round += 1;
            let Ok(id) = upload_bytes(&http, &base, &key, &name_of(round), image.to_vec()).await else {
                tally.count("upload refused");
                continue;
            };
            let thumbnail = http.get(format!("{base}/v1/files/{id}/thumbnail")).bearer_auth(&key);
            tally.status(thumbnail.send().await);
        }
    }
}

/// When an attack's tasks may send their next round: until the attack is stopped, each round
/// waits for its slot in the attack's pace (shared by all its tasks), or goes at once for a flood.
#[derive(Clone)]
struct Gate {
    stop: Arc<AtomicBool>,
    every: Option<Duration>,
    next: Arc<tokio::sync::Mutex<Instant>>,
}

impl Gate {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::SeqCst)
    }

    async fn open(&self) -> bool {
        if let Some(every) = self.every {
            let slot = {
                let mut next = self.next.lock().await;
                let slot = (*next).max(Instant::now());
                *next = slot + every;
                slot
            };
            tokio::time::sleep_until(slot.into()).await;
        }
        self.running()
    }
}

/// B: a tenant going about its business, one operation after another.
struct Victim {
    http: reqwest::Client,
    base: String,
    key: String,
    files: Vec<String>,
    /// Where the disk's own write and fsync is timed ([`DISK_ALONE`]).
    disk_probe: PathBuf,
}

impl Victim {
    /// `rounds` rounds of upload, download, list and search, one round per `pace`; each
    /// operation's latency in milliseconds. Any failure fails the figure.
    async fn rounds(&self, rounds: usize, pace: Duration) -> Result<BTreeMap<&'static str, Samples>> {
        let mut samples: BTreeMap<&'static str, Samples> = BTreeMap::new();
        let mut time = |op: &'static str, started: Instant| {
            samples.entry(op).or_default().push(started.elapsed().as_secs_f64() * 1000.0);
        };
        // A fresh folder each phase, as B's uploads are fresh files; emptied untimed after it.
        let _ = std::fs::remove_dir_all(&self.disk_probe);
        std::fs::create_dir_all(&self.disk_probe)?;
        for round in 0..rounds {
            let round_started = Instant::now();

            let started = Instant::now();
            let body = vec![(round % 251) as u8; VICTIM_UPLOAD_BYTES];
            upload_bytes(&self.http, &self.base, &self.key, &format!("upload {round}.bin"), body).await?;
            time("upload", started);

            let started = Instant::now();
            let file = &self.files[round % self.files.len()];
            let url = download_url(&self.http, &self.base, &self.key, file).await?;
            let response = self.http.get(url).send().await?;
            if !response.status().is_success() {
                bail!("B's download answered {}", response.status());
            }
            let bytes = response.bytes().await?;
            if bytes.len() != 4096 {
                bail!("B's download returned {} bytes, not 4096", bytes.len());
            }
            time("download", started);

            let started = Instant::now();
            let page =
                expect(self.http.get(format!("{}/v1/files?limit=50", self.base)).bearer_auth(&self.key), 200)
                    .await?;
            if page["data"].as_array().is_none_or(|files| files.is_empty()) {
                bail!("B's list came back empty: {page}");
            }
            time("list", started);

            let started = Instant::now();
            let found = expect(
                self.http.get(format!("{}/v1/search?q=report", self.base)).bearer_auth(&self.key),
                200,
            )
            .await?;
            if found["total"].as_u64() != Some(VICTIM_FILES as u64) {
                bail!("B's search found {} of its {VICTIM_FILES} reports", found["total"]);
            }
            time("search", started);

            let started = Instant::now();
            let probe = self.disk_probe.join(format!("{round}.bin"));
            let body = vec![(round % 251) as u8; VICTIM_UPLOAD_BYTES];
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                let mut file = std::fs::File::create(probe)?;
                std::io::Write::write_all(&mut file, &body)?;
                file.sync_all()
            })
            .await??;
            time(DISK_ALONE, started);

            if let Some(rest) = pace.checked_sub(round_started.elapsed()) {
                tokio::time::sleep(rest).await;
            }
        }
        std::fs::remove_dir_all(&self.disk_probe)?;
        Ok(samples)
    }
}

/// What the attacks need made before they start; the attacker process is given it whole.
#[derive(Clone, Serialize, Deserialize)]
struct AttackSetup {
    chain_top: String,
    chain_bottom: String,
    /// PNG files, written once, read by each attacker process.
    bomb: PathBuf,
    flat_image: PathBuf,
    /// A 12 MP baseline JPEG with a photo's statistics (what a camera uploads).
    photo: PathBuf,
}

/// The images the image attacks upload, read once by the attacker process.
struct Images {
    bomb: Bytes,
    flat: Bytes,
    photo: Bytes,
}

/// Everything the attacker process needs to run one attack.
#[derive(Serialize, Deserialize)]
struct AttackOrder {
    index: usize,
    base: String,
    tenants: Tenants,
    setup: AttackSetup,
}

/// What the attacker process prints once its tasks run.
const LAUNCHED: &str = "launched";

/// A running attacker process: it stops when its standard input closes, and then prints what A
/// was answered.
struct AttackProcess {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl AttackProcess {
    async fn stop(mut self) -> Result<BTreeMap<String, u64>> {
        drop(self.child.stdin.take());
        let answers = self.lines.next_line().await?.context("the attacker process printed no tally")?;
        let status = self.child.wait().await?;
        if !status.success() {
            bail!("the attacker process ended with {status}");
        }
        serde_json::from_str(&answers).with_context(|| format!("the attacker's tally {answers:?}"))
    }
}

/// The client A's requests go out on: its own loopback address, so its own per-address budgets.
fn attacker_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .local_address(ATTACKER_ADDRESS)
        .timeout(Duration::from_secs(120))
        .build()?)
}

/// The attacker process (`bench --neighbour-attacker ORDER`): runs the attack of `order` until
/// its standard input closes, then prints A's answers as JSON.
pub async fn attacker_process(order: &str) -> Result<()> {
    let order: AttackOrder = serde_json::from_str(order).context("the attack order")?;
    let images = Images {
        bomb: Bytes::from(std::fs::read(&order.setup.bomb)?),
        flat: Bytes::from(std::fs::read(&order.setup.flat_image)?),
        photo: Bytes::from(std::fs::read(&order.setup.photo)?),
    };
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let gate = Gate {
        stop: stop.clone(),
        every: ATTACKS[order.index].per_second.map(|rate| Duration::from_secs_f64(1.0 / rate)),
        next: Arc::new(tokio::sync::Mutex::new(Instant::now())),
    };
    let mut tasks = order.setup.launch(
        order.index,
        images,
        &attacker_client()?,
        &order.base,
        &order.tenants,
        &gate,
        &tally,
    );
    println!("{LAUNCHED}");
    let mut until_closed = Vec::new();
    tokio::io::stdin().read_to_end(&mut until_closed).await?;
    stop.store(true, Ordering::SeqCst);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    println!("{}", serde_json::to_string(&tally.snapshot())?);
    Ok(())
}

impl AttackSetup {
    async fn prepare(
        http: &reqwest::Client,
        base: &str,
        tenants: &Tenants,
        images: &std::path::Path,
    ) -> Result<Self> {
        let key = &tenants.attacker_key;
        let mut parent: Option<String> = None;
        let mut chain = Vec::new();
        for depth in 0..MAX_FOLDER_DEPTH {
            let folder = expect(
                http.post(format!("{base}/v1/folders"))
                    .bearer_auth(key)
                    .json(&json!({"name": format!("level {depth}"), "parent_id": parent})),
                201,
            )
            .await?;
            let id = folder["id"].as_str().context("a folder id")?.to_owned();
            chain.push(id.clone());
            parent = Some(id);
        }
        // One more level is refused: the chain is exactly as deep as the server allows.
        expect(
            http.post(format!("{base}/v1/folders"))
                .bearer_auth(key)
                .json(&json!({"name": "one too deep", "parent_id": parent})),
            409,
        )
        .await?;
        std::fs::create_dir_all(images)?;
        let (bomb, flat_image) = (images.join("bomb.png"), images.join("flat.png"));
        let photo = images.join("photo.jpg");
        let bomb_bytes = tokio::task::spawn_blocking(|| png(6300, 6300, png::BitDepth::Sixteen)).await?;
        let flat_bytes = tokio::task::spawn_blocking(|| png(6000, 6000, png::BitDepth::Eight)).await?;
        let photo_bytes = tokio::task::spawn_blocking(|| -> Result<Vec<u8>> {
            let mut jpeg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
                .encode_image(&crate::thumbs::photo_like(4000, 3000))?;
            Ok(jpeg)
        })
        .await??;
        std::fs::write(&bomb, bomb_bytes)?;
        std::fs::write(&flat_image, flat_bytes)?;
        std::fs::write(&photo, photo_bytes)?;
        Ok(Self {
            chain_top: chain[0].clone(),
            chain_bottom: chain[MAX_FOLDER_DEPTH - 1].clone(),
            bomb,
            flat_image,
            photo,
        })
    }

    /// Starts attack `index` in an attacker process of its own, at the lowest CPU priority.
    async fn spawn(&self, index: usize, base: &str, tenants: &Tenants) -> Result<AttackProcess> {
        let order =
            AttackOrder { index, base: base.to_owned(), tenants: tenants.clone(), setup: self.clone() };
        let mut child = tokio::process::Command::new("nice")
            .args(["-n", ATTACKER_NICENESS])
            .arg(std::env::current_exe()?)
            .arg("--neighbour-attacker")
            .arg(serde_json::to_string(&order)?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the attacker process")?;
        let mut lines = BufReader::new(child.stdout.take().context("the attacker's output")?).lines();
        match lines.next_line().await? {
            Some(line) if line == LAUNCHED => Ok(AttackProcess { child, lines }),
            other => bail!("the attacker process said {other:?} instead of {LAUNCHED:?}"),
        }
    }

    /// The bytes A's quota workspace holds.
    async fn quota_used(&self, http: &reqwest::Client, base: &str, tenants: &Tenants) -> Result<u64> {
        let quota =
            expect(http.get(format!("{base}/v1/quota")).bearer_auth(&tenants.quota_check_key), 200).await?;
        quota["used_bytes"].as_u64().with_context(|| format!("no used_bytes in {quota}"))
    }

    /// Starts attack `index`: its tasks run until the gate closes (or they are aborted).
    #[allow(clippy::too_many_arguments)]
    fn launch(
        &self,
        index: usize,
        images: Images,
        http: &reqwest::Client,
        base: &str,
        tenants: &Tenants,
        gate: &Gate,
        tally: &Arc<Tally>,
    ) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        let a = Attacker {
            http: http.clone(),
            base: base.to_owned(),
            key: tenants.attacker_key.clone(),
            tally: tally.clone(),
            gate: gate.clone(),
        };
        match index {
            0 => {
                for _ in 0..4 {
                    let Attacker { http, base, key, tally, gate } = a.clone();
                    let (top, bottom) = (self.chain_top.clone(), self.chain_bottom.clone());
                    tasks.spawn(async move {
                        while gate.open().await {
                            let into_itself = http
                                .patch(format!("{base}/v1/folders/{top}"))
                                .bearer_auth(&key)
                                .json(&json!({"parent_id": bottom}));
                            tally.status(into_itself.send().await);
                            let list = http
                                .get(format!("{base}/v1/files?folder_id={top}&recursive=true"))
                                .bearer_auth(&key);
                            tally.status(list.send().await);
                            let search = http
                                .get(format!("{base}/v1/search?q=level&folder_id={top}&recursive=true"))
                                .bearer_auth(&key);
                            tally.status(search.send().await);
                        }
                    });
                }
            }
            1 => {
                for _ in 0..64 {
                    let Attacker { http, base, tally, gate, .. } = a.clone();
                    tasks.spawn(async move {
                        while gate.open().await {
                            let request = http
                                .post(format!("{base}/compat/cms/files/"))
                                .header("content-type", "multipart/form-data; boundary=x")
                                .body(repeated_bytes(b'a', 63 << 20));
                            tally.status(request.send().await);
                        }
                    });
                }
            }
            2 => {
                for n in 0..80 {
                    let Attacker { http, base, key, tally, .. } = a.clone();
                    tasks.spawn(async move {
                        let reserved = http
                            .post(format!("{base}/v1/uploads"))
                            .bearer_auth(&key)
                            .json(&json!({"name": format!("trickle {n}"), "size": 1 << 20}))
                            .send()
                            .await;
                        let url = match reserved {
                            Ok(response) if response.status().as_u16() == 201 => {
                                tally.count("reserved");
                                let ticket: Value = response.json().await.unwrap_or_default();
                                ticket["upload_url"].as_str().unwrap_or_default().to_owned()
                            }
                            other => return tally.status(other),
                        };
                        let trickle = futures::stream::unfold(false, |started| async move {
                            if started {
                                tokio::time::sleep(Duration::from_secs(2)).await;
                            }
                            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"x")), true))
                        });
                        tally.status(http.put(url).body(reqwest::Body::wrap_stream(trickle)).send().await);
                    });
                }
            }
            3 => {
                for n in 0..8 {
                    let Attacker { http, base, key, tally, gate } =
                        Attacker { key: tenants.quota_key.clone(), ..a.clone() };
                    tasks.spawn(async move {
                        while gate.open().await {
                            // A streamed part: no length, so the server learns the size at the end.
                            let file = reqwest::multipart::Part::stream(repeated_bytes(n as u8, 8 << 20))
                                .file_name(format!("unknown size {n}.bin"));
                            let form = reqwest::multipart::Form::new().part("file", file);
                            let upload =
                                http.post(format!("{base}/v1/files")).bearer_auth(&key).multipart(form);
                            tally.status(upload.send().await);
                        }
                    });
                }
            }
            4 => {
                for (n, image) in [images.bomb.clone(), images.flat.clone()].into_iter().enumerate() {
                    tasks
                        .spawn(a.clone().thumbnails_of(image, move |round| format!("image {n} {round}.png")));
                }
            }
            5 => {
                let address: SocketAddr =
                    base.trim_start_matches("http://").parse().expect("a socket address");
                for _ in 0..300 {
                    let Attacker { tally, gate, .. } = a.clone();
                    tasks.spawn(async move {
                        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
                        if socket.bind(SocketAddr::new(ATTACKER_ADDRESS, 0)).is_err() {
                            return tally.count("bind failed");
                        }
                        let Ok(mut stream) = socket.connect(address).await else {
                            return tally.count("refused");
                        };
                        tally.count("connected");
                        if stream.write_all(b"GET /v1/files HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.is_err() {
                            return tally.count("closed by the server");
                        }
                        while gate.running() {
                            tokio::time::sleep(Duration::from_secs(2)).await;
                            if stream.write_all(b"a").await.is_err() {
                                return tally.count("closed by the server");
                            }
                        }
                    });
                }
            }
            8 => {
                tasks.spawn(a.clone().thumbnails_of(images.photo, |round| format!("photo {round}.jpg")));
            }
            CONTROL => {}
            _ => {
                for _ in 0..4 {
                    let Attacker { http, base, key, tally, gate } = a.clone();
                    tasks.spawn(async move {
                        while gate.open().await {
                            for path in
                                ["/v1/search?q=ab%00cd", "/v1/files?q=ab%00cd", "/v1/folders?q=ab%01cd"]
                            {
                                tally
                                    .status(http.get(format!("{base}{path}")).bearer_auth(&key).send().await);
                            }
                        }
                    });
                }
            }
        }
        tasks
    }
}

/// A streamed body of `len` bytes of `byte` (whole 64 KiB chunks), of unknown length to the
/// server.
fn repeated_bytes(byte: u8, len: usize) -> reqwest::Body {
    const CHUNK: usize = 64 * 1024;
    let chunk = Bytes::from(vec![byte; CHUNK]);
    reqwest::Body::wrap_stream(futures::stream::repeat(chunk).take(len / CHUNK).map(Ok::<_, std::io::Error>))
}

/// A PNG in large flat blocks (it compresses to little and decodes to much), written a row at a
/// time: 16-bit RGB with a header that says interlaced (so it is decoded whole, not shrunk a row
/// at a time; the rows are written in order all the same) makes a decoding bomb, 8-bit a large
/// image inside the budget.
fn png(width: u32, height: u32, depth: png::BitDepth) -> Vec<u8> {
    let mut out = Vec::new();
    let bomb = depth == png::BitDepth::Sixteen;
    let mut info = png::Info::with_size(width, height);
    info.interlaced = bomb;
    let mut encoder = png::Encoder::with_info(&mut out, info).expect("a PNG encoder");
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(depth);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().expect("a PNG header");
    let sample_bytes = if depth == png::BitDepth::Sixteen { 2 } else { 1 };
    let mut stream = writer.stream_writer().expect("a PNG stream");
    let mut row = vec![0u8; width as usize * 3 * sample_bytes];
    for y in 0..height {
        if y % 64 == 0 {
            for (index, byte) in row.iter_mut().enumerate() {
                *byte = ((index / 192) as u32 * 37 + (y / 64) * 11) as u8;
            }
        }
        std::io::Write::write_all(&mut stream, &row).expect("a PNG row");
    }
    stream.finish().expect("the end of the PNG");
    writer.finish().expect("the PNG written");
    out
}
