//! Whole-file transfers, Cabinet against nginx with the same client (curl) and the same file:
//! a signed PUT of a random file with its sha256 declared (Cabinet verifies it; nginx's dav
//! module only stores), both deleting the previous target first (untimed); then a signed GET of
//! the stored file against nginx's GET of its copy, page cache warm for both.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::client;
use crate::processes::{curl, Cabinet, Nginx};
use crate::stats::{Row, Samples, Target};
use crate::Bench;

const MIB: f64 = (1 << 20) as f64;

/// Writes `size` random bytes to `path`; returns their sha256.
pub fn random_file(path: &Path, size: u64) -> Result<String> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut rng = rand::thread_rng();
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        rng.fill_bytes(&mut chunk[..n]);
        hasher.update(&chunk[..n]);
        out.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(hex::encode(hasher.finalize()))
}

pub fn sha256_of(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

fn mib_per_second(size: u64, took: Duration) -> f64 {
    size as f64 / MIB / took.as_secs_f64()
}

/// Writes every dirty page out before a timed upload. nginx never flushes what it stores, so its
/// last gigabyte would otherwise still be going to the disk during whichever upload came next.
pub(crate) fn settle_disk() -> Result<()> {
    let status = std::process::Command::new("sync").status().context("running sync")?;
    if !status.success() {
        bail!("sync failed: {status}");
    }
    Ok(())
}

/// The same file uploaded to Cabinet (reserved, then `curl -T` to the signed URL) and to nginx's
/// dav module (`curl -T`), each replacing its previous copy first (untimed).
pub struct Upload<'a> {
    pub bench: &'a Bench,
    /// The server, whose CPU time each upload is charged.
    pub server: &'a Cabinet,
    /// Where Cabinet's API is reached.
    pub api: &'a str,
    pub key: &'a str,
    /// Where nginx's dav module is reached.
    pub dav: &'a str,
    pub file: &'a str,
    pub size: u64,
    pub sha256: &'a str,
    /// Cabinet's current copy, deleted before the next upload.
    pub stored: Option<String>,
    /// The server's CPU time per MiB of each upload, in ms: what a rate is made of when the cores
    /// are shared.
    pub cpu_per_mib: Samples,
}

impl Upload<'_> {
    async fn cabinet(&mut self) -> Result<Duration> {
        if let Some(previous) = self.stored.take() {
            client::purge(&self.bench.http, self.api, self.key, &previous).await?;
        }
        let url =
            client::reserve(&self.bench.http, self.api, self.key, "big.bin", self.size, Some(self.sha256))
                .await?;
        settle_disk()?;
        let cpu_before = self.server.cpu_seconds()?;
        let (took, status, body) = curl(&["-T", self.file, &url])?;
        let cpu = self.server.cpu_seconds()? - cpu_before;
        self.cpu_per_mib.push(cpu * 1000.0 / (self.size as f64 / MIB));
        if status != 200 {
            bail!("Cabinet PUT answered {status}: {body}");
        }
        self.stored = Some(client::succeeded(&serde_json::from_str(&body)?, self.size, Some(self.sha256))?);
        Ok(took)
    }

    fn nginx(&self) -> Result<Duration> {
        let url = format!("{}/big.bin", self.dav);
        curl(&["-X", "DELETE", "-o", "/dev/null", &url])?;
        settle_disk()?;
        let (took, status, body) = curl(&["-T", self.file, &url])?;
        if status != 201 && status != 204 {
            bail!("nginx PUT answered {status}: {body}");
        }
        Ok(took)
    }

    /// `rounds` uploads to each, alternating who goes first; MiB/s of Cabinet's, of nginx's, and
    /// their ratio, round by round.
    pub async fn rounds(&mut self, rounds: usize, figure: &str) -> Result<[Samples; 3]> {
        let (mut ours, mut theirs, mut ratio) = (Samples::default(), Samples::default(), Samples::default());
        for round in 0..rounds {
            // Alternate who goes first, so drift over the run hits both alike.
            let (a, b) = in_turns!(round, self.cabinet().await?, self.nginx()?);
            let (a, b) = (mib_per_second(self.size, a), mib_per_second(self.size, b));
            let cpu = self.cpu_per_mib.last().unwrap_or_default();
            eprintln!(
                "{figure} round {round}: Cabinet {a:.0} MiB/s ({cpu:.2} ms of its CPU a MiB), nginx {b:.0} MiB/s, ratio {:.2}",
                a / b
            );
            ours.push(a);
            theirs.push(b);
            ratio.push(a / b);
        }
        Ok([ours, theirs, ratio])
    }
}

pub async fn run(bench: &mut Bench, upload: bool, download: bool) -> Result<()> {
    let size: u64 = if bench.quick { 32 << 20 } else { 1 << 30 };
    let file = bench.path("big.bin");
    let sha256 = random_file(&file, size)?;
    let nginx = Nginx::start(&bench.path("nginx"))?;
    let cabinet = Cabinet::start(&bench.cabinet_bin, &bench.path("cabinet-transfer"), &[])?;
    let key = cabinet.key.clone().unwrap_or_default();
    let file_arg = file.to_string_lossy().into_owned();
    let mut up = Upload {
        bench,
        server: &cabinet,
        api: &cabinet.url,
        key: &key,
        dav: &nginx.url,
        file: &file_arg,
        size,
        sha256: &sha256,
        stored: None,
        cpu_per_mib: Samples::default(),
    };
    let label = if bench.quick { "32 MiB" } else { "1 GiB" };

    let rounds = if upload { bench.rounds } else { 1 };
    let [ours, theirs, ratio] = up.rounds(rounds, "upload").await?;
    let stored = up.stored.clone().expect("an uploaded file");
    if upload {
        bench.rows.push(Row {
            figure: format!("signed PUT upload of {label}, sha256 verified (MiB/s; ratio to nginx)"),
            cabinet: format!(
                "{:.0} MiB/s, {:.2} ms of its CPU a MiB",
                ours.median(),
                up.cpu_per_mib.median()
            ),
            baseline: format!("nginx dav PUT {:.0} MiB/s", theirs.median()),
            judged: ratio,
            judged_digits: 2,
            target: Target::AtLeast(0.9),
            unit: "×",
        });
    }

    if download {
        let url = client::download_url(&bench.http, &cabinet.url, &key, &stored).await?;
        let nginx_url = format!("{}/big.bin", nginx.url);
        // Warm both copies into the page cache, and check both are the file.
        let check = bench.path("check.bin");
        for from in [&url, &nginx_url] {
            let (_, status, _) = curl(&["-o", &check.to_string_lossy(), from])?;
            if status != 200 || sha256_of(&check)? != sha256 {
                bail!("GET {from} did not return the file (status {status})");
            }
            std::fs::remove_file(&check)?;
        }
        let get = |from: &str| -> Result<Duration> {
            let (took, status, _) = curl(&["-o", "/dev/null", from])?;
            if status != 200 {
                bail!("GET {from} answered {status}");
            }
            Ok(took)
        };
        let (mut ours, mut theirs, mut ratio) = (Samples::default(), Samples::default(), Samples::default());
        for round in 0..bench.rounds {
            let (a, b) = in_turns!(round, get(&url)?, get(&nginx_url)?);
            let (a, b) = (mib_per_second(size, a), mib_per_second(size, b));
            eprintln!("download round {round}: Cabinet {a:.0} MiB/s, nginx {b:.0} MiB/s, ratio {:.2}", a / b);
            ours.push(a);
            theirs.push(b);
            ratio.push(a / b);
        }
        bench.rows.push(Row {
            figure: format!("signed GET download of {label}, page cache warm (MiB/s; ratio to nginx)"),
            cabinet: format!("{:.0} MiB/s", ours.median()),
            baseline: format!("nginx GET {:.0} MiB/s", theirs.median()),
            judged: ratio,
            judged_digits: 2,
            target: Target::AtLeast(0.9),
            unit: "×",
        });
    }
    drop(cabinet);
    drop(nginx);
    std::fs::remove_dir_all(bench.path("cabinet-transfer"))?;
    std::fs::remove_dir_all(bench.path("nginx"))?;
    std::fs::remove_file(&file)?;
    Ok(())
}
