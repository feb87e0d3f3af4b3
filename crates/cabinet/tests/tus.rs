//! tus 1.0.0 at `/tus/v1/`, spoken with plain HTTP: discovery, creation (with bytes, with a
//! deferred length), appends at the right offset only, checksums per request and for the whole
//! file, the declared length and the quota, expiry, termination, tenancy and authentication, a
//! request cut short keeping what arrived, CORS for browsers; on the local folder and on S3
//! (s3s-fs, started by `dev/test`; skipped with a notice without one unless `CABINET_REQUIRE_S3=1`).
//! The real clients (tuspy, tus-js-client, Uppy) are driven by `dev/test-tus`.

use crate::support;

use std::time::Duration;

use base64::Engine;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::{assert_error, sha256_hex, Tenant, TestServer};

const VERSION: &str = "1.0.0";
const OCTETS: &str = "application/offset+octet-stream";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn metadata(name: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        format!("filename {}", b64(name.as_bytes())),
        format!("filetype {}", b64(b"application/octet-stream")),
    ];
    pairs.extend(extra.iter().map(|(key, value)| format!("{key} {}", b64(value.as_bytes()))));
    pairs.join(",")
}

fn bytes_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i >> 12) as u8).collect()
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| v.to_str().unwrap().to_owned())
}

/// A tus client's requests, by hand.
struct Tus<'a> {
    server: &'a TestServer,
    key: String,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl<'a> Tus<'a> {
    fn new(server: &'a TestServer, tenant: &Tenant) -> Self {
        Self { server, key: tenant.key.clone() }
    }

    fn request(&self, method: Method, url: &str) -> RequestBuilder {
        let url = if url.starts_with("http") { url.to_owned() } else { format!("{}{url}", self.server.url) };
        self.server.http.request(method, url).bearer_auth(&self.key).header("Tus-Resumable", VERSION)
    }

    async fn send(&self, request: RequestBuilder) -> Answer {
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        assert_eq!(
            header(&headers, "tus-resumable").as_deref(),
            Some(VERSION),
            "every answer says Tus-Resumable"
        );
        Answer { status, headers, body }
    }

    /// Creates an upload of `length` bytes and returns its URL.
    async fn create(&self, length: u64, metadata: &str) -> String {
        let answer = self
            .send(
                self.request(Method::POST, "/tus/v1/")
                    .header("Upload-Length", length)
                    .header("Upload-Metadata", metadata),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        if length > 0 {
            assert!(header(&answer.headers, "upload-expires").is_some(), "expiration is announced");
        }
        let location = header(&answer.headers, "location").expect("Location");
        assert!(location.starts_with(&format!("{}/tus/v1/up", self.server.url)), "{location}");
        location
    }

    async fn patch(&self, url: &str, offset: u64, bytes: Vec<u8>) -> Answer {
        self.send(
            self.request(Method::PATCH, url)
                .header("Upload-Offset", offset)
                .header("Content-Type", OCTETS)
                .body(bytes),
        )
        .await
    }

    async fn offset(&self, url: &str) -> Answer {
        self.send(self.request(Method::HEAD, url)).await
    }
}

fn offset_of(answer: &Answer) -> u64 {
    header(&answer.headers, "upload-offset").expect("Upload-Offset").parse().unwrap()
}

/// The one file named `name` in the tenant's workspace.
async fn file_named(server: &TestServer, tenant: &Tenant, name: &str) -> Option<Value> {
    let (status, list) = server.send(server.request(Method::GET, "/v1/files?limit=100", &tenant.key)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["data"].as_array().unwrap().iter().find(|file| file["name"] == name).cloned()
}

async fn content(server: &TestServer, tenant: &Tenant, file: &Value) -> Vec<u8> {
    let id = file["id"].as_str().unwrap();
    let response =
        server.request(Method::GET, &format!("/v1/files/{id}/content"), &tenant.key).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn options_announce_the_version_extensions_size_and_checksums() {
    let server = TestServer::spawn().await;
    for path in ["/tus/v1/", "/tus/v1"] {
        let response =
            server.http.request(Method::OPTIONS, format!("{}{path}", server.url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{path}");
        let headers = response.headers();
        assert_eq!(header(headers, "tus-version").as_deref(), Some(VERSION));
        let extensions = header(headers, "tus-extension").unwrap();
        for extension in [
            "creation",
            "creation-with-upload",
            "creation-defer-length",
            "termination",
            "expiration",
            "checksum",
        ] {
            assert!(extensions.split(',').any(|e| e == extension), "{extension} in {extensions}");
        }
        let max: u64 = header(headers, "tus-max-size").unwrap().parse().unwrap();
        assert_eq!(max, server.cabinet.settings().max_file_bytes);
        assert_eq!(header(headers, "tus-checksum-algorithm").as_deref(), Some("sha256"));
    }
}

async fn upload_in_pieces(server: &TestServer) {
    let tus = Tus::new(server, &server.tenant);
    let bytes = bytes_of(3 * 1024 * 1024 + 17);
    let url =
        tus.create(bytes.len() as u64, &metadata("pieces.bin", &[("sha256", &sha256_hex(&bytes))])).await;
    let head = tus.offset(&url).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(offset_of(&head), 0);
    assert_eq!(header(&head.headers, "upload-length"), Some(bytes.len().to_string()));
    assert_eq!(header(&head.headers, "cache-control").as_deref(), Some("no-store"));
    let described = header(&head.headers, "upload-metadata").expect("HEAD repeats the metadata");
    assert!(described.contains(&format!("filename {}", b64(b"pieces.bin"))), "{described}");
    assert!(described.contains(&format!("sha256 {}", b64(sha256_hex(&bytes).as_bytes()))), "{described}");
    let mut offset = 0;
    for piece in bytes.chunks(1024 * 1024 + 3) {
        assert!(
            file_named(server, &server.tenant, "pieces.bin").await.is_none(),
            "no file before the last byte"
        );
        let answer = tus.patch(&url, offset, piece.to_vec()).await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
        offset += piece.len() as u64;
        assert_eq!(offset_of(&answer), offset);
        assert_eq!(offset_of(&tus.offset(&url).await), offset);
    }
    let file = file_named(server, &server.tenant, "pieces.bin").await.expect("the file exists once complete");
    assert_eq!(file["size"], bytes.len());
    assert_eq!(file["sha256"], sha256_hex(&bytes));
    assert_eq!(content(server, &server.tenant, &file).await, bytes);
    // A finished upload reports its whole length (a client resuming it learns it is done).
    let done = tus.offset(&url).await;
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(offset_of(&done), bytes.len() as u64);
    // The same events as every upload's, written by the one commit that made the file.
    let (status, events) =
        server.send(server.request(Method::GET, "/v1/events?after=0&limit=500", &server.tenant.key)).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let upload_id = url.rsplit('/').next().unwrap();
    let of = |kind: &str, id: &str| {
        events["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == kind && e["object_id"] == id)
            .count()
    };
    assert_eq!(of("upload.succeeded", upload_id), 1, "{events}");
    assert_eq!(of("file.created", file["id"].as_str().unwrap()), 1, "{events}");
    // Nothing held any more: the quota counts the file only.
    let quota = server.quota(&server.tenant).await;
    assert_eq!(quota["reserved_bytes"], 0, "{quota}");
    assert_eq!(quota["used_bytes"], bytes.len(), "{quota}");
}

#[tokio::test]
async fn an_upload_sent_in_pieces_becomes_a_verified_file() {
    let server = TestServer::spawn().await;
    upload_in_pieces(&server).await;
    // The segments are gone once the file exists.
    let incoming = server.dir.path().join("blobs/objects/incoming");
    let left = walk(&incoming);
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn an_upload_sent_in_pieces_becomes_a_verified_file_on_s3() {
    let Some(server) = TestServer::spawn_s3("tus on S3").await else { return };
    upload_in_pieces(&server).await;
}

/// On S3 the bytes go to the bucket once, as the parts of a multipart upload at the file's key:
/// between requests the bucket holds only the upload's record and a tail shorter than a part,
/// never the bytes again as objects to be joined.
#[tokio::test]
async fn on_s3_the_bytes_go_to_the_bucket_as_multipart_parts() {
    use cabinet_core::BlobStore;
    let Some(server) = TestServer::spawn_s3("tus parts on S3").await else { return };
    let bucket = cabinet_blob::S3BlobStore::new(server.s3.as_ref().unwrap()).unwrap();
    let tus = Tus::new(&server, &server.tenant);
    let bytes = bytes_of(21 * 1024 * 1024 + 5);
    for (name, deferred) in [("parts.bin", false), ("deferred-parts.bin", true)] {
        let url = if deferred {
            let answer = tus
                .send(
                    tus.request(Method::POST, "/tus/v1/")
                        .header("Upload-Defer-Length", "1")
                        .header("Upload-Metadata", metadata(name, &[])),
                )
                .await;
            header(&answer.headers, "location").unwrap()
        } else {
            tus.create(bytes.len() as u64, &metadata(name, &[("sha256", &sha256_hex(&bytes))])).await
        };
        let upload_id = url.rsplit('/').next().unwrap().to_owned();
        let mut offset = 0;
        let pieces: Vec<&[u8]> = bytes.chunks(3 * 1024 * 1024 + 1).collect();
        for (index, piece) in pieces.iter().enumerate() {
            let last = index + 1 == pieces.len();
            let mut request = tus
                .request(Method::PATCH, &url)
                .header("Upload-Offset", offset)
                .header("Content-Type", OCTETS)
                .body(piece.to_vec());
            if deferred && last {
                request = request.header("Upload-Length", bytes.len());
            }
            let answer = tus.send(request).await;
            assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.body);
            offset += piece.len() as u64;
            assert_eq!(offset_of(&answer), offset);
            assert_eq!(offset_of(&tus.offset(&url).await), offset);
            if last {
                break;
            }
            let kept: Vec<String> = bucket
                .list_keys()
                .await
                .unwrap()
                .into_iter()
                .filter(|key| key.contains(&upload_id))
                .collect();
            let mut tail = 0;
            for key in &kept {
                if !key.ends_with("/parts") {
                    tail += bucket.head(key).await.unwrap().unwrap().size;
                }
            }
            assert!(kept.iter().any(|key| key.ends_with("/parts")), "the upload's record: {kept:?}");
            assert!(kept.len() <= 2, "the record and at most one tail: {kept:?}");
            assert!(tail < 8 * 1024 * 1024, "the tail is shorter than a part: {tail} ({kept:?})");
            assert_eq!(offset % (8 * 1024 * 1024), tail, "whole parts are in the multipart upload");
        }
        let file = file_named(&server, &server.tenant, name).await.expect("the file exists once complete");
        assert_eq!(file["size"], bytes.len());
        assert_eq!(file["sha256"], sha256_hex(&bytes));
        assert_eq!(content(&server, &server.tenant, &file).await, bytes);
        let left: Vec<String> =
            bucket.list_keys().await.unwrap().into_iter().filter(|key| key.contains(&upload_id)).collect();
        assert!(left.is_empty(), "nothing of the upload is left: {left:?}");
    }
    let quota = server.quota(&server.tenant).await;
    assert_eq!(quota["reserved_bytes"], 0, "{quota}");
    assert_eq!(quota["used_bytes"], 2 * bytes.len(), "{quota}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .flat_map(|entry| if entry.path().is_dir() { walk(&entry.path()) } else { vec![entry.path()] })
        .collect()
}

#[tokio::test]
async fn creation_with_upload_and_empty_files() {
    let server = TestServer::spawn().await;
    let tus = Tus::new(&server, &server.tenant);
    let bytes = bytes_of(70_000);
    let answer = tus
        .send(
            tus.request(Method::POST, "/tus/v1/")
                .header("Upload-Length", bytes.len())
                .header("Upload-Metadata", metadata("first.bin", &[]))
                .header("Content-Type", OCTETS)
                .body(bytes[..50_000].to_vec()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(offset_of(&answer), 50_000);
    let url = header(&answer.headers, "location").unwrap();
    assert_eq!(tus.patch(&url, 50_000, bytes[50_000..].to_vec()).await.status, StatusCode::NO_CONTENT);
    let file = file_named(&server, &server.tenant, "first.bin").await.unwrap();
    assert_eq!(content(&server, &server.tenant, &file).await, bytes);

    // Zero bytes: the file exists as soon as the upload is created.
    let url = tus.create(0, &metadata("empty.txt", &[])).await;
    let file = file_named(&server, &server.tenant, "empty.txt").await.expect("an empty file");
    assert_eq!(file["size"], 0);
    assert_eq!(offset_of(&tus.offset(&url).await), 0);
}

#[tokio::test]
async fn a_deferred_length_is_declared_by_a_later_request() {
    let server = TestServer::spawn().await;
    let tus = Tus::new(&server, &server.tenant);
    let answer = tus
        .send(
            tus.request(Method::POST, "/tus/v1/")
                .header("Upload-Defer-Length", "1")
                .header("Upload-Metadata", metadata("later.bin", &[])),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let url = header(&answer.headers, "location").unwrap();
    let head = tus.offset(&url).await;
    assert_eq!(header(&head.headers, "upload-defer-length").as_deref(), Some("1"));
    assert_eq!(header(&head.headers, "upload-length"), None);
    let bytes = bytes_of(10_000);
    assert_eq!(tus.patch(&url, 0, bytes[..4000].to_vec()).await.status, StatusCode::NO_CONTENT);
    // The length cannot be less than what arrived.
    let short = tus
        .send(
            tus.request(Method::PATCH, &url)
                .header("Upload-Offset", 4000)
                .header("Upload-Length", 3000)
                .header("Content-Type", OCTETS)
                .body(Vec::new()),
        )
        .await;
    assert_error(short.status, &short.body, StatusCode::BAD_REQUEST, "invalid_size");
    let last = tus
        .send(
            tus.request(Method::PATCH, &url)
                .header("Upload-Offset", 4000)
                .header("Upload-Length", bytes.len())
                .header("Content-Type", OCTETS)
                .body(bytes[4000..].to_vec()),
        )
        .await;
    assert_eq!(last.status, StatusCode::NO_CONTENT, "{}", last.body);
    let file = file_named(&server, &server.tenant, "later.bin").await.unwrap();
    assert_eq!(content(&server, &server.tenant, &file).await, bytes);
    let quota = server.quota(&server.tenant).await;
    assert_eq!((quota["used_bytes"].as_u64(), quota["reserved_bytes"].as_u64()), (Some(10_000), Some(0)));
}

#[tokio::test]
async fn protocol_errors_have_the_statuses_tus_clients_read() {
    let server = TestServer::spawn().await;
    let tus = Tus::new(&server, &server.tenant);
    let url = tus.create(100, &metadata("errors.bin", &[])).await;

    // No version, or another one: 412 naming the version spoken.
    for version in [None, Some("0.2.2")] {
        let mut request = server.http.request(Method::HEAD, &url).bearer_auth(&tus.key);
        if let Some(version) = version {
            request = request.header("Tus-Resumable", version);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(header(response.headers(), "tus-version").as_deref(), Some(VERSION));
    }
    let refused = server
        .send(
            server
                .http
                .post(format!("{}/tus/v1/", server.url))
                .bearer_auth(&tus.key)
                .header("Upload-Length", 1),
        )
        .await;
    assert_error(refused.0, &refused.1, StatusCode::PRECONDITION_FAILED, "unsupported_version");

    // The wrong offset: 409, nothing kept.
    let wrong = tus.patch(&url, 5, vec![1; 10]).await;
    assert_error(wrong.status, &wrong.body, StatusCode::CONFLICT, "offset_mismatch");
    assert_eq!(offset_of(&tus.offset(&url).await), 0);

    // The wrong content type: 415.
    let typed = tus
        .send(
            tus.request(Method::PATCH, &url)
                .header("Upload-Offset", 0)
                .header("Content-Type", "application/octet-stream")
                .body(vec![1; 10]),
        )
        .await;
    assert_error(typed.status, &typed.body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");

    // No length and no deferral; a length past the server's limit.
    let lengthless =
        tus.send(tus.request(Method::POST, "/tus/v1/").header("Upload-Metadata", metadata("x", &[]))).await;
    assert_error(lengthless.status, &lengthless.body, StatusCode::BAD_REQUEST, "invalid_size");
    let huge = tus
        .send(
            tus.request(Method::POST, "/tus/v1/")
                .header("Upload-Length", server.cabinet.settings().max_file_bytes + 1)
                .header("Upload-Metadata", metadata("x", &[])),
        )
        .await;
    assert_error(huge.status, &huge.body, StatusCode::PAYLOAD_TOO_LARGE, "file_too_large");
    // No name.
    let nameless = tus.send(tus.request(Method::POST, "/tus/v1/").header("Upload-Length", 1)).await;
    assert_error(nameless.status, &nameless.body, StatusCode::BAD_REQUEST, "invalid_name");

    // More than the declared length: 413, nothing kept.
    let over = tus.patch(&url, 0, vec![1; 101]).await;
    assert_error(over.status, &over.body, StatusCode::PAYLOAD_TOO_LARGE, "size_exceeded");
    assert_eq!(offset_of(&tus.offset(&url).await), 0);

    // X-HTTP-Method-Override: a POST that is a PATCH, for proxies that pass GET and POST only.
    let overridden = tus
        .send(
            tus.request(Method::POST, &url)
                .header("X-HTTP-Method-Override", "PATCH")
                .header("Upload-Offset", 0)
                .header("Content-Type", OCTETS)
                .body(vec![1; 10]),
        )
        .await;
    assert_eq!(overridden.status, StatusCode::NO_CONTENT, "{}", overridden.body);
    assert_eq!(offset_of(&overridden), 10);

    // An unknown method on an upload.
    let get = tus.send(tus.request(Method::GET, &url)).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn checksums_are_verified_per_request_and_for_the_whole_file() {
    let server = TestServer::spawn().await;
    let tus = Tus::new(&server, &server.tenant);
    let bytes = bytes_of(20_000);
    let url =
        tus.create(bytes.len() as u64, &metadata("summed.bin", &[("sha256", &sha256_hex(&bytes))])).await;
    let checksum = |piece: &[u8]| format!("sha256 {}", b64(&Sha256::digest(piece)));
    let patch = |offset: u64, piece: &[u8], sum: String| {
        tus.request(Method::PATCH, &url)
            .header("Upload-Offset", offset)
            .header("Content-Type", OCTETS)
            .header("Upload-Checksum", sum)
            .body(piece.to_vec())
    };
    let good = tus.send(patch(0, &bytes[..8000], checksum(&bytes[..8000]))).await;
    assert_eq!(good.status, StatusCode::NO_CONTENT, "{}", good.body);
    let bad = tus.send(patch(8000, &bytes[8000..], checksum(b"something else"))).await;
    assert_error(bad.status, &bad.body, StatusCode::from_u16(460).unwrap(), "chunk_checksum_mismatch");
    assert_eq!(offset_of(&tus.offset(&url).await), 8000, "a mismatching request keeps nothing");
    let unknown = tus.send(patch(8000, &bytes[8000..], "md4 AAAA".to_owned())).await;
    assert_error(unknown.status, &unknown.body, StatusCode::BAD_REQUEST, "invalid_sha256");
    let rest = tus.send(patch(8000, &bytes[8000..], checksum(&bytes[8000..]))).await;
    assert_eq!(rest.status, StatusCode::NO_CONTENT, "{}", rest.body);
    assert!(file_named(&server, &server.tenant, "summed.bin").await.is_some());

    // The whole file's sha256 in Upload-Metadata: checked before the file exists.
    let url =
        tus.create(bytes.len() as u64, &metadata("wrong.bin", &[("sha256", &sha256_hex(b"other"))])).await;
    let last = tus.patch(&url, 0, bytes.clone()).await;
    assert_error(last.status, &last.body, StatusCode::UNPROCESSABLE_ENTITY, "checksum_mismatch");
    assert!(file_named(&server, &server.tenant, "wrong.bin").await.is_none());
    assert_eq!(tus.offset(&url).await.status, StatusCode::GONE);
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 0);
}

#[tokio::test]
async fn quota_is_reserved_at_creation_and_released_by_termination() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant(Some(1000), cabinet_core::Role::Write).await;
    let tus = Tus::new(&server, &tenant);
    let over = tus
        .send(
            tus.request(Method::POST, "/tus/v1/")
                .header("Upload-Length", 1001)
                .header("Upload-Metadata", metadata("big", &[])),
        )
        .await;
    assert_error(over.status, &over.body, StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded");
    let url = tus.create(600, &metadata("held.bin", &[])).await;
    assert_eq!(server.quota(&tenant).await["reserved_bytes"], 600);
    let second = tus
        .send(
            tus.request(Method::POST, "/tus/v1/")
                .header("Upload-Length", 500)
                .header("Upload-Metadata", metadata("more", &[])),
        )
        .await;
    assert_error(second.status, &second.body, StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded");
    assert_eq!(tus.patch(&url, 0, vec![7; 300]).await.status, StatusCode::NO_CONTENT);

    let terminated = tus.send(tus.request(Method::DELETE, &url)).await;
    assert_eq!(terminated.status, StatusCode::NO_CONTENT, "{}", terminated.body);
    assert_eq!(server.quota(&tenant).await["reserved_bytes"], 0);
    assert_eq!(tus.offset(&url).await.status, StatusCode::GONE);
    let after = tus.patch(&url, 300, vec![7; 300]).await;
    assert_error(after.status, &after.body, StatusCode::GONE, "upload_not_live");
    assert!(walk(&server.dir.path().join("blobs/objects/incoming")).is_empty(), "its bytes are removed");

    // A deferred length: refused once the bytes would pass the quota.
    let answer = tus
        .send(
            tus.request(Method::POST, "/tus/v1/")
                .header("Upload-Defer-Length", "1")
                .header("Upload-Metadata", metadata("open", &[])),
        )
        .await;
    let url = header(&answer.headers, "location").unwrap();
    let over = tus.patch(&url, 0, vec![1; 1001]).await;
    assert_error(over.status, &over.body, StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded");
}

/// Uploads of deferred length hold what they received reserved, so several of them together can
/// never keep more bytes than the quota (the hostile-input rule for every upload of unknown size).
#[tokio::test]
async fn uploads_of_deferred_length_together_never_hold_more_than_the_quota() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant(Some(1000), cabinet_core::Role::Write).await;
    let tus = Tus::new(&server, &tenant);
    let deferred = |name: &'static str| {
        let tus = &tus;
        async move {
            let answer = tus
                .send(
                    tus.request(Method::POST, "/tus/v1/")
                        .header("Upload-Defer-Length", "1")
                        .header("Upload-Metadata", metadata(name, &[])),
                )
                .await;
            assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
            header(&answer.headers, "location").unwrap()
        }
    };
    let (first, second) = (deferred("first.bin").await, deferred("second.bin").await);
    assert_eq!(server.quota(&tenant).await["reserved_bytes"], 0, "nothing is held before a byte arrives");

    assert_eq!(tus.patch(&first, 0, vec![1; 600]).await.status, StatusCode::NO_CONTENT);
    assert_eq!(server.quota(&tenant).await["reserved_bytes"], 600, "received bytes stay reserved");
    // 600 are held by the first: the second cannot keep 600 more.
    let over = tus.patch(&second, 0, vec![2; 600]).await;
    assert_error(over.status, &over.body, StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded");
    assert_eq!(tus.patch(&second, 0, vec![2; 400]).await.status, StatusCode::NO_CONTENT);
    assert_eq!(server.quota(&tenant).await["reserved_bytes"], 1000);
    let full = tus.patch(&first, 600, vec![1; 1]).await;
    assert_error(full.status, &full.body, StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded");

    // A length declared later is reserved whole, and refused when it does not fit.
    let too_long = tus
        .send(
            tus.request(Method::PATCH, &second)
                .header("Upload-Offset", 400)
                .header("Upload-Length", 500)
                .header("Content-Type", OCTETS)
                .body(Vec::<u8>::new()),
        )
        .await;
    assert_error(too_long.status, &too_long.body, StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded");
    let declared = tus
        .send(
            tus.request(Method::PATCH, &second)
                .header("Upload-Offset", 400)
                .header("Upload-Length", 400)
                .header("Content-Type", OCTETS)
                .body(Vec::<u8>::new()),
        )
        .await;
    assert_eq!(declared.status, StatusCode::NO_CONTENT, "{}", declared.body);
    assert!(file_named(&server, &tenant, "second.bin").await.is_some(), "its last byte had arrived");
    let quota = server.quota(&tenant).await;
    assert_eq!((quota["used_bytes"].as_u64(), quota["reserved_bytes"].as_u64()), (Some(400), Some(600)));

    // Ended without a file: what it held is released.
    assert_eq!(tus.send(tus.request(Method::DELETE, &first)).await.status, StatusCode::NO_CONTENT);
    assert_eq!(server.quota(&tenant).await["reserved_bytes"], 0);
}

#[tokio::test]
async fn an_expired_upload_is_gone() {
    let server = TestServer::spawn().await;
    let tus = Tus::new(&server, &server.tenant);
    let url = tus.create(100, &metadata("late.bin", &[])).await;
    let expires = header(&tus.offset(&url).await.headers, "upload-expires").unwrap();
    let at = chrono::DateTime::parse_from_rfc2822(&expires.replace("GMT", "+0000")).unwrap();
    let lifetime = at.timestamp() - server.cabinet.now().timestamp();
    assert!((86_000..=86_401).contains(&lifetime), "a day: {lifetime}");
    assert_eq!(tus.patch(&url, 0, vec![1; 10]).await.status, StatusCode::NO_CONTENT);
    server.clock.advance(chrono::Duration::hours(25));
    assert_eq!(tus.offset(&url).await.status, StatusCode::GONE);
    let late = tus.patch(&url, 10, vec![1; 10]).await;
    assert_error(late.status, &late.body, StatusCode::GONE, "upload_not_live");
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 0);
}

#[tokio::test]
async fn another_workspace_and_no_key_get_nothing() {
    let server = TestServer::spawn().await;
    let tus = Tus::new(&server, &server.tenant);
    let url = tus.create(100, &metadata("mine.bin", &[])).await;
    let other = server.tenant(None, cabinet_core::Role::Admin).await;
    let stranger = Tus::new(&server, &other);
    for answer in [
        stranger.offset(&url).await,
        stranger.patch(&url, 0, vec![1; 10]).await,
        stranger.send(stranger.request(Method::DELETE, &url)).await,
    ] {
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    }
    let reader = Tus::new(
        &server,
        &Tenant {
            workspace: server.tenant.workspace.clone(),
            key: server.key_for(&server.tenant.workspace, cabinet_core::Role::Read).await,
        },
    );
    assert_eq!(reader.patch(&url, 0, vec![1; 10]).await.status, StatusCode::FORBIDDEN);
    let anonymous = server
        .send(
            server
                .http
                .request(Method::PATCH, &url)
                .header("Tus-Resumable", VERSION)
                .header("Upload-Offset", 0)
                .header("Content-Type", OCTETS)
                .body(vec![1; 10]),
        )
        .await;
    assert_error(anonymous.0, &anonymous.1, StatusCode::UNAUTHORIZED, "unauthenticated");
    let anonymous = server
        .send(
            server
                .http
                .post(format!("{}/tus/v1/", server.url))
                .header("Tus-Resumable", VERSION)
                .header("Upload-Length", 1),
        )
        .await;
    assert_eq!(anonymous.0, StatusCode::UNAUTHORIZED);
    let unknown = tus.offset("/tus/v1/up_00000000000000000000000000").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let garbage = tus.offset("/tus/v1/not-an-id").await;
    assert_eq!(garbage.status, StatusCode::NOT_FOUND);
    assert_eq!(offset_of(&tus.offset(&url).await), 0, "the owner's upload is untouched");
}

#[tokio::test]
async fn a_request_cut_short_keeps_what_arrived() {
    let server = TestServer::spawn().await;
    let tus = Tus::new(&server, &server.tenant);
    let bytes = bytes_of(3 * 1024 * 1024);
    let url = tus.create(bytes.len() as u64, &metadata("cut.bin", &[])).await;
    // A body that sends 1 MiB and then fails: the connection is cut mid-request.
    let first = bytes[..1024 * 1024].to_vec();
    let body = futures::stream::iter(vec![
        Ok::<_, std::io::Error>(bytes::Bytes::from(first)),
        Err(std::io::Error::other("cut")),
    ]);
    let cut = tus
        .request(Method::PATCH, &url)
        .header("Upload-Offset", 0)
        .header("Content-Type", OCTETS)
        .header("Content-Length", bytes.len())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await;
    assert!(cut.is_err(), "the request fails on the client's side");
    // The server keeps what arrived once it notices the cut.
    let mut offset = 0;
    for _ in 0..100 {
        offset = offset_of(&tus.offset(&url).await);
        if offset > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(offset > 0 && offset <= 1024 * 1024, "{offset}");
    // Until the cut request has ended on the server, another append is refused with 423 (which
    // tus clients retry).
    let mut rest = tus.patch(&url, offset, bytes[offset as usize..].to_vec()).await;
    for _ in 0..100 {
        if rest.status != StatusCode::LOCKED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        rest = tus.patch(&url, offset, bytes[offset as usize..].to_vec()).await;
    }
    assert_eq!(rest.status, StatusCode::NO_CONTENT, "{}", rest.body);
    let file = file_named(&server, &server.tenant, "cut.bin").await.unwrap();
    assert_eq!(file["sha256"], sha256_hex(&bytes));
}

/// On S3 a part is streamed to the bucket as its bytes arrive, the tail of an earlier request
/// first: a request cut in the middle of a part keeps the whole parts before it (the bucket keeps
/// no short part), and the upload resumes from there.
#[tokio::test]
async fn on_s3_a_request_cut_in_the_middle_of_a_part_keeps_the_parts_before_it() {
    let Some(server) = TestServer::spawn_s3("tus cut on S3").await else { return };
    let tus = Tus::new(&server, &server.tenant);
    const PART: usize = 8 * 1024 * 1024;
    const TAIL: usize = 3 * 1024 * 1024;
    let bytes = bytes_of(2 * PART + 1234);
    let url = tus.create(bytes.len() as u64, &metadata("cut-on-s3.bin", &[])).await;
    let first = tus.patch(&url, 0, bytes[..TAIL].to_vec()).await;
    assert_eq!(first.status, StatusCode::NO_CONTENT, "{}", first.body);
    // The rest declared, a part and a half of it sent, then the connection cut.
    let sent = bytes[TAIL..TAIL + PART + PART / 2].to_vec();
    let body = futures::stream::iter(vec![
        Ok::<_, std::io::Error>(bytes::Bytes::from(sent)),
        Err(std::io::Error::other("cut")),
    ]);
    let cut = tus
        .request(Method::PATCH, &url)
        .header("Upload-Offset", TAIL)
        .header("Content-Type", OCTETS)
        .header("Content-Length", bytes.len() - TAIL)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await;
    assert!(cut.is_err(), "the request fails on the client's side");
    let mut offset = 0;
    for _ in 0..200 {
        offset = offset_of(&tus.offset(&url).await);
        if offset == PART as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        offset, PART as u64,
        "the first part (the tail and what followed) landed, the cut one did not"
    );
    let mut rest = tus.patch(&url, offset, bytes[PART..].to_vec()).await;
    for _ in 0..100 {
        if rest.status != StatusCode::LOCKED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        rest = tus.patch(&url, offset, bytes[PART..].to_vec()).await;
    }
    assert_eq!(rest.status, StatusCode::NO_CONTENT, "{}", rest.body);
    let file =
        file_named(&server, &server.tenant, "cut-on-s3.bin").await.expect("the file exists once complete");
    assert_eq!(file["sha256"], sha256_hex(&bytes));
    assert_eq!(content(&server, &server.tenant, &file).await, bytes);
}

#[tokio::test]
async fn browsers_may_call_it_and_read_its_headers() {
    let server = TestServer::spawn().await;
    let preflight = server
        .http
        .request(Method::OPTIONS, format!("{}/tus/v1/", server.url))
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization,tus-resumable,upload-length,upload-metadata")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    let allowed = header(preflight.headers(), "access-control-allow-headers").unwrap();
    assert!(allowed.contains("authorization") && allowed.contains("upload-length"), "{allowed}");
    let tus = Tus::new(&server, &server.tenant);
    let url = tus.create(10, &metadata("cors.bin", &[])).await;
    let head = tus.send(tus.request(Method::HEAD, &url).header("Origin", "https://app.example")).await;
    let exposed = header(&head.headers, "access-control-expose-headers").unwrap();
    for name in ["Upload-Offset", "Location", "Upload-Length", "Tus-Resumable", "Upload-Expires"] {
        assert!(exposed.contains(name), "{name} in {exposed}");
    }
}
