//! `upload-url`, the PUT and `POST /files`: the record makes the file, with the type it names,
//! within the documented size limits, on the local folder and on S3.

use chrono::Duration;

use cabinet_api::HttpLimits;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::support::{sha256_hex, Options, Tenant, TestServer};
use super::{assert_mavera_error, call};

/// `upload-url` for `bytes`, then the PUT as the ticket says; returns the ticket.
async fn upload_unrecorded(
    server: &TestServer,
    tenant: &Tenant,
    name: &str,
    mime: &str,
    bytes: &[u8],
) -> Value {
    let request = json!({
        "file_name": name, "file_type": mime, "file_size": bytes.len(),
        "workspace_id": tenant.workspace.as_str(), "checksum": sha256_hex(bytes),
    });
    let (status, ticket) =
        server.send(call(server, Method::POST, "/files/upload-url", &tenant.key).json(&request)).await;
    assert_eq!(status, StatusCode::OK, "{ticket}");
    let mut put = server.http.put(ticket["upload_url"].as_str().unwrap()).body(bytes.to_vec());
    for (name, value) in ticket["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    let (status, body) = server.send(put).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    ticket
}

async fn record(
    server: &TestServer,
    tenant: &Tenant,
    ticket: &Value,
    name: &str,
    mime: &str,
    size: usize,
) -> (StatusCode, Value) {
    let body = json!({
        "name": name, "type": mime, "url": ticket["public_url"],
        "workspace_id": tenant.workspace.as_str(), "file_size": size,
    });
    server.send(call(server, Method::POST, "/files", &tenant.key).json(&body)).await
}

async fn listed(server: &TestServer, tenant: &Tenant) -> usize {
    let (status, page) = server.send(call(server, Method::GET, "/files", &tenant.key)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"].as_array().unwrap().len()
}

/// The record, not the bytes, makes the file: until `POST /files` nothing is listed (here or
/// natively) and only the reservation is held; a record nobody makes expires with its bytes.
async fn the_record_makes_the_file(server: &TestServer) {
    let tenant = server.tenant.clone();
    let bytes = b"recorded later";
    let ticket = upload_unrecorded(server, &tenant, "later.txt", "text/plain", bytes).await;
    // No file data passes through the API: the bytes go to storage (S3 itself, or Cabinet's
    // storage endpoint on the local folder).
    let upload_url = ticket["upload_url"].as_str().unwrap();
    match server.s3.as_ref().and_then(|s3| s3.endpoint.clone()) {
        Some(endpoint) => assert!(upload_url.starts_with(&endpoint), "{upload_url}"),
        None => assert!(upload_url.starts_with(&format!("{}/storage/", server.url)), "{upload_url}"),
    }
    assert_eq!(listed(server, &tenant).await, 0, "a verified upload nobody recorded is not a file");
    let (_, native) = server.send(server.get("/v1/files")).await;
    assert_eq!(native["data"].as_array().unwrap().len(), 0, "{native}");
    let quota = server.quota(&tenant).await;
    assert_eq!(
        (quota["used_bytes"].as_u64(), quota["reserved_bytes"].as_u64()),
        (Some(0), Some(14)),
        "{quota}"
    );
    // Nor does the reconciler (S3) make it a file behind the client's back.
    server.cabinet.reconcile_uploads().await.unwrap();
    assert_eq!(listed(server, &tenant).await, 0);
    let (status, file) = record(server, &tenant, &ticket, "later.txt", "text/plain", bytes.len()).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(listed(server, &tenant).await, 1);
    let quota = server.quota(&tenant).await;
    assert_eq!(
        (quota["used_bytes"].as_u64(), quota["reserved_bytes"].as_u64()),
        (Some(14), Some(0)),
        "{quota}"
    );
    let fetched = server.http.get(file["url"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&fetched[..], bytes);
    // Recording again answers the same file (a retried request), and makes no second one.
    let (status, again) = record(server, &tenant, &ticket, "later.txt", "text/plain", bytes.len()).await;
    assert_eq!((status, &again["id"]), (StatusCode::CREATED, &file["id"]), "{again}");
    assert_eq!(listed(server, &tenant).await, 1);

    // Never recorded: once the URL's hour is over the upload expires, its bytes go and its
    // reservation is released.
    upload_unrecorded(server, &tenant, "forgotten.txt", "text/plain", b"nobody records me").await;
    assert_eq!(server.quota(&tenant).await["reserved_bytes"], 17);
    server.clock.advance(Duration::seconds(3601));
    server.cabinet.reconcile_uploads().await.unwrap();
    server.cabinet.sweep_expired_uploads().await.unwrap();
    assert_eq!(listed(server, &tenant).await, 1);
    let quota = server.quota(&tenant).await;
    assert_eq!(
        (quota["used_bytes"].as_u64(), quota["reserved_bytes"].as_u64()),
        (Some(14), Some(0)),
        "{quota}"
    );
    let report = server.cabinet.check_consistency(false).await.unwrap();
    assert!(report.orphan_objects.is_empty(), "{report:?}");
}

#[tokio::test]
async fn a_verified_upload_nobody_records_is_not_a_file() {
    the_record_makes_the_file(&TestServer::spawn().await).await;
}

#[tokio::test]
async fn a_verified_upload_nobody_records_is_not_a_file_on_s3() {
    let Some(server) = TestServer::spawn_s3("a_verified_upload_nobody_records_is_not_a_file_on_s3").await
    else {
        return;
    };
    the_record_makes_the_file(&server).await;
}

/// The `type` given to `POST /files` is the file's type (as far as its bytes do not say
/// otherwise: Cabinet sniffs, it does not trust).
async fn the_record_s_type_is_kept(server: &TestServer) {
    let tenant = server.tenant.clone();
    let opaque: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) | 0x80).collect();
    let ticket = upload_unrecorded(server, &tenant, "clip", "application/octet-stream", &opaque).await;
    let (status, file) = record(server, &tenant, &ticket, "clip", "video/mp4", opaque.len()).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["type"], "video/mp4", "{file}");
    let (_, got) = server
        .send(call(server, Method::GET, &format!("/files/{}", file["id"].as_str().unwrap()), &tenant.key))
        .await;
    assert_eq!(got["type"], "video/mp4");
    let (_, videos) = server.send(call(server, Method::GET, "/files?type=video", &tenant.key)).await;
    assert_eq!(videos["data"].as_array().unwrap().len(), 1, "{videos}");
    let ticket = upload_unrecorded(server, &tenant, "notes.md", "text/plain", b"# Notes").await;
    let (_, file) = record(server, &tenant, &ticket, "notes.md", "text/markdown", 7).await;
    assert_eq!(file["type"], "text/markdown", "{file}");
    // Bytes that say otherwise win: Cabinet sniffs, it does not trust.
    let mut png = std::io::Cursor::new(Vec::new());
    image::DynamicImage::new_rgb8(2, 2).write_to(&mut png, image::ImageFormat::Png).unwrap();
    let ticket = upload_unrecorded(server, &tenant, "p.txt", "text/plain", png.get_ref()).await;
    let (_, file) = record(server, &tenant, &ticket, "p.txt", "text/plain", png.get_ref().len()).await;
    assert_eq!(file["type"], "image/png", "{file}");
    // A type that is not a MIME type is a bad `type`.
    let ticket = upload_unrecorded(server, &tenant, "x.txt", "text/plain", b"x").await;
    let (status, body) = record(server, &tenant, &ticket, "x.txt", "not a type", 1).await;
    assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(body["error"]["param"], "type", "{body}");
}

#[tokio::test]
async fn the_type_given_to_post_files_is_kept() {
    the_record_s_type_is_kept(&TestServer::spawn().await).await;
}

#[tokio::test]
async fn the_type_given_to_post_files_is_kept_on_s3() {
    let Some(server) = TestServer::spawn_s3("the_type_given_to_post_files_is_kept_on_s3").await else {
        return;
    };
    the_record_s_type_is_kept(&server).await;
}

#[tokio::test]
async fn files_over_the_documented_size_for_their_kind_are_a_bad_file_size() {
    let defaults = HttpLimits::default();
    assert_eq!((defaults.mavera_file_bytes, defaults.mavera_video_bytes), (10_000_000, 2_000_000_000));
    let limits = HttpLimits { mavera_file_bytes: 100, mavera_video_bytes: 1000, ..HttpLimits::default() };
    let server = TestServer::spawn_with(Options { http: Some(limits), ..Options::default() }).await;
    let tenant = server.tenant.clone();
    let ask = |mime: &str, size: u64| {
        call(&server, Method::POST, "/files/upload-url", &tenant.key).json(&json!({
            "file_name": "f", "file_type": mime, "file_size": size, "workspace_id": tenant.workspace.as_str(),
        }))
    };
    for (mime, size, fits) in [
        ("application/pdf", 100, true),
        ("application/pdf", 101, false),
        ("video/mp4", 1000, true),
        ("video/mp4", 1001, false),
        ("image/png", 101, false),
    ] {
        let (status, body) = server.send(ask(mime, size)).await;
        if fits {
            assert_eq!(status, StatusCode::OK, "{mime} {size}: {body}");
        } else {
            assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
            assert_eq!(body["error"]["param"], "file_size", "{body}");
            assert!(
                body["error"]["message"].as_str().unwrap().contains(if mime == "video/mp4" {
                    "1000"
                } else {
                    "100"
                }),
                "{body}"
            );
        }
    }
    // The record is held to the same limits: a video ticket cannot be recorded as a large PDF.
    let bytes = vec![0x80u8; 500];
    let ticket = upload_unrecorded(&server, &tenant, "clip.mp4", "video/mp4", &bytes).await;
    let (status, body) = record(&server, &tenant, &ticket, "clip.pdf", "application/pdf", 500).await;
    assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(body["error"]["param"], "file_size");
    let (status, file) = record(&server, &tenant, &ticket, "clip.mp4", "video/mp4", 500).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    // file_size must be at least 1.
    let (status, body) = server.send(ask("text/plain", 0)).await;
    assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(body["error"]["param"], "file_size");
}

#[tokio::test]
async fn the_upload_url_lives_an_hour_and_a_failed_upload_is_retried_with_a_new_one() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let ws = tenant.workspace.as_str();
    let request =
        json!({"file_name": "a.txt", "file_type": "text/plain", "file_size": 5, "workspace_id": ws});
    let (_, ticket) =
        server.send(call(&server, Method::POST, "/files/upload-url", &tenant.key).json(&request)).await;
    assert_eq!(ticket["expires_in"], 3600, "{ticket}");
    server.clock.advance(Duration::seconds(3601));
    let (status, body) =
        server.send(server.http.put(ticket["upload_url"].as_str().unwrap()).body("hello")).await;
    assert!(status.is_client_error(), "an expired URL is refused: {status} {body}");
    let (status, body) = record(&server, &tenant, &ticket, "a.txt", "text/plain", 5).await;
    assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
    // The docs' answer: request a new URL.
    let (_, fresh) =
        server.send(call(&server, Method::POST, "/files/upload-url", &tenant.key).json(&request)).await;
    let (status, _) = server.send(server.http.put(fresh["upload_url"].as_str().unwrap()).body("hello")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, file) = record(&server, &tenant, &fresh, "a.txt", "text/plain", 5).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
}

async fn the_ticket_s_headers_and_checksum(server: &TestServer) {
    let tenant = server.tenant.clone();
    let ws = tenant.workspace.as_str();
    let bytes = b"checked bytes";
    let request = json!({"file_name": "c.txt", "file_type": "text/plain", "file_size": bytes.len(), "workspace_id": ws, "checksum": sha256_hex(bytes)});
    let (_, ticket) =
        server.send(call(server, Method::POST, "/files/upload-url", &tenant.key).json(&request)).await;
    use base64::Engine;
    let digest = base64::engine::general_purpose::STANDARD.encode(hex::decode(sha256_hex(bytes)).unwrap());
    assert_eq!(ticket["headers"]["Content-Type"], "text/plain", "{ticket}");
    assert_eq!(ticket["headers"]["x-amz-checksum-sha256"], digest.as_str(), "{ticket}");
    assert!(ticket["key"].as_str().is_some_and(|key| !key.is_empty()), "{ticket}");
    assert_eq!(ticket["next_step"]["body"]["url"], ticket["public_url"]);
    assert!(ticket["next_step"]["description"].is_string());
    // Other bytes than the checksum names: refused, and the record too.
    let (status, _) = server
        .send(server.http.put(ticket["upload_url"].as_str().unwrap()).body(b"other bytes!!".to_vec()))
        .await;
    assert!(status.is_client_error(), "{status}");
    let (status, body) = record(server, &tenant, &ticket, "c.txt", "text/plain", bytes.len()).await;
    assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
    // Without a checksum, no checksum header.
    let request =
        json!({"file_name": "d.txt", "file_type": "text/plain", "file_size": 3, "workspace_id": ws});
    let (_, ticket) =
        server.send(call(server, Method::POST, "/files/upload-url", &tenant.key).json(&request)).await;
    assert!(ticket["headers"].get("x-amz-checksum-sha256").is_none(), "{ticket}");
}

#[tokio::test]
async fn the_ticket_names_the_headers_the_put_sends_and_its_checksum_is_enforced() {
    the_ticket_s_headers_and_checksum(&TestServer::spawn().await).await;
}

#[tokio::test]
async fn the_ticket_names_the_headers_the_put_sends_and_its_checksum_is_enforced_on_s3() {
    let test = "the_ticket_names_the_headers_the_put_sends_and_its_checksum_is_enforced_on_s3";
    let Some(server) = TestServer::spawn_s3(test).await else { return };
    the_ticket_s_headers_and_checksum(&server).await;
}

#[tokio::test]
async fn bytes_sent_again_are_verified_again_and_refused_ones_leave_nothing() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let bytes = b"first bytes";
    let ticket = upload_unrecorded(&server, &tenant, "twice.txt", "text/plain", bytes).await;
    let (status, _) = server
        .send(server.http.put(ticket["upload_url"].as_str().unwrap()).body(b"other bytes".to_vec()))
        .await;
    assert!(status.is_client_error(), "{status}");
    let (status, body) = record(&server, &tenant, &ticket, "twice.txt", "text/plain", bytes.len()).await;
    assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(listed(&server, &tenant).await, 0);
    assert_eq!(server.quota(&tenant).await["reserved_bytes"], 0);
    let report = server.cabinet.check_consistency(false).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test]
async fn an_unknown_workspace_or_folder_is_404() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let base = json!({"file_name": "a.txt", "file_type": "text/plain", "file_size": 3});
    let mut unknown_ws = base.clone();
    unknown_ws["workspace_id"] = json!("ws_01jdq4x7m2c8v5n3k9w6r1t0ya");
    let (status, body) =
        server.send(call(&server, Method::POST, "/files/upload-url", &tenant.key).json(&unknown_ws)).await;
    assert_mavera_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let mut unknown_folder = base.clone();
    unknown_folder["workspace_id"] = json!(tenant.workspace.as_str());
    unknown_folder["folder_id"] = json!("fld_01jdq4x7m2c8v5n3k9w6r1t0ya");
    let (status, body) = server
        .send(call(&server, Method::POST, "/files/upload-url", &tenant.key).json(&unknown_folder))
        .await;
    assert_mavera_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(body["error"]["type"], "not_found_error");
}

#[tokio::test]
async fn sources_that_need_outside_services_are_refused_as_a_bad_source() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let ticket = upload_unrecorded(&server, &tenant, "s.txt", "text/plain", b"s").await;
    for source in ["google_drive", "dropbox", "dropbox_chooser", "onedrive", "onedrive_picker", "url"] {
        let body = json!({
            "name": "s.txt", "type": "text/plain", "url": ticket["public_url"], "source": source,
            "workspace_id": tenant.workspace.as_str(), "file_size": 1,
        });
        let (status, body) =
            server.send(call(&server, Method::POST, "/files", &tenant.key).json(&body)).await;
        assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(body["error"]["param"], "source", "{body}");
    }
    assert_eq!(listed(&server, &tenant).await, 0);
    let body = json!({
        "name": "s.txt", "type": "text/plain", "url": ticket["public_url"], "source": "upload",
        "workspace_id": tenant.workspace.as_str(), "file_size": 1,
    });
    let (status, file) = server.send(call(&server, Method::POST, "/files", &tenant.key).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["source"], "upload");
}
