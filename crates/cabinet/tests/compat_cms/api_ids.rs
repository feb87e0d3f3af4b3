//! The seed's `api_id` upload field: a client-chosen id the file keeps, unique per organization
//! (409 in the CMS's own field shape on a clash), naming the file in every route.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{assert_detail, assert_field_error, b64, cms, FILES};
use crate::support::{Tenant, TestServer};

/// A JSON upload naming its `api_id`.
fn with_api_id(tenant: &Tenant, api_id: &str, name: &str, bytes: &[u8]) -> Value {
    json!({"organization_id": tenant.workspace.as_str(), "api_id": api_id,
           "file_base64": b64(bytes), "file_name": name})
}

fn assert_api_id_taken(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["api_id"][0].as_str().is_some_and(|m| m.contains("already used")), "{body}");
    assert!(body.get("error").is_none() && body.get("detail").is_none(), "{body}");
}

#[tokio::test]
async fn a_client_chosen_api_id_is_kept_and_names_the_file_in_every_route() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let (status, file) = server
        .send(cms(&server, Method::POST, FILES, t).json(&with_api_id(t, "hero-2025", "hero.png", b"hero")))
        .await;
    assert_eq!((status, file["api_id"].as_str()), (StatusCode::CREATED, Some("hero-2025")), "{file}");

    let (status, got) = server.send(cms(&server, Method::GET, &format!("{FILES}hero-2025/"), t)).await;
    assert_eq!((status, got["file_name"].as_str()), (StatusCode::OK, Some("hero.png")), "{got}");
    let patch = json!({"caption": "Hero"});
    let (status, patched) =
        server.send(cms(&server, Method::PATCH, &format!("{FILES}hero-2025"), t).json(&patch)).await;
    assert_eq!((status, patched["api_id"].as_str()), (StatusCode::OK, Some("hero-2025")), "{patched}");
    assert_eq!(patched["caption"], "Hero");
    let (_, page) = server.send(cms(&server, Method::GET, FILES, t)).await;
    assert_eq!(page["results"][0]["api_id"], "hero-2025");
    // Cabinet's own id names it as well.
    let (_, native) = server.send(server.get("/v1/files")).await;
    let id = native["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, by_id) = server.send(cms(&server, Method::GET, &format!("{FILES}{id}/"), t)).await;
    assert_eq!((status, by_id["api_id"].as_str()), (StatusCode::OK, Some("hero-2025")));
    // Another organization's api_id names nothing.
    let other = server.tenant(None, cabinet_core::Role::Admin).await;
    let (status, body) = server.send(cms(&server, Method::GET, &format!("{FILES}hero-2025/"), &other)).await;
    assert_detail(status, &body, StatusCode::NOT_FOUND);

    // In a multipart form too; without one, the api_id is Cabinet's id.
    let form = reqwest::multipart::Form::new()
        .text("organization_id", t.workspace.to_string())
        .text("api_id", "poster")
        .part("file", reqwest::multipart::Part::bytes(b"poster".to_vec()).file_name("poster.png"));
    let (status, poster) = server.send(cms(&server, Method::POST, FILES, t).multipart(form)).await;
    assert_eq!((status, poster["api_id"].as_str()), (StatusCode::CREATED, Some("poster")), "{poster}");
    let plain = super::upload(&server, t, "plain.txt", b"plain", json!([])).await;
    assert!(plain["api_id"].as_str().unwrap().starts_with("file_"), "{plain}");

    let (status, _) = server.send(cms(&server, Method::DELETE, &format!("{FILES}hero-2025/"), t)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = server.send(cms(&server, Method::GET, &format!("{FILES}hero-2025/"), t)).await;
    assert_detail(status, &body, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_api_id_is_unique_per_organization_and_a_clash_is_409_storing_nothing() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let (status, first) = server
        .send(cms(&server, Method::POST, FILES, t).json(&with_api_id(t, "logo", "logo.png", b"1234")))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, body) = server
        .send(cms(&server, Method::POST, FILES, t).json(&with_api_id(t, "logo", "other.png", b"56")))
        .await;
    assert_api_id_taken(status, &body);
    let form = reqwest::multipart::Form::new()
        .text("organization_id", t.workspace.to_string())
        .text("api_id", "logo")
        .part("file", reqwest::multipart::Part::bytes(b"78".to_vec()).file_name("form.png"));
    let (status, body) = server.send(cms(&server, Method::POST, FILES, t).multipart(form)).await;
    assert_api_id_taken(status, &body);
    assert_eq!(server.quota(t).await["used_bytes"], 4, "a refused upload stores nothing");
    // The same id in another organization is another file.
    let other = server.tenant(None, cabinet_core::Role::Admin).await;
    let (status, _) = server
        .send(cms(&server, Method::POST, FILES, &other).json(&with_api_id(&other, "logo", "logo.png", b"x")))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // Racing uploads of one id: one wins, the other is refused and leaves nothing behind.
    let racing = |name: &'static str| {
        server.send(cms(&server, Method::POST, FILES, t).json(&with_api_id(t, "race", name, b"racing")))
    };
    let (a, b) = tokio::join!(racing("a.txt"), racing("b.txt"));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT], "{} {}", a.1, b.1);
    assert_eq!(server.quota(t).await["used_bytes"], 4 + 6);

    // A deleted file frees its id; restoring it while another file holds the id is refused.
    let (status, _) = server.send(cms(&server, Method::DELETE, &format!("{FILES}logo/"), t)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, second) = server
        .send(cms(&server, Method::POST, FILES, t).json(&with_api_id(t, "logo", "new.png", b"new")))
        .await;
    assert_eq!((status, second["file_name"].as_str()), (StatusCode::CREATED, Some("new.png")), "{second}");
    let (_, trashed) = server.send(server.get("/v1/files?trashed=true")).await;
    let old = trashed["data"][0]["id"].as_str().unwrap();
    let (status, body) =
        server.send(server.request(Method::POST, &format!("/v1/files/{old}/restore"), &t.key)).await;
    crate::support::assert_error(status, &body, StatusCode::CONFLICT, "external_id_taken");
}

#[tokio::test]
async fn an_api_id_that_cannot_be_one_path_segment_is_400_on_api_id() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let long = "x".repeat(201);
    for bad in ["a/b", "file_mine", " padded", long.as_str()] {
        let (status, body) =
            server.send(cms(&server, Method::POST, FILES, t).json(&with_api_id(t, bad, "x.txt", b"x"))).await;
        assert_field_error(status, &body, "api_id");
    }
    let body = json!({"organization_id": t.workspace.as_str(), "api_id": 7, "file_base64": b64(b"x"), "file_name": "x"});
    let (status, body) = server.send(cms(&server, Method::POST, FILES, t).json(&body)).await;
    assert_field_error(status, &body, "api_id");
    assert_eq!(server.quota(t).await["used_bytes"], 0);
}
