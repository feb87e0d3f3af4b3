//! Hostile and unusual names: stored exactly when they are names a person would use, refused with
//! a clear error when they could be read as paths or hide characters, and never used as paths.

mod support;

use reqwest::header::CONTENT_DISPOSITION;
use reqwest::StatusCode;
use serde_json::json;
use support::{assert_error, TestServer};

#[tokio::test]
async fn unicode_names_are_stored_exactly_and_served_safely() {
    let server = TestServer::spawn().await;
    for name in ["😀 party.png", "تقرير سنوي.pdf", "résumé.docx", "a \"quoted\"; name.txt", "家族の写真.jpg"]
    {
        let done = server.upload(&server.tenant, name, b"x").await;
        assert_eq!(done["file"]["name"], name);
        let file_id = done["file"]["id"].as_str().unwrap();
        let (_, link) = server.send(server.get(&format!("/v1/files/{file_id}/download-url"))).await;
        let response = server.http.get(link["url"].as_str().unwrap()).send().await.unwrap();
        let disposition = response.headers()[CONTENT_DISPOSITION].to_str().unwrap().to_owned();
        assert!(disposition.contains("filename*=UTF-8''"), "{disposition}");
        assert_eq!(disposition.matches('"').count(), 2, "{disposition}");
    }
    // The blobs are named by id, never by the file's name.
    let objects = server.dir.path().join("blobs/objects");
    for ws in std::fs::read_dir(objects).unwrap() {
        for blob in std::fs::read_dir(ws.unwrap().path()).unwrap() {
            assert!(blob.unwrap().file_name().to_string_lossy().starts_with("file_"));
        }
    }
}

#[tokio::test]
async fn path_like_control_and_overlong_names_are_refused() {
    let server = TestServer::spawn().await;
    let long = "x".repeat(3000);
    for (name, code) in [
        ("../x", "invalid_name"),
        ("../../etc/passwd", "invalid_name"),
        ("a\\b", "invalid_name"),
        ("nul\0byte", "invalid_name"),
        ("line\nbreak", "invalid_name"),
        ("gnp.\u{202e}exe", "invalid_name"),
        ("..", "invalid_name"),
        ("", "invalid_name"),
        (long.as_str(), "name_too_long"),
    ] {
        let (status, body) = server.start_upload(&server.tenant, json!({"name": name, "size": 1})).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, code);
    }
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 0);
    assert!(!server.dir.path().join("etc").exists());
}
