//! Limits and abuse: over-long URLs and headers, over-large JSON bodies, stalled bodies, request
//! floods — each refused with the shared error shape — and the security headers on every response.

use crate::support;

use std::time::Duration;

use cabinet_api::HttpLimits;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{assert_error, Options, TestServer};

async fn server_with(limits: HttpLimits) -> TestServer {
    TestServer::spawn_with(Options { http: Some(limits), ..Options::default() }).await
}

/// A body that sends `chunks` one at a time, `gap` apart.
fn dribble(chunks: usize, chunk: usize, gap: Duration) -> reqwest::Body {
    let stream = futures::stream::iter(0..chunks).then(move |i| async move {
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        Ok::<_, std::io::Error>(vec![b'x'; chunk])
    });
    reqwest::Body::wrap_stream(stream)
}

async fn upload_state(server: &TestServer, ticket: &Value) -> Value {
    let (_, state) =
        server.send(server.get(&format!("/v1/uploads/{}", ticket["id"].as_str().unwrap()))).await;
    state
}

#[tokio::test]
async fn an_over_long_url_is_refused_with_414() {
    let server = server_with(HttpLimits { max_url_bytes: 2048, ..HttpLimits::default() }).await;
    let (status, body) = server.send(server.get(&format!("/v1/files?q={}", "a".repeat(3000)))).await;
    assert_error(status, &body, StatusCode::URI_TOO_LONG, "uri_too_long");
    let (status, _) = server.send(server.get(&format!("/v1/files?q={}", "a".repeat(100)))).await;
    assert_ne!(status, StatusCode::URI_TOO_LONG);
}

#[tokio::test]
async fn over_large_headers_are_refused_with_431() {
    let server = server_with(HttpLimits { max_header_bytes: 4096, ..HttpLimits::default() }).await;
    let (status, body) = server.send(server.get("/v1/quota").header("x-padding", "p".repeat(5000))).await;
    assert_error(status, &body, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large");
    let (status, _) = server.send(server.get("/v1/quota").header("x-padding", "p".repeat(100))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_over_large_json_body_is_413_in_our_shape_but_uploads_are_not_capped_by_it() {
    let server = server_with(HttpLimits { json_body_bytes: 1024, ..HttpLimits::default() }).await;
    let big = json!({"name": "x".repeat(2000), "size": 1});
    let (status, body) = server.start_upload(&server.tenant, big).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // The signed storage endpoint streams: the JSON limit does not apply to it.
    let bytes = vec![3u8; 64 * 1024];
    server.upload(&server.tenant, "big.bin", &bytes).await;
}

#[tokio::test]
async fn a_stalled_upload_is_cut_off_and_fails_as_incomplete_releasing_its_reservation() {
    let server =
        server_with(HttpLimits { body_idle_timeout: Duration::from_secs(1), ..HttpLimits::default() }).await;
    let (status, ticket) = server.start_upload(&server.tenant, json!({"name": "slow.bin", "size": 10})).await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    // One byte, then nothing for far longer than the idle timeout.
    let started = std::time::Instant::now();
    let response = server
        .http
        .put(ticket["upload_url"].as_str().unwrap())
        .body(dribble(10, 1, Duration::from_secs(4)))
        .send()
        .await;
    if let Ok(response) = response {
        assert!(!response.status().is_success(), "a stalled upload succeeded");
    }
    assert!(started.elapsed() < Duration::from_secs(4), "the server waited {:?}", started.elapsed());
    // The guard that fails the upload may run just after the response.
    let mut state = upload_state(&server, &ticket).await;
    for _ in 0..50 {
        if state["status"] == "FAILED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        state = upload_state(&server, &ticket).await;
    }
    assert_eq!(state["status"], "FAILED", "{state}");
    assert_eq!(state["reason"], "incomplete", "{state}");
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 0);
    assert_eq!(server.temporary_files(), 0);
}

#[tokio::test]
async fn a_slow_but_steady_upload_is_not_cut_off() {
    let server =
        server_with(HttpLimits { body_idle_timeout: Duration::from_secs(1), ..HttpLimits::default() }).await;
    let (_, ticket) =
        server.start_upload(&server.tenant, json!({"name": "steady.bin", "size": 8 * 1024})).await;
    // Eight chunks, 400 ms apart: ~3 s in all, longer than the idle timeout, but never idle for it.
    let (status, done) = server
        .send(server.http.put(ticket["upload_url"].as_str().unwrap()).body(dribble(
            8,
            1024,
            Duration::from_millis(400),
        )))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "SUCCESS");
}

#[tokio::test]
async fn a_key_that_floods_gets_429_with_retry_after_and_others_are_unaffected() {
    let server = server_with(HttpLimits { rate_limit_per_minute: 5, ..HttpLimits::default() }).await;
    for remaining in (0..5).rev() {
        let response = server.get("/v1/quota").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers["x-ratelimit-limit"], "5");
        assert_eq!(headers["x-ratelimit-remaining"], remaining.to_string().as_str());
        assert!(headers.contains_key("x-ratelimit-reset"));
    }
    let response = server.get("/v1/quota").send().await.unwrap();
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry_after), "{retry_after}");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");

    // Another key has its own bucket; so do requests without a key (per IP).
    let other = server.tenant(None, cabinet_core::Role::Read).await;
    let (status, _) = server.send(server.request(Method::GET, "/v1/quota", &other.key)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.send(server.http.get(format!("{}/v1/quota", server.url))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Health probes are never limited.
    for _ in 0..10 {
        let (status, _) = server.send(server.http.get(format!("{}/healthz", server.url))).await;
        assert_eq!(status, StatusCode::OK);
    }
}

/// A multipart form of one file, `chunks` of 64 KiB streamed with no length, so the server learns
/// the size only as it reads.
fn streamed_form(chunks: usize) -> reqwest::multipart::Form {
    let bytes = futures::stream::iter(0..chunks).map(|_| Ok::<_, std::io::Error>(vec![7u8; 64 << 10]));
    let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(bytes)).file_name("big.bin");
    reqwest::multipart::Form::new().part("file", part)
}

/// A multipart form of one file of `len` bytes, its length declared.
fn declared_form(len: usize, name: &'static str) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(vec![1u8; len]).file_name(name))
}

#[tokio::test]
async fn bodies_refused_after_they_were_read_hold_back_the_clients_large_bodies() {
    // 24 a minute: refused body bytes come back at 24 × 32 KiB a minute (12.8 KiB a second), up
    // to 128 KiB, and go at most 768 KiB (a minute) below empty.
    let server = server_with(HttpLimits { rate_limit_per_minute: 24, ..HttpLimits::default() }).await;
    let remaining_after = |response: &reqwest::Response| -> u64 {
        response.headers()["x-ratelimit-remaining"].to_str().unwrap().parse().unwrap()
    };

    // 3.5 MiB of unknown size into a 2 MiB quota: refused once more than 2 MiB was read. It costs
    // its request only.
    let small = server.tenant(Some(2 << 20), cabinet_core::Role::Write).await;
    let refused = server
        .request(Method::POST, "/v1/files", &small.key)
        .multipart(streamed_form(56))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(remaining_after(&refused), 23);

    // Its next body of unknown length waits for those 2 MiB to come back, as far as a minute
    // of refill goes: refused before a byte is read.
    let held = server
        .request(Method::POST, "/v1/files", &small.key)
        .multipart(streamed_form(1))
        .send()
        .await
        .unwrap();
    let retry_after: u64 = held.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((55..=61).contains(&retry_after), "{retry_after}");
    let status = held.status();
    let body: Value = held.json().await.unwrap();
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(body["error"]["message"].as_str().unwrap().contains("refused after they were read"), "{body}");
    // So does one declaring more than 32 KiB.
    let declared = server
        .request(Method::POST, "/v1/files", &small.key)
        .multipart(declared_form(40 << 10, "declared.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), StatusCode::TOO_MANY_REQUESTS);
    // Its reads and small bodies go on, so it can still make room.
    let (status, _) = server.send(server.request(Method::GET, "/v1/quota", &small.key)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .send(server.request(Method::POST, "/v1/folders", &small.key).json(&json!({"name": "kept"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let small_file = server
        .request(Method::POST, "/v1/files", &small.key)
        .multipart(declared_form(1024, "small.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(small_file.status(), StatusCode::CREATED);
    // Nothing held back was received: the workspace holds the small file only.
    let (_, quota) = server.send(server.request(Method::GET, "/v1/quota", &small.key)).await;
    assert_eq!(quota["used_bytes"], 1024, "{quota}");

    // The same uploads accepted cost nothing but their requests, whatever their size.
    let roomy = server.tenant(None, cabinet_core::Role::Write).await;
    for _ in 0..2 {
        let stored = server
            .request(Method::POST, "/v1/files", &roomy.key)
            .multipart(streamed_form(56))
            .send()
            .await
            .unwrap();
        assert_eq!(stored.status(), StatusCode::CREATED);
    }
    let next = server.request(Method::GET, "/v1/quota", &roomy.key).send().await.unwrap();
    assert!((21..=22).contains(&remaining_after(&next)), "{}", remaining_after(&next));
}

#[tokio::test]
async fn anonymous_requests_are_limited_per_ip() {
    let server = server_with(HttpLimits { rate_limit_per_minute: 3, ..HttpLimits::default() }).await;
    let url = format!("{}/storage/v1/files/ws_x/file_y", server.url);
    for _ in 0..3 {
        assert_eq!(server.http.get(&url).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    }
    let (status, body) = server.send(server.http.get(&url)).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // A key has its own bucket.
    let (status, _) = server.send(server.get("/v1/quota")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn every_response_carries_security_headers_and_the_api_a_strict_csp() {
    let server = TestServer::spawn().await;
    for path in ["/v1/quota", "/v1/nope", "/healthz", "/openapi.json"] {
        let response = server.get(path).send().await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(
            headers["content-security-policy"], "default-src 'none'; frame-ancestors 'none'",
            "{path}"
        );
        assert!(!headers.contains_key("strict-transport-security"), "{path}: HSTS over http");
    }
    // The docs page runs scripts: no API policy on it.
    let docs = server.http.get(format!("{}/docs/", server.url)).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(!docs.headers().contains_key("content-security-policy"));
    // File bytes carry their own policy (a sandbox for active types), not the API's.
    let done = server.upload(&server.tenant, "page.html", b"<html><script>alert(1)</script></html>").await;
    let content =
        server.get(&format!("/v1/files/{}/content", done["file"]["id"].as_str().unwrap())).send().await;
    let content = content.unwrap();
    assert_eq!(content.headers()["content-security-policy"], "sandbox; default-src 'none'");
}

#[tokio::test]
async fn a_request_id_is_kept_from_the_client_or_made_and_sent_back() {
    let server = TestServer::spawn().await;
    for path in ["/v1/quota", "/v1/nope", "/healthz"] {
        let kept = server.get(path).header("x-request-id", "trace-42").send().await.unwrap();
        assert_eq!(kept.headers()["x-request-id"], "trace-42", "{path}");
        let made = server.get(path).send().await.unwrap();
        let made = made.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(made.len() == 26 && made.bytes().all(|b| b.is_ascii_alphanumeric()), "{path}: {made}");
        let again = server.get(path).send().await.unwrap();
        assert_ne!(again.headers()["x-request-id"].to_str().unwrap(), made, "{path}: one id a request");
    }
}

#[tokio::test]
async fn hsts_is_sent_when_the_service_is_reached_over_https() {
    let server = server_with(HttpLimits { strict_transport_security: true, ..HttpLimits::default() }).await;
    let response = server.get("/v1/quota").send().await.unwrap();
    assert!(response.headers()["strict-transport-security"].to_str().unwrap().starts_with("max-age="));
}

/// What each surface's refusal looks like: the native `{"error": {"code"}}`, Mavera's typed error,
/// MAVI's `{code, msg, success, failed}`, DRF's `{"detail"}`, Serenities' RPC error name.
fn assert_surface_refusal(path: &str, status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "{path}: {body}");
    if path.starts_with("/compat/mavera") {
        assert!(body["error"]["type"].is_string() && body["error"]["code"].is_string(), "{path}: {body}");
    } else if path.starts_with("/compat/mavi") {
        assert_eq!(body["code"], expected.as_u16(), "{path}: {body}");
        assert_eq!(
            (body["success"].as_bool(), body["failed"].as_bool()),
            (Some(false), Some(true)),
            "{path}"
        );
    } else if path.starts_with("/compat/cms") {
        assert!(body["detail"].is_string() && body.as_object().unwrap().len() == 1, "{path}: {body}");
    } else if path.starts_with("/compat/serenities") {
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert!(
            !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
            "{path}: {body}"
        );
    } else {
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert!(
            !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn refusals_made_outside_handlers_answer_in_each_surfaces_own_envelope() {
    let server =
        server_with(HttpLimits { max_url_bytes: 2048, max_header_bytes: 4096, ..HttpLimits::default() })
            .await;
    // (a path under the surface that names no route, a route and a method it does not take)
    let surfaces = [
        ("/v1/nope", Method::DELETE, "/v1/quota"),
        ("/compat/mavera/api/v1/nope", Method::PUT, "/compat/mavera/api/v1/files"),
        ("/compat/mavi/serve/api/v2/nope/deeper", Method::GET, "/compat/mavi/serve/api/v2/upload"),
        ("/compat/cms/nope", Method::PUT, "/compat/cms/files/"),
        ("/compat/serenities/api/v1/nope", Method::GET, "/compat/serenities/api/v1/files/list"),
    ];
    for (unknown, method, route) in surfaces {
        let (status, body) = server.send(server.get(unknown)).await;
        assert_surface_refusal(unknown, status, &body, StatusCode::NOT_FOUND);
        let (status, body) = server.send(server.request(method, route, &server.tenant.key)).await;
        assert_surface_refusal(route, status, &body, StatusCode::METHOD_NOT_ALLOWED);
        let long = format!("{route}?q={}", "a".repeat(3000));
        let (status, body) = server.send(server.get(&long)).await;
        assert_surface_refusal(route, status, &body, StatusCode::URI_TOO_LONG);
        let (status, body) = server.send(server.get(route).header("x-padding", "p".repeat(5000))).await;
        assert_surface_refusal(route, status, &body, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
}

#[tokio::test]
async fn an_over_large_body_is_413_in_each_surfaces_own_envelope() {
    let server = TestServer::spawn_with(Options {
        http: Some(HttpLimits { json_body_bytes: 1024, ..HttpLimits::default() }),
        json_upload_max_bytes: Some(2048),
        ..Options::default()
    })
    .await;
    let padding = "a".repeat(8 * 1024);
    let workspace = server.tenant.workspace.to_string();
    let bodies = [
        ("/v1/uploads", json!({"name": padding, "size": 1})),
        ("/compat/mavera/api/v1/files/upload-url", json!({"file_name": padding})),
        ("/compat/mavi/serve/api/v2/upload/signed-url", json!({"original_filename": padding})),
        (
            "/compat/cms/files/",
            json!({"organization_id": workspace, "file_name": "x.txt", "file_base64": padding}),
        ),
        ("/compat/serenities/api/v1/files/list", json!({"folderId": padding})),
    ];
    for (path, body) in bodies {
        let (status, answer) =
            server.send(server.request(Method::POST, path, &server.tenant.key).json(&body)).await;
        assert_surface_refusal(path, status, &answer, StatusCode::PAYLOAD_TOO_LARGE);
    }
}

#[tokio::test]
async fn a_key_has_one_allowance_however_a_surface_spells_it_and_is_refused_in_that_surfaces_envelope() {
    let server = server_with(HttpLimits { rate_limit_per_minute: 6, ..HttpLimits::default() }).await;
    let key = server.tenant.key.clone();
    let spellings = [
        (Method::GET, "/v1/quota", format!("Bearer {key}")),
        (Method::GET, "/v1/quota", format!("bearer   {key}")),
        (Method::GET, "/compat/mavera/api/v1/files", key.clone()),
        (Method::GET, "/compat/mavi/serve/api/v2/nope", key.clone()),
        (Method::GET, "/compat/cms/files/", format!("Token {key}")),
        (Method::POST, "/compat/serenities/api/v1/files/list", format!("BEARER {key}")),
    ];
    for (method, path, authorization) in &spellings {
        let request = server.http.request(method.clone(), format!("{}{path}", server.url));
        let response = request.header("authorization", authorization).json(&json!({})).send().await.unwrap();
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{path} {authorization}");
    }
    // The allowance of 6 is spent, whichever surface and spelling comes next.
    for (method, path, authorization) in &spellings {
        let request = server.http.request(method.clone(), format!("{}{path}", server.url));
        let (status, body) =
            server.send(request.header("authorization", authorization).json(&json!({}))).await;
        assert_surface_refusal(path, status, &body, StatusCode::TOO_MANY_REQUESTS);
    }
    // Another key still has its own.
    let other = server.tenant(None, cabinet_core::Role::Read).await;
    let (status, _) = server.send(server.request(Method::GET, "/v1/quota", &other.key)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_allowance() {
    // Requests without a credential count against their client's address.
    let anonymous = |server: &TestServer, forwarded_for: &str| {
        server.http.get(format!("{}/v1/quota", server.url)).header("x-forwarded-for", forwarded_for).send()
    };
    // The test client connects from 127.0.0.1, a proxy this server trusts.
    let proxies = cabinet_api::TrustedProxies::parse("127.0.0.1").unwrap();
    let behind = server_with(HttpLimits {
        rate_limit_per_minute: 2,
        trusted_proxies: proxies,
        ..HttpLimits::default()
    })
    .await;
    for client in ["198.51.100.1", "198.51.100.2"] {
        for _ in 0..2 {
            assert_eq!(
                anonymous(&behind, client).await.unwrap().status(),
                StatusCode::UNAUTHORIZED,
                "{client}"
            );
        }
        assert_eq!(
            anonymous(&behind, client).await.unwrap().status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{client}"
        );
    }
    // A client cannot win a new allowance by writing the header itself: the proxy's hop is last.
    let spoofed = anonymous(&behind, "203.0.113.50, 198.51.100.1").await.unwrap();
    assert_eq!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS);

    // From a peer that is not a trusted proxy, the header means nothing: one allowance for all.
    let proxies = cabinet_api::TrustedProxies::parse("10.0.0.0/8").unwrap();
    let direct = server_with(HttpLimits {
        rate_limit_per_minute: 2,
        trusted_proxies: proxies,
        ..HttpLimits::default()
    })
    .await;
    assert_eq!(anonymous(&direct, "198.51.100.1").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous(&direct, "198.51.100.2").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous(&direct, "198.51.100.3").await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
}
