//! Mavera's objects and lists, field by field, and the edges every route shares: ids, paging,
//! permissions, rate-limit headers.

use std::collections::BTreeSet;

use cabinet_api::HttpLimits;
use cabinet_core::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::support::{Options, TestServer};
use super::{assert_mavera_error, call, upload};

fn keys(object: &Value) -> BTreeSet<String> {
    object.as_object().unwrap().keys().cloned().collect()
}

fn is_date_time(value: &Value) -> bool {
    value.as_str().is_some_and(|text| chrono::DateTime::parse_from_rfc3339(text).is_ok())
}

#[tokio::test]
async fn the_file_object_has_every_documented_field() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let (_, folder) = server
        .send(
            call(&server, Method::POST, "/folders", &tenant.key)
                .json(&json!({"name": "Docs", "workspace_id": tenant.workspace.as_str()})),
        )
        .await;
    let file =
        upload(&server, &tenant, "in-folder.txt", b"inside", Some(folder["id"].as_str().unwrap())).await;
    let documented: BTreeSet<String> = [
        "id",
        "object",
        "name",
        "url",
        "type",
        "size",
        "source",
        "workspace_id",
        "folder_id",
        "folder",
        "thumbnail_url",
        "metadata",
        "is_favorite",
        "created_at",
        "updated_at",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(keys(&file), documented, "{file}");
    assert!(file["id"].as_str().unwrap().starts_with("file_"), "{file}");
    assert_eq!(file["object"], "file");
    assert_eq!(file["type"], "text/plain");
    assert_eq!(file["size"], 6);
    assert_eq!(file["source"], "upload");
    assert!(file["workspace_id"].as_str().unwrap().starts_with("ws_"));
    assert_eq!(file["folder_id"], folder["id"]);
    assert_eq!(file["folder"], json!({"id": folder["id"], "name": "Docs"}));
    assert_eq!(file["thumbnail_url"], Value::Null, "not an image");
    assert_eq!(file["metadata"], json!({"campaign": "spring"}));
    assert_eq!(file["is_favorite"], false);
    assert!(is_date_time(&file["created_at"]) && is_date_time(&file["updated_at"]), "{file}");
    // The same object from get, list, update and favorite.
    let id = file["id"].as_str().unwrap();
    let (_, got) = server.send(call(&server, Method::GET, &format!("/files/{id}"), &tenant.key)).await;
    assert_eq!(keys(&got), documented);
    let (_, listed) = server.send(call(&server, Method::GET, "/files", &tenant.key)).await;
    assert_eq!(
        keys(&listed),
        ["data", "has_more", "next_cursor", "object"].into_iter().map(str::to_owned).collect()
    );
    assert_eq!(keys(&listed["data"][0]), documented);
    let (_, toggled) =
        server.send(call(&server, Method::POST, &format!("/files/{id}/favorite"), &tenant.key)).await;
    assert_eq!((keys(&toggled), &toggled["is_favorite"]), (documented.clone(), &json!(true)));
    let (_, toggled) =
        server.send(call(&server, Method::POST, &format!("/files/{id}/favorite"), &tenant.key)).await;
    assert_eq!(toggled["is_favorite"], false, "the favorite is a toggle");
    // At the root, `folder` is left out.
    let root = upload(&server, &tenant, "root.txt", b"root", None).await;
    assert!(root.get("folder").is_none() && root["folder_id"].is_null(), "{root}");
}

#[tokio::test]
async fn the_folder_object_has_every_documented_field_and_keeps_is_shared() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let ws = tenant.workspace.as_str();
    let (status, shared) = server
        .send(
            call(&server, Method::POST, "/folders", &tenant.key)
                .json(&json!({"name": "Team", "workspace_id": ws, "is_shared": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{shared}");
    let documented: BTreeSet<String> = [
        "id",
        "object",
        "name",
        "workspace_id",
        "parent_id",
        "file_count",
        "is_shared",
        "is_favorite",
        "created_at",
        "updated_at",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(keys(&shared), documented, "{shared}");
    assert!(shared["id"].as_str().unwrap().starts_with("fld_"));
    assert_eq!(
        (&shared["object"], &shared["name"], &shared["workspace_id"]),
        (&json!("folder"), &json!("Team"), &json!(ws))
    );
    assert_eq!(
        (&shared["is_shared"], &shared["is_favorite"], &shared["file_count"]),
        (&json!(true), &json!(false), &json!(0))
    );
    assert!(is_date_time(&shared["created_at"]) && is_date_time(&shared["updated_at"]));
    let id = shared["id"].as_str().unwrap();
    let (_, got) = server.send(call(&server, Method::GET, &format!("/folders/{id}"), &tenant.key)).await;
    assert_eq!(got["is_shared"], true, "stored: {got}");
    let (status, unshared) = server
        .send(
            call(&server, Method::PATCH, &format!("/folders/{id}"), &tenant.key)
                .json(&json!({"is_shared": false})),
        )
        .await;
    assert_eq!((status, &unshared["is_shared"]), (StatusCode::OK, &json!(false)), "{unshared}");
    let (_, listed) =
        server.send(call(&server, Method::GET, &format!("/folders?workspace_id={ws}"), &tenant.key)).await;
    assert_eq!(listed["data"][0]["is_shared"], false, "{listed}");
    let (_, private) = server
        .send(
            call(&server, Method::POST, "/folders", &tenant.key)
                .json(&json!({"name": "Mine", "workspace_id": ws})),
        )
        .await;
    assert_eq!(private["is_shared"], false, "not shared unless asked");
    let (status, body) = server
        .send(
            call(&server, Method::PATCH, &format!("/folders/{id}"), &tenant.key)
                .json(&json!({"is_shared": "yes"})),
        )
        .await;
    assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(body["error"]["param"], "is_shared");
}

#[tokio::test]
async fn get_folder_includes_a_page_of_its_files_unless_asked_not_to() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let (_, folder) = server
        .send(
            call(&server, Method::POST, "/folders", &tenant.key)
                .json(&json!({"name": "Pics", "workspace_id": tenant.workspace.as_str()})),
        )
        .await;
    let id = folder["id"].as_str().unwrap();
    for i in 0..3 {
        upload(&server, &tenant, &format!("{i}.txt"), format!("file {i}").as_bytes(), Some(id)).await;
    }
    let (_, whole) = server.send(call(&server, Method::GET, &format!("/folders/{id}"), &tenant.key)).await;
    assert_eq!(whole["file_count"], 3);
    assert_eq!(whole["files"]["data"].as_array().unwrap().len(), 3, "include_files defaults to true");
    let (_, bare) = server
        .send(call(&server, Method::GET, &format!("/folders/{id}?include_files=false"), &tenant.key))
        .await;
    assert!(bare.get("files").is_none(), "{bare}");
    let (_, first) =
        server.send(call(&server, Method::GET, &format!("/folders/{id}?limit=2"), &tenant.key)).await;
    assert_eq!(
        (first["files"]["data"].as_array().unwrap().len(), &first["files"]["has_more"]),
        (2, &json!(true))
    );
    let cursor = first["files"]["next_cursor"].as_str().unwrap();
    let (_, rest) = server
        .send(call(&server, Method::GET, &format!("/folders/{id}?limit=2&cursor={cursor}"), &tenant.key))
        .await;
    assert_eq!(
        (rest["files"]["data"].as_array().unwrap().len(), &rest["files"]["has_more"]),
        (1, &json!(false)),
        "{rest}"
    );
    assert_eq!(rest["files"]["next_cursor"], Value::Null);
}

#[tokio::test]
async fn lists_take_a_limit_of_1_to_100_defaulting_to_50_and_a_cursor() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let ws = tenant.workspace.as_str();
    for i in 0..51 {
        server.upload(&tenant, &format!("f{i}.txt"), b"x").await;
    }
    let (_, page) = server.send(call(&server, Method::GET, "/files", &tenant.key)).await;
    assert_eq!((page["data"].as_array().unwrap().len(), &page["has_more"]), (50, &json!(true)));
    assert_eq!(page["next_cursor"], page["data"][49]["id"]);
    let (_, hundred) = server.send(call(&server, Method::GET, "/files?limit=100", &tenant.key)).await;
    assert_eq!((hundred["data"].as_array().unwrap().len(), &hundred["has_more"]), (51, &json!(false)));
    for bad in ["0", "101", "many"] {
        let (status, body) =
            server.send(call(&server, Method::GET, &format!("/files?limit={bad}"), &tenant.key)).await;
        assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(body["error"]["param"], "limit");
        let (status, body) = server
            .send(call(&server, Method::GET, &format!("/folders?workspace_id={ws}&limit={bad}"), &tenant.key))
            .await;
        assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
    }
    let (status, body) = server.send(call(&server, Method::GET, "/files?cursor=nonsense", &tenant.key)).await;
    assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(body["error"]["param"], "cursor");
    // Folders page by the last folder's id.
    for name in ["A", "B", "C"] {
        server
            .send(
                call(&server, Method::POST, "/folders", &tenant.key)
                    .json(&json!({"name": name, "workspace_id": ws})),
            )
            .await;
    }
    let (_, first) = server
        .send(call(&server, Method::GET, &format!("/folders?workspace_id={ws}&limit=2"), &tenant.key))
        .await;
    assert_eq!((first["object"].as_str(), &first["has_more"]), (Some("list"), &json!(true)));
    assert_eq!(first["next_cursor"], first["data"][1]["id"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, rest) = server
        .send(call(
            &server,
            Method::GET,
            &format!("/folders?workspace_id={ws}&limit=2&cursor={cursor}"),
            &tenant.key,
        ))
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1, "{rest}");
    assert_eq!(rest["data"][0]["name"], "A");
}

#[tokio::test]
async fn the_type_filter_is_a_mime_prefix_and_workspace_and_folder_filter() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let mut png = std::io::Cursor::new(Vec::new());
    image::DynamicImage::new_rgb8(4, 4).write_to(&mut png, image::ImageFormat::Png).unwrap();
    server.upload(&tenant, "p.png", png.get_ref()).await;
    server.upload(&tenant, "t.txt", b"text").await;
    let count = |page: &Value| page["data"].as_array().unwrap().len();
    for (filter, expected) in [("image", 1), ("image/png", 1), ("text", 1), ("text/plain", 1), ("video", 0)] {
        let (_, page) =
            server.send(call(&server, Method::GET, &format!("/files?type={filter}"), &tenant.key)).await;
        assert_eq!(count(&page), expected, "type={filter}: {page}");
    }
    let (_, page) = server
        .send(call(&server, Method::GET, &format!("/files?workspace_id={}", tenant.workspace), &tenant.key))
        .await;
    assert_eq!(count(&page), 2);
}

#[tokio::test]
async fn a_read_key_may_list_but_not_change_anything() {
    let server = TestServer::spawn().await;
    let read = server.key_for(&server.tenant.workspace, Role::Read).await;
    let (status, _) = server.send(call(&server, Method::GET, "/files", &read)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server
        .send(
            call(&server, Method::POST, "/folders", &read)
                .json(&json!({"name": "No", "workspace_id": server.tenant.workspace.as_str()})),
        )
        .await;
    assert_mavera_error(status, &body, StatusCode::FORBIDDEN, "permission_denied");
    assert_eq!(body["error"]["type"], "permission_error");
}

#[tokio::test]
async fn rate_limit_headers_are_sent_and_429_says_when_to_retry() {
    let limits = HttpLimits { rate_limit_per_minute: 2, ..HttpLimits::default() };
    let server = TestServer::spawn_with(Options { http: Some(limits), ..Options::default() }).await;
    let key = server.tenant.key.clone();
    let response = call(&server, Method::GET, "/files", &key).send().await.unwrap();
    for header in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"] {
        assert!(response.headers().contains_key(header), "{header}: {:?}", response.headers());
    }
    assert_eq!(response.headers()["x-ratelimit-limit"], "2");
    let reset: i64 = response.headers()["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
    assert!(reset > 1_600_000_000, "a unix time: {reset}");
    call(&server, Method::GET, "/files", &key).send().await.unwrap();
    let response = call(&server, Method::GET, "/files", &key).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_mavera_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn bodies_are_json_with_unknown_fields_ignored_and_wrong_types_refused() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let ws = tenant.workspace.as_str();
    let (status, folder) = server
        .send(
            call(&server, Method::POST, "/folders", &tenant.key)
                .json(&json!({"name": "X", "workspace_id": ws, "colour": "red"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{folder}");
    let (status, body) = server
        .send(
            call(&server, Method::POST, "/folders", &tenant.key)
                .header("content-type", "application/json")
                .body("not json"),
        )
        .await;
    assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
    let file = upload(&server, &tenant, "m.txt", b"m", None).await;
    let (status, body) = server
        .send(
            call(&server, Method::PATCH, &format!("/files/{}", file["id"].as_str().unwrap()), &tenant.key)
                .json(&json!({"metadata": "flat"})),
        )
        .await;
    assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(body["error"]["param"], "metadata");
    let (status, body) = server
        .send(
            call(&server, Method::POST, "/files/upload-url", &tenant.key)
                .json(&json!({"file_name": "a", "file_type": "text/plain", "file_size": 3})),
        )
        .await;
    assert_mavera_error(status, &body, StatusCode::BAD_REQUEST, "missing_field");
    assert_eq!(body["error"]["param"], "workspace_id");
}

#[tokio::test]
async fn there_is_no_separate_search_endpoint_search_is_a_list_parameter() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    upload(&server, &tenant, "Quarterly-Report.txt", b"q", None).await;
    let (status, body) = server.send(call(&server, Method::GET, "/search?q=report", &tenant.key)).await;
    assert_mavera_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, found) = server.send(call(&server, Method::GET, "/files?search=QUARTERLY", &tenant.key)).await;
    assert_eq!(found["data"].as_array().unwrap().len(), 1, "{found}");
}
