//! The S3 surface with rclone: `rclone copy` of one large file (1 GiB, as multipart) and of a
//! folder of 1,000 files of 1 KiB through Cabinet's S3 surface (`serve --s3-listen`, blobs on the
//! local folder, every object verified and committed as a file) against the same copy straight to
//! s3s-fs on the same machine (its objects on the same disk): same client, same flags, rounds
//! alternating who goes first. Cabinet's copy is checked afterwards with `rclone check` (untimed);
//! Cabinet's is removed before the next round.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::processes::{admin, Cabinet};
use crate::stats::{Row, Samples, Target};
use crate::transfer::random_file;
use crate::Bench;

const MIB: f64 = (1 << 20) as f64;

/// rclone with two remotes from the environment: `cab` (Cabinet's S3 surface) and `base` (s3s-fs).
struct Rclone {
    env: Vec<(String, String)>,
}

impl Rclone {
    fn new(
        cabinet_endpoint: &str,
        cabinet_key: (&str, &str),
        base_endpoint: &str,
        base_key: (&str, &str),
    ) -> Self {
        let mut env = Vec::new();
        for (remote, endpoint, (id, secret)) in
            [("CAB", cabinet_endpoint, cabinet_key), ("BASE", base_endpoint, base_key)]
        {
            let mut set = |name: &str, value: &str| {
                env.push((format!("RCLONE_CONFIG_{remote}_{name}"), value.to_owned()))
            };
            set("TYPE", "s3");
            set("PROVIDER", "Other");
            set("ENDPOINT", endpoint);
            set("REGION", "us-east-1");
            set("ACCESS_KEY_ID", id);
            set("SECRET_ACCESS_KEY", secret);
        }
        // Both buckets exist: neither side is asked to create one.
        env.push(("RCLONE_S3_NO_CHECK_BUCKET".to_owned(), "true".to_owned()));
        Self { env }
    }

    fn run(&self, args: &[&str]) -> Result<Duration> {
        let started = Instant::now();
        let mut command = Command::new("rclone");
        // Only the remotes configured here: nothing of the caller's AWS or rclone settings.
        for (name, _) in std::env::vars() {
            if name.starts_with("AWS_") || name.starts_with("RCLONE_") {
                command.env_remove(name);
            }
        }
        let output = command
            .args(args)
            .args(["--config", "/dev/null", "--transfers", "16", "--checkers", "16"])
            .envs(self.env.iter().map(|(name, value)| (name.as_str(), value.as_str())))
            .stdin(Stdio::null())
            .output()
            .context("running rclone (Debian's `rclone` package)")?;
        let took = started.elapsed();
        if !output.status.success() {
            bail!("rclone {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(took)
    }
}

/// `s3://bucket?endpoint=…` → (bucket, endpoint).
fn bucket_and_endpoint(url: &str) -> Result<(String, String)> {
    let (location, query) = url.split_once('?').unwrap_or((url, ""));
    let bucket = location.strip_prefix("s3://").context("an s3:// URL")?.trim_end_matches('/');
    let endpoint = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("endpoint="))
        .context("the S3 URL names its endpoint")?;
    Ok((bucket.to_owned(), endpoint.to_owned()))
}

fn small_tree(dir: &Path, files: usize) -> Result<()> {
    for index in 0..files {
        let sub = dir.join(format!("d{}", index % 10));
        std::fs::create_dir_all(&sub)?;
        let bytes: Vec<u8> = (0..1024).map(|_| rand::random::<u8>()).collect();
        std::fs::write(sub.join(format!("f{index}.bin")), bytes)?;
    }
    Ok(())
}

pub async fn run(bench: &mut Bench, s3_url: &str) -> Result<()> {
    let (size, files) = if bench.quick { (32u64 << 20, 100) } else { (1 << 30, 1000) };
    // A folder holding the one file: rclone copies and checks folders alike.
    let big = bench.path("rclone-big");
    std::fs::create_dir_all(&big)?;
    random_file(&big.join("big.bin"), size)?;
    let tree = bench.path("rclone-tree");
    small_tree(&tree, files)?;
    let data = bench.path("cabinet-s3-surface");
    let cabinet = Cabinet::start(&bench.cabinet_bin, &data, &["--s3-listen", "127.0.0.1:0"])?;
    let endpoint = cabinet.s3_url.clone().context("the S3 surface's address")?;
    let workspace = cabinet.workspace.clone().context("the bootstrap workspace")?;
    let workspaces = admin(&bench.cabinet_bin, &data, None, &["list-workspaces"])?;
    let bucket = workspaces
        .as_array()
        .and_then(|all| all.iter().find(|w| w["id"] == workspace.as_str()))
        .and_then(|w| w["name"].as_str())
        .context("the workspace's name")?
        .to_owned();
    let s3_key = admin(&bench.cabinet_bin, &data, None, &["create-s3-key", "--workspace", &workspace])?;
    let key_pair = |value: &serde_json::Value, field: &str| value[field].as_str().map(str::to_owned);
    let (id, secret) = (
        key_pair(&s3_key, "access_key_id").context("an access key id")?,
        key_pair(&s3_key, "secret_access_key").context("a secret")?,
    );
    let (base_bucket, base_endpoint) = bucket_and_endpoint(s3_url)?;
    let (base_id, base_secret) =
        (std::env::var("AWS_ACCESS_KEY_ID")?, std::env::var("AWS_SECRET_ACCESS_KEY")?);
    let rclone = Rclone::new(&endpoint, (&id, &secret), &base_endpoint, (&base_id, &base_secret));
    let http_key = cabinet.key.clone().unwrap_or_default();
    let (big_arg, tree_arg) = (big.to_string_lossy().into_owned(), tree.to_string_lossy().into_owned());

    // A prefix of this run's own in the shared bucket.
    let run = format!("bench-rclone-{}-{}", std::process::id(), chrono::Utc::now().timestamp());
    let mut figures = Vec::new();
    for (what, source, amount) in [("big", &big_arg, size), ("small", &tree_arg, files as u64 * 1024)] {
        let (mut ours, mut theirs, mut ratio) = (Samples::default(), Samples::default(), Samples::default());
        for round in 0..bench.rounds {
            let ours_at = format!("cab:{bucket}/bench-{what}-{round}");
            let theirs_at = format!("base:{base_bucket}/{run}/{what}-{round}");
            let copy = |to: &str| rclone.run(&["copy", source, to]);
            let (a, b) = in_turns!(round, copy(&ours_at)?, copy(&theirs_at)?);
            // Cabinet's copy is checked (sizes and MD5s, which rclone keeps in the objects' metadata);
            // the baseline is the reference.
            rclone.run(&["check", source, &ours_at]).with_context(|| format!("rclone check of {ours_at}"))?;
            rclone.run(&["purge", &ours_at])?;
            // The baseline's copies stay until the run ends (dev/bench's s3s-fs is thrown away):
            // rclone's listing of s3s-fs for a purge stalls for minutes.
            // What the purge moved to Cabinet's trash goes too, so the disk holds one copy.
            bench
                .http
                .delete(format!("{}/v1/trash", cabinet.url))
                .bearer_auth(&http_key)
                .send()
                .await?
                .error_for_status()?;
            let (a, b) = (amount as f64 / MIB / a.as_secs_f64(), amount as f64 / MIB / b.as_secs_f64());
            eprintln!(
                "s3 surface {what} round {round}: Cabinet {a:.1} MiB/s, s3s-fs {b:.1} MiB/s, ratio {:.2}",
                a / b
            );
            ours.push(a);
            theirs.push(b);
            ratio.push(a / b);
        }
        figures.push((what, ours, theirs, ratio));
    }
    let label = if bench.quick { "32 MiB" } else { "1 GiB" };
    for (what, ours, theirs, ratio) in figures {
        let (figure, cabinet_figure, baseline) = if what == "big" {
            (
                format!("`rclone copy` of one {label} file (multipart) through the S3 surface (MiB/s; ratio to s3s-fs)"),
                format!("{:.0} MiB/s", ours.median()),
                format!("s3s-fs {:.0} MiB/s", theirs.median()),
            )
        } else {
            (
                format!("`rclone copy` of {files} files of 1 KiB through the S3 surface (files/s; ratio to s3s-fs)"),
                format!("{:.0} files/s", ours.median() * 1024.0),
                format!("s3s-fs {:.0} files/s", theirs.median() * 1024.0),
            )
        };
        bench.rows.push(Row {
            figure,
            cabinet: cabinet_figure,
            baseline,
            judged: ratio,
            judged_digits: 2,
            target: Target::None,
            unit: "×",
        });
    }
    drop(cabinet);
    std::fs::remove_dir_all(&data)?;
    std::fs::remove_dir_all(&tree)?;
    std::fs::remove_dir_all(&big)?;
    Ok(())
}
