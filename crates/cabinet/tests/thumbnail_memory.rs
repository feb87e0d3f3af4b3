//! An image's thumbnail is made in bounded memory: real PNGs (16-bit near the pixel cap, 16-bit
//! with an EXIF rotation, a large flat one that compresses to almost nothing) are uploaded to a
//! `cabinet serve` process of their own, and that process's peak resident memory (`VmHWM`, which no
//! other test shares) grows by no more than the source, [`MAX_DECODE_BYTES`] and
//! [`MAX_THUMBNAIL_WORK_BYTES`] — by no more than the source and a few rows when it is read a row
//! at a time (not interlaced) — and one decoded whole (interlaced) whose decoding would exceed the
//! budget is refused (422 `image_too_large`) before it is decoded.
//!
//! Ignored by default (each case decodes up to 150 MB); `dev/test` runs it with `--ignored`
//! beside the memory test.

use crate::images;
use crate::process;

use cabinet_images::{MAX_DECODE_BYTES, MAX_PIXELS, MAX_THUMBNAIL_WORK_BYTES};
use images::PngSpec;
use png::{BitDepth, ColorType};
use process::{http_client, ServerProcess, Tenant};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// What a refusal may add to the server's peak: the upload's buffers and the header's reading.
const REFUSAL_GROWTH_LIMIT: u64 = 32 << 20;
/// What a PNG read a row at a time may add to the server's peak beside its source: the upload's
/// buffers, a few rows, the shrunk image (at most 4 × 512² pixels of 4 bytes) and the thumbnail.
const ROWS_GROWTH_LIMIT: u64 = 48 << 20;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// What one case asks of the server, and what it must answer.
struct Case {
    name: &'static str,
    spec: PngSpec,
    /// The thumbnail's dimensions at the default size (256), or `None` when it must be refused.
    thumbnail: Option<(u32, u32)>,
}

impl Case {
    /// What the server's peak may grow by while it thumbnails the case's `source`.
    fn bound(&self, source: &[u8]) -> u64 {
        match self.thumbnail {
            None => REFUSAL_GROWTH_LIMIT,
            Some(_) if self.spec.interlaced_header => {
                source.len() as u64 + MAX_DECODE_BYTES + MAX_THUMBNAIL_WORK_BYTES
            }
            Some(_) => source.len() as u64 + ROWS_GROWTH_LIMIT,
        }
    }
}

/// Uploads the case's PNG to a fresh server, asks for its thumbnail, and returns the growth of
/// the server's peak resident memory from before the upload.
async fn peak_growth_while_thumbnailing(case: &Case, source: &[u8]) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::create(dir.path(), "images", None, "write");
    let server = ServerProcess::start(dir.path());
    let http = http_client();
    let at_start = server.peak_resident_bytes();

    let response = http
        .post(server.at("/v1/uploads"))
        .bearer_auth(&tenant.key)
        .json(&json!({"name": format!("{}.png", case.name), "size": source.len()}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{}", case.name);
    let ticket: Value = response.json().await.unwrap();
    let response =
        http.put(ticket["upload_url"].as_str().unwrap()).body(source.to_vec()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", case.name);
    let upload: Value = response.json().await.unwrap();
    assert_eq!(upload["file"]["mime_type"], "image/png", "{}: {upload}", case.name);

    // The default size is also being made in the background; this waits for it, or makes it.
    let file_id = upload["file"]["id"].as_str().unwrap();
    let response = http
        .get(server.at(&format!("/v1/files/{file_id}/thumbnail")))
        .bearer_auth(&tenant.key)
        .send()
        .await
        .unwrap();
    let status = response.status();
    match case.thumbnail {
        Some(dimensions) => {
            assert_eq!(status, StatusCode::OK, "{}: {}", case.name, response.text().await.unwrap());
            let thumbnail = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
            assert_eq!((thumbnail.width(), thumbnail.height()), dimensions, "{}", case.name);
        }
        None => {
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{}: {body}", case.name);
            assert_eq!(body["error"]["code"], "image_too_large", "{}: {body}", case.name);
        }
    }
    server.peak_resident_bytes().saturating_sub(at_start)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "decodes images of up to 150 MB; dev/test runs it with --ignored"]
async fn a_thumbnail_is_made_within_the_memory_budget_and_a_bomb_is_refused_before_decoding() {
    let png = |width, height, color, depth, rotated| PngSpec {
        width,
        height,
        color,
        depth,
        rotated,
        interlaced_header: false,
    };
    let interlaced = |spec: PngSpec| PngSpec { interlaced_header: true, ..spec };
    let cases = [
        Case {
            name: "16-bit RGB near the pixel cap, interlaced",
            spec: interlaced(png(6300, 6300, ColorType::Rgb, BitDepth::Sixteen, false)),
            thumbnail: None,
        },
        Case {
            name: "16-bit RGB near the pixel cap, read a row at a time",
            spec: png(6300, 6300, ColorType::Rgb, BitDepth::Sixteen, false),
            thumbnail: Some((256, 256)),
        },
        Case {
            name: "16-bit RGB inside the budget",
            spec: png(4800, 4000, ColorType::Rgb, BitDepth::Sixteen, false),
            thumbnail: Some((256, 213)),
        },
        Case {
            name: "16-bit RGB turned by its EXIF orientation",
            spec: png(4800, 4000, ColorType::Rgb, BitDepth::Sixteen, true),
            thumbnail: Some((213, 256)),
        },
        Case {
            name: "8-bit RGBA, large and flat",
            spec: png(7000, 5000, ColorType::Rgba, BitDepth::Eight, false),
            thumbnail: Some((256, 183)),
        },
    ];
    for case in &cases {
        let spec = case.spec;
        assert!(u64::from(spec.width) * u64::from(spec.height) <= MAX_PIXELS, "{}", case.name);
        let source = spec.encode();
        let growth = peak_growth_while_thumbnailing(case, &source).await;
        let bound = case.bound(&source);
        println!(
            "{}: {}×{}, {:.1} MiB decoded from a {:.0} KiB file; server peak grew {:.1} MiB (bound {:.1} MiB)",
            case.name,
            spec.width,
            spec.height,
            mib(spec.decoded_bytes()),
            source.len() as f64 / 1024.0,
            mib(growth),
            mib(bound)
        );
        assert!(
            growth < bound,
            "{}: the server's peak resident memory grew {:.1} MiB, over the bound of {:.1} MiB",
            case.name,
            mib(growth),
            mib(bound)
        );
    }
}
