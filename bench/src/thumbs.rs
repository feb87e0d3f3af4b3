//! Thumbnails against `vipsthumbnail` (Debian's libvips-tools): a 12 MP baseline JPEG (quality
//! 90) and a 4000×3000 PNG, each made into a 256 px thumbnail by a fresh process, Cabinet's
//! codec (`bench --thumbnail-of`, which reads the file whole and renders it as the server's render
//! thread does) against `vipsthumbnail FILE -s 256`, rounds rotating the order. Each process's
//! wall time and peak RSS (`/usr/bin/time`'s maximum resident set size) are taken whole, start-up
//! included for both. Cabinet's codec decoding every frame whole (as before shrink-on-load) runs
//! beside them as the A/B. And the server's own time: the file uploaded to a release `cabinet
//! serve` (untimed), then `GET /v1/files/{id}/thumbnail` timed from the upload's answer to the
//! thumbnail's last byte (the 256 px render starts in the background when the file is committed,
//! and the request waits for it), the file purged after each round.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use image::{ImageEncoder, RgbImage};

use crate::processes::Cabinet;
use crate::stats::{Row, Samples, Target};
use crate::{client, Bench};

const SIZE: u32 = 256;
const MIB: f64 = (1 << 20) as f64;

/// Who makes the thumbnail.
#[derive(Clone, Copy, PartialEq)]
enum Maker {
    Cabinet,
    CabinetDecodingWhole,
    Vips,
    Server,
}

const MAKERS: [Maker; 4] = [Maker::Cabinet, Maker::Vips, Maker::Server, Maker::CabinetDecodingWhole];

/// One process's wall time (seconds) and peak RSS (MiB).
#[derive(Default)]
struct Runs {
    seconds: Samples,
    rss: Samples,
}

pub async fn run(bench: &mut Bench) -> Result<()> {
    let (width, height) = if bench.quick { (1200, 900) } else { (4000, 3000) };
    let photo = photo_like(width, height);
    let jpeg = bench.path("thumbs-photo.jpg");
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90).write_image(
        photo.as_raw(),
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )?;
    std::fs::write(&jpeg, &bytes)?;
    let png = bench.path("thumbs-photo.png");
    bytes.clear();
    image::codecs::png::PngEncoder::new(&mut bytes).write_image(
        photo.as_raw(),
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )?;
    std::fs::write(&png, &bytes)?;
    drop(photo);
    let megapixels = f64::from(width * height) / 1e6;
    let data = bench.path("cabinet-thumbs");
    let server = Cabinet::start(&bench.cabinet_bin, &data, &[])?;
    for (source, label) in
        [(jpeg, format!("{megapixels:.0} MP JPEG")), (png, format!("{width}×{height} PNG"))]
    {
        measure(bench, &server, &source, &label).await?;
        std::fs::remove_file(&source)?;
    }
    drop(server);
    std::fs::remove_dir_all(&data)?;
    Ok(())
}

async fn measure(bench: &mut Bench, server: &Cabinet, source: &Path, label: &str) -> Result<()> {
    let mut runs: [Runs; 4] = Default::default();
    let mut ratios = Samples::default();
    let mut rss_ratios = Samples::default();
    let mut whole_ratios = Samples::default();
    let mut server_ratios = Samples::default();
    let at_start = server.peak_rss()?;
    for round in 0..bench.rounds {
        let mut this_round = [(0.0, 0.0); 4];
        for turn in 0..MAKERS.len() {
            let maker = MAKERS[(round + turn) % MAKERS.len()];
            let index = MAKERS.iter().position(|m| *m == maker).unwrap_or_default();
            let out = bench.path(&format!("thumb-{index}.jpg"));
            let (seconds, rss) = match maker {
                Maker::Server => (through_the_server(bench, server, source, &out).await?, f64::NAN),
                _ => thumbnail(bench, maker, source, &out)?,
            };
            check_thumbnail(&out)?;
            std::fs::remove_file(&out)?;
            runs[index].seconds.push(seconds);
            runs[index].rss.push(rss);
            this_round[index] = (seconds, rss);
        }
        let [(cabinet, cabinet_rss), (whole, _), (vips, vips_rss), (served, _)] =
            [Maker::Cabinet, Maker::CabinetDecodingWhole, Maker::Vips, Maker::Server]
                .map(|maker| this_round[MAKERS.iter().position(|m| *m == maker).unwrap_or_default()]);
        ratios.push(cabinet / vips);
        rss_ratios.push(cabinet_rss / vips_rss);
        whole_ratios.push(whole / vips);
        server_ratios.push(served / vips);
    }
    let server_growth = (server.peak_rss()?.saturating_sub(at_start)) as f64 / MIB;
    let [ours, vips, served, whole] = runs;
    let describe =
        |runs: &Runs| format!("{:.0} ms, peak RSS {:.1} MiB", runs.seconds.median() * 1e3, runs.rss.median());
    eprintln!(
        "thumbs: {label}: Cabinet {}; vipsthumbnail {}; Cabinet decoding whole {} ({} × vips); \
         the server {:.0} ms",
        describe(&ours),
        describe(&vips),
        describe(&whole),
        whole_ratios.spread(2),
        served.seconds.median() * 1e3
    );
    bench.rows.push(Row {
        figure: format!("thumbnail of a {label} to {SIZE} px, fresh process (time ratio)"),
        cabinet: format!(
            "{} (decoding whole: {:.0} ms, {} ×)",
            describe(&ours),
            whole.seconds.median() * 1e3,
            whole_ratios.spread(2)
        ),
        baseline: format!("vipsthumbnail: {}", describe(&vips)),
        judged: ratios,
        judged_digits: 2,
        target: Target::AtMost(1.5),
        unit: "×",
    });
    bench.rows.push(Row {
        figure: format!(
            "thumbnail of a {label} to {SIZE} px by the server, from the upload's answer (time ratio)"
        ),
        cabinet: format!(
            "{:.0} ms (server peak RSS grew {server_growth:.1} MiB over these rounds)",
            served.seconds.median() * 1e3
        ),
        baseline: format!("vipsthumbnail: {:.0} ms", vips.seconds.median() * 1e3),
        judged: server_ratios,
        judged_digits: 2,
        target: Target::AtMost(1.5),
        unit: "×",
    });
    bench.rows.push(Row {
        figure: format!("thumbnail of a {label} to {SIZE} px, fresh process (peak RSS ratio)"),
        cabinet: format!("{:.1} MiB (decoding whole: {:.1} MiB)", ours.rss.median(), whole.rss.median()),
        baseline: format!("vipsthumbnail: {:.1} MiB", vips.rss.median()),
        judged: rss_ratios,
        judged_digits: 2,
        target: Target::AtMost(1.0),
        unit: "×",
    });
    Ok(())
}

/// Runs one maker under `/usr/bin/time`: its wall time in seconds and peak RSS in MiB.
fn thumbnail(bench: &Bench, maker: Maker, source: &Path, out: &Path) -> Result<(f64, f64)> {
    let rss_file = bench.path("thumb-rss");
    let mut command = Command::new("/usr/bin/time");
    command.arg("-f").arg("%M").arg("-o").arg(&rss_file);
    match maker {
        Maker::Vips => {
            command.arg("vipsthumbnail").arg(source).args(["-s", &SIZE.to_string(), "-o"]).arg(out);
        }
        Maker::Server => bail!("the server is asked over HTTP (through_the_server), not run as a process"),
        Maker::Cabinet | Maker::CabinetDecodingWhole => {
            command
                .arg(std::env::current_exe()?)
                .arg("--thumbnail-of")
                .arg(source)
                .args(["--thumbnail-size", &SIZE.to_string(), "--thumbnail-out"])
                .arg(out);
            if maker == Maker::CabinetDecodingWhole {
                command.arg("--thumbnail-decoding-whole");
            }
        }
    }
    let started = Instant::now();
    let status = command.stdin(Stdio::null()).status().context("running /usr/bin/time")?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("making a thumbnail of {} failed: {status}", source.display());
    }
    let kib: f64 = std::fs::read_to_string(&rss_file)?
        .lines()
        .last()
        .and_then(|line| line.trim().parse().ok())
        .context("no maximum resident set size from /usr/bin/time")?;
    Ok((seconds, kib * 1024.0 / MIB))
}

/// Uploads `source` to the server (untimed), then asks for its thumbnail: the seconds from the
/// upload's answer to the thumbnail's last byte, which is written to `out`. The file is purged.
async fn through_the_server(bench: &Bench, server: &Cabinet, source: &Path, out: &Path) -> Result<f64> {
    let key = server.key.clone().context("a fresh Cabinet has a bootstrap key")?;
    let name = source.file_name().and_then(|name| name.to_str()).unwrap_or("photo");
    let id = client::upload_bytes(&bench.http, &server.url, &key, name, std::fs::read(source)?).await?;
    let started = Instant::now();
    let response = bench
        .http
        .get(format!("{}/v1/files/{id}/thumbnail?size={SIZE}", server.url))
        .bearer_auth(&key)
        .send()
        .await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    let seconds = started.elapsed().as_secs_f64();
    if status != 200 {
        bail!("the server's thumbnail of {name} answered {status}: {}", String::from_utf8_lossy(&bytes));
    }
    std::fs::write(out, &bytes)?;
    client::purge(&bench.http, &server.url, &key, &id).await?;
    Ok(seconds)
}

/// A thumbnail's longest edge is the size asked for.
fn check_thumbnail(out: &Path) -> Result<()> {
    let (width, height) =
        image::image_dimensions(out).with_context(|| format!("reading {}", out.display()))?;
    if width.max(height) != SIZE {
        bail!("{} is {width}×{height}, not {SIZE} px on its longest edge", out.display());
    }
    Ok(())
}

/// A picture with a photo's statistics, more or less: smooth gradients, soft shapes and sensor
/// noise (so neither codec meets a flat image it could skip through).
pub(crate) fn photo_like(width: u32, height: u32) -> RgbImage {
    let mut state = 0x2545_f491_u32;
    RgbImage::from_fn(width, height, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 17) as f32 - 8.0;
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        let wave = (fx * 19.0).sin() * (fy * 11.0).cos();
        let channel = |value: f32| (value + noise).clamp(0.0, 255.0) as u8;
        image::Rgb([channel(40.0 + 200.0 * fx), channel(30.0 + 190.0 * fy), channel(128.0 + 90.0 * wave)])
    })
}

/// `bench --thumbnail-of FILE`: what the server's render thread does with a source — read it
/// whole, render it — in a process of its own, so its peak RSS is the codec's.
pub fn thumbnail_process(source: &Path, size: u32, out: &Path, decoding_whole: bool) -> Result<()> {
    let bytes = std::fs::read(source).with_context(|| format!("reading {}", source.display()))?;
    let render = if decoding_whole { cabinet_images::render_decoding_whole } else { cabinet_images::render };
    let (thumbnail, _) = render(&bytes, size).map_err(|err| anyhow::anyhow!("{err}"))?;
    std::fs::write(out, &thumbnail)?;
    Ok(())
}
