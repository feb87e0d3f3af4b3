//! Thumbnails: made of JPEG, PNG, WebP and GIF files once per size (the default one in the
//! background after upload), cached in the blob store, counted in no quota, served with a key or
//! at a signed URL that needs none, refused for image bombs before decoding (real images made
//! here; the memory their handling takes is measured by `thumbnail_memory.rs`), and gone with
//! their file. The main scenario runs on the local folder and again on S3 (s3s-fs) when one is set up.

use crate::images;
use crate::support;

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use cabinet_blob::{LocalBlobStore, S3BlobStore};
use cabinet_core::thumbnails::thumbnail_key;
use cabinet_core::{BlobStore, Role};
use cabinet_images::MAX_DECODE_BYTES;
use futures::StreamExt;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use images::PngSpec;
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use support::{assert_error, Tenant, TestServer};

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

/// An opaque gradient.
fn photo(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    }))
}

/// A two-frame animated GIF: red, then blue.
fn animated_gif(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut out);
        encoder.set_repeat(image::codecs::gif::Repeat::Infinite).unwrap();
        for color in [[255, 0, 0, 255], [0, 0, 255, 255]] {
            let frame = image::Frame::new(RgbaImage::from_pixel(width, height, Rgba(color)));
            encoder.encode_frame(frame).unwrap();
        }
    }
    out
}

/// The blob store the server uses, opened beside it, to look at its objects.
fn blobs(server: &TestServer) -> Arc<dyn BlobStore> {
    match &server.s3 {
        Some(config) => Arc::new(S3BlobStore::new(config).unwrap()),
        None => Arc::new(LocalBlobStore::open(server.dir.path().join("blobs")).unwrap()),
    }
}

fn key_of(file: &Value, size: u32) -> String {
    thumbnail_key(
        &format!("{}/{}", file["workspace_id"].as_str().unwrap(), file["id"].as_str().unwrap()),
        size,
    )
}

/// Whether the thumbnail appears in the blob store within 20 s. Renders run at the lowest priority (the idle
/// policy), so on a machine whose cores the other tests keep busy one can wait seconds for a turn.
async fn made(server: &TestServer, file: &Value, size: u32) -> bool {
    let store = blobs(server);
    for _ in 0..800 {
        if store.head(&key_of(file, size)).await.unwrap().is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

async fn plant(server: &TestServer, key: &str, bytes: Vec<u8>) {
    let store = blobs(server);
    let body = futures::stream::once(async move { Ok(bytes::Bytes::from(bytes)) }).boxed();
    let staged = store.stage(body, 1 << 20).await.unwrap();
    store.commit(&staged, key).await.unwrap();
}

/// Uploads through the signed URL (and `complete` on S3); returns the file JSON.
async fn upload(server: &TestServer, tenant: &Tenant, name: &str, bytes: &[u8]) -> Value {
    let (status, ticket) = server.start_upload(tenant, json!({"name": name, "size": bytes.len()})).await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let mut put = server.http.put(ticket["upload_url"].as_str().unwrap()).body(bytes.to_vec());
    for (name, value) in ticket["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    let response = put.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.text().await.unwrap());
    let path = format!("/v1/uploads/{}/complete", ticket["id"].as_str().unwrap());
    let (status, done) = server.send(server.request(Method::POST, &path, &tenant.key)).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    done["file"].clone()
}

async fn thumbnail(server: &TestServer, key: &str, file: &Value, size: Option<u32>) -> reqwest::Response {
    let mut path = format!("/v1/files/{}/thumbnail", file["id"].as_str().unwrap());
    if let Some(size) = size {
        path.push_str(&format!("?size={size}"));
    }
    server.request(Method::GET, &path, key).send().await.unwrap()
}

/// The thumbnail's type and decoded image, asserting a 200.
async fn decoded(response: reqwest::Response) -> (String, DynamicImage) {
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(headers[header::CACHE_CONTROL].to_str().unwrap().contains("max-age"));
    assert!(headers.contains_key(header::ETAG));
    let content_type = headers[header::CONTENT_TYPE].to_str().unwrap().to_owned();
    let bytes = response.bytes().await.unwrap();
    let format = if content_type == "image/png" { ImageFormat::Png } else { ImageFormat::Jpeg };
    (
        content_type,
        image::load_from_memory_with_format(&bytes, format).expect("a thumbnail in its stated type"),
    )
}

/// A source, the size asked for, and the thumbnail expected.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    size: Option<u32>,
    dimensions: (u32, u32),
    content_type: &'static str,
}

#[tokio::test]
async fn every_supported_type_gets_a_thumbnail_of_the_right_size_and_type() {
    let server = TestServer::spawn().await;
    let key = server.tenant.key.clone();
    let case =
        |name, bytes, size, dimensions, content_type| Case { name, bytes, size, dimensions, content_type };
    let translucent = DynamicImage::ImageRgba8(RgbaImage::from_pixel(400, 200, Rgba([0, 128, 0, 100])));
    let cases = [
        case("wide.png", encode(&photo(600, 400), ImageFormat::Png), None, (256, 171), "image/jpeg"),
        case("tall.jpg", encode(&photo(300, 900), ImageFormat::Jpeg), Some(64), (21, 64), "image/jpeg"),
        case("small.jpg", encode(&photo(200, 100), ImageFormat::Jpeg), Some(1024), (200, 100), "image/jpeg"),
        case("square.webp", encode(&photo(512, 512), ImageFormat::WebP), Some(64), (64, 64), "image/jpeg"),
        case("moving.gif", animated_gif(300, 150), None, (256, 128), "image/jpeg"),
        case("clear.png", encode(&translucent, ImageFormat::Png), None, (256, 128), "image/png"),
    ];
    for Case { name, bytes, size, dimensions, content_type: expected_type } in cases {
        let file = upload(&server, &server.tenant, name, &bytes).await;
        assert!(file["thumbnail_url"].is_string(), "{name}: {file}");
        let (content_type, image) = decoded(thumbnail(&server, &key, &file, size).await).await;
        assert_eq!(content_type, expected_type, "{name}");
        assert_eq!((image.width(), image.height()), dimensions, "{name}");
        if name == "moving.gif" {
            // The first frame (red), not the second (blue).
            let pixel = image.to_rgb8().get_pixel(10, 10).0;
            assert!(pixel[0] > 200 && pixel[2] < 60, "{pixel:?}");
        }
        if name == "clear.png" {
            assert_eq!(image.to_rgba8().get_pixel(5, 5).0[3], 100, "transparency kept");
        }
    }
}

/// The life of a thumbnail, on whichever store the server uses.
async fn a_thumbnail_is_made_once_cached_served_by_url_and_purged_with_its_file(server: &TestServer) {
    let tenant = server.tenant(None, Role::Admin).await;
    let source = encode(&photo(640, 480), ImageFormat::Png);
    let file = upload(server, &tenant, "garden.png", &source).await;
    let quota = server.quota(&tenant).await;
    assert_eq!(quota["used_bytes"], source.len(), "{quota}");

    // Made in the background, without being asked for.
    assert!(made(server, &file, 256).await, "the default thumbnail was never made");
    // Only the default size.
    assert_eq!(blobs(server).head(&key_of(&file, 64)).await.unwrap(), None);
    // Served from the cache from then on: a marker planted in its place is what comes back.
    let marker = encode(&photo(7, 5), ImageFormat::Png);
    plant(server, &key_of(&file, 256), marker.clone()).await;
    let response = thumbnail(server, &tenant.key, &file, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "image/png");
    let etag = response.headers()[header::ETAG].clone();
    assert_eq!(response.bytes().await.unwrap(), marker);
    let revalidated = server
        .request(Method::GET, &format!("/v1/files/{}/thumbnail", file["id"].as_str().unwrap()), &tenant.key)
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);

    // Another size is made on request, then cached too.
    let (_, small) = decoded(thumbnail(server, &tenant.key, &file, Some(64)).await).await;
    assert_eq!((small.width(), small.height()), (64, 48));
    assert!(made(server, &file, 64).await);

    // Thumbnails count against nothing.
    assert_eq!(server.quota(&tenant).await, quota);
    let (status, usage) = server.send(server.request(Method::GET, "/v1/usage", &tenant.key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(usage["total_size"], source.len(), "{usage}");

    // The signed URL needs no key, and is refused once changed in any way.
    let (status, details) = server
        .send(server.request(
            Method::GET,
            &format!("/v1/files/{}", file["id"].as_str().unwrap()),
            &tenant.key,
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let url = details["thumbnail_url"].as_str().expect("thumbnail_url").to_owned();
    assert!(url.starts_with(&format!("{}/storage/v1/thumbnails/", server.url)), "{url}");
    let anonymous = server.http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::OK);
    assert_eq!(anonymous.bytes().await.unwrap(), marker);
    let (path, query) = url.split_once('?').unwrap();
    let expires: i64 = query.split('&').next().unwrap().trim_start_matches("expires=").parse().unwrap();
    let signature_flipped = {
        let last = url.chars().last().unwrap();
        format!("{}{}", &url[..url.len() - 1], if last == 'A' { 'B' } else { 'A' })
    };
    for tampered in [
        format!("{}/1024?{query}", path.trim_end_matches("/256")),
        format!("{path}?{}", query.replacen(&expires.to_string(), &(expires + 3600).to_string(), 1)),
        format!("{url}&size=1024"),
        format!("{path}?{}", query.replace("&sig=", "&dl=1&sig=")),
        signature_flipped,
        path.to_owned(),
    ] {
        let (status, body) = server.send(server.http.get(&tampered)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{tampered}: {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }

    // Trashed: no URL, and the old one no longer serves it.
    let id = file["id"].as_str().unwrap();
    let (status, trashed) =
        server.send(server.request(Method::DELETE, &format!("/v1/files/{id}"), &tenant.key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(trashed["thumbnail_url"], Value::Null);
    assert_eq!(server.http.get(&url).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert!(made(server, &file, 256).await, "a trashed file keeps its thumbnails until purged");

    // Purged: its thumbnails go with it.
    let purge = format!("/v1/files/{id}?permanent=true");
    let (status, _) = server.send(server.request(Method::DELETE, &purge, &tenant.key)).await;
    assert_eq!(status, StatusCode::OK);
    for size in [64, 256] {
        assert_eq!(blobs(server).head(&key_of(&file, size)).await.unwrap(), None, "size {size}");
    }
}

#[tokio::test]
async fn a_thumbnail_is_made_once_and_goes_with_its_file_on_the_local_folder() {
    let server = TestServer::spawn().await;
    a_thumbnail_is_made_once_cached_served_by_url_and_purged_with_its_file(&server).await;
}

#[tokio::test]
async fn a_thumbnail_is_made_once_and_goes_with_its_file_on_s3() {
    let Some(server) = TestServer::spawn_s3("a_thumbnail_is_made_once_and_goes_with_its_file_on_s3").await
    else {
        return;
    };
    a_thumbnail_is_made_once_cached_served_by_url_and_purged_with_its_file(&server).await;
    // The console may talk to the bucket: its policy names the bucket's origin.
    let response = server.http.get(format!("{}/console", server.url)).send().await.unwrap();
    let policy = response.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    let origin = server.s3.as_ref().unwrap().endpoint.clone().unwrap();
    assert!(policy.contains(&format!("connect-src 'self' {origin};")), "{policy}");
    assert!(policy.contains(&format!("img-src 'self' {origin};")), "{policy}");
}

#[tokio::test]
async fn the_console_policy_names_no_other_origin_on_the_local_folder() {
    let server = TestServer::spawn().await;
    let response = server.http.get(format!("{}/console", server.url)).send().await.unwrap();
    let policy = response.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(policy.contains("img-src 'self';") && policy.contains("connect-src 'self';"), "{policy}");
    assert!(!policy.contains("http"), "{policy}");
}

#[tokio::test]
async fn a_direct_upload_of_an_image_gets_its_thumbnail_too() {
    let server = TestServer::spawn().await;
    let bytes = encode(&photo(300, 300), ImageFormat::Jpeg);
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name("direct.jpg"));
    let (status, file) =
        server.send(server.request(Method::POST, "/v1/files", &server.tenant.key).multipart(form)).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert!(made(&server, &file, 256).await);
}

#[tokio::test]
async fn files_that_are_not_images_have_no_thumbnail() {
    let server = TestServer::spawn().await;
    let file = upload(&server, &server.tenant, "notes.txt", b"just words").await;
    assert_eq!(file["thumbnail_url"], Value::Null);
    let response = thumbnail(&server, &server.tenant.key, &file, None).await;
    let (status, body) = (response.status(), response.json::<Value>().await.unwrap());
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "thumbnail_unsupported");
    // Bytes that claim to be an image but are not one.
    let fake = upload(&server, &server.tenant, "fake.png", b"\x89PNG\r\n\x1a\nnot really").await;
    for _ in 0..2 {
        // Made (and refused) once; the second answer comes from the remembered refusal.
        let response = thumbnail(&server, &server.tenant.key, &fake, None).await;
        let (status, body) = (response.status(), response.json::<Value>().await.unwrap());
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "image_undecodable");
    }
    // The signed URL of an image that cannot be made into a thumbnail answers the same.
    let (status, body) = server.send(server.http.get(fake["thumbnail_url"].as_str().unwrap())).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "image_undecodable");
}

#[tokio::test]
async fn only_the_documented_sizes_are_served() {
    let server = TestServer::spawn().await;
    let file = upload(&server, &server.tenant, "a.png", &encode(&photo(50, 50), ImageFormat::Png)).await;
    for bad in ["100", "0", "-1", "big", "99999999999"] {
        let path = format!("/v1/files/{}/thumbnail?size={bad}", file["id"].as_str().unwrap());
        let (status, body) = server.send(server.get(&path)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    let (status, body) = server
        .send(server.get(&format!("/v1/files/{}/thumbnail?size=100", file["id"].as_str().unwrap())))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_size");
}

#[tokio::test]
async fn an_image_bomb_inside_the_pixel_cap_is_refused_and_the_refusal_remembered() {
    let server = TestServer::spawn().await;
    // A real 16-bit PNG of 39.7 MP (under the pixel cap) that compresses to a few hundred KiB and,
    // interlaced (so not read a row at a time), would take 238 MB to decode. How much memory its
    // handling takes is measured in a server process of its own by `thumbnail_memory.rs`.
    let spec = PngSpec {
        width: 6300,
        height: 6300,
        color: png::ColorType::Rgb,
        depth: png::BitDepth::Sixteen,
        rotated: false,
        interlaced_header: true,
    };
    assert!(spec.decoded_bytes() > MAX_DECODE_BYTES);
    let bomb = spec.encode();
    let file = upload(&server, &server.tenant, "bomb.png", &bomb).await;
    assert_eq!(file["mime_type"], "image/png");
    let response = thumbnail(&server, &server.tenant.key, &file, None).await;
    let (status, body) = (response.status(), response.json::<Value>().await.unwrap());
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "image_too_large");
    // The refusal is remembered in the thumbnail's place (never an image), and answered again.
    let mut remembered = blobs(&server).open(&key_of(&file, 256), None).await.unwrap();
    assert_eq!(remembered.next().await.unwrap().unwrap(), "image_too_large".as_bytes());
    let response = thumbnail(&server, &server.tenant.key, &file, None).await;
    let (status, body) = (response.status(), response.json::<Value>().await.unwrap());
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "image_too_large");
}

#[tokio::test]
async fn another_tenants_thumbnail_is_not_found() {
    let server = TestServer::spawn().await;
    let file = upload(&server, &server.tenant, "mine.png", &encode(&photo(80, 80), ImageFormat::Png)).await;
    let other = server.tenant(None, Role::Admin).await;
    let response = thumbnail(&server, &other.key, &file, None).await;
    let (status, body) = (response.status(), response.json::<Value>().await.unwrap());
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    // Nor by a signed URL moved to the other workspace.
    let url = file["thumbnail_url"].as_str().unwrap();
    let moved = url.replace(server.tenant.workspace.as_str(), other.workspace.as_str());
    assert_eq!(server.http.get(&moved).send().await.unwrap().status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_sweeper_keeps_live_thumbnails_and_removes_those_of_files_that_are_gone() {
    let server = TestServer::spawn().await;
    let file = upload(&server, &server.tenant, "kept.png", &encode(&photo(90, 60), ImageFormat::Png)).await;
    assert!(made(&server, &file, 256).await);
    let ws = server.tenant.workspace.as_str();
    let gone = format!("thumbnails/{ws}/file_01jdq4x7m2c8v5n3k9w6r1t0ya/256");
    let stray = "thumbnails/not-a-thumbnail";
    plant(&server, &gone, b"orphan".to_vec()).await;
    plant(&server, stray, b"stray".to_vec()).await;
    let removed = server.cabinet.remove_orphan_blobs().await.unwrap();
    assert_eq!(removed, 2);
    let store = blobs(&server);
    assert!(store.head(&key_of(&file, 256)).await.unwrap().is_some(), "a live thumbnail was swept");
    assert_eq!(store.head(&gone).await.unwrap(), None);
    assert_eq!(store.head(stray).await.unwrap(), None);
}
