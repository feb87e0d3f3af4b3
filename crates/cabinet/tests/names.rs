//! Hostile and unusual names: stored exactly when they are names a person would use, refused with
//! a clear error when they could be read as paths or hide characters, and never used as paths.

use crate::support;

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

#[tokio::test]
async fn names_a_person_cannot_tell_apart_are_one_sibling_name() {
    let server = TestServer::spawn().await;
    let create = |name: &str| {
        server.send(
            server
                .request(reqwest::Method::POST, "/v1/folders", &server.tenant.key)
                .json(&json!({"name": name})),
        )
    };
    let (status, made) = create("Caf\u{e9}").await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    for same in ["Cafe\u{301}", "Ca\u{200b}f\u{e9}", "\u{ff23}af\u{e9}", "CAF\u{c9}\u{feff}"] {
        let (status, body) = create(same).await;
        assert_error(status, &body, StatusCode::CONFLICT, "name_taken");
    }
    // Typed decomposed, it is stored composed.
    let (status, body) = create("Nai\u{308}ve").await;
    assert_eq!((status, body["name"].as_str()), (StatusCode::CREATED, Some("Na\u{ef}ve")), "{body}");
    for refused in ["\u{200b}", " \u{200b}\u{2060} ", "a\u{ff0f}b", "a\u{2215}b"] {
        let (status, body) = create(refused).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_name");
    }
    // Search folds the query the same way.
    let (status, found) = server.send(server.get("/v1/search?q=cafe%CC%81")).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["data"].as_array().map(Vec::len), Some(1), "{found}");
}

#[tokio::test]
async fn a_control_character_in_a_name_filter_is_a_clear_400_on_every_surface() {
    let server = TestServer::spawn().await;
    server.upload(&server.tenant, "abc.txt", b"x").await;
    let workspace = server.tenant.workspace.as_str();
    for path in [
        "/v1/search?q=ab%00c".to_owned(),
        "/v1/files?q=ab%00c".to_owned(),
        "/v1/folders?q=ab%00c".to_owned(),
        "/v1/search?q=a%01bc".to_owned(),
        format!("/compat/cms/files/?organization_id={workspace}&file_name=ab%00c"),
        "/compat/mavera/api/v1/files?search=ab%00c".to_owned(),
        "/compat/mavera/api/v1/folders?search=ab%00c".to_owned(),
    ] {
        let response = server.get(&path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}: {}", response.text().await.unwrap());
    }
    let (status, body) = server.send(server.get("/v1/search?q=ab%00c")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
}
