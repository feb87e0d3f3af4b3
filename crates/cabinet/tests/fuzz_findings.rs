//! Regressions for what `dev/fuzz` (schemathesis over `/openapi.json`) found: each input here once
//! got a 5xx or an answer the document did not describe.

use crate::support;

use reqwest::StatusCode;
use serde_json::json;
use support::{assert_error, TestServer};

/// `expires_in` above `i64::MAX` wrapped to a negative lifetime and panicked (500).
#[tokio::test]
async fn a_lifetime_too_large_for_i64_is_a_400_not_a_500() {
    let server = TestServer::spawn().await;
    let done = server.upload(&server.tenant, "f.txt", b"f").await;
    let id = done["file"]["id"].as_str().unwrap();
    for huge in ["9223372036854775808", "18446744073709551615"] {
        let (status, body) =
            server.send(server.get(&format!("/v1/files/{id}/download-url?expires_in={huge}"))).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_expires_in");
    }
    let (status, body) = server
        .start_upload(&server.tenant, json!({"name": "a", "size": 1, "expires_in": 9223372036854775808u64}))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_expires_in");
}

/// The bytes of a file are served with its own type, which the document now allows (`*/*`);
/// a direct upload naming an unknown folder is a documented 404.
#[tokio::test]
async fn the_document_describes_what_the_fuzzer_saw() {
    let server = TestServer::spawn().await;
    let (_, doc) = server.send(server.http.get(format!("{}/openapi.json", server.url))).await;
    let content = &doc["paths"]["/v1/files/{id}/content"]["get"]["responses"]["200"]["content"];
    assert!(content["*/*"].is_object(), "{content}");
    for (path, method) in [("/v1/files", "post"), ("/v1/files/{id}", "get"), ("/v1/uploads", "post")] {
        let responses = &doc["paths"][path][method]["responses"];
        for status in ["400", "401", "404", "414", "429", "431"] {
            assert!(responses[status].is_object(), "{method} {path} does not document {status}");
        }
    }
    assert!(doc["paths"]["/healthz"]["get"]["responses"]["429"].is_null(), "health is never rate limited");
}
