//! The CMS media library dialect (`/compat/cms`, reference.md §3): every endpoint, its DRF error
//! shapes, and that it is the same core as the native API underneath. `docs/compat/cms.md` maps
//! each thing the seed document names to the test here that proves it.

use crate::support;

mod api_ids;
mod forms;
mod links;
mod listing;
mod storage;

use base64::Engine;
use cabinet_core::Role;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use support::{Tenant, TestServer};

const FILES: &str = "/compat/cms/files/";

fn cms(server: &TestServer, method: Method, path: &str, tenant: &Tenant) -> RequestBuilder {
    server
        .http
        .request(method, format!("{}{path}", server.url))
        .header("authorization", format!("Token {}", tenant.key))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Uploads through the dialect as JSON base64 and returns the File object.
async fn upload(server: &TestServer, tenant: &Tenant, name: &str, bytes: &[u8], tags: Value) -> Value {
    let body = json!({
        "organization_id": tenant.workspace.as_str(),
        "file_base64": b64(bytes),
        "file_name": name,
        "tags": tags,
    });
    let (status, file) = server.send(cms(server, Method::POST, FILES, tenant).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    file
}

fn assert_detail(status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "not a DRF detail: {body}");
    assert!(body.get("error").is_none(), "the native envelope leaked: {body}");
}

fn assert_field_error(status: StatusCode, body: &Value, field: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body[field].as_array().is_some_and(|m| m.len() == 1 && m[0].is_string()),
        "no {field} error: {body}"
    );
}

#[tokio::test]
async fn a_multipart_upload_returns_the_file_object_and_the_native_api_sees_it() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let form = reqwest::multipart::Form::new()
        .text("organization_id", t.workspace.to_string())
        .text("tags", "product,Event")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"\x89PNG\r\n\x1a\nfake".to_vec()).file_name("poster.png"),
        );
    let (status, file) = server
        .send(server.http.post(format!("{}{FILES}", server.url)).bearer_auth(&t.key).multipart(form))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["file_name"], "poster.png");
    assert_eq!(file["organization_id"], t.workspace.as_str());
    assert_eq!(file["tags"], json!(["Event", "product"]));
    assert_eq!(file["usage"], json!([]));
    assert_eq!((file["image_alt_text"].as_str(), file["caption"].as_str()), (Some(""), Some("")));
    for field in ["api_id", "file_url", "created_at", "updated_at", "copyright"] {
        assert!(file[field].is_string(), "{field} missing: {file}");
    }
    // file_url serves the bytes without a key.
    let bytes =
        server.http.get(file["file_url"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"\x89PNG\r\n\x1a\nfake");

    let id = file["api_id"].as_str().unwrap();
    let (status, native) = server.send(server.get(&format!("/v1/files/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{native}");
    assert_eq!(native["name"], "poster.png");
    assert_eq!(native["mime_type"], "image/png");
    assert_eq!(native["tags"], json!(["Event", "product"]));
}

#[tokio::test]
async fn a_base64_upload_works_and_a_native_upload_shows_through_the_dialect() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let file = upload(&server, t, "notes.txt", b"hello cms", json!(["a", "b"])).await;
    assert_eq!(file["tags"], json!(["a", "b"]));
    // A data URI works too.
    let body = json!({"organization_id": t.workspace.as_str(), "file_name": "d.txt",
                      "file_base64": format!("data:text/plain;base64,{}", b64(b"data uri"))});
    let (status, _) = server.send(cms(&server, Method::POST, FILES, t).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED);

    let native = server.upload(t, "native.txt", b"from v1").await;
    let id = native["file"]["id"].as_str().unwrap();
    let (status, seen) = server.send(cms(&server, Method::GET, &format!("{FILES}{id}/"), t)).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["file_name"], "native.txt");
}

#[tokio::test]
async fn details_show_usage_from_references_and_patch_updates_metadata() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let file = upload(&server, t, "hero.jpg", b"jpeg-ish", json!([])).await;
    let id = file["api_id"].as_str().unwrap();
    let (status, _) = server
        .send(
            server
                .request(Method::POST, &format!("/v1/files/{id}/references"), &t.key)
                .json(&json!({"kind": "edition", "id": "42", "label": "Summer Festival"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // With and without the trailing slash.
    for path in [format!("{FILES}{id}/"), format!("/compat/cms/files/{id}")] {
        let (status, details) = server.send(cms(&server, Method::GET, &path, t)).await;
        assert_eq!(status, StatusCode::OK, "{details}");
        assert_eq!(
            details["usage"],
            json!([{"model": "edition", "instance_id": "42", "instance_name": "Summer Festival"}])
        );
    }

    let patch = json!({"image_alt_text": "A stage", "caption": "Opening night", "copyright": "© Preo",
                       "tags": "stage, night", "unknown": 1});
    let (status, patched) =
        server.send(cms(&server, Method::PATCH, &format!("{FILES}{id}/"), t).json(&patch)).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["image_alt_text"], "A stage");
    assert_eq!(patched["caption"], "Opening night");
    assert_eq!(patched["copyright"], "© Preo");
    assert_eq!(patched["tags"], json!(["night", "stage"]));
    let (_, native) = server.send(server.get(&format!("/v1/files/{id}"))).await;
    assert_eq!(
        (native["alt_text"].as_str(), native["caption"].as_str()),
        (Some("A stage"), Some("Opening night"))
    );

    // Only what is sent changes; null clears.
    let (_, patched) = server
        .send(cms(&server, Method::PATCH, &format!("{FILES}{id}"), t).json(&json!({"caption": null})))
        .await;
    assert_eq!(
        (patched["caption"].as_str(), patched["image_alt_text"].as_str()),
        (Some(""), Some("A stage"))
    );
    // A wrong type is that field's 400.
    let (status, body) =
        server.send(cms(&server, Method::PATCH, &format!("{FILES}{id}/"), t).json(&json!({"tags": 5}))).await;
    assert_field_error(status, &body, "tags");
    let (status, body) = server
        .send(cms(&server, Method::PATCH, &format!("{FILES}{id}/"), t).json(&json!({"caption": []})))
        .await;
    assert_field_error(status, &body, "caption");
}

#[tokio::test]
async fn a_file_in_use_is_not_deleted_unless_forced() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let file = upload(&server, t, "used.png", b"in use", json!([])).await;
    let id = file["api_id"].as_str().unwrap();
    for (kind, ref_id) in [("edition", "1"), ("page", "home")] {
        server
            .send(
                server
                    .request(Method::POST, &format!("/v1/files/{id}/references"), &t.key)
                    .json(&json!({"kind": kind, "id": ref_id})),
            )
            .await;
    }
    let (status, body) = server.send(cms(&server, Method::DELETE, &format!("{FILES}{id}/"), t)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["detail"], "File is in use by 2 objects");
    assert_eq!(body["usage"].as_array().unwrap().len(), 2, "{body}");

    let (status, body) =
        server.send(cms(&server, Method::DELETE, &format!("{FILES}{id}/?force=true"), t)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null);
    // Deleted means in Cabinet's trash: gone from the dialect, listed by the native trash.
    let (status, body) = server.send(cms(&server, Method::GET, &format!("{FILES}{id}/"), t)).await;
    assert_detail(status, &body, StatusCode::NOT_FOUND);
    let (_, trashed) = server.send(server.get("/v1/files?trashed=true")).await;
    assert_eq!(trashed["data"][0]["id"], id);

    // A file nothing uses goes without force.
    let free = upload(&server, t, "free.png", b"free", json!([])).await;
    let (status, _) = server
        .send(cms(
            &server,
            Method::DELETE,
            &format!("/compat/cms/files/{}", free["api_id"].as_str().unwrap()),
            t,
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn the_list_filters_orders_and_pages_like_drf() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    for (i, (name, tags)) in [
        ("Alpha.png", json!(["product", "event"])),
        ("beta.png", json!(["product"])),
        ("GAMMA-alpha.txt", json!(["event", "product", "x"])),
        ("delta.txt", json!([])),
    ]
    .into_iter()
    .enumerate()
    {
        server.clock.advance(chrono::Duration::seconds(i as i64 + 1));
        upload(&server, t, name, name.as_bytes(), tags).await;
    }
    let server = &server;
    let list = |query: &str| {
        let path = format!("{FILES}?{query}");
        async move { server.send(cms(server, Method::GET, &path, t)).await }
    };

    let (status, page) = list("").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["count"], 4);
    assert_eq!((page["next"].clone(), page["previous"].clone()), (Value::Null, Value::Null));
    assert_eq!(page["available_tags"], json!(["event", "product", "x"]));
    // Default ordering: newest first.
    assert_eq!(page["results"][0]["file_name"], "delta.txt");

    let (_, page) = list("file_name=ALPHA&ordering=file_name").await;
    let names: Vec<&str> =
        page["results"].as_array().unwrap().iter().map(|f| f["file_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Alpha.png", "GAMMA-alpha.txt"]);

    let (_, page) = list("tags=product,event&ordering=-file_name").await;
    let names: Vec<&str> =
        page["results"].as_array().unwrap().iter().map(|f| f["file_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["GAMMA-alpha.txt", "Alpha.png"]);

    let (_, page) = list("ordering=created_at&page_size=3").await;
    assert_eq!(page["count"], 4);
    assert_eq!(page["results"].as_array().unwrap().len(), 3);
    assert_eq!(page["results"][0]["file_name"], "Alpha.png");
    let next = page["next"].as_str().expect("a next page");
    assert!(
        next.starts_with(&server.url) && next.contains("page=2") && next.contains("page_size=3"),
        "{next}"
    );
    let (status, page2) =
        server.send(server.http.get(next).header("authorization", format!("Bearer {}", t.key))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page2["results"].as_array().unwrap().len(), 1);
    assert_eq!(page2["next"], Value::Null);
    let previous = page2["previous"].as_str().expect("a previous page");
    assert!(previous.starts_with(&server.url) && previous.contains("page_size=3"), "{previous}");
    assert!(
        !previous.contains("&page=") && !previous.contains("?page="),
        "page 1 has no page parameter: {previous}"
    );

    let (status, body) = list("page=9").await;
    assert_detail(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = list("page=zero").await;
    assert_detail(status, &body, StatusCode::NOT_FOUND);
    // organization_id names the workspace explicitly.
    let (status, page) = list(&format!("organization_id={}", t.workspace)).await;
    assert_eq!((status, page["count"].as_u64()), (StatusCode::OK, Some(4)));
}

#[tokio::test]
async fn bad_or_missing_credentials_are_401_in_drf_shape() {
    let server = TestServer::spawn().await;
    let (status, body) = server.send(server.http.get(format!("{}{FILES}", server.url))).await;
    assert_detail(status, &body, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "Authentication credentials were not provided.");
    for header in ["Token cab_wrong", "Bearer cab_wrong", "Basic abc", "Token"] {
        let (status, body) = server
            .send(server.http.get(format!("{}{FILES}", server.url)).header("authorization", header))
            .await;
        assert_detail(status, &body, StatusCode::UNAUTHORIZED);
    }
    let revoked = server
        .cabinet
        .create_api_key(vec![server.tenant.workspace.clone()], Role::Admin, None)
        .await
        .unwrap();
    server.cabinet.revoke_api_key(&revoked.key.id).await.unwrap();
    let (status, body) =
        server.send(server.http.get(format!("{}{FILES}", server.url)).bearer_auth(&revoked.secret)).await;
    assert_detail(status, &body, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn another_organizations_files_and_id_are_404() {
    let server = TestServer::spawn().await;
    let a = &server.tenant;
    let b = server.tenant(None, Role::Admin).await;
    let file = upload(&server, a, "a-secret.txt", b"of a", json!(["secret"])).await;
    let id = file["api_id"].as_str().unwrap();
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let mut request = cms(&server, method.clone(), &format!("{FILES}{id}/"), &b);
        if method == Method::PATCH {
            request = request.json(&json!({"caption": "mine"}));
        }
        let (status, body) = server.send(request).await;
        assert_detail(status, &body, StatusCode::NOT_FOUND);
    }
    // Naming A's organization with B's key.
    let (status, body) =
        server.send(cms(&server, Method::GET, &format!("{FILES}?organization_id={}", a.workspace), &b)).await;
    assert_detail(status, &body, StatusCode::NOT_FOUND);
    let upload_to_a =
        json!({"organization_id": a.workspace.as_str(), "file_base64": b64(b"x"), "file_name": "x.txt"});
    let (status, body) = server.send(cms(&server, Method::POST, FILES, &b).json(&upload_to_a)).await;
    assert_detail(status, &body, StatusCode::NOT_FOUND);
    // B's own list shows nothing of A's.
    let (_, page) = server.send(cms(&server, Method::GET, FILES, &b)).await;
    assert_eq!((page["count"].as_u64(), page["available_tags"].clone()), (Some(0), json!([])));
    // A malformed id is a 404 like any unknown one.
    let (status, body) = server.send(cms(&server, Method::GET, &format!("{FILES}nope/"), a)).await;
    assert_detail(status, &body, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn missing_fields_are_400_naming_the_field() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let (status, body) = server
        .send(
            cms(&server, Method::POST, FILES, t)
                .json(&json!({"file_base64": b64(b"x"), "file_name": "x.txt"})),
        )
        .await;
    assert_field_error(status, &body, "organization_id");
    let org = t.workspace.as_str();
    let (status, body) = server
        .send(
            cms(&server, Method::POST, FILES, t).json(&json!({"organization_id": org, "file_name": "x.txt"})),
        )
        .await;
    assert_field_error(status, &body, "file");
    let (status, body) = server
        .send(
            cms(&server, Method::POST, FILES, t)
                .json(&json!({"organization_id": org, "file_base64": b64(b"x")})),
        )
        .await;
    assert_field_error(status, &body, "file_name");
    let (status, body) = server
        .send(
            cms(&server, Method::POST, FILES, t)
                .json(&json!({"organization_id": org, "file_base64": "!!!", "file_name": "x"})),
        )
        .await;
    assert_field_error(status, &body, "file_base64");
    let (status, body) = server
        .send(cms(&server, Method::POST, FILES, t).json(
            &json!({"organization_id": org, "file_base64": b64(b"x"), "file_name": "x", "tags": ["bad,tag"]}),
        ))
        .await;
    assert_field_error(status, &body, "tags");
    let form = reqwest::multipart::Form::new().text("organization_id", org.to_owned());
    let (status, body) = server.send(cms(&server, Method::POST, FILES, t).multipart(form)).await;
    assert_field_error(status, &body, "file");
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x.txt"));
    let (status, body) = server.send(cms(&server, Method::POST, FILES, t).multipart(form)).await;
    assert_field_error(status, &body, "organization_id");
    let (status, body) = server.send(cms(&server, Method::POST, FILES, t).body("plain")).await;
    assert_detail(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Nothing was stored.
    assert_eq!(server.quota(t).await["used_bytes"], 0);
}

#[tokio::test]
async fn quota_and_roles_apply_as_natively() {
    let server = TestServer::spawn().await;
    let small = server.tenant(Some(10), Role::Write).await;
    upload(&server, &small, "fits.txt", b"12345678", json!([])).await;
    let body = json!({"organization_id": small.workspace.as_str(), "file_base64": b64(b"too much"), "file_name": "no.txt"});
    let (status, refused) = server.send(cms(&server, Method::POST, FILES, &small).json(&body)).await;
    assert_detail(status, &refused, StatusCode::INSUFFICIENT_STORAGE);
    assert!(refused["detail"].as_str().unwrap().to_lowercase().contains("quota"), "{refused}");
    assert_eq!(server.quota(&small).await["used_bytes"], 8);

    let reader_key = server.key_for(&small.workspace, Role::Read).await;
    let reader = Tenant { workspace: small.workspace.clone(), key: reader_key };
    let (status, body) = server.send(cms(&server, Method::POST, FILES, &reader).json(&body)).await;
    assert_detail(status, &body, StatusCode::FORBIDDEN);
    let (status, page) = server.send(cms(&server, Method::GET, FILES, &reader)).await;
    assert_eq!((status, page["count"].as_u64()), (StatusCode::OK, Some(1)));
}
