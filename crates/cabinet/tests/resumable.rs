//! The IETF resumable-upload draft at `/resumable/v1/`, spoken with plain HTTP: creation with
//! `Upload-Complete` (whole, partial, of unknown length), offset retrieval, append with
//! `application/partial-upload`, cancellation, and its refusals; over the same uploads as tus.

use crate::support;

use base64::Engine;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::{assert_error, sha256_hex, TestServer};

const PARTIAL: &str = "application/partial-upload";

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| v.to_str().unwrap().to_owned())
}

fn bytes_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn send(request: RequestBuilder) -> Answer {
    let response = request.send().await.expect("request");
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await.unwrap_or_default();
    Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
}

fn create(server: &TestServer, name: &str) -> RequestBuilder {
    server
        .request(Method::POST, "/resumable/v1/", &server.tenant.key)
        .header("Upload-Draft-Interop-Version", "7")
        .header("Content-Disposition", format!("inline; filename=\"{name}\""))
}

fn append(server: &TestServer, url: &str, offset: u64, complete: bool, bytes: Vec<u8>) -> RequestBuilder {
    server
        .http
        .patch(url)
        .bearer_auth(&server.tenant.key)
        .header("Upload-Draft-Interop-Version", "7")
        .header("Upload-Offset", offset)
        .header("Upload-Complete", if complete { "?1" } else { "?0" })
        .header("Content-Type", PARTIAL)
        .body(bytes)
}

fn offset_of(answer: &Answer) -> u64 {
    header(&answer.headers, "upload-offset").expect("Upload-Offset").parse().unwrap()
}

#[tokio::test]
async fn an_upload_created_partial_is_appended_to_and_completed() {
    let server = TestServer::spawn().await;
    let bytes = bytes_of(300_000);
    let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
    let created = send(
        create(&server, "draft.bin")
            .header("Upload-Complete", "?0")
            .header("Upload-Length", bytes.len())
            .header("Repr-Digest", format!("sha-256=:{digest}:"))
            .header("Content-Type", "application/octet-stream")
            .body(bytes[..100_000].to_vec()),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(header(&created.headers, "upload-draft-interop-version").as_deref(), Some("7"));
    assert_eq!(offset_of(&created), 100_000);
    let url = header(&created.headers, "location").unwrap();
    assert!(url.starts_with(&format!("{}/resumable/v1/up", server.url)), "{url}");

    let head = send(server.http.head(&url).bearer_auth(&server.tenant.key)).await;
    assert_eq!(head.status, StatusCode::NO_CONTENT);
    assert_eq!(offset_of(&head), 100_000);
    assert_eq!(header(&head.headers, "upload-complete").as_deref(), Some("?0"));
    assert_eq!(header(&head.headers, "upload-length"), Some(bytes.len().to_string()));
    assert_eq!(header(&head.headers, "cache-control").as_deref(), Some("no-store"));
    let limit = header(&head.headers, "upload-limit").unwrap();
    assert!(limit.contains("max-size=") && limit.contains("max-age="), "{limit}");

    let middle = send(append(&server, &url, 100_000, false, bytes[100_000..200_000].to_vec())).await;
    assert_eq!(middle.status, StatusCode::NO_CONTENT, "{}", middle.body);
    assert_eq!(header(&middle.headers, "upload-complete").as_deref(), Some("?0"));
    // The wrong offset: 409 with the right one.
    let wrong = send(append(&server, &url, 5, false, vec![1; 10])).await;
    assert_error(wrong.status, &wrong.body, StatusCode::CONFLICT, "offset_mismatch");
    assert_eq!(offset_of(&wrong), 200_000);

    let last = send(append(&server, &url, 200_000, true, bytes[200_000..].to_vec())).await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.body);
    assert_eq!(header(&last.headers, "upload-complete").as_deref(), Some("?1"));
    assert_eq!(last.body["name"], "draft.bin");
    assert_eq!(last.body["sha256"], sha256_hex(&bytes));
    let (status, file) =
        server.send(server.get(&format!("/v1/files/{}", last.body["id"].as_str().unwrap()))).await;
    assert_eq!((status, file["size"].as_u64()), (StatusCode::OK, Some(bytes.len() as u64)));
    let done = send(server.http.head(&url).bearer_auth(&server.tenant.key)).await;
    assert_eq!(header(&done.headers, "upload-complete").as_deref(), Some("?1"));
}

#[tokio::test]
async fn a_whole_upload_in_one_request_and_one_of_unknown_length() {
    let server = TestServer::spawn().await;
    let bytes = bytes_of(50_000);
    let whole = send(create(&server, "whole.bin").header("Upload-Complete", "?1").body(bytes.clone())).await;
    assert_eq!(whole.status, StatusCode::OK, "{}", whole.body);
    assert_eq!(whole.body["sha256"], sha256_hex(&bytes));

    // Unknown length: created empty, appended to, completed by a body of unknown size.
    let created = send(create(&server, "stream.bin").header("Upload-Complete", "?0")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let url = header(&created.headers, "location").unwrap();
    let head = send(server.http.head(&url).bearer_auth(&server.tenant.key)).await;
    assert_eq!(header(&head.headers, "upload-length"), None);
    assert_eq!(
        send(append(&server, &url, 0, false, bytes[..20_000].to_vec())).await.status,
        StatusCode::NO_CONTENT
    );
    let rest = bytes[20_000..].to_vec();
    let streamed = reqwest::Body::wrap_stream(futures::stream::iter(vec![Ok::<_, std::io::Error>(rest)]));
    let last = send(
        server
            .http
            .patch(&url)
            .bearer_auth(&server.tenant.key)
            .header("Upload-Offset", 20_000)
            .header("Upload-Complete", "?1")
            .header("Content-Type", PARTIAL)
            .body(streamed),
    )
    .await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.body);
    assert_eq!(last.body["size"], bytes.len());
    assert_eq!(last.body["sha256"], sha256_hex(&bytes));
    let quota = server.quota(&server.tenant).await;
    assert_eq!(quota["reserved_bytes"], 0, "{quota}");
}

#[tokio::test]
async fn refusals_and_cancellation() {
    let server = TestServer::spawn().await;
    let version = send(
        server
            .request(Method::POST, "/resumable/v1/", &server.tenant.key)
            .header("Upload-Draft-Interop-Version", "2")
            .header("Content-Disposition", "inline; filename=\"v.bin\"")
            .header("Upload-Complete", "?0"),
    )
    .await;
    assert_error(version.status, &version.body, StatusCode::BAD_REQUEST, "unsupported_version");
    let no_flag = send(create(&server, "n.bin")).await;
    assert_error(no_flag.status, &no_flag.body, StatusCode::BAD_REQUEST, "invalid_size");
    let nameless = send(
        server.request(Method::POST, "/resumable/v1/", &server.tenant.key).header("Upload-Complete", "?0"),
    )
    .await;
    assert_error(nameless.status, &nameless.body, StatusCode::BAD_REQUEST, "invalid_name");

    let created =
        send(create(&server, "c.bin").header("Upload-Complete", "?0").header("Upload-Length", 100)).await;
    let url = header(&created.headers, "location").unwrap();
    let typed = send(
        server
            .http
            .patch(&url)
            .bearer_auth(&server.tenant.key)
            .header("Upload-Offset", 0)
            .header("Upload-Complete", "?0")
            .header("Content-Type", "application/octet-stream")
            .body(vec![1; 10]),
    )
    .await;
    assert_error(typed.status, &typed.body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let over = send(append(&server, &url, 0, false, vec![1; 101])).await;
    assert_error(over.status, &over.body, StatusCode::PAYLOAD_TOO_LARGE, "size_exceeded");
    let short = send(append(&server, &url, 0, true, vec![1; 10])).await;
    assert_error(short.status, &short.body, StatusCode::BAD_REQUEST, "invalid_size");

    let other = server.tenant(None, cabinet_core::Role::Admin).await;
    let stranger = send(server.http.head(&url).bearer_auth(&other.key)).await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
    let anonymous = send(server.http.head(&url)).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let options = send(server.http.request(Method::OPTIONS, format!("{}/resumable/v1/", server.url))).await;
    assert_eq!(header(&options.headers, "accept-patch").as_deref(), Some(PARTIAL));

    let cancelled = send(server.http.delete(&url).bearer_auth(&server.tenant.key)).await;
    assert_eq!(cancelled.status, StatusCode::NO_CONTENT, "{}", cancelled.body);
    assert_eq!(send(server.http.head(&url).bearer_auth(&server.tenant.key)).await.status, StatusCode::GONE);
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 0);
}
