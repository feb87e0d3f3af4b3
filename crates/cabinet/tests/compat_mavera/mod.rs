//! The Mavera dialect over HTTP: every endpoint of reference.md §1, its error envelope, and that
//! what it does is what the native API sees.

use crate::support;

use cabinet_core::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{sha256_hex, Tenant, TestServer};

const BASE: &str = "/compat/mavera/api/v1";

fn call(server: &TestServer, method: Method, path: &str, key: &str) -> reqwest::RequestBuilder {
    server.request(method, &format!("{BASE}{path}"), key)
}

fn assert_mavera_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(error["type"].is_string(), "{body}");
    assert!(error.get("param").is_some(), "{body}");
}

/// upload-url → PUT → POST /files, as the docs' client does it.
async fn upload(
    server: &TestServer,
    tenant: &Tenant,
    name: &str,
    bytes: &[u8],
    folder: Option<&str>,
) -> Value {
    let mut request = json!({
        "file_name": name, "file_type": "text/plain", "file_size": bytes.len(),
        "workspace_id": tenant.workspace.as_str(), "checksum": sha256_hex(bytes),
    });
    if let Some(folder) = folder {
        request["folder_id"] = json!(folder);
    }
    let (status, ticket) =
        server.send(call(server, Method::POST, "/files/upload-url", &tenant.key).json(&request)).await;
    assert_eq!(status, StatusCode::OK, "{ticket}");
    assert_eq!(ticket["object"], "upload_url");
    assert_eq!(ticket["method"], "PUT");
    assert_eq!(ticket["expires_in"], 3600);
    // The next step names its route as mounted, so a client can follow it as written.
    assert_eq!(ticket["next_step"]["endpoint"], "POST /compat/mavera/api/v1/files");
    let mut put = server.http.put(ticket["upload_url"].as_str().unwrap()).body(bytes.to_vec());
    for (name, value) in ticket["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    let (status, body) = server.send(put).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut record = json!({
        "name": name, "type": "text/plain", "url": ticket["public_url"], "workspace_id": tenant.workspace.as_str(),
        "file_size": bytes.len(), "metadata": {"campaign": "spring"},
    });
    if let Some(folder) = folder {
        record["folder_id"] = json!(folder);
    }
    let (status, file) = server.send(call(server, Method::POST, "/files", &tenant.key).json(&record)).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    file
}

#[tokio::test]
async fn a_presigned_upload_becomes_a_mavera_file_visible_natively() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let file = upload(&server, &tenant, "report.txt", b"quarterly numbers", None).await;
    assert_eq!(file["object"], "file");
    assert_eq!(file["name"], "report.txt");
    assert_eq!(file["size"], 17);
    assert_eq!(file["source"], "upload");
    assert_eq!(file["thumbnail_url"], Value::Null);
    assert_eq!(file["folder_id"], Value::Null);
    assert!(file.get("folder").is_none(), "{file}");
    assert_eq!(file["metadata"]["campaign"], "spring");
    assert_eq!(file["workspace_id"], tenant.workspace.as_str());
    let bytes = server.http.get(file["url"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"quarterly numbers");
    // The native API sees it, and a native upload is seen through the dialect.
    let (_, native) = server.send(server.get("/v1/files")).await;
    assert!(native["data"].as_array().unwrap().iter().any(|f| f["id"] == file["id"]), "{native}");
    let native_file = server.upload(&tenant, "native.txt", b"native").await;
    let (status, seen) = server
        .send(call(
            &server,
            Method::GET,
            &format!("/files/{}", native_file["file"]["id"].as_str().unwrap()),
            &tenant.key,
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["name"], "native.txt");
    assert!(server
        .http
        .head(format!("{}{BASE}/files", server.url))
        .send()
        .await
        .unwrap()
        .headers()
        .contains_key("x-ratelimit-reset"));
}

#[tokio::test]
async fn post_files_verifies_the_bytes_arrived_as_declared() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let ws = tenant.workspace.as_str();
    let request =
        json!({"file_name": "a.txt", "file_type": "text/plain", "file_size": 5, "workspace_id": ws});
    let (_, ticket) =
        server.send(call(&server, Method::POST, "/files/upload-url", &tenant.key).json(&request)).await;
    let record = json!({"name": "a.txt", "type": "text/plain", "url": ticket["public_url"], "workspace_id": ws, "file_size": 5});
    // Nothing arrived yet.
    let (status, body) = server.send(call(&server, Method::POST, "/files", &tenant.key).json(&record)).await;
    assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(body["error"]["param"], "url");
    // Too few bytes: the upload fails, and so does the record.
    server.send(server.http.put(ticket["upload_url"].as_str().unwrap()).body("abc")).await;
    let (status, body) = server.send(call(&server, Method::POST, "/files", &tenant.key).json(&record)).await;
    assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(server.quota(&tenant).await["reserved_bytes"], 0);
}

#[tokio::test]
async fn errors_use_mavera_s_envelope_with_the_documented_codes() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let ws = tenant.workspace.as_str();
    // 401: missing, invalid, revoked.
    let (status, body) = server.send(server.http.get(format!("{}{BASE}/files", server.url))).await;
    assert_mavera_error(status, &body, StatusCode::UNAUTHORIZED, "missing_api_key");
    assert_eq!(body["error"]["type"], "authentication_error");
    let (status, body) = server.send(call(&server, Method::GET, "/files", "cab_nope")).await;
    assert_mavera_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_api_key");
    let revoked =
        server.cabinet.create_api_key(vec![tenant.workspace.clone()], Role::Admin, None).await.unwrap();
    server.cabinet.revoke_api_key(&revoked.key.id).await.unwrap();
    let (status, body) = server.send(call(&server, Method::GET, "/files", &revoked.secret)).await;
    assert_mavera_error(status, &body, StatusCode::UNAUTHORIZED, "revoked_api_key");
    // 400: a missing and a mistyped field, named in `param`.
    let (status, body) = server
        .send(
            call(&server, Method::POST, "/files/upload-url", &tenant.key)
                .json(&json!({"workspace_id": ws, "file_type": "text/plain", "file_size": 3})),
        )
        .await;
    assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "missing_field");
    assert_eq!(body["error"]["param"], "file_name");
    let (status, body) = server
        .send(call(&server, Method::POST, "/files/upload-url", &tenant.key).json(
            &json!({"workspace_id": ws, "file_name": "a", "file_type": "text/plain", "file_size": "big"}),
        ))
        .await;
    assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(body["error"]["param"], "file_size");
    let (status, body) = server.send(call(&server, Method::GET, "/folders", &tenant.key)).await;
    assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "missing_field");
    assert_eq!(body["error"]["param"], "workspace_id");
    // 402: the quota, with "storage" in the message as the docs' client checks.
    let small = server.tenant(Some(10), Role::Write).await;
    let (status, body) = server.send(call(&server, Method::POST, "/files/upload-url", &small.key).json(&json!({"workspace_id": small.workspace.as_str(), "file_name": "big.bin", "file_type": "application/octet-stream", "file_size": 11}))).await;
    assert_mavera_error(status, &body, StatusCode::PAYMENT_REQUIRED, "storage_quota_exceeded");
    assert!(body["error"]["message"].as_str().unwrap().to_lowercase().contains("storage"));
    assert_eq!(body["error"]["param"], "file_size");
    // 404: another tenant's workspace and file; an unknown route.
    let other = server.tenant(None, Role::Admin).await;
    let theirs = upload(&server, &other, "theirs.txt", b"theirs", None).await;
    let (status, body) = server
        .send(call(&server, Method::GET, &format!("/files?workspace_id={}", other.workspace), &tenant.key))
        .await;
    assert_mavera_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(body["error"]["type"], "not_found_error");
    let (status, body) = server
        .send(call(&server, Method::GET, &format!("/files/{}", theirs["id"].as_str().unwrap()), &tenant.key))
        .await;
    assert_mavera_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = server.send(call(&server, Method::GET, "/nothing/here", &tenant.key)).await;
    assert_mavera_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    // 409: a file in use.
    let file = upload(&server, &tenant, "used.txt", b"used", None).await;
    let id = file["id"].as_str().unwrap();
    server
        .send(
            server
                .request(Method::POST, &format!("/v1/files/{id}/references"), &tenant.key)
                .json(&json!({"kind": "page", "id": "home"})),
        )
        .await;
    let (status, body) =
        server.send(call(&server, Method::DELETE, &format!("/files/{id}"), &tenant.key)).await;
    assert_mavera_error(status, &body, StatusCode::CONFLICT, "file_in_use");
}

#[tokio::test]
async fn files_list_filter_page_update_favorite_and_delete() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let key = &tenant.key;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            upload(&server, &tenant, &format!("Photo-{i}.txt"), format!("bytes {i}").as_bytes(), None).await
                ["id"]
                .clone(),
        );
    }
    // Pages of 2, by the last id.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/files?limit=2&cursor={c}"),
            None => "/files?limit=2".into(),
        };
        let (status, page) = server.send(call(&server, Method::GET, &path, key)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["object"], "list");
        seen.extend(page["data"].as_array().unwrap().iter().map(|f| f["id"].clone()));
        if page["has_more"] == false {
            assert_eq!(page["next_cursor"], Value::Null);
            break;
        }
        cursor = Some(page["next_cursor"].as_str().unwrap().to_owned());
        assert_eq!(page["next_cursor"], page["data"][1]["id"]);
    }
    ids.reverse();
    assert_eq!(seen, ids);
    // search (case-insensitive), type, favorites.
    let (_, found) = server.send(call(&server, Method::GET, "/files?search=photo-3", key)).await;
    assert_eq!(found["data"].as_array().unwrap().len(), 1, "{found}");
    let (_, typed) = server.send(call(&server, Method::GET, "/files?type=image", key)).await;
    assert_eq!(typed["data"].as_array().unwrap().len(), 0, "{typed}");
    let id = ids[0].as_str().unwrap();
    let (status, fav) = server.send(call(&server, Method::POST, &format!("/files/{id}/favorite"), key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fav["is_favorite"], true);
    let (_, favorites) =
        server.send(call(&server, Method::GET, "/files", key).query(&[("is_favorite", "true")])).await;
    assert_eq!(favorites["data"].as_array().unwrap().len(), 1);
    let (_, others) =
        server.send(call(&server, Method::GET, "/files", key).query(&[("is_favorite", "false")])).await;
    assert_eq!(others["data"].as_array().unwrap().len(), 4, "is_favorite=false filters: {others}");
    // PATCH: rename, move into a folder (the file object then names it), metadata.
    let (_, folder) = server
        .send(
            call(&server, Method::POST, "/folders", key)
                .json(&json!({"name": "Docs", "workspace_id": tenant.workspace.as_str()})),
        )
        .await;
    let (status, moved) = server
        .send(
            call(&server, Method::PATCH, &format!("/files/{id}"), key)
                .json(&json!({"name": "renamed.txt", "folder_id": folder["id"], "metadata": {"a": 1}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["name"], "renamed.txt");
    assert_eq!(moved["folder"]["name"], "Docs");
    assert_eq!(moved["metadata"]["a"], 1);
    let (_, in_folder) = server
        .send(call(
            &server,
            Method::GET,
            &format!("/files?folder_id={}", folder["id"].as_str().unwrap()),
            key,
        ))
        .await;
    assert_eq!(in_folder["data"].as_array().unwrap().len(), 1);
    let (_, back) = server
        .send(call(&server, Method::PATCH, &format!("/files/{id}"), key).json(&json!({"folder_id": null})))
        .await;
    assert_eq!(back["folder_id"], Value::Null);
    // DELETE reclaims the storage at once, as Mavera documents: the quota-exceeded -> delete ->
    // retry loop works right away. `permanent=false` (an extension) moves to the trash instead.
    let used = server.quota(&tenant).await["used_bytes"].as_u64().unwrap();
    let (status, deleted) = server.send(call(&server, Method::DELETE, &format!("/files/{id}"), key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted, json!({"id": id, "object": "file", "deleted": true}));
    let (status, _) = server.send(call(&server, Method::GET, &format!("/files/{id}"), key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, trash) = server.send(server.get("/v1/trash")).await;
    assert!(!trash.to_string().contains(id), "{trash}");
    let after_delete = server.quota(&tenant).await["used_bytes"].as_u64().unwrap();
    assert!(after_delete < used, "{after_delete} < {used}");
    let other = ids[1].as_str().unwrap();
    let (status, _) =
        server.send(call(&server, Method::DELETE, &format!("/files/{other}?permanent=false"), key)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, trash) = server.send(server.get("/v1/trash")).await;
    assert!(trash.to_string().contains(other), "{trash}");
    assert_eq!(server.quota(&tenant).await["used_bytes"].as_u64().unwrap(), after_delete);
    let (status, _) = server.send(call(&server, Method::DELETE, &format!("/files/{other}"), key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a file in the trash is gone for Mavera");
}

#[tokio::test]
async fn folders_crud_nesting_favorites_and_delete_reclaiming_what_they_held() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let (key, ws) = (&tenant.key, tenant.workspace.as_str());
    let (status, top) = server
        .send(
            call(&server, Method::POST, "/folders", key).json(&json!({"name": "Brand", "workspace_id": ws})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{top}");
    assert_eq!(top["object"], "folder");
    assert_eq!(top["is_shared"], false);
    assert_eq!(top["file_count"], 0);
    assert_eq!(top["parent_id"], Value::Null);
    let top_id = top["id"].as_str().unwrap();
    let (status, child) = server
        .send(
            call(&server, Method::POST, "/folders", key)
                .json(&json!({"name": "Logos", "workspace_id": ws, "parent_id": top_id})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{child}");
    assert_eq!(child["parent_id"], top_id);
    let (status, body) = server
        .send(
            call(&server, Method::POST, "/folders", key).json(&json!({"name": "brand", "workspace_id": ws})),
        )
        .await;
    assert_mavera_error(status, &body, StatusCode::CONFLICT, "name_taken");
    upload(&server, &tenant, "logo.txt", b"logo", Some(top_id)).await;
    let (status, got) = server.send(call(&server, Method::GET, &format!("/folders/{top_id}"), key)).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["file_count"], 1);
    assert_eq!(got["files"]["object"], "list");
    assert_eq!(got["files"]["data"][0]["folder"]["id"], top_id);
    let (_, listed) =
        server.send(call(&server, Method::GET, &format!("/folders?workspace_id={ws}&search=LOG"), key)).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    let (_, fav) =
        server.send(call(&server, Method::POST, &format!("/folders/{top_id}/favorite"), key)).await;
    assert_eq!(fav["is_favorite"], true);
    let (_, favorites) = server
        .send(call(&server, Method::GET, &format!("/folders?workspace_id={ws}&is_favorite=true"), key))
        .await;
    assert_eq!(favorites["data"].as_array().unwrap().len(), 1);
    let (_, others) = server
        .send(call(&server, Method::GET, &format!("/folders?workspace_id={ws}&is_favorite=false"), key))
        .await;
    assert_eq!(others["data"].as_array().unwrap().len(), 1, "is_favorite=false filters: {others}");
    let (status, renamed) = server
        .send(
            call(&server, Method::PATCH, &format!("/folders/{top_id}"), key)
                .json(&json!({"name": "Brand 2024"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Brand 2024");
    // A folder with contents goes with them, and their storage is reclaimed.
    assert!(server.quota(&tenant).await["used_bytes"].as_u64().unwrap() > 0);
    let (status, deleted) =
        server.send(call(&server, Method::DELETE, &format!("/folders/{top_id}"), key)).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted, json!({"id": top_id, "object": "folder", "deleted": true}));
    let (status, _) = server.send(call(&server, Method::GET, &format!("/folders/{top_id}"), key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, files) = server.send(server.get("/v1/files")).await;
    assert_eq!(files["data"].as_array().unwrap().len(), 0, "{files}");
    let (_, trash) = server.send(server.get("/v1/trash")).await;
    assert_eq!(trash["data"].as_array().unwrap().len(), 0, "{trash}");
    assert_eq!(server.quota(&tenant).await["used_bytes"], 0);
}

#[tokio::test]
async fn an_image_has_a_thumbnail_url_that_needs_no_key() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let mut png = std::io::Cursor::new(Vec::new());
    image::DynamicImage::new_rgb8(300, 200).write_to(&mut png, image::ImageFormat::Png).unwrap();
    let uploaded = server.upload(&tenant, "photo.png", png.get_ref()).await;
    let path = format!("/files/{}", uploaded["file"]["id"].as_str().unwrap());
    let (status, file) = server.send(call(&server, Method::GET, &path, &tenant.key)).await;
    assert_eq!(status, StatusCode::OK, "{file}");
    let url = file["thumbnail_url"].as_str().expect("an image has a thumbnail_url");
    let response = server.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    let thumbnail = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
    assert_eq!((thumbnail.width(), thumbnail.height()), (256, 171));
}

mod links;
mod objects;
mod records;
