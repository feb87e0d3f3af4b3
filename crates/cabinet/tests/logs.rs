//! Logs are safe to ship: after uploads, downloads, signed URLs, tampered URLs and bad keys, the
//! real binary's log output (stderr, at debug level) holds no API key secret, no signature and no
//! signing secret.

use crate::process;

use std::time::Duration;

use process::ServerProcess;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn no_key_signature_or_signing_secret_reaches_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start_with_env(dir.path(), &[], &[("RUST_LOG", "debug")]);
    let key = server.bootstrap_key.clone().expect("a bootstrap key on first start");
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.url);
    let mut signatures = Vec::new();

    // A signed upload, a multipart one, a direct one, a JSON one.
    let mut file_ids = Vec::new();
    for multipart in [false, true] {
        let ticket: Value = http
            .post(url("/v1/uploads"))
            .bearer_auth(&key)
            .json(&json!({"name": "log-test.txt", "size": 5}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let upload_url = ticket["upload_url"].as_str().unwrap().to_owned();
        signatures.push(upload_url.split("sig=").nth(1).unwrap().to_owned());
        let request = if multipart {
            let form = reqwest::multipart::Form::new()
                .part("file", reqwest::multipart::Part::bytes(b"hello".to_vec()));
            http.post(&upload_url).multipart(form)
        } else {
            http.put(&upload_url).body("hello")
        };
        let done: Value = request.send().await.unwrap().json().await.unwrap();
        assert_eq!(done["status"], "SUCCESS", "{done}");
        file_ids.push(done["file"]["id"].as_str().unwrap().to_owned());
        // Replayed, tampered, and aimed at the wrong method.
        http.put(&upload_url).body("hello").send().await.unwrap();
        http.put(upload_url.replace("sig=", "sig=A")).body("hello").send().await.unwrap();
        http.get(&upload_url).send().await.unwrap();
    }
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(b"direct".to_vec()).file_name("d.txt"));
    let response = http.post(url("/v1/files")).bearer_auth(&key).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = http
        .post(url("/v1/files"))
        .bearer_auth(&key)
        .json(&json!({"name": "b.txt", "content_base64": "aGVsbG8="}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    // Signed downloads, good and tampered, and the authenticated content route.
    for id in &file_ids {
        let signed: Value = http
            .get(url(&format!("/v1/files/{id}/download-url?download=true")))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let download_url = signed["url"].as_str().unwrap();
        signatures.push(download_url.split("sig=").nth(1).unwrap().to_owned());
        assert_eq!(http.get(download_url).send().await.unwrap().status(), StatusCode::OK);
        http.get(format!("{download_url}x")).send().await.unwrap();
        http.get(url(&format!("/v1/files/{id}/content"))).bearer_auth(&key).send().await.unwrap();
    }

    // Bad keys: unknown, malformed, in the wrong scheme, far too long.
    let bad_keys =
        ["cab_thisisnotarealkeybutlookslikeone000000".to_owned(), "cab_".to_owned() + &"z".repeat(300)];
    for bad in &bad_keys {
        let response = http.get(url("/v1/files")).bearer_auth(bad).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        http.get(url("/v1/files")).header("authorization", format!("Basic {bad}")).send().await.unwrap();
        http.get(url(&format!("/v1/files?api_key={bad}"))).send().await.unwrap();
    }

    server.terminate();
    assert!(server.wait_for_exit(Duration::from_secs(10)).is_some_and(|s| s.success()));
    let logs = server.logs();
    assert!(logs.contains("response"), "the requests were not logged at all:\n{logs}");
    assert!(!logs.contains('\u{1b}'), "terminal colour codes in logs written to a pipe");
    let signing_secret = std::fs::read_to_string(dir.path().join("signing.key")).unwrap();
    let mut secrets =
        vec![("the bootstrap key", key.clone()), ("the signing secret", signing_secret.trim().to_owned())];
    secrets.extend(bad_keys.iter().map(|bad| ("a bad key", bad.clone())));
    secrets.extend(signatures.iter().map(|sig| ("a URL signature", sig.clone())));
    for (what, secret) in secrets {
        assert!(!logs.contains(&secret), "{what} ({secret}) appears in the logs");
    }
    assert!(!logs.contains("sig="), "a signed query appears in the logs");
    assert!(!logs.contains("cab_"), "something key-shaped appears in the logs");
}
