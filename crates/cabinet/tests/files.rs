//! Files over HTTP: direct uploads, listing, details, deletion, and every way of reading bytes.

use crate::support;

use base64::Engine;
use chrono::Duration;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_RANGE, CONTENT_TYPE, ETAG};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{assert_error, sha256_hex, Options, TestServer};

async fn direct_multipart(server: &TestServer, name: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()));
    server.send(server.request(Method::POST, "/v1/files", &server.tenant.key).multipart(form)).await
}

#[tokio::test]
async fn a_multipart_direct_upload_is_stored_and_charged() {
    let server = TestServer::spawn().await;
    let bytes = b"%PDF-1.7\n...".to_vec();
    let (status, file) = direct_multipart(&server, "Report.pdf", bytes.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["name"], "Report.pdf");
    assert_eq!(file["mime_type"], "application/pdf");
    assert_eq!(file["sha256"], sha256_hex(&bytes));
    assert_eq!(server.quota(&server.tenant).await["used_bytes"], bytes.len());
    let (_, usage) = server.send(server.get("/v1/usage")).await;
    assert_eq!((usage["total_size"].clone(), usage["file_count"].clone()), (json!(bytes.len()), json!(1)));
}

#[tokio::test]
async fn multipart_metadata_fields_name_the_file() {
    let server = TestServer::spawn().await;
    let form = reqwest::multipart::Form::new()
        .text("name", "renamed.txt")
        .text("mime_type", "text/csv")
        .part("file", reqwest::multipart::Part::bytes(b"a,b\n1,2\n".to_vec()).file_name("orig.bin"));
    let (status, file) =
        server.send(server.request(Method::POST, "/v1/files", &server.tenant.key).multipart(form)).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["name"], "renamed.txt");
    assert_eq!(file["mime_type"], "text/csv");
}

#[tokio::test]
async fn a_base64_json_upload_is_stored() {
    let server = TestServer::spawn().await;
    let body = json!({"name": "note.txt", "content_base64": base64::engine::general_purpose::STANDARD.encode("hello")});
    let (status, file) =
        server.send(server.request(Method::POST, "/v1/files", &server.tenant.key).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["size"], 5);
    assert_eq!(file["sha256"], sha256_hex(b"hello"));
    let bad = json!({"name": "x", "content_base64": "!!!"});
    let (status, body) =
        server.send(server.request(Method::POST, "/v1/files", &server.tenant.key).json(&bad)).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_base64");
}

#[tokio::test]
async fn an_oversized_json_upload_gets_a_clear_413() {
    let server =
        TestServer::spawn_with(Options { json_upload_max_bytes: Some(1024), ..Options::default() }).await;
    let body = json!({"name": "big.bin", "content_base64": "A".repeat(4096)});
    let (status, body) =
        server.send(server.request(Method::POST, "/v1/files", &server.tenant.key).json(&body)).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(server.quota(&server.tenant).await["used_bytes"], 0);
}

#[tokio::test]
async fn a_direct_upload_over_the_limit_is_refused_and_leaves_nothing() {
    let server =
        TestServer::spawn_with(Options { direct_upload_max_bytes: Some(1000), ..Options::default() }).await;
    let (status, body) = direct_multipart(&server, "big.bin", vec![0u8; 5000]).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "file_too_large");
    assert_eq!(server.stored_blobs(), 0);
    assert_eq!(server.temporary_files(), 0);
}

#[tokio::test]
async fn a_direct_upload_over_the_quota_is_refused_with_507() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant(Some(100), cabinet_core::Role::Write).await;
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(vec![1u8; 101]).file_name("x"));
    let (status, body) =
        server.send(server.request(Method::POST, "/v1/files", &tenant.key).multipart(form)).await;
    assert_error(status, &body, StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded");
    assert_eq!(server.quota(&tenant).await["used_bytes"], 0);
    assert_eq!(server.stored_blobs(), 0);
}

#[tokio::test]
async fn a_direct_upload_without_a_file_or_of_an_unknown_type_is_refused() {
    let server = TestServer::spawn().await;
    let form = reqwest::multipart::Form::new().text("name", "x");
    let (status, body) =
        server.send(server.request(Method::POST, "/v1/files", &server.tenant.key).multipart(form)).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "missing_file");
    let (status, body) = server
        .send(
            server
                .request(Method::POST, "/v1/files", &server.tenant.key)
                .header("content-type", "text/plain")
                .body("x"),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "unsupported_media_type");
}

#[tokio::test]
async fn paging_visits_every_file_once_newest_first() {
    let server = TestServer::spawn().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let done = server.upload(&server.tenant, &format!("f{i}.txt"), format!("file {i}").as_bytes()).await;
        ids.push(done["file"]["id"].as_str().unwrap().to_owned());
        server.clock.advance(Duration::milliseconds(1));
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/files?limit=3&cursor={c}"),
            None => "/v1/files?limit=3".to_owned(),
        };
        let (status, page) = server.send(server.get(&path)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(page["data"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_owned()));
        assert_eq!(page["has_more"], page["next_cursor"].is_string());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    for bad in ["/v1/files?limit=0", "/v1/files?limit=101", "/v1/files?cursor=garbage", "/v1/files?limit=x"] {
        let (status, body) = server.send(server.get(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[tokio::test]
async fn deleting_a_file_trashes_it_and_purging_reclaims_its_quota_and_bytes() {
    let server = TestServer::spawn().await;
    let done = server.upload(&server.tenant, "x.bin", &[9u8; 1234]).await;
    let file_id = done["file"]["id"].as_str().unwrap();
    let path = format!("/v1/files/{file_id}");
    let (status, trashed) = server.send(server.request(Method::DELETE, &path, &server.tenant.key)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(trashed["trashed_at"].is_string(), "{trashed}");
    // In the trash it still counts, and is neither listed nor downloadable.
    assert_eq!(server.quota(&server.tenant).await["used_bytes"], 1234);
    let (_, listing) = server.send(server.get("/v1/files")).await;
    assert_eq!(listing["total"], 0);
    let (status, _) = server.send(server.get(&format!("{path}/content"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.send(server.request(Method::DELETE, &path, &server.tenant.key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = server
        .send(server.request(Method::DELETE, &format!("{path}?permanent=true"), &server.tenant.key))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.quota(&server.tenant).await["used_bytes"], 0);
    assert_eq!(server.stored_blobs(), 0);
    let (status, body) = server.send(server.get(&path)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_signed_download_url_serves_the_file_without_a_key() {
    let server = TestServer::spawn().await;
    let done = server.upload(&server.tenant, "photo.txt", b"0123456789").await;
    let file_id = done["file"]["id"].as_str().unwrap();
    let (status, link) =
        server.send(server.get(&format!("/v1/files/{file_id}/download-url?expires_in=60"))).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let url = link["url"].as_str().unwrap();
    let response = server.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()[ETAG], format!("\"{}\"", sha256_hex(b"0123456789")).as_str());
    assert!(response.headers()[CONTENT_DISPOSITION].to_str().unwrap().starts_with("inline;"));
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"0123456789");

    let (_, link) = server.send(server.get(&format!("/v1/files/{file_id}/download-url?download=true"))).await;
    let response = server.http.get(link["url"].as_str().unwrap()).send().await.unwrap();
    assert!(response.headers()[CONTENT_DISPOSITION].to_str().unwrap().starts_with("attachment;"));
    let forged = link["url"].as_str().unwrap().replace("dl=1&", "");
    assert_eq!(server.http.get(forged).send().await.unwrap().status(), StatusCode::FORBIDDEN);

    // A 60 s URL ends within a window of 60 s after that.
    server.clock.advance(Duration::seconds(121));
    let (status, body) = server.send(server.http.get(url)).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "url_expired");
}

#[tokio::test]
async fn download_url_lifetimes_are_bounded() {
    let server = TestServer::spawn().await;
    let done = server.upload(&server.tenant, "a.txt", b"a").await;
    let file_id = done["file"]["id"].as_str().unwrap();
    for bad in ["0", "604801", "-5", "soon"] {
        let (status, _) =
            server.send(server.get(&format!("/v1/files/{file_id}/download-url?expires_in={bad}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "expires_in={bad}");
    }
    let (status, _) =
        server.send(server.get(&format!("/v1/files/{file_id}/download-url?expires_in=604800"))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_download_url_dies_with_its_file() {
    let server = TestServer::spawn().await;
    let done = server.upload(&server.tenant, "a.txt", b"a").await;
    let file_id = done["file"]["id"].as_str().unwrap();
    let (_, link) = server.send(server.get(&format!("/v1/files/{file_id}/download-url"))).await;
    server.send(server.request(Method::DELETE, &format!("/v1/files/{file_id}"), &server.tenant.key)).await;
    let (status, body) = server.send(server.http.get(link["url"].as_str().unwrap())).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn ranges_etags_and_conditional_requests_work_on_every_download_path() {
    let server = TestServer::spawn().await;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let done = server.upload(&server.tenant, "data.bin", &bytes).await;
    let file_id = done["file"]["id"].as_str().unwrap();
    let (_, link) = server.send(server.get(&format!("/v1/files/{file_id}/download-url"))).await;
    let signed = link["url"].as_str().unwrap().to_owned();
    let authenticated = server.get(&format!("/v1/files/{file_id}/content"));
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    for base in [server.http.get(&signed), authenticated] {
        let request = base.try_clone().unwrap().header("range", "bytes=100-199").send().await.unwrap();
        assert_eq!(request.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(request.headers()[CONTENT_RANGE], "bytes 100-199/10000");
        assert_eq!(request.bytes().await.unwrap().as_ref(), &bytes[100..200]);

        let suffix = base.try_clone().unwrap().header("range", "bytes=-10").send().await.unwrap();
        assert_eq!(suffix.bytes().await.unwrap().as_ref(), &bytes[9990..]);

        let beyond = base.try_clone().unwrap().header("range", "bytes=20000-").send().await.unwrap();
        assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(beyond.headers()[CONTENT_RANGE], "bytes */10000");

        let cached = base.try_clone().unwrap().header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

        let stale = base
            .try_clone()
            .unwrap()
            .header("range", "bytes=0-9")
            .header("if-range", "\"old\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), StatusCode::OK);
        assert_eq!(stale.bytes().await.unwrap().len(), 10_000);

        let whole = base.try_clone().unwrap().send().await.unwrap();
        assert_eq!(whole.headers()["content-length"], "10000");
        assert_eq!(whole.headers()["accept-ranges"], "bytes");
        assert_eq!(whole.bytes().await.unwrap().as_ref(), bytes.as_slice());
    }
}

#[tokio::test]
async fn html_and_svg_are_always_served_as_sandboxed_attachments() {
    let server = TestServer::spawn().await;
    for (name, bytes, mime) in [
        ("page.html", &b"<!doctype html><script>alert(1)</script>"[..], "text/html"),
        (
            "logo.svg",
            &b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>"[..],
            "image/svg+xml",
        ),
    ] {
        let done = server.upload(&server.tenant, name, bytes).await;
        let file_id = done["file"]["id"].as_str().unwrap();
        let (_, link) = server.send(server.get(&format!("/v1/files/{file_id}/download-url"))).await;
        let response = server.http.get(link["url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(response.headers()[CONTENT_TYPE], mime);
        assert!(response.headers()[CONTENT_DISPOSITION].to_str().unwrap().starts_with("attachment;"));
        assert!(response.headers()["content-security-policy"].to_str().unwrap().contains("sandbox"));
    }
}

#[tokio::test]
async fn a_read_key_can_read_but_not_write() {
    let server = TestServer::spawn().await;
    let done = server.upload(&server.tenant, "a.txt", b"a").await;
    let file_id = done["file"]["id"].as_str().unwrap();
    let reader = server.key_for(&server.tenant.workspace, cabinet_core::Role::Read).await;
    let (status, _) =
        server.send(server.request(Method::GET, &format!("/v1/files/{file_id}"), &reader)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) =
        server.send(server.request(Method::DELETE, &format!("/v1/files/{file_id}"), &reader)).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = server
        .send(server.request(Method::POST, "/v1/uploads", &reader).json(&json!({"name": "x", "size": 1})))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}
