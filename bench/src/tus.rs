//! A tus upload against Cabinet's own signed PUT, same server, same file, same client (curl):
//! the tus upload is its creation (`POST /tus/v1/` with the sha256 in `Upload-Metadata`) and one
//! `PATCH` of the whole file, as tus-js-client and Uppy send it by default; the signed PUT is
//! `POST /v1/uploads` and the `PUT`. Both verify the sha256 and end with the file created.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine;

use crate::client;
use crate::processes::{curl, Cabinet};
use crate::stats::{Row, Samples, Target};
use crate::transfer::random_file;
use crate::Bench;

const MIB: f64 = (1 << 20) as f64;

fn mib_per_second(size: u64, took: Duration) -> f64 {
    size as f64 / MIB / took.as_secs_f64()
}

/// `POST /v1/uploads`, then the file with `PUT` to the signed URL (timed from the reservation).
async fn signed_put(
    bench: &Bench,
    cabinet: &Cabinet,
    key: &str,
    file: &str,
    size: u64,
    sha256: &str,
) -> Result<Duration> {
    let started = std::time::Instant::now();
    let url = client::reserve(&bench.http, &cabinet.url, key, "put.bin", size, Some(sha256)).await?;
    let (_, status, body) = curl(&["-T", file, &url])?;
    let took = started.elapsed();
    if status != 200 {
        bail!("Cabinet PUT answered {status}: {body}");
    }
    client::succeeded(&serde_json::from_str(&body)?, size, Some(sha256))?;
    Ok(took)
}

pub async fn run(bench: &mut Bench) -> Result<()> {
    let size: u64 = if bench.quick { 32 << 20 } else { 1 << 30 };
    let file = bench.path("tus.bin");
    let sha256 = random_file(&file, size)?;
    let cabinet = Cabinet::start(&bench.cabinet_bin, &bench.path("cabinet-tus"), &[])?;
    let key = cabinet.key.clone().unwrap_or_default();
    let file_arg = file.to_string_lossy().into_owned();
    let auth = format!("Authorization: Bearer {key}");
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let metadata = format!("Upload-Metadata: filename {},sha256 {}", encode("tus.bin"), encode(&sha256));
    let label = if bench.quick { "32 MiB" } else { "1 GiB" };

    let tus = || -> Result<Duration> {
        let started = std::time::Instant::now();
        let (_, status, headers) = curl(&[
            "-X",
            "POST",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            &auth,
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            &format!("Upload-Length: {size}"),
            "-H",
            &metadata,
            &format!("{}/tus/v1/", cabinet.url),
        ])?;
        if status != 201 {
            bail!("tus creation answered {status}");
        }
        let location = headers
            .lines()
            .find_map(|line| line.strip_prefix("location: ").or_else(|| line.strip_prefix("Location: ")))
            .context("a Location")?
            .trim()
            .to_owned();
        let (_, status, body) = curl(&[
            "-X",
            "PATCH",
            "-T",
            &file_arg,
            "-H",
            &auth,
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Upload-Offset: 0",
            "-H",
            "Content-Type: application/offset+octet-stream",
            &location,
        ])?;
        let took = started.elapsed();
        if status != 204 {
            bail!("tus PATCH answered {status}: {body}");
        }
        Ok(took)
    };

    let (mut ours, mut theirs, mut ratio) = (Samples::default(), Samples::default(), Samples::default());
    for round in 0..bench.rounds {
        // Alternate who goes first, so drift over the run hits both alike; each file is purged
        // before the next round so the disk holds one copy of each.
        let (a, b) =
            in_turns!(round, tus()?, signed_put(bench, &cabinet, &key, &file_arg, size, &sha256).await?);
        let (a, b) = (mib_per_second(size, a), mib_per_second(size, b));
        eprintln!("tus round {round}: tus {a:.0} MiB/s, signed PUT {b:.0} MiB/s, ratio {:.2}", a / b);
        ours.push(a);
        theirs.push(b);
        ratio.push(a / b);
        let listed: serde_json::Value = bench
            .http
            .get(format!("{}/v1/files?limit=100", cabinet.url))
            .bearer_auth(&key)
            .send()
            .await?
            .json()
            .await?;
        for file in listed["data"].as_array().context("files")? {
            if file["sha256"] != sha256.as_str() {
                bail!("a stored file does not hash to the file sent: {file}");
            }
            client::purge(&bench.http, &cabinet.url, &key, file["id"].as_str().context("an id")?).await?;
        }
    }
    bench.rows.push(Row {
        figure: format!(
            "tus upload of {label} (creation + one PATCH), sha256 verified (MiB/s; ratio to the signed PUT)"
        ),
        cabinet: format!("{:.0} MiB/s", ours.median()),
        baseline: format!("Cabinet signed PUT {:.0} MiB/s", theirs.median()),
        judged: ratio,
        judged_digits: 2,
        target: Target::AtLeast(0.9),
        unit: "×",
    });
    drop(cabinet);
    std::fs::remove_dir_all(bench.path("cabinet-tus"))?;
    std::fs::remove_file(&file)?;
    Ok(())
}
