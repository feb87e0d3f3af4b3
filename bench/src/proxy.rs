//! A large upload through a reverse proxy, as Cabinet stands behind nginx in most deployments:
//! nginx in front of Cabinet (`--public-url` at the proxy, so the signed URL points at it), request
//! bodies streamed upstream as they arrive (`proxy_request_buffering off`), no body size limit.
//! Then `curl -T` of a random file to the signed URL through the proxy, sha256 declared and
//! verified, against the same nginx proxying the same way to a dav server block of its own, same
//! file, same run, rounds alternating who goes first.

use anyhow::{bail, Context, Result};

use crate::processes::{free_port, Cabinet, Nginx};
use crate::stats::{Row, Samples, Target};
use crate::transfer::{random_file, sha256_of, Upload};
use crate::Bench;

pub async fn run(bench: &mut Bench) -> Result<()> {
    let size: u64 = if bench.quick { 16 << 20 } else { 1 << 30 };
    let label = if bench.quick { "16 MiB" } else { "1 GiB" };
    let file = bench.path("proxied.bin");
    let sha256 = random_file(&file, size)?;
    let proxy_port = free_port()?;
    let proxy_url = format!("http://127.0.0.1:{proxy_port}");
    let cabinet =
        Cabinet::start(&bench.cabinet_bin, &bench.path("cabinet-proxy"), &["--public-url", &proxy_url])?;
    let (nginx, dav_front) = Nginx::upload_proxies_on(&bench.path("nginx-proxy"), &cabinet.url, proxy_port)?;
    let key = cabinet.key.clone().context("a fresh Cabinet has a bootstrap key")?;
    let file_arg = file.to_string_lossy().into_owned();
    // Everything goes through the proxy: the reservation too, and the signed URL it returns.
    let mut up = Upload {
        bench,
        server: &cabinet,
        api: &nginx.url,
        key: &key,
        dav: &dav_front,
        file: &file_arg,
        size,
        sha256: &sha256,
        stored: None,
        cpu_per_mib: Samples::default(),
    };
    let [ours, theirs, ratio] = up.rounds(bench.rounds, "proxy").await?;
    // Cabinet checked the sha256 it was told; nginx's copy is checked here (untimed).
    let copy = nginx.root.join("big.bin");
    if std::fs::metadata(&copy)?.len() != size || sha256_of(&copy)? != sha256 {
        bail!("the file uploaded through the proxy to nginx's dav server is not the file sent");
    }
    bench.rows.push(Row {
        figure: format!(
            "signed PUT upload of {label} through nginx (`proxy_request_buffering off`), sha256 verified (MiB/s; ratio to nginx proxying to nginx dav)"
        ),
        cabinet: format!("{:.0} MiB/s, {:.2} ms of its CPU a MiB", ours.median(), up.cpu_per_mib.median()),
        baseline: format!("nginx → nginx dav PUT {:.0} MiB/s", theirs.median()),
        judged: ratio,
        judged_digits: 2,
        target: Target::AtLeast(0.9),
        unit: "×",
    });
    drop(cabinet);
    drop(nginx);
    std::fs::remove_dir_all(bench.path("cabinet-proxy"))?;
    std::fs::remove_dir_all(bench.path("nginx-proxy"))?;
    std::fs::remove_file(&file)?;
    Ok(())
}
