//! Resumable multipart uploads over HTTP, on the local folder and on S3 (s3s-fs, started by
//! `dev/test`; the S3 variants skip with a notice when there is none, unless
//! `CABINET_REQUIRE_S3=1`): parts in any order, listed, completed only when all are there (the
//! upload stays open otherwise), verified like any upload, cancelled and expired without leftovers,
//! and resumed after a restart of the real binary.

use crate::process;
use crate::support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{assert_error, sha256_hex, Tenant, TestServer};

const MIB: usize = 1024 * 1024;
const PART: usize = 5 * MIB;

/// Two whole parts and a short last one, with bytes that differ per position.
fn three_parts() -> Vec<u8> {
    (0..2 * PART + 1234).map(|i| (i % 251) as u8 ^ (i / PART) as u8).collect()
}

fn part(bytes: &[u8], number: usize) -> Vec<u8> {
    let start = (number - 1) * PART;
    bytes[start..(start + PART).min(bytes.len())].to_vec()
}

async fn start(server: &TestServer, tenant: &Tenant, body: Value) -> Value {
    let (status, ticket) = server.start_upload(tenant, body).await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    ticket
}

async fn start_multipart(server: &TestServer, bytes: &[u8], sha256: Option<String>) -> Value {
    let mut body = json!({"name": "big.bin", "size": bytes.len(), "multipart": true, "part_size": PART});
    if let Some(sha256) = sha256 {
        body["sha256"] = json!(sha256);
    }
    start(server, &server.tenant, body).await
}

/// Signs URLs for these parts and returns them by part number.
async fn part_urls(server: &TestServer, id: &str, numbers: &[u32]) -> Vec<Value> {
    let (status, body) = server
        .send(
            server
                .request(Method::POST, &format!("/v1/uploads/{id}/parts"), &server.tenant.key)
                .json(&json!({ "part_numbers": numbers })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let parts = body["parts"].as_array().unwrap().clone();
    assert_eq!(parts.len(), numbers.len());
    parts
}

/// Sends a part's bytes to its URL with the headers it lists.
async fn put_part(server: &TestServer, url: &Value, bytes: Vec<u8>) -> (StatusCode, Value) {
    let mut request = server.http.put(url["url"].as_str().unwrap()).body(bytes);
    for (name, value) in url["headers"].as_object().unwrap() {
        request = request.header(name, value.as_str().unwrap());
    }
    server.send(request).await
}

/// Whether the storage refuses these bytes for a part: an error status, or (S3, which answers
/// before reading a body it will not take) a connection closed mid-body.
async fn part_refused(server: &TestServer, url: &Value, bytes: Vec<u8>) -> bool {
    match server.http.put(url["url"].as_str().unwrap()).body(bytes).send().await {
        Ok(response) => response.status().is_client_error(),
        Err(err) => err.is_request(),
    }
}

async fn send_part(server: &TestServer, id: &str, bytes: &[u8], number: u32) {
    let url = &part_urls(server, id, &[number]).await[0];
    let (status, body) = put_part(server, url, part(bytes, number as usize)).await;
    assert_eq!(status, StatusCode::OK, "part {number}: {body}");
}

async fn listed_parts(server: &TestServer, id: &str) -> Value {
    let (status, body) = server
        .send(server.request(Method::GET, &format!("/v1/uploads/{id}/parts"), &server.tenant.key))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn complete(server: &TestServer, id: &str) -> (StatusCode, Value) {
    server.send(server.request(Method::POST, &format!("/v1/uploads/{id}/complete"), &server.tenant.key)).await
}

async fn upload_state(server: &TestServer, id: &str) -> Value {
    let (status, body) = server.send(server.get(&format!("/v1/uploads/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn content(server: &TestServer, file_id: &str) -> Vec<u8> {
    let response = server.get(&format!("/v1/files/{file_id}/content")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.bytes().await.unwrap().to_vec()
}

/// The local folder holding an upload's parts.
fn parts_dir(server: &TestServer, id: &str) -> std::path::PathBuf {
    server.dir.path().join("blobs/parts").join(server.tenant.workspace.as_str()).join(id)
}

macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {
        mod local {
            $(#[tokio::test] async fn $scenario() { super::$scenario(&super::TestServer::spawn().await).await; })*
        }
        mod s3 {
            $(#[tokio::test] async fn $scenario() {
                if let Some(server) = super::TestServer::spawn_s3(stringify!($scenario)).await {
                    super::$scenario(&server).await;
                }
            })*
        }
    };
}

on_every_backend!(
    parts_arrive_in_any_order_and_complete_resumes_after_parts_missing,
    a_part_of_the_wrong_size_is_refused_and_not_recorded,
    a_lying_sha256_fails_the_upload_and_releases_its_reservation,
    cancelling_removes_the_parts,
);

async fn parts_arrive_in_any_order_and_complete_resumes_after_parts_missing(server: &TestServer) {
    let bytes = three_parts();
    let ticket = start_multipart(server, &bytes, Some(sha256_hex(&bytes))).await;
    assert_eq!(ticket["multipart"], json!({"part_size": PART, "part_count": 3}));
    assert_eq!(ticket["upload_url"], Value::Null);
    let id = ticket["id"].as_str().unwrap();
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], bytes.len());

    let urls = part_urls(server, id, &[3, 1]).await;
    assert_eq!((urls[0]["part_number"].as_u64(), urls[0]["size"].as_u64()), (Some(3), Some(1234)));
    assert_eq!((urls[1]["part_number"].as_u64(), urls[1]["size"].as_u64()), (Some(1), Some(PART as u64)));
    assert_eq!(urls[0]["method"], "PUT");
    for url in &urls {
        let number = url["part_number"].as_u64().unwrap() as usize;
        let (status, body) = put_part(server, url, part(&bytes, number)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if server.s3.is_none() {
            assert_eq!(body["part_number"], number);
            assert_eq!(body["size"], part(&bytes, number).len());
            assert!(body["etag"].as_str().is_some_and(|etag| !etag.is_empty()), "{body}");
        }
    }
    let listed = listed_parts(server, id).await;
    assert_eq!((listed["part_size"].as_u64(), listed["part_count"].as_u64()), (Some(PART as u64), Some(3)));
    let numbers: Vec<_> =
        listed["parts"].as_array().unwrap().iter().map(|p| p["part_number"].clone()).collect();
    assert_eq!(numbers, vec![json!(1), json!(3)]);
    assert_eq!(listed["parts"][1]["size"], 1234);

    let (status, body) = complete(server, id).await;
    assert_error(status, &body, StatusCode::CONFLICT, "parts_missing");
    assert_eq!(body["error"]["missing_parts"], json!([2]));
    assert_eq!(upload_state(server, id).await["status"], "WAITING");

    // Sending a part again replaces it.
    send_part(server, id, &bytes, 2).await;
    send_part(server, id, &bytes, 1).await;
    let (status, done) = complete(server, id).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "SUCCESS");
    let file = &done["file"];
    assert_eq!(file["size"], bytes.len());
    assert_eq!(file["sha256"], sha256_hex(&bytes));
    assert!(content(server, file["id"].as_str().unwrap()).await == bytes, "the file's bytes differ");
    let quota = server.quota(&server.tenant).await;
    assert_eq!(
        (quota["used_bytes"].as_u64(), quota["reserved_bytes"].as_u64()),
        (Some(bytes.len() as u64), Some(0))
    );

    // Idempotent, and the parts are gone.
    let (status, again) = complete(server, id).await;
    assert_eq!((status, &again["file"]["id"]), (StatusCode::OK, &file["id"]));
    assert_eq!(listed_parts(server, id).await["parts"], json!([]));
    if server.s3.is_none() {
        assert!(!parts_dir(server, id).exists());
        assert_eq!(server.temporary_files(), 0);
    }
}

async fn a_part_of_the_wrong_size_is_refused_and_not_recorded(server: &TestServer) {
    let bytes = three_parts();
    let ticket = start_multipart(server, &bytes, None).await;
    let id = ticket["id"].as_str().unwrap();
    let url = &part_urls(server, id, &[1]).await[0];
    if server.s3.is_none() {
        let (status, body) = put_part(server, url, vec![7; PART - 1]).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "part_size_mismatch");
        let (status, body) = put_part(server, url, vec![7; PART + 1]).await;
        assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "part_too_large");
        assert_eq!(server.temporary_files(), 0);
    } else {
        // S3 refuses it: the length is part of the signature.
        assert!(part_refused(server, url, vec![7; PART - 1]).await);
        assert!(part_refused(server, url, vec![7; PART + 1]).await);
    }
    assert_eq!(listed_parts(server, id).await["parts"], json!([]));
    let (status, body) = complete(server, id).await;
    assert_error(status, &body, StatusCode::CONFLICT, "parts_missing");
    assert_eq!(body["error"]["missing_parts"], json!([1, 2, 3]));
}

async fn a_lying_sha256_fails_the_upload_and_releases_its_reservation(server: &TestServer) {
    let bytes = three_parts();
    let ticket = start_multipart(server, &bytes, Some(sha256_hex(b"something else"))).await;
    let id = ticket["id"].as_str().unwrap();
    for number in [1, 2, 3] {
        send_part(server, id, &bytes, number).await;
    }
    let (status, body) = complete(server, id).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "checksum_mismatch");
    let state = upload_state(server, id).await;
    assert_eq!((&state["status"], &state["reason"]), (&json!("FAILED"), &json!("checksum_mismatch")));
    let quota = server.quota(&server.tenant).await;
    assert_eq!((quota["used_bytes"].as_u64(), quota["reserved_bytes"].as_u64()), (Some(0), Some(0)));
    let (status, files) = server.send(server.get("/v1/files")).await;
    assert_eq!((status, files["total"].as_u64()), (StatusCode::OK, Some(0)));
    let report = server.cabinet.check_consistency(false).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    if server.s3.is_none() {
        assert!(!parts_dir(server, id).exists());
        assert_eq!((server.temporary_files(), server.stored_blobs()), (0, 0));
    }
}

async fn cancelling_removes_the_parts(server: &TestServer) {
    let bytes = three_parts();
    let ticket = start_multipart(server, &bytes, None).await;
    let id = ticket["id"].as_str().unwrap();
    send_part(server, id, &bytes, 1).await;
    let late = &part_urls(server, id, &[2]).await[0];
    if server.s3.is_none() {
        assert!(parts_dir(server, id).join("1").exists());
    }
    let (status, body) =
        server.send(server.request(Method::DELETE, &format!("/v1/uploads/{id}"), &server.tenant.key)).await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &json!("FAILED")), "{body}");
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 0);
    // The parts are gone, and no part is taken any more.
    assert!(part_refused(server, late, part(&bytes, 2)).await);
    if server.s3.is_none() {
        assert!(!parts_dir(server, id).exists());
    }
    let (status, body) = server
        .send(
            server
                .request(Method::POST, &format!("/v1/uploads/{id}/parts"), &server.tenant.key)
                .json(&json!({"part_numbers": [2]})),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "upload_not_waiting");
}

#[tokio::test]
async fn plans_and_part_numbers_are_validated() {
    let server = TestServer::spawn().await;
    for (body, code) in [
        (json!({"name": "a", "size": 10, "multipart": true, "part_size": 1024}), "invalid_part_size"),
        (json!({"name": "a", "size": 10, "multipart": true, "part_size": 6_u64 << 30}), "invalid_part_size"),
        (json!({"name": "a", "size": 10, "part_size": PART}), "invalid_part_size"),
        (json!({"name": "a", "size": 10_001 * PART, "multipart": true, "part_size": PART}), "too_many_parts"),
    ] {
        let (status, error) = server.start_upload(&server.tenant, body).await;
        assert_error(status, &error, StatusCode::BAD_REQUEST, code);
    }
    let ticket =
        start(&server, &server.tenant, json!({"name": "a", "size": 20 << 20, "multipart": true})).await;
    assert_eq!(ticket["multipart"], json!({"part_size": 64 << 20, "part_count": 1}));
    let id = ticket["id"].as_str().unwrap();
    // Open for 24 hours by default.
    let expires = chrono::DateTime::parse_from_rfc3339(ticket["expires_at"].as_str().unwrap()).unwrap();
    let hours = (expires.with_timezone(&chrono::Utc) - server.cabinet.now()).num_minutes() as f64 / 60.0;
    assert!((23.9..=24.1).contains(&hours), "{hours}");
    let too_many: Vec<u32> = (1..=101).collect();
    for numbers in [json!([0]), json!([2]), json!([]), json!(too_many)] {
        let (status, body) = server
            .send(
                server
                    .request(Method::POST, &format!("/v1/uploads/{id}/parts"), &server.tenant.key)
                    .json(&json!({ "part_numbers": numbers })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{numbers}: {body}");
        assert!(body["error"]["code"].as_str().unwrap().starts_with("invalid_part_number"), "{body}");
    }
    // An ordinary upload has no parts.
    let plain = start(&server, &server.tenant, json!({"name": "b", "size": 3})).await;
    let plain = plain["id"].as_str().unwrap();
    let (status, body) = server.send(server.get(&format!("/v1/uploads/{plain}/parts"))).await;
    assert_error(status, &body, StatusCode::CONFLICT, "not_multipart");
}

#[tokio::test]
async fn another_tenants_upload_is_not_found() {
    let server = TestServer::spawn().await;
    let bytes = three_parts();
    let ticket = start_multipart(&server, &bytes, None).await;
    let id = ticket["id"].as_str().unwrap();
    let other = server.tenant(None, cabinet_core::Role::Admin).await;
    for (method, path) in [
        (Method::POST, format!("/v1/uploads/{id}/parts")),
        (Method::GET, format!("/v1/uploads/{id}/parts")),
        (Method::POST, format!("/v1/uploads/{id}/complete")),
    ] {
        let (status, body) =
            server.send(server.request(method, &path, &other.key).json(&json!({"part_numbers": [1]}))).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn tampered_and_expired_part_urls_are_refused() {
    let server = TestServer::spawn().await;
    let bytes = three_parts();
    let ticket = start_multipart(&server, &bytes, None).await;
    let id = ticket["id"].as_str().unwrap();
    let urls = part_urls(&server, id, &[1, 3]).await;
    let url = urls[0]["url"].as_str().unwrap();
    // Part URLs live an hour at most.
    let expires = chrono::DateTime::parse_from_rfc3339(urls[0]["expires_at"].as_str().unwrap()).unwrap();
    assert!((expires.with_timezone(&chrono::Utc) - server.cabinet.now()).num_seconds() <= 3601);
    let tampered = [
        url.replace("/parts/1?", "/parts/2?"),
        url.replace(&format!("max={PART}"), &format!("max={}", PART + 1)),
        url.replace(&format!("/{id}/"), "/upl_00000000000000000000000000/"),
        url.split('?').next().unwrap().to_owned(),
    ];
    for tampered in tampered {
        let (status, body) = server.send(server.http.put(&tampered).body(part(&bytes, 1))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{tampered}: {body}");
    }
    server.clock.advance(chrono::Duration::minutes(61));
    let (status, body) = server.send(server.http.put(url).body(part(&bytes, 1))).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "url_expired");
    assert_eq!(listed_parts(&server, id).await["parts"], json!([]));
}

#[tokio::test]
async fn expired_multipart_uploads_are_failed_and_their_parts_removed() {
    let server = TestServer::spawn().await;
    let bytes = three_parts();
    let ticket = start_multipart(&server, &bytes, None).await;
    let id = ticket["id"].as_str().unwrap();
    send_part(&server, id, &bytes, 1).await;
    // A restart keeps the parts of a live upload...
    server.cabinet.recover_after_restart().await.unwrap();
    assert!(parts_dir(&server, id).join("1").exists());
    assert_eq!(listed_parts(&server, id).await["parts"].as_array().unwrap().len(), 1);
    // ...and the sweeper removes those of an expired one.
    server.clock.advance(chrono::Duration::hours(25));
    assert_eq!(server.cabinet.sweep_expired_uploads().await.unwrap(), 1);
    assert_eq!(upload_state(&server, id).await["reason"], "expired");
    assert!(!parts_dir(&server, id).exists());
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 0);
}

/// The real binary stops between parts; after the restart the received parts are still there,
/// and the client resumes with fresh URLs and completes.
#[test]
fn a_restart_between_parts_keeps_the_received_parts() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let bytes = three_parts();
    let mut first = process::ServerProcess::start(dir.path());
    let key = first.bootstrap_key.clone().expect("bootstrap key");
    let call = |base: String, method: Method, path: String, body: Option<Value>| {
        let mut request = http.request(method, format!("{base}{path}")).bearer_auth(&key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let put = |url: &Value, number: usize| {
        let request = http.put(url["url"].as_str().unwrap()).body(part(&bytes, number));
        async move { request.send().await.unwrap().status() }
    };
    let id = runtime.block_on(async {
        let body = json!({"name": "resume.bin", "size": bytes.len(), "multipart": true, "part_size": PART,
                          "sha256": sha256_hex(&bytes)});
        let (status, ticket) = call(first.url.clone(), Method::POST, "/v1/uploads".into(), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{ticket}");
        let id = ticket["id"].as_str().unwrap().to_owned();
        let path = format!("/v1/uploads/{id}/parts");
        let (_, urls) =
            call(first.url.clone(), Method::POST, path, Some(json!({"part_numbers": [1, 2]}))).await;
        for url in urls["parts"].as_array().unwrap() {
            assert_eq!(put(url, url["part_number"].as_u64().unwrap() as usize).await, StatusCode::OK);
        }
        id
    });
    first.terminate();
    first.wait_for_exit(Duration::from_secs(20)).expect("the server stops");
    let second = process::ServerProcess::start(dir.path());
    runtime.block_on(async {
        let path = format!("/v1/uploads/{id}/parts");
        let (status, listed) = call(second.url.clone(), Method::GET, path.clone(), None).await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        let numbers: Vec<_> =
            listed["parts"].as_array().unwrap().iter().map(|p| p["part_number"].clone()).collect();
        assert_eq!(numbers, vec![json!(1), json!(2)], "{}", second.logs());
        let (_, urls) =
            call(second.url.clone(), Method::POST, path, Some(json!({"part_numbers": [3]}))).await;
        assert_eq!(put(&urls["parts"][0], 3).await, StatusCode::OK);
        let (status, done) =
            call(second.url.clone(), Method::POST, format!("/v1/uploads/{id}/complete"), None).await;
        assert_eq!((status, &done["status"]), (StatusCode::OK, &json!("SUCCESS")), "{done}");
        assert_eq!(done["file"]["sha256"], sha256_hex(&bytes));
    });
}

/// A stop while `complete` joins the parts leaves the upload UPLOADING with every part on disk.
/// Recovery at the next start must keep the parts and reopen the upload, so `complete` again
/// makes the file (the README promises received parts survive a restart).
#[tokio::test]
async fn a_stop_during_complete_keeps_the_parts_and_complete_works_after_recovery() {
    let server = TestServer::spawn().await;
    let bytes = three_parts();
    let ticket = start_multipart(&server, &bytes, Some(sha256_hex(&bytes))).await;
    let id = ticket["id"].as_str().unwrap();
    for number in 1..=3 {
        send_part(&server, id, &bytes, number).await;
    }
    // What a stop mid-assembly leaves: the upload claimed, a partial temporary object.
    server.raw_sql(&format!("UPDATE uploads SET status = 'UPLOADING' WHERE id = '{id}'")).await;
    std::fs::write(server.dir.path().join("blobs/tmp/01jdq4x7m2c8v5n3k9w6r1t0ya.part"), &bytes[..PART])
        .unwrap();
    let report = server.cabinet.recover_after_restart().await.unwrap();
    assert_eq!(report.interrupted_assemblies_reopened, 1, "{report:?}");
    assert_eq!((report.interrupted_uploads_failed, report.orphan_parts_removed), (0, 0), "{report:?}");
    assert_eq!(server.temporary_files(), 0, "the partial join is gone");
    assert!(parts_dir(&server, id).exists(), "the parts are kept");
    assert_eq!(upload_state(&server, id).await["status"], "WAITING");
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], bytes.len());
    let (status, done) = complete(&server, id).await;
    assert_eq!((status, &done["status"]), (StatusCode::OK, &json!("SUCCESS")), "{done}");
    assert_eq!(content(&server, done["file"]["id"].as_str().unwrap()).await, bytes);
    assert!(!parts_dir(&server, id).exists(), "the parts go once the file is committed");
}

#[tokio::test]
async fn racing_completes_make_one_file() {
    let server = TestServer::spawn().await;
    let bytes = three_parts();
    let ticket = start_multipart(&server, &bytes, Some(sha256_hex(&bytes))).await;
    let id = ticket["id"].as_str().unwrap();
    for number in [1, 2, 3] {
        send_part(&server, id, &bytes, number).await;
    }
    let results = futures::future::join_all((0..4).map(|_| complete(&server, id))).await;
    let mut file_ids = std::collections::HashSet::new();
    for (status, body) in &results {
        match *status {
            StatusCode::OK => {
                file_ids.insert(body["file"]["id"].as_str().unwrap().to_owned());
            }
            // Another complete holds the upload while it assembles.
            _ => assert_error(*status, body, StatusCode::CONFLICT, "upload_in_progress"),
        }
    }
    assert_eq!(file_ids.len(), 1, "{results:?}");
    let (status, done) = complete(&server, id).await;
    assert_eq!((status, &done["status"]), (StatusCode::OK, &json!("SUCCESS")));
    let (_, files) = server.send(server.get("/v1/files")).await;
    assert_eq!(files["total"], 1);
    let quota = server.quota(&server.tenant).await;
    assert_eq!(
        (quota["used_bytes"].as_u64(), quota["reserved_bytes"].as_u64()),
        (Some(bytes.len() as u64), Some(0))
    );
}
