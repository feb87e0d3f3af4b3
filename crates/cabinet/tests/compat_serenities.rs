//! The Serenities AI Files API dialect (`/compat/serenities/api/v1`, reference.md §4): all fifteen
//! procedures, the `{"error": {"code", "message"}}` envelope, and that it is the same core as the
//! native API underneath. `docs/compat/serenities.md` maps each thing the seed document names to
//! the test here that proves it.

use crate::support;

use base64::Engine;
use cabinet_core::{Clock, Role};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{Tenant, TestServer};

const BASE: &str = "/compat/serenities/api/v1/files";

async fn call(server: &TestServer, tenant: &Tenant, procedure: &str, body: Value) -> (StatusCode, Value) {
    server.send(server.request(Method::POST, &format!("{BASE}/{procedure}"), &tenant.key).json(&body)).await
}

async fn ok(server: &TestServer, tenant: &Tenant, procedure: &str, body: Value) -> Value {
    let (status, response) = call(server, tenant, procedure, body).await;
    assert_eq!(status, StatusCode::OK, "{procedure}: {response}");
    response
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn upload(server: &TestServer, tenant: &Tenant, name: &str, bytes: &[u8], extra: Value) -> Value {
    let mut body = json!({"fileName": name, "content": b64(bytes)});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    ok(server, tenant, "upload", body).await
}

#[tokio::test]
async fn upload_get_rename_move_download_and_delete_go_through_the_core() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let file = upload(&server, t, "report.pdf", b"%PDF-1.4 tiny", json!({})).await;
    assert_eq!(file["fileName"], "report.pdf");
    assert_eq!(file["mimeType"], "application/pdf");
    assert_eq!(file["size"], 13);
    assert_eq!((file["folderId"].clone(), file["conversationId"].clone()), (Value::Null, Value::Null));
    for field in ["id", "uploadedAt", "updatedAt"] {
        assert!(file[field].is_string(), "{field}: {file}");
    }
    assert!(file.as_object().unwrap().contains_key("createdBy"), "{file}");
    let id = file["id"].as_str().unwrap();

    let got = ok(&server, t, "get", json!({"fileId": id})).await;
    assert_eq!(got["id"], id);
    let (_, native) = server.send(server.get(&format!("/v1/files/{id}"))).await;
    assert_eq!(native["name"], "report.pdf");

    let renamed = ok(&server, t, "rename", json!({"fileId": id, "newName": "final.pdf"})).await;
    assert_eq!(renamed["fileName"], "final.pdf");
    let folder = ok(&server, t, "createFolder", json!({"name": "Reports"})).await;
    let moved = ok(&server, t, "move", json!({"fileId": id, "folderId": folder["id"]})).await;
    assert_eq!(moved["folderId"], folder["id"]);
    let (_, native) = server.send(server.get(&format!("/v1/files/{id}"))).await;
    assert_eq!(
        (native["name"].as_str(), native["folder_id"].clone()),
        (Some("final.pdf"), folder["id"].clone())
    );
    let moved = ok(&server, t, "move", json!({"fileId": id, "folderId": null})).await;
    assert_eq!(moved["folderId"], Value::Null);
    let (status, body) = call(&server, t, "move", json!({"fileId": id})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "BAD_REQUEST");

    let link = ok(&server, t, "getDownloadUrl", json!({"fileId": id})).await;
    let expires: chrono::DateTime<chrono::Utc> = link["expiresAt"].as_str().unwrap().parse().unwrap();
    let lifetime = expires - server.clock.now();
    // An hour, rounded up to the end of the URL window (10 minutes) so that caches can hit.
    assert!((3600..=4200).contains(&lifetime.num_seconds()), "{link}");
    let bytes = server.http.get(link["url"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"%PDF-1.4 tiny");

    let deleted = ok(&server, t, "delete", json!({"fileId": id})).await;
    assert_eq!(deleted, json!({"success": true}));
    let (status, body) = call(&server, t, "get", json!({"fileId": id})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    // Deleted means trashed: the native trash has it and can restore it.
    let (status, _) =
        server.send(server.request(Method::POST, &format!("/v1/files/{id}/restore"), &t.key)).await;
    assert_eq!(status, StatusCode::OK);
    ok(&server, t, "get", json!({"fileId": id})).await;
}

#[tokio::test]
async fn list_filters_by_folder_and_conversation_sorts_and_pages() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let folder = ok(&server, t, "createFolder", json!({"name": "Docs"})).await;
    let fid = folder["id"].as_str().unwrap();
    let mut ids = Vec::new();
    for (i, (name, bytes, extra)) in [
        ("b.txt", &b"22"[..], json!({})),
        ("a.txt", &b"1"[..], json!({"conversationId": "conv_1"})),
        ("c.txt", &b"333"[..], json!({"folderId": fid, "conversationId": "conv_1"})),
        ("d.txt", &b"4444"[..], json!({"folderId": fid})),
    ]
    .into_iter()
    .enumerate()
    {
        server.clock.advance(chrono::Duration::seconds(i as i64 + 1));
        ids.push(upload(&server, t, name, bytes, extra).await["id"].as_str().unwrap().to_owned());
    }
    let names = |list: &Value| -> Vec<String> {
        list["files"].as_array().unwrap().iter().map(|f| f["fileName"].as_str().unwrap().to_owned()).collect()
    };

    let all = ok(&server, t, "list", json!({})).await;
    assert_eq!(all["total"], 4);
    assert_eq!(names(&all), ["d.txt", "c.txt", "a.txt", "b.txt"], "newest first by default");
    assert_eq!(all["files"][1]["conversationId"], "conv_1");

    let root =
        ok(&server, t, "list", json!({"folderId": "root", "sortBy": "fileName", "sortOrder": "asc"})).await;
    assert_eq!(names(&root), ["a.txt", "b.txt"]);
    let docs = ok(&server, t, "list", json!({"folderId": fid, "sortBy": "size", "sortOrder": "desc"})).await;
    assert_eq!(names(&docs), ["d.txt", "c.txt"]);
    let conversation = ok(
        &server,
        t,
        "list",
        json!({"conversationId": "conv_1", "sortBy": "uploadedAt", "sortOrder": "asc"}),
    )
    .await;
    assert_eq!(names(&conversation), ["a.txt", "c.txt"]);
    assert!(conversation["files"].as_array().unwrap().iter().all(|f| f["conversationId"] == "conv_1"));
    // The native API filters the same references.
    let (_, native) = server.send(server.get("/v1/files?referenced_by=conversation:conv_1")).await;
    assert_eq!(native["total"], 2);

    let page =
        ok(&server, t, "list", json!({"sortBy": "size", "sortOrder": "asc", "limit": 2, "offset": 1})).await;
    assert_eq!(
        (names(&page), page["total"].as_u64()),
        (vec!["b.txt".to_owned(), "c.txt".to_owned()], Some(4))
    );

    for bad in [
        json!({"limit": 0}),
        json!({"limit": 101}),
        json!({"sortBy": "color"}),
        json!({"sortOrder": "up"}),
        json!({"limit": "ten"}),
    ] {
        let (status, body) = call(&server, t, "list", bad).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "BAD_REQUEST");
    }
    // A file in a conversation is in use: delete is refused unless forced.
    let (status, body) = call(&server, t, "delete", json!({"fileId": ids[1]})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "CONFLICT");
    ok(&server, t, "delete", json!({"fileId": ids[1], "force": true})).await;
}

#[tokio::test]
async fn folders_are_listed_bare_renamed_and_deleted_only_when_empty() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let parent = ok(&server, t, "createFolder", json!({"name": "Projects", "parentId": null})).await;
    assert_eq!(parent["parentId"], Value::Null);
    for field in ["id", "name", "createdAt", "updatedAt"] {
        assert!(parent[field].is_string(), "{field}: {parent}");
    }
    let pid = parent["id"].as_str().unwrap();
    let child = ok(&server, t, "createFolder", json!({"name": "2025", "parentId": pid})).await;
    assert_eq!(child["parentId"], pid);
    ok(&server, t, "createFolder", json!({"name": "Archive"})).await;

    let roots = ok(&server, t, "listFolders", json!({})).await;
    assert_eq!(
        roots,
        json!([
            {"id": roots[0]["id"], "name": "Archive", "parentId": null},
            {"id": pid, "name": "Projects", "parentId": null},
        ])
    );
    assert_eq!(ok(&server, t, "listFolders", json!({"parentId": null})).await, roots);
    let children = ok(&server, t, "listFolders", json!({"parentId": pid})).await;
    assert_eq!(children, json!([{"id": child["id"], "name": "2025", "parentId": pid}]));

    let renamed = ok(&server, t, "renameFolder", json!({"folderId": child["id"], "newName": "2026"})).await;
    assert_eq!(renamed["name"], "2026");
    let (status, body) = call(&server, t, "createFolder", json!({"name": "archive"})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "CONFLICT");

    let (status, body) = call(&server, t, "deleteFolder", json!({"folderId": pid})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "CONFLICT");
    // The message speaks of this procedure, not of the native API's `recursive` option.
    assert!(body["error"]["message"].as_str().unwrap().starts_with("Folder must be empty"), "{body}");
    ok(&server, t, "deleteFolder", json!({"folderId": child["id"]})).await;
    upload(&server, t, "inside.txt", b"x", json!({"folderId": pid})).await;
    let (status, body) = call(&server, t, "deleteFolder", json!({"folderId": pid})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "CONFLICT");
    // The native API sees the same tree.
    let (_, native) = server.send(server.get(&format!("/v1/folders/{pid}/children"))).await;
    assert_eq!((native["folders"]["total"].as_u64(), native["files"]["total"].as_u64()), (Some(0), Some(1)));
    let (status, body) =
        call(&server, t, "listFolders", json!({"parentId": "fld_01jq3v5k2n8x7y6z5w4v3u2t1s"})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[tokio::test]
async fn usage_and_quota_report_the_ledger_and_quota_is_enforced() {
    let server = TestServer::spawn().await;
    let unlimited = &server.tenant;
    upload(&server, unlimited, "one.txt", b"12345", json!({})).await;
    assert_eq!(ok(&server, unlimited, "getUsage", json!({})).await, json!({"totalSize": 5, "fileCount": 1}));
    let quota = ok(&server, unlimited, "getQuota", json!({})).await;
    assert_eq!(quota["usedBytes"], 5);
    assert_eq!(quota["limitBytes"], 9_007_199_254_740_991u64, "unlimited is Number.MAX_SAFE_INTEGER");
    assert_eq!(quota["availableBytes"], 9_007_199_254_740_986u64);
    assert_eq!(quota["percentUsed"], 0.0);
    assert!(quota["maxFileSizeBytes"].as_u64().unwrap() > 0);
    // An empty body is `{}` for procedures without params.
    let (status, _) =
        server.send(server.request(Method::POST, &format!("{BASE}/getUsage"), &unlimited.key)).await;
    assert_eq!(status, StatusCode::OK);

    let small = server.tenant(Some(10), Role::Write).await;
    upload(&server, &small, "eight.txt", b"12345678", json!({})).await;
    let quota = ok(&server, &small, "getQuota", json!({})).await;
    assert_eq!(
        quota,
        json!({"usedBytes": 8, "limitBytes": 10, "availableBytes": 2,
                             "maxFileSizeBytes": quota["maxFileSizeBytes"], "percentUsed": 80.0})
    );
    let (status, body) =
        call(&server, &small, "upload", json!({"fileName": "big.txt", "content": b64(b"too big")})).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("Storage quota exceeded"), "{body}");
    assert_eq!(ok(&server, &small, "getUsage", json!({})).await["totalSize"], 8);

    // A delete moves the file to the trash: it is no longer listed nor counted by getUsage, while
    // the quota still holds its bytes until the trash is purged.
    let two = upload(&server, unlimited, "two.txt", b"123", json!({})).await;
    assert_eq!(ok(&server, unlimited, "getUsage", json!({})).await, json!({"totalSize": 8, "fileCount": 2}));
    ok(&server, unlimited, "delete", json!({"fileId": two["id"]})).await;
    assert_eq!(ok(&server, unlimited, "list", json!({})).await["total"], 1);
    assert_eq!(ok(&server, unlimited, "getUsage", json!({})).await, json!({"totalSize": 5, "fileCount": 1}));
    assert_eq!(ok(&server, unlimited, "getQuota", json!({})).await["usedBytes"], 8);
}

#[tokio::test]
async fn access_rules_are_set_partially_and_read_back() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let id = upload(&server, t, "rules.txt", b"r", json!({})).await["id"].as_str().unwrap().to_owned();
    let initial = ok(&server, t, "getAccessRules", json!({"fileId": id})).await;
    assert_eq!(
        initial,
        json!({"fileId": id, "trackCreator": true,
                               "accessRules": {"create": "admin", "read": "admin", "delete": "admin"}})
    );
    let set = ok(
        &server,
        t,
        "setAccessRules",
        json!({"fileId": id, "accessRules": {"read": "public", "delete": "creator"}, "trackCreator": false}),
    )
    .await;
    assert_eq!(
        set,
        json!({"fileId": id, "trackCreator": false,
                           "accessRules": {"create": "admin", "read": "public", "delete": "creator"}})
    );
    assert_eq!(ok(&server, t, "getAccessRules", json!({"fileId": id})).await, set);
    // Missing keys keep their inherited value; so does trackCreator (true by default).
    let set =
        ok(&server, t, "setAccessRules", json!({"fileId": id, "accessRules": {"create": "authenticated"}}))
            .await;
    assert_eq!(set["accessRules"], json!({"create": "authenticated", "read": "admin", "delete": "admin"}));
    assert_eq!(set["trackCreator"], true);
    // The native API shows the same rules.
    let (status, native) = server.send(server.get(&format!("/v1/files/{id}/access-rules"))).await;
    assert_eq!(status, StatusCode::OK, "{native}");
    assert!(native.to_string().contains("authenticated"), "{native}");

    let (status, body) =
        call(&server, t, "setAccessRules", json!({"fileId": id, "accessRules": {"read": "everyone"}})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "BAD_REQUEST");
    let (status, body) = call(&server, t, "setAccessRules", json!({"fileId": id})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "BAD_REQUEST");
    let writer =
        Tenant { workspace: t.workspace.clone(), key: server.key_for(&t.workspace, Role::Write).await };
    let (status, body) =
        call(&server, &writer, "setAccessRules", json!({"fileId": id, "accessRules": {}})).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
}

#[tokio::test]
async fn every_procedure_refuses_a_wrong_key_and_another_tenants_ids() {
    let server = TestServer::spawn().await;
    let a = &server.tenant;
    let b = server.tenant(None, Role::Admin).await;
    let file = upload(&server, a, "a-only.txt", b"secret of a", json!({})).await;
    let folder = ok(&server, a, "createFolder", json!({"name": "A's"})).await;
    let (fid, dir) = (file["id"].clone(), folder["id"].clone());
    let procedures = [
        ("list", json!({"folderId": dir})),
        ("get", json!({"fileId": fid})),
        ("getDownloadUrl", json!({"fileId": fid})),
        ("delete", json!({"fileId": fid})),
        ("rename", json!({"fileId": fid, "newName": "stolen.txt"})),
        ("move", json!({"fileId": fid, "folderId": null})),
        ("listFolders", json!({"parentId": dir})),
        ("createFolder", json!({"name": "x", "parentId": dir})),
        ("renameFolder", json!({"folderId": dir, "newName": "stolen"})),
        ("deleteFolder", json!({"folderId": dir})),
        ("getUsage", json!({})),
        ("setAccessRules", json!({"fileId": fid, "accessRules": {"read": "public"}})),
        ("getAccessRules", json!({"fileId": fid})),
        ("getQuota", json!({})),
        ("upload", json!({"fileName": "x.txt", "content": "eA==", "folderId": dir})),
    ];
    let garbage = Tenant { workspace: a.workspace.clone(), key: "cab_wrong".into() };
    for (procedure, body) in &procedures {
        let (status, response) = call(&server, &garbage, procedure, body.clone()).await;
        assert_error(status, &response, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
        let (status, response) =
            server.send(server.http.post(format!("{}{BASE}/{procedure}", server.url)).json(body)).await;
        assert_error(status, &response, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
        if !matches!(*procedure, "getUsage" | "getQuota") {
            let (status, response) = call(&server, &b, procedure, body.clone()).await;
            assert_error(status, &response, StatusCode::NOT_FOUND, "NOT_FOUND");
        }
    }
    // Missing fields and wrong types are BAD_REQUEST.
    for (procedure, body) in [
        ("get", json!({})),
        ("getDownloadUrl", json!({})),
        ("delete", json!({})),
        ("move", json!({"folderId": null})),
        ("getAccessRules", json!({})),
        ("setAccessRules", json!({"accessRules": {}})),
        ("rename", json!({"fileId": fid})),
        ("upload", json!({"fileName": "x.txt"})),
        ("upload", json!({"content": "eA=="})),
        ("upload", json!({"fileName": "x.txt", "content": "not base64!"})),
        ("createFolder", json!({"parentId": null})),
        ("renameFolder", json!({"folderId": dir})),
        ("deleteFolder", json!({})),
        ("get", json!({"fileId": 7})),
        ("get", json!([])),
    ] {
        let (status, response) = call(&server, a, procedure, body).await;
        assert_error(status, &response, StatusCode::BAD_REQUEST, "BAD_REQUEST");
    }
    // A's things are untouched.
    let kept = ok(&server, a, "get", json!({"fileId": fid})).await;
    assert_eq!(kept["fileName"], "a-only.txt");
    assert_eq!(ok(&server, &b, "getUsage", json!({})).await, json!({"totalSize": 0, "fileCount": 0}));
}

#[tokio::test]
async fn list_returns_fifty_files_unless_asked_and_at_most_one_hundred() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    for i in 0..101 {
        upload(&server, t, &format!("f{i:03}.txt"), b"x", json!({})).await;
    }
    let count = |list: &Value| list["files"].as_array().unwrap().len();
    let default = ok(&server, t, "list", json!({})).await;
    assert_eq!((count(&default), default["total"].as_u64()), (50, Some(101)));
    let most = ok(&server, t, "list", json!({"limit": 100})).await;
    assert_eq!(count(&most), 100);
    let rest = ok(&server, t, "list", json!({"limit": 100, "offset": 100})).await;
    assert_eq!((count(&rest), rest["total"].as_u64()), (1, Some(101)));
    let (status, body) = call(&server, t, "list", json!({"offset": -1})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "BAD_REQUEST");
}

#[tokio::test]
async fn upload_takes_a_declared_mime_type_or_detects_one() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let declared = upload(&server, t, "data.csv", b"a,b\n1,2\n", json!({"mimeType": "text/csv"})).await;
    assert_eq!(declared["mimeType"], "text/csv");
    let detected = upload(&server, t, "notes", b"plain words", json!({})).await;
    assert_eq!(detected["mimeType"], "text/plain");
    // Declared wrongly for the bytes: the bytes win.
    let png =
        upload(&server, t, "x.png", b"\x89PNG\r\n\x1a\n\0\0", json!({"mimeType": "application/pdf"})).await;
    assert_eq!(png["mimeType"], "image/png");
    let (status, body) =
        call(&server, t, "upload", json!({"fileName": "x.txt", "content": b64(b"x"), "mimeType": "example"}))
            .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "BAD_REQUEST");
    // Into a folder, or the root with null or "root".
    let folder = ok(&server, t, "createFolder", json!({"name": "In"})).await;
    let inside = upload(&server, t, "in.txt", b"in", json!({"folderId": folder["id"]})).await;
    assert_eq!(inside["folderId"], folder["id"]);
    for root in [Value::Null, json!("root")] {
        let at_root = upload(&server, t, "root.txt", b"r", json!({"folderId": root})).await;
        assert_eq!(at_root["folderId"], Value::Null);
    }
}

#[tokio::test]
async fn upload_and_download_work_the_same_with_blobs_on_s3() {
    let Some(server) =
        TestServer::spawn_s3("compat_serenities::upload_and_download_work_the_same_with_blobs_on_s3").await
    else {
        return;
    };
    let t = &server.tenant;
    let file = upload(&server, t, "report.pdf", b"%PDF-1.4 on s3", json!({})).await;
    assert_eq!((file["size"].as_u64(), file["mimeType"].as_str()), (Some(14), Some("application/pdf")));
    let link = ok(&server, t, "getDownloadUrl", json!({"fileId": file["id"]})).await;
    let bytes = server.http.get(link["url"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"%PDF-1.4 on s3");
    assert_eq!(ok(&server, t, "getUsage", json!({})).await, json!({"totalSize": 14, "fileCount": 1}));
    let small = server.tenant(Some(10), Role::Write).await;
    let (status, body) =
        call(&server, &small, "upload", json!({"fileName": "big.txt", "content": b64(b"eleven byte")})).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn every_procedure_is_a_post_and_an_unknown_one_is_not_found() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    for procedure in [
        "list",
        "get",
        "getDownloadUrl",
        "delete",
        "rename",
        "move",
        "listFolders",
        "createFolder",
        "renameFolder",
        "deleteFolder",
        "getUsage",
        "setAccessRules",
        "getAccessRules",
        "getQuota",
        "upload",
    ] {
        let (status, body) =
            server.send(server.request(Method::GET, &format!("{BASE}/{procedure}"), &t.key)).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{procedure}: {body}");
        assert!(body["error"]["code"].is_string(), "{procedure}: {body}");
    }
    let (status, body) = call(&server, t, "search", json!({})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
}
