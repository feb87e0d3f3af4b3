//! The upload state machine over HTTP: reserve, send bytes to the signed URL, verify, finish or
//! fail — and every way a client can get it wrong.

use crate::support;

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{assert_error, sha256_hex, TestServer};

fn upload_url(ticket: &Value) -> String {
    ticket["upload_url"].as_str().expect("upload_url").to_owned()
}

#[tokio::test]
async fn a_signed_put_upload_becomes_a_verified_file() {
    let server = TestServer::spawn().await;
    let bytes = b"hello, cabinet".to_vec();
    let (status, ticket) = server
        .start_upload(
            &server.tenant,
            json!({"name": "hello.txt", "size": bytes.len(), "sha256": sha256_hex(&bytes)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    assert_eq!(ticket["status"], "WAITING");
    assert_eq!(ticket["method"], "PUT");
    assert!(ticket["expires_at"].is_string());
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], bytes.len());

    let (status, done) = server.send(server.http.put(upload_url(&ticket)).body(bytes.clone())).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "SUCCESS");
    assert_eq!(done["file"]["sha256"], sha256_hex(&bytes));
    assert_eq!(done["file"]["mime_type"], "text/plain");

    let quota = server.quota(&server.tenant).await;
    assert_eq!(quota["used_bytes"], bytes.len());
    assert_eq!(quota["reserved_bytes"], 0);
    let (_, state) =
        server.send(server.get(&format!("/v1/uploads/{}", ticket["id"].as_str().unwrap()))).await;
    assert_eq!(state["status"], "SUCCESS");
    assert_eq!(state["file"]["id"], done["file"]["id"]);
    let content = server
        .get(&format!("/v1/files/{}/content", done["file"]["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(content.as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn a_multipart_post_with_a_file_field_is_accepted_at_the_same_url() {
    let server = TestServer::spawn().await;
    let bytes = vec![7u8; 3000];
    let (_, ticket) =
        server.start_upload(&server.tenant, json!({"name": "blob.bin", "size": bytes.len()})).await;
    let form = reqwest::multipart::Form::new()
        .text("key", "ignored policy field")
        .part("file", reqwest::multipart::Part::bytes(bytes.clone()).file_name("blob.bin"));
    let (status, done) = server.send(server.http.post(upload_url(&ticket)).multipart(form)).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["file"]["size"], 3000);
    assert_eq!(done["file"]["sha256"], sha256_hex(&bytes));
}

#[tokio::test]
async fn a_multipart_post_without_a_file_field_is_refused() {
    let server = TestServer::spawn().await;
    let (_, ticket) = server.start_upload(&server.tenant, json!({"name": "a", "size": 1})).await;
    let form = reqwest::multipart::Form::new().text("other", "x");
    let (status, body) = server.send(server.http.post(upload_url(&ticket)).multipart(form)).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "missing_file");
}

#[tokio::test]
async fn a_lying_size_fails_the_upload_and_releases_the_reservation() {
    let server = TestServer::spawn().await;
    for (declared, sent, expected_status, code) in [
        (10u64, 4usize, StatusCode::UNPROCESSABLE_ENTITY, "size_mismatch"),
        (10, 11, StatusCode::PAYLOAD_TOO_LARGE, "size_exceeded"),
    ] {
        let (_, ticket) =
            server.start_upload(&server.tenant, json!({"name": "x.bin", "size": declared})).await;
        let (status, body) = server.send(server.http.put(upload_url(&ticket)).body(vec![1u8; sent])).await;
        assert_error(status, &body, expected_status, code);
        let (_, state) =
            server.send(server.get(&format!("/v1/uploads/{}", ticket["id"].as_str().unwrap()))).await;
        assert_eq!(state["status"], "FAILED");
        assert_eq!(state["reason"], "size_mismatch");
        assert_eq!(state["file"], Value::Null);
    }
    let quota = server.quota(&server.tenant).await;
    assert_eq!(quota["reserved_bytes"], 0);
    assert_eq!(quota["used_bytes"], 0);
    assert_eq!(server.stored_blobs(), 0);
    assert_eq!(server.temporary_files(), 0);
}

#[tokio::test]
async fn more_bytes_than_declared_are_refused_while_streaming() {
    let server = TestServer::spawn().await;
    let (_, ticket) = server.start_upload(&server.tenant, json!({"name": "x.bin", "size": 1024})).await;
    // No Content-Length: the body is streamed, so the limit must bite mid-stream.
    let chunks = futures::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![0u8; 64 * 1024])));
    let response = server.http.put(upload_url(&ticket)).body(reqwest::Body::wrap_stream(chunks)).send().await;
    if let Ok(response) = response {
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    let (_, state) =
        server.send(server.get(&format!("/v1/uploads/{}", ticket["id"].as_str().unwrap()))).await;
    assert_eq!(state["status"], "FAILED");
    assert_eq!(state["reason"], "size_mismatch");
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 0);
}

#[tokio::test]
async fn a_lying_sha256_fails_the_upload_and_keeps_no_bytes() {
    let server = TestServer::spawn().await;
    let (_, ticket) = server
        .start_upload(&server.tenant, json!({"name": "x.bin", "size": 5, "sha256": sha256_hex(b"other")}))
        .await;
    let (status, body) = server.send(server.http.put(upload_url(&ticket)).body("hello")).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "checksum_mismatch");
    let (_, state) =
        server.send(server.get(&format!("/v1/uploads/{}", ticket["id"].as_str().unwrap()))).await;
    assert_eq!(state["status"], "FAILED");
    assert_eq!(state["reason"], "checksum_mismatch");
    let (_, files) = server.send(server.get("/v1/files")).await;
    assert_eq!(files["data"].as_array().unwrap().len(), 0);
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 0);
    assert_eq!(server.stored_blobs(), 0);
    assert_eq!(server.temporary_files(), 0);
}

#[tokio::test]
async fn quota_is_never_exceeded_by_twenty_racing_reservations() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant(Some(10_000), cabinet_core::Role::Write).await;
    let attempts = (0..20).map(|i| {
        let server = &server;
        let tenant = &tenant;
        async move { server.start_upload(tenant, json!({"name": format!("f{i}"), "size": 1000})).await }
    });
    let results = futures::future::join_all(attempts).await;
    let granted = results.iter().filter(|(status, _)| *status == StatusCode::CREATED).count();
    let refused: Vec<_> = results.iter().filter(|(status, _)| *status != StatusCode::CREATED).collect();
    assert_eq!(granted, 10);
    for (status, body) in refused {
        assert_error(*status, body, StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded");
    }
    let quota = server.quota(&tenant).await;
    assert_eq!(quota["reserved_bytes"], 10_000);
    assert_eq!(quota["available_bytes"], 0);
}

#[tokio::test]
async fn a_file_larger_than_the_quota_is_refused_up_front() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant(Some(100), cabinet_core::Role::Write).await;
    let (status, body) = server.start_upload(&tenant, json!({"name": "big", "size": 101})).await;
    assert_error(status, &body, StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded");
    assert_eq!(server.quota(&tenant).await["reserved_bytes"], 0);
}

#[tokio::test]
async fn a_tampered_upload_url_is_refused_and_the_upload_still_waits() {
    let server = TestServer::spawn().await;
    let (_, ticket) = server.start_upload(&server.tenant, json!({"name": "x", "size": 3})).await;
    let url = upload_url(&ticket);
    let other_upload = {
        let (_, other) = server.start_upload(&server.tenant, json!({"name": "y", "size": 3})).await;
        other["id"].as_str().unwrap().to_owned()
    };
    let tampered = [
        url.replace("max=3", "max=30"),
        url.replace("expires=", "expires=9"),
        url.replace(ticket["id"].as_str().unwrap(), &other_upload),
        url[..url.len() - 2].to_owned(),
        url.split('?').next().unwrap().to_owned(),
        format!("{url}&extra=1"),
    ];
    for bad in tampered {
        let (status, body) = server.send(server.http.put(&bad).body("abc")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{bad} → {body}");
        assert!(body["error"]["code"] == "invalid_signature", "{body}");
    }
    let (_, state) =
        server.send(server.get(&format!("/v1/uploads/{}", ticket["id"].as_str().unwrap()))).await;
    assert_eq!(state["status"], "WAITING");
    let (status, _) = server.send(server.http.put(&url).body("abc")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_expired_upload_url_is_refused() {
    let server = TestServer::spawn().await;
    let (_, ticket) =
        server.start_upload(&server.tenant, json!({"name": "x", "size": 3, "expires_in": 60})).await;
    server.clock.advance(Duration::seconds(61));
    let (status, body) = server.send(server.http.put(upload_url(&ticket)).body("abc")).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "url_expired");
    // The sweeper fails it and hands the reservation back.
    assert_eq!(server.cabinet.sweep_expired_uploads().await.unwrap(), 1);
    let (_, state) =
        server.send(server.get(&format!("/v1/uploads/{}", ticket["id"].as_str().unwrap()))).await;
    assert_eq!(state["status"], "FAILED");
    assert_eq!(state["reason"], "expired");
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 0);
}

#[tokio::test]
async fn the_sweeper_fails_expired_uploads_and_releases_their_reservations() {
    let server = TestServer::spawn().await;
    for i in 0..3 {
        server
            .start_upload(&server.tenant, json!({"name": format!("f{i}"), "size": 100, "expires_in": 10}))
            .await;
    }
    let (_, keeper) = server.start_upload(&server.tenant, json!({"name": "later", "size": 7})).await;
    assert_eq!(server.cabinet.sweep_expired_uploads().await.unwrap(), 0);
    server.clock.advance(Duration::seconds(11));
    assert_eq!(server.cabinet.sweep_expired_uploads().await.unwrap(), 3);
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 7);
    let (_, state) =
        server.send(server.get(&format!("/v1/uploads/{}", keeper["id"].as_str().unwrap()))).await;
    assert_eq!(state["status"], "WAITING");
}

#[tokio::test]
async fn a_used_upload_url_cannot_be_replayed() {
    let server = TestServer::spawn().await;
    let (_, ticket) = server.start_upload(&server.tenant, json!({"name": "x", "size": 3})).await;
    let (status, _) = server.send(server.http.put(upload_url(&ticket)).body("abc")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server.send(server.http.put(upload_url(&ticket)).body("xyz")).await;
    assert_error(status, &body, StatusCode::CONFLICT, "upload_not_waiting");
    let (_, files) = server.send(server.get("/v1/files")).await;
    assert_eq!(files["data"].as_array().unwrap().len(), 1);
    assert_eq!(server.quota(&server.tenant).await["used_bytes"], 3);
}

#[tokio::test]
async fn an_upload_url_is_refused_for_another_method_or_as_a_download() {
    let server = TestServer::spawn().await;
    let (_, ticket) = server.start_upload(&server.tenant, json!({"name": "x", "size": 3})).await;
    let url = upload_url(&ticket);
    let (status, body) = server.send(server.http.get(&url)).await;
    assert_error(status, &body, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let (status, _) = server.send(server.http.delete(&url)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let as_download = url.replace("/storage/v1/uploads/", "/storage/v1/files/");
    let (status, body) = server.send(server.http.get(&as_download)).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "invalid_signature");
}

#[tokio::test]
async fn complete_is_idempotent_and_says_why_when_it_cannot() {
    let server = TestServer::spawn().await;
    let (_, ticket) = server.start_upload(&server.tenant, json!({"name": "x", "size": 3})).await;
    let complete = format!("/v1/uploads/{}/complete", ticket["id"].as_str().unwrap());
    let (status, body) = server.send(server.request(Method::POST, &complete, &server.tenant.key)).await;
    assert_error(status, &body, StatusCode::CONFLICT, "upload_incomplete");
    server.send(server.http.put(upload_url(&ticket)).body("abc")).await;
    for _ in 0..2 {
        let (status, body) = server.send(server.request(Method::POST, &complete, &server.tenant.key)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "SUCCESS");
        assert_eq!(body["file"]["size"], 3);
    }
    assert_eq!(server.quota(&server.tenant).await["used_bytes"], 3);
}

#[tokio::test]
async fn a_cancelled_upload_releases_its_reservation_and_refuses_bytes() {
    let server = TestServer::spawn().await;
    let (_, ticket) = server.start_upload(&server.tenant, json!({"name": "x", "size": 50})).await;
    let path = format!("/v1/uploads/{}", ticket["id"].as_str().unwrap());
    let (status, body) = server.send(server.request(Method::DELETE, &path, &server.tenant.key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "FAILED");
    assert_eq!(body["reason"], "cancelled");
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 0);
    let (status, body) = server.send(server.http.put(upload_url(&ticket)).body(vec![0u8; 50])).await;
    assert_error(status, &body, StatusCode::CONFLICT, "upload_not_waiting");
}

#[tokio::test]
async fn invalid_upload_requests_get_clear_errors() {
    let server = TestServer::spawn().await;
    let cases = [
        (json!({"name": "x"}), StatusCode::BAD_REQUEST, "invalid_json"),
        (json!({"name": "x", "size": -1}), StatusCode::BAD_REQUEST, "invalid_json"),
        (json!({"name": "x", "size": "ten"}), StatusCode::BAD_REQUEST, "invalid_json"),
        (json!({"name": "", "size": 1}), StatusCode::BAD_REQUEST, "invalid_name"),
        (json!({"name": "x", "size": 1, "sha256": "abc"}), StatusCode::BAD_REQUEST, "invalid_sha256"),
        (
            json!({"name": "x", "size": 1, "mime_type": "not a type"}),
            StatusCode::BAD_REQUEST,
            "invalid_mime_type",
        ),
        (json!({"name": "x", "size": 1, "expires_in": 0}), StatusCode::BAD_REQUEST, "invalid_expires_in"),
        (
            json!({"name": "x", "size": 1, "expires_in": 700000}),
            StatusCode::BAD_REQUEST,
            "invalid_expires_in",
        ),
        (
            json!({"name": "x", "size": 1, "folder_id": "fld_01jdq4x7m2c8v5n3k9w6r1t0ya"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (json!({"name": "x", "size": 1u64 << 62}), StatusCode::PAYLOAD_TOO_LARGE, "file_too_large"),
    ];
    for (body, expected, code) in cases {
        let (status, response) = server.start_upload(&server.tenant, body.clone()).await;
        assert_error(status, &response, expected, code);
    }
    let (status, body) = server
        .send(
            server
                .request(Method::POST, "/v1/uploads", &server.tenant.key)
                .body("{not json")
                .header("content-type", "application/json"),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_json");
    let (status, body) =
        server.send(server.request(Method::POST, "/v1/uploads", &server.tenant.key).body("x")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "unsupported_media_type");
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 0);
}

#[tokio::test]
async fn a_zero_byte_file_can_be_uploaded() {
    let server = TestServer::spawn().await;
    let done = server.upload(&server.tenant, "empty.txt", b"").await;
    assert_eq!(done["file"]["size"], 0);
    assert_eq!(done["file"]["sha256"], sha256_hex(b""));
}

#[tokio::test]
async fn the_content_type_is_sniffed_not_trusted() {
    let server = TestServer::spawn().await;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    let (_, ticket) = server
        .start_upload(
            &server.tenant,
            json!({"name": "page.html", "size": png.len(), "mime_type": "text/html"}),
        )
        .await;
    let (_, done) = server.send(server.http.put(upload_url(&ticket)).body(png.to_vec())).await;
    assert_eq!(done["file"]["mime_type"], "image/png");
    let html = b"<!doctype html><script>alert(1)</script>";
    let (_, ticket) = server
        .start_upload(
            &server.tenant,
            json!({"name": "cat.png", "size": html.len(), "mime_type": "image/png"}),
        )
        .await;
    let (_, done) = server.send(server.http.put(upload_url(&ticket)).body(html.to_vec())).await;
    assert_eq!(done["file"]["mime_type"], "text/html");
}

#[tokio::test]
async fn racing_puts_and_completes_of_one_upload_make_exactly_one_file() {
    let server = TestServer::spawn().await;
    let bytes = vec![3u8; 256 * 1024];
    let (_, ticket) =
        server.start_upload(&server.tenant, json!({"name": "race.bin", "size": bytes.len()})).await;
    let url = upload_url(&ticket);
    let puts = (0..8).map(|_| server.send(server.http.put(&url).body(bytes.clone())));
    let results = futures::future::join_all(puts).await;
    let winners = results.iter().filter(|(status, _)| *status == StatusCode::OK).count();
    assert_eq!(winners, 1, "{results:?}");
    for (status, body) in results.iter().filter(|(status, _)| *status != StatusCode::OK) {
        assert_eq!(*status, StatusCode::CONFLICT, "{body}");
    }
    let complete = format!("/v1/uploads/{}/complete", ticket["id"].as_str().unwrap());
    let completes = (0..8).map(|_| server.send(server.request(Method::POST, &complete, &server.tenant.key)));
    let file_ids: std::collections::HashSet<String> = futures::future::join_all(completes)
        .await
        .into_iter()
        .map(|(status, body)| {
            assert_eq!(status, StatusCode::OK, "{body}");
            body["file"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(file_ids.len(), 1);
    let (_, files) = server.send(server.get("/v1/files")).await;
    assert_eq!(files["total"], 1);
    assert_eq!(server.quota(&server.tenant).await["used_bytes"], bytes.len());
    assert_eq!(server.stored_blobs(), 1);
}
