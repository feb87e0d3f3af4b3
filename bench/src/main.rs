//! `bench`: measures Cabinet against a baseline in the same run, alternating A and B round by
//! round, and prints each figure as a ratio with its median and spread (absolute times on a
//! shared machine drift; same-run ratios do not). `dev/bench` installs the baselines and runs it.
//!
//! ```text
//! cargo run -p bench --release -- [--quick] [--only upload,download,s3,small,cache,reserve,ingest,memory,proxy,connections,scale,neighbour,tus,s3surface,thumbs,webhooks,outbox,waiting]
//! ```

/// `(a, b)`: `a` evaluated first in even rounds and `b` first in odd ones (each may `.await` and
/// `?`), so that drift over a run falls on both sides alike.
macro_rules! in_turns {
    ($round:expr, $a:expr, $b:expr) => {
        if $round % 2 == 0 {
            let a = $a;
            (a, $b)
        } else {
            let b = $b;
            ($a, b)
        }
    };
}

mod cache;
mod client;
mod connections;
mod memory;
mod neighbour;
mod processes;
mod proxy;
mod rates;
mod s3;
mod s3_surface;
mod scale;
mod stats;
mod thumbs;
mod transfer;
mod tus;
mod webhooks;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::stats::{Row, TABLE_HEADER};

/// Every figure, in the order they run.
const FIGURES: &[&str] = &[
    "upload",
    "download",
    "s3",
    "small",
    "cache",
    "reserve",
    "ingest",
    "memory",
    "proxy",
    "connections",
    "scale",
    "neighbour",
    "tus",
    "s3surface",
    "thumbs",
    "webhooks",
    "outbox",
    "waiting",
];

#[derive(Debug, Parser)]
#[command(about = "Cabinet against its baselines, same run, alternating; ratios with medians and spreads")]
struct Args {
    /// Small sizes and short runs: seconds, for CI. Checks results, never judges timings.
    #[arg(long)]
    quick: bool,
    /// Comma-separated figures to run (default: all): upload, download, s3, small, cache, reserve, ingest, memory,
    /// proxy, connections, scale, neighbour, tus, s3surface, thumbs, webhooks, outbox, waiting.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Rounds per A/B figure (default: 5, or 2 with --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// The `cabinet` release binary (default: next to this one).
    #[arg(long)]
    cabinet: Option<PathBuf>,
    /// Scratch folder for data, files and baselines; emptied before and removed after.
    #[arg(long, default_value = "/tmp/cabinet-bench")]
    work: PathBuf,
    /// Workspace sizes for the list/search figure (default: 10000,100000,1000000; --quick: 2000).
    #[arg(long, value_delimiter = ',')]
    scale_sizes: Vec<u64>,
    /// Fail if Cabinet's median list or search latency at any size is this many ms or more.
    #[arg(long)]
    assert_scale_ms: Option<f64>,
    /// Fail if another tenant's p99 under any of the noisy-neighbour attacks is this many times its
    /// quiet p99 or more (the target is 2).
    #[arg(long)]
    assert_neighbour_ratio: Option<f64>,
    /// Comma-separated noisy-neighbour attacks to run (default: all): chain, unauthenticated,
    /// trickle, unknown-size, images, slow-headers, nul, flood, photos, and idle (the control: A sends
    /// nothing, so its ratio is the measurement's own spread; reported, never judged).
    #[arg(long, value_delimiter = ',')]
    neighbour_attacks: Vec<String>,
    /// How many times each noisy-neighbour attack alternates a quiet phase and an attack phase
    /// (50 of B's rounds each; default 2, 1 with --quick): more pairs, a steadier p99.
    #[arg(long)]
    neighbour_pairs: Option<usize>,
    /// PostgreSQL URL of an empty database: the list/search figure also runs on it
    /// (dev/bench starts one with dev/postgres).
    #[arg(long, env = "CABINET_BENCH_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// The S3 server for the S3 figure, as `s3://bucket?endpoint=…&region=…` with credentials in
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (dev/bench starts s3s-fs with dev/s3-server).
    #[arg(long, env = "CABINET_BENCH_S3_URL")]
    s3_url: Option<String>,
    /// Internal: run as the noisy-neighbour figure's attacker process, with this order.
    #[arg(long, hide = true)]
    neighbour_attacker: Option<String>,
    /// Internal: make a thumbnail of this file with Cabinet's codec, in this process (the thumbs
    /// figure's measured process), and exit.
    #[arg(long, hide = true, requires = "thumbnail_out")]
    thumbnail_of: Option<PathBuf>,
    #[arg(long, hide = true, default_value_t = 256)]
    thumbnail_size: u32,
    #[arg(long, hide = true)]
    thumbnail_out: Option<PathBuf>,
    /// Internal: with --thumbnail-of, decode the image whole first (as before shrink-on-load).
    #[arg(long, hide = true)]
    thumbnail_decoding_whole: bool,
}

/// What every figure gets.
pub struct Bench {
    pub cabinet_bin: PathBuf,
    pub work: PathBuf,
    pub quick: bool,
    pub rounds: usize,
    pub http: reqwest::Client,
    pub rows: Vec<Row>,
}

impl Bench {
    /// A scratch path under the work folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let (Some(source), Some(out)) = (&args.thumbnail_of, &args.thumbnail_out) {
        // Before any runtime is started: the process measured is the codec's alone.
        return thumbs::thumbnail_process(source, args.thumbnail_size, out, args.thumbnail_decoding_whole);
    }
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(bench(args))
}

async fn bench(args: Args) -> Result<()> {
    if let Some(order) = &args.neighbour_attacker {
        return neighbour::attacker_process(order).await;
    }
    let attacks = neighbour::attack_names();
    if let Some(name) = args.neighbour_attacks.iter().find(|name| !attacks.contains(&name.as_str())) {
        bail!("unknown attack {name:?}; the attacks are {attacks:?}");
    }
    for name in &args.only {
        if !FIGURES.contains(&name.as_str()) {
            bail!("unknown figure {name:?}; the figures are {FIGURES:?}");
        }
    }
    let cabinet_bin = match args.cabinet.clone() {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("cabinet"),
    };
    if !cabinet_bin.exists() {
        bail!("{} not found: build it with `cargo build --release -p cabinet`", cabinet_bin.display());
    }
    if args.work.exists() {
        std::fs::remove_dir_all(&args.work).with_context(|| format!("emptying {}", args.work.display()))?;
    }
    std::fs::create_dir_all(&args.work)?;
    let mut bench = Bench {
        cabinet_bin,
        work: args.work.clone(),
        quick: args.quick,
        rounds: args.rounds.unwrap_or(if args.quick { 2 } else { 5 }),
        http: client::http()?,
        rows: Vec::new(),
    };
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let result = run(&mut bench, &args, wanted).await;
    // Big files live only here; never leave them behind.
    let _ = std::fs::remove_dir_all(&args.work);
    println!("\n{TABLE_HEADER}");
    for row in &bench.rows {
        println!("{}", row.markdown());
    }
    result
}

async fn run(bench: &mut Bench, args: &Args, wanted: impl Fn(&str) -> bool) -> Result<()> {
    if wanted("upload") || wanted("download") {
        transfer::run(bench, wanted("upload"), wanted("download")).await.context("upload/download")?;
    }
    if wanted("s3") {
        match &args.s3_url {
            Some(url) => s3::run(bench, url).await.context("S3 presigned PUT")?,
            None if !args.only.is_empty() => bail!("the s3 figure needs --s3-url (dev/bench starts s3s-fs)"),
            None => eprintln!("skipping the s3 figure: no --s3-url (dev/bench starts s3s-fs)"),
        }
    }
    if wanted("small") {
        rates::small_gets(bench, None).await.context("small GETs")?;
        if let Some(url) = &args.postgres_url {
            rates::small_gets(bench, Some(url)).await.context("small GETs on PostgreSQL")?;
        }
    }
    if wanted("cache") {
        cache::run(bench).await.context("caching proxy")?;
    }
    if wanted("reserve") {
        rates::reserve(bench).await.context("reserve")?;
    }
    if wanted("ingest") {
        rates::ingest(bench).await.context("small-file ingest")?;
    }
    if wanted("waiting") {
        rates::waiting_reservations(bench).await.context("uploads while another workspace's wait")?;
    }
    if wanted("memory") {
        memory::run(bench).await.context("memory")?;
    }
    if wanted("proxy") {
        proxy::run(bench).await.context("upload through a reverse proxy")?;
    }
    if wanted("connections") {
        connections::run(bench).await.context("idle connections and concurrent uploads")?;
    }
    if wanted("scale") {
        let sizes = if !args.scale_sizes.is_empty() {
            args.scale_sizes.clone()
        } else if bench.quick {
            vec![2_000]
        } else {
            vec![10_000, 100_000, 1_000_000]
        };
        scale::run(bench, &sizes, None, args.assert_scale_ms).await.context("list/search on SQLite")?;
        if let Some(url) = &args.postgres_url {
            scale::run(bench, &sizes, Some(url), args.assert_scale_ms)
                .await
                .context("list/search on PostgreSQL")?;
        }
    }
    if wanted("s3surface") {
        match &args.s3_url {
            Some(url) => s3_surface::run(bench, url).await.context("rclone through the S3 surface")?,
            None if !args.only.is_empty() => {
                bail!("the s3surface figure needs --s3-url (dev/bench starts s3s-fs)")
            }
            None => eprintln!("skipping the s3surface figure: no --s3-url (dev/bench starts s3s-fs)"),
        }
    }
    if wanted("tus") {
        tus::run(bench).await.context("tus against the signed PUT")?;
    }
    if wanted("thumbs") {
        thumbs::run(bench).await.context("thumbnails against vipsthumbnail")?;
    }
    if wanted("webhooks") {
        webhooks::run(bench).await.context("webhook delivery")?;
    }
    if wanted("outbox") {
        webhooks::outbox_cost(bench).await.context("the outbox's cost")?;
    }
    if wanted("neighbour") {
        neighbour::run(bench, args.assert_neighbour_ratio, &args.neighbour_attacks, args.neighbour_pairs)
            .await
            .context("noisy neighbour")?;
    }
    Ok(())
}
