//! The server's peak resident memory (`VmHWM`, from a fresh process each time) during one large
//! upload and during many concurrent medium uploads: bytes stream, so neither grows with size.

use anyhow::{bail, Result};
use bytes::Bytes;
use futures::future::try_join_all;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::client;
use crate::processes::{curl, Cabinet};
use crate::stats::{Row, Samples, Target};
use crate::Bench;

const MIB: u64 = 1 << 20;

pub async fn run(bench: &mut Bench) -> Result<()> {
    // One large upload: a sparse file (zeros cost no disk to read), no declared sha256.
    let size: u64 = if bench.quick { 256 * MIB } else { 5 << 30 };
    let sparse = bench.path("sparse.bin");
    std::fs::File::create(&sparse)?.set_len(size)?;
    let data = bench.path("cabinet-memory-large");
    let cabinet = Cabinet::start(&bench.cabinet_bin, &data, &[])?;
    let key = cabinet.key.clone().unwrap_or_default();
    let at_start = cabinet.peak_rss()?;
    let url = client::reserve(&bench.http, &cabinet.url, &key, "large.bin", size, None).await?;
    let (took, status, body) = curl(&["-T", &sparse.to_string_lossy(), &url])?;
    if status != 200 {
        bail!("large upload answered {status}: {body}");
    }
    client::succeeded(&serde_json::from_str(&body)?, size, None)?;
    let peak = cabinet.peak_rss()?;
    eprintln!(
        "memory: {} MiB upload in {:.1} s; peak RSS {:.1} MiB (at start {:.1} MiB)",
        size / MIB,
        took.as_secs_f64(),
        peak as f64 / MIB as f64,
        at_start as f64 / MIB as f64
    );
    drop(cabinet);
    std::fs::remove_dir_all(&data)?;
    std::fs::remove_file(&sparse)?;
    let mut judged = Samples::default();
    judged.push(peak as f64 / MIB as f64);
    bench.rows.push(Row {
        figure: format!("peak RSS of the server during a {} upload (MiB)", human(size)),
        cabinet: format!(
            "{:.1} MiB (idle {:.1} MiB)",
            peak as f64 / MIB as f64,
            at_start as f64 / MIB as f64
        ),
        baseline: "—".into(),
        judged,
        judged_digits: 1,
        target: Target::Below(64.0),
        unit: " MiB",
    });

    // Many concurrent uploads, each with its sha256 declared and verified.
    let (count, each) = if bench.quick { (8usize, 4 * MIB) } else { (64, 16 * MIB) };
    let mut body = vec![0u8; each as usize];
    rand::thread_rng().fill_bytes(&mut body);
    let sha256 = hex::encode(Sha256::digest(&body));
    let body = Bytes::from(body);
    let data = bench.path("cabinet-memory-concurrent");
    let cabinet = Cabinet::start(&bench.cabinet_bin, &data, &[])?;
    let key = cabinet.key.clone().unwrap_or_default();
    let at_start = cabinet.peak_rss()?;
    let mut urls = Vec::with_capacity(count);
    for i in 0..count {
        urls.push(
            client::reserve(&bench.http, &cabinet.url, &key, &format!("c{i}.bin"), each, Some(&sha256))
                .await?,
        );
    }
    let started = std::time::Instant::now();
    try_join_all(urls.into_iter().map(|url| {
        let (http, body, sha256) = (bench.http.clone(), body.clone(), sha256.clone());
        async move {
            let answer = client::expect(http.put(url).body(body), 200).await?;
            client::succeeded(&answer, each, Some(&sha256))
        }
    }))
    .await?;
    let peak = cabinet.peak_rss()?;
    eprintln!(
        "memory: {count} concurrent {} MiB uploads in {:.1} s; peak RSS {:.1} MiB",
        each / MIB,
        started.elapsed().as_secs_f64(),
        peak as f64 / MIB as f64
    );
    drop(cabinet);
    std::fs::remove_dir_all(&data)?;
    let mut judged = Samples::default();
    judged.push(peak as f64 / MIB as f64);
    bench.rows.push(Row {
        figure: format!("peak RSS of the server during {count} concurrent {} uploads (MiB)", human(each)),
        cabinet: format!(
            "{:.1} MiB (idle {:.1} MiB)",
            peak as f64 / MIB as f64,
            at_start as f64 / MIB as f64
        ),
        baseline: "—".into(),
        judged,
        judged_digits: 1,
        target: Target::Below(256.0),
        unit: " MiB",
    });
    Ok(())
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}
