//! Signed URLs over HTTP: a URL works only for its method, object, size limit and time window.
//! Every field changed, removed, duplicated, reordered or truncated; path segments swapped;
//! expiry; replay; other methods — all refused, never 2xx, never 5xx, and a refused upload stays
//! WAITING with its reservation intact.
//!
//! The signature is compared in constant time (`hmac`'s `verify_slice`, in
//! `cabinet_core::signing`); the unit test there that flips one character of a right-length
//! signature, and `a_signature_of_the_right_length_but_wrong_bytes_is_refused` below, hold that no
//! shortcut comparison on signature bytes creeps in.

use crate::support;

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{assert_error, TestServer};

/// Splits a URL into its part before `?` and its query pairs.
fn split(url: &str) -> (String, Vec<(String, String)>) {
    let (base, query) = url.split_once('?').expect("a signed URL has a query");
    let pairs = query
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    (base.to_owned(), pairs)
}

fn join(base: &str, pairs: &[(String, String)]) -> String {
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{base}?{}", query.join("&"))
}

fn flip_last(value: &str) -> String {
    let mut chars: Vec<char> = value.chars().collect();
    let last = chars.len() - 1;
    chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// Every tampered variant of a signed URL: each field changed, removed or duplicated; the
/// fields reordered; the query truncated; parameters added; the path's segments swapped.
fn tampered(url: &str) -> Vec<(String, String)> {
    let (base, pairs) = split(url);
    let mut out = Vec::new();
    for (i, (key, value)) in pairs.iter().enumerate() {
        let changed = match key.as_str() {
            "sig" => vec![
                flip_last(value),
                value[..value.len() - 1].to_owned(),
                format!("{value}A"),
                value.to_lowercase(),
            ],
            _ => {
                let n: i64 = value.parse().unwrap();
                vec![
                    (n + 1).to_string(),
                    (n - 1).to_string(),
                    format!("0{value}"),
                    format!("+{value}"),
                    format!("%3{}", &value[..1]) + &value[1..],
                ]
            }
        };
        for new in changed.into_iter().filter(|new| new != value) {
            let mut variant = pairs.clone();
            variant[i].1 = new.clone();
            out.push((format!("{key} changed to {new}"), join(&base, &variant)));
        }
        let mut removed = pairs.clone();
        removed.remove(i);
        out.push((format!("{key} removed"), join(&base, &removed)));
        let mut duplicated = pairs.clone();
        duplicated.insert(i, pairs[i].clone());
        out.push((format!("{key} duplicated"), join(&base, &duplicated)));
        let mut uppercase = pairs.clone();
        uppercase[i].0 = key.to_uppercase();
        out.push((format!("{key} renamed upper case"), join(&base, &uppercase)));
    }
    for permutation in permutations(pairs.len()).into_iter().skip(1) {
        let reordered: Vec<_> = permutation.iter().map(|&i| pairs[i].clone()).collect();
        out.push((format!("reordered {permutation:?}"), join(&base, &reordered)));
    }
    let full = url.to_owned();
    let query_start = full.find('?').unwrap() + 1;
    for cut in (query_start..full.len()).step_by(5).chain([full.len() - 1]) {
        out.push((format!("truncated at {cut}"), full[..cut].to_owned()));
    }
    out.push(("no query".into(), base.clone()));
    out.push(("extra parameter".into(), format!("{url}&x=1")));
    out.push(("extra dl=1".into(), format!("{url}&dl=1")));
    out.push(("trailing &".into(), format!("{url}&")));
    out.push(("dl=1 slipped in".into(), url.replacen("&sig=", "&dl=1&sig=", 1)));
    // Path: the workspace and the object swapped, each changed, a segment appended.
    let segments: Vec<&str> = base.rsplitn(3, '/').collect(); // [object, workspace, prefix]
    let (object, workspace, prefix) = (segments[0], segments[1], segments[2]);
    let query = &url[query_start..];
    out.push(("path segments swapped".into(), format!("{prefix}/{object}/{workspace}?{query}")));
    out.push(("workspace changed".into(), format!("{prefix}/{}/{object}?{query}", flip_last(workspace))));
    out.push(("object changed".into(), format!("{prefix}/{workspace}/{}?{query}", flip_last(object))));
    out.push(("object upper case".into(), format!("{prefix}/{workspace}/{}?{query}", object.to_uppercase())));
    out.push(("segment appended".into(), format!("{base}/x?{query}")));
    out
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut all = Vec::new();
    for rest in permutations(n - 1) {
        for at in 0..=rest.len() {
            let mut p = rest.clone();
            p.insert(at, n - 1);
            all.push(p);
        }
    }
    all.sort();
    all
}

async fn start(server: &TestServer, size: usize) -> Value {
    let (status, ticket) =
        server.start_upload(&server.tenant, json!({"name": "signed.bin", "size": size})).await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    ticket
}

async fn upload_status(server: &TestServer, ticket: &Value) -> Value {
    let (_, state) =
        server.send(server.get(&format!("/v1/uploads/{}", ticket["id"].as_str().unwrap()))).await;
    state
}

fn assert_refused(case: &str, status: StatusCode, body: &Value) {
    assert!(
        !status.is_success() && !status.is_server_error() && !status.is_redirection(),
        "{case}: {status} {body}"
    );
}

#[tokio::test]
async fn every_tampered_upload_url_is_refused_and_the_upload_stays_waiting() {
    let server = TestServer::spawn().await;
    let bytes = b"12345".to_vec();
    let ticket = start(&server, bytes.len()).await;
    let url = ticket["upload_url"].as_str().unwrap();
    let variants = tampered(url);
    assert!(variants.len() > 40, "{}", variants.len());
    for (case, variant) in &variants {
        let (status, body) = server.send(server.http.put(variant).body(bytes.clone())).await;
        assert_refused(case, status, &body);
        if status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED {
            assert_error(status, &body, StatusCode::FORBIDDEN, body["error"]["code"].as_str().unwrap_or("?"));
        }
        let form =
            reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes.clone()));
        let (status, body) = server.send(server.http.post(variant).multipart(form)).await;
        assert_refused(case, status, &body);
    }
    let state = upload_status(&server, &ticket).await;
    assert_eq!(state["status"], "WAITING", "{state}");
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 5);
    // The untampered URL still works.
    let (status, done) = server.send(server.http.put(url).body(bytes)).await;
    assert_eq!(status, StatusCode::OK, "{done}");
}

#[tokio::test]
async fn every_tampered_download_url_is_refused() {
    let server = TestServer::spawn().await;
    let done = server.upload(&server.tenant, "read-me.txt", b"signed bytes").await;
    let id = done["file"]["id"].as_str().unwrap();
    for download in [false, true] {
        let (status, signed) =
            server.send(server.get(&format!("/v1/files/{id}/download-url?download={download}"))).await;
        assert_eq!(status, StatusCode::OK, "{signed}");
        let url = signed["url"].as_str().unwrap();
        for (case, variant) in tampered(url) {
            for method in [Method::GET, Method::HEAD] {
                let response = server.http.request(method.clone(), &variant).send().await.unwrap();
                let status = response.status();
                let text = response.text().await.unwrap();
                assert!(
                    !status.is_success() && !status.is_server_error(),
                    "{method} {case} (download={download}): {status}"
                );
                assert!(!text.contains("signed bytes"), "{case}: served the bytes");
            }
        }
        let response = server.http.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "signed bytes");
    }
}

#[tokio::test]
async fn an_expired_url_is_refused_for_uploads_and_downloads() {
    let server = TestServer::spawn().await;
    let done = server.upload(&server.tenant, "old.txt", b"old").await;
    let (_, signed) =
        server
            .send(server.get(&format!(
                "/v1/files/{}/download-url?expires_in=60",
                done["file"]["id"].as_str().unwrap()
            )))
            .await;
    let (_, ticket) =
        server.start_upload(&server.tenant, json!({"name": "late.bin", "size": 3, "expires_in": 60})).await;
    // Past both: the download URL's expiry is rounded up to a window as long as its lifetime.
    server.clock.advance(Duration::seconds(121));
    let (status, body) = server.send(server.http.get(signed["url"].as_str().unwrap())).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "url_expired");
    let (status, body) =
        server.send(server.http.put(ticket["upload_url"].as_str().unwrap()).body("abc")).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "url_expired");
    assert_ne!(upload_status(&server, &ticket).await["status"], "SUCCESS");
}

#[tokio::test]
async fn a_used_upload_url_cannot_be_replayed() {
    let server = TestServer::spawn().await;
    let ticket = start(&server, 3).await;
    let url = ticket["upload_url"].as_str().unwrap();
    let (status, first) = server.send(server.http.put(url).body("abc")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, body) = server.send(server.http.put(url).body("xyz")).await;
    assert_error(status, &body, StatusCode::CONFLICT, "upload_not_waiting");
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(b"xyz".to_vec()));
    let (status, body) = server.send(server.http.post(url).multipart(form)).await;
    assert_error(status, &body, StatusCode::CONFLICT, "upload_not_waiting");
    // The file still holds the first bytes, and the quota counts them once.
    let content = server
        .get(&format!("/v1/files/{}/content", first["file"]["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(content, "abc");
    assert_eq!(server.quota(&server.tenant).await["used_bytes"], 3);
}

#[tokio::test]
async fn a_signed_url_works_only_with_its_own_methods() {
    let server = TestServer::spawn().await;
    let ticket = start(&server, 3).await;
    let upload_url = ticket["upload_url"].as_str().unwrap();
    for method in [Method::GET, Method::HEAD, Method::DELETE, Method::PATCH] {
        let response = server.http.request(method.clone(), upload_url).body("abc").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} on an upload URL");
    }
    assert_eq!(upload_status(&server, &ticket).await["status"], "WAITING");

    let done = server.upload(&server.tenant, "m.txt", b"abc").await;
    let (_, signed) = server
        .send(server.get(&format!("/v1/files/{}/download-url", done["file"]["id"].as_str().unwrap())))
        .await;
    let download_url = signed["url"].as_str().unwrap();
    for method in [Method::PUT, Method::POST, Method::DELETE, Method::PATCH] {
        let response = server.http.request(method.clone(), download_url).body("zzz").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} on a download URL");
    }
    // An upload signature aimed at the download path (and back) is a different operation.
    let (_, upload_query) = upload_url.split_once('?').unwrap();
    let aimed = format!(
        "{}/storage/v1/files/{}/{}?{upload_query}",
        server.url,
        server.tenant.workspace,
        ticket["id"].as_str().unwrap()
    );
    let (status, body) = server.send(server.http.get(aimed)).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "invalid_signature");
    let (_, download_query) = download_url.split_once('?').unwrap();
    let aimed = format!(
        "{}/storage/v1/uploads/{}/{}?{download_query}",
        server.url,
        server.tenant.workspace,
        ticket["id"].as_str().unwrap()
    );
    let (status, body) = server.send(server.http.put(aimed).body("abc")).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "invalid_signature");
    assert_eq!(upload_status(&server, &ticket).await["status"], "WAITING");
}

#[tokio::test]
async fn a_signature_of_the_right_length_but_wrong_bytes_is_refused() {
    let server = TestServer::spawn().await;
    let ticket = start(&server, 3).await;
    let (base, mut pairs) = split(ticket["upload_url"].as_str().unwrap());
    let sig = pairs.iter_mut().find(|(k, _)| k == "sig").unwrap();
    // 43 base64url characters: the length of a real HMAC-SHA256, none of its bytes.
    assert_eq!(sig.1.len(), 43);
    sig.1 = "A".repeat(43);
    let (status, body) = server.send(server.http.put(join(&base, &pairs)).body("abc")).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "invalid_signature");
}
