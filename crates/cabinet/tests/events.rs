//! The event feed (`GET /v1/events`, `/v1/events/stream`): every kind of change writes its event,
//! numbered in commit order per workspace; a refused change writes none; a dialect's changes write
//! the same events as the native API's; another workspace sees none of them; a long poll returns
//! when the first event arrives; the stream delivers them as server-sent events.

use crate::support;

use std::time::Duration;

use cabinet_core::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{Tenant, TestServer};

/// The tenant's events after `after`: (type, object_id, detail) each, and the next `after`.
async fn events_after(
    server: &TestServer,
    tenant: &Tenant,
    after: u64,
) -> (Vec<(String, String, Value)>, u64, Value) {
    let (status, page) = server
        .send(server.request(Method::GET, &format!("/v1/events?after={after}&limit=500"), &tenant.key))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let data = page["data"].as_array().unwrap();
    let mut seq = after;
    for event in data {
        seq += 1;
        assert_eq!(event["seq"], seq, "numbered one after another: {page}");
        assert_eq!(event["id"], format!("{}.{seq}", tenant.workspace), "{event}");
    }
    let listed = data
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["object_id"].as_str().unwrap().to_owned(),
                e["detail"].clone(),
            )
        })
        .collect();
    (listed, page["next_after"].as_u64().unwrap(), page)
}

fn types(events: &[(String, String, Value)]) -> Vec<&str> {
    events.iter().map(|(kind, _, _)| kind.as_str()).collect()
}

#[tokio::test]
async fn each_change_writes_its_event_in_order_and_a_refused_one_writes_none() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant(Some(1000), Role::Admin).await;
    let (none, after, _) = events_after(&server, &tenant, 0).await;
    assert!(none.is_empty(), "{none:?}");

    let (status, folder) = server
        .send(server.request(Method::POST, "/v1/folders", &tenant.key).json(&json!({"name": "Docs"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{folder}");
    let folder_id = folder["id"].as_str().unwrap().to_owned();
    let done = server.upload(&tenant, "a.txt", &[7u8; 850]).await;
    let file_id = done["file"]["id"].as_str().unwrap().to_owned();
    let upload_id = done["id"].as_str().unwrap().to_owned();
    let file = format!("/v1/files/{file_id}");
    for (method, path, body) in [
        (Method::PATCH, file.clone(), json!({"name": "b.txt", "tags": ["x"]})),
        (Method::PATCH, file.clone(), json!({"folder_id": folder_id})),
        (Method::POST, format!("{file}/references"), json!({"kind": "page", "id": "home"})),
        (Method::DELETE, format!("{file}/references?kind=page&id=home"), Value::Null),
        (Method::DELETE, file.clone(), Value::Null),
        (Method::POST, format!("{file}/restore"), Value::Null),
        (Method::PATCH, format!("/v1/folders/{folder_id}"), json!({"name": "Papers"})),
    ] {
        let request = server.request(method.clone(), &path, &tenant.key);
        let request = if body.is_null() { request } else { request.json(&body) };
        let (status, answer) = server.send(request).await;
        assert!(status.is_success(), "{method} {path}: {status} {answer}");
    }
    // Refused: over the quota (1000 bytes, 850 used); nothing changes, so nothing is written.
    let (status, refused) = server.start_upload(&tenant, json!({"name": "big.bin", "size": 500})).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{refused}");
    // An upload whose bytes do not match its declared sha256 fails, with its reason.
    let (status, ticket) =
        server.start_upload(&tenant, json!({"name": "c.txt", "size": 3, "sha256": "0".repeat(64)})).await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let (_, failed) =
        server.send(server.http.put(ticket["upload_url"].as_str().unwrap()).body(b"abc".to_vec())).await;
    assert_eq!(failed["error"]["code"], "checksum_mismatch", "{failed}");
    let (status, purged) =
        server.send(server.request(Method::DELETE, &format!("{file}?permanent=true"), &tenant.key)).await;
    assert!(status.is_success(), "{purged}");
    let (status, _) = server
        .send(server.request(Method::POST, "/v1/tokens/revoke", &tenant.key).json(&json!({"sub": "user-1"})))
        .await;
    assert!(status.is_success());

    let (events, next, page) = events_after(&server, &tenant, after).await;
    assert_eq!(
        types(&events),
        [
            "folder.created",
            "upload.succeeded",
            "file.created",
            "quota.crossed",
            "file.updated",
            "file.moved",
            "reference.added",
            "reference.removed",
            "file.trashed",
            "file.restored",
            "folder.updated",
            "upload.failed",
            "file.purged",
            "tokens.revoked",
        ],
        "{page}"
    );
    let find = |kind: &str| events.iter().find(|(k, _, _)| k == kind).unwrap().clone();
    assert_eq!(find("file.created").1, file_id);
    assert_eq!(find("upload.succeeded").1, upload_id);
    assert_eq!(find("quota.crossed").2, "80", "850 of 1000 bytes");
    assert_eq!(find("reference.added").2, "page/home");
    assert_eq!(find("upload.failed").1, ticket["id"].as_str().unwrap());
    assert!(find("upload.failed").2.as_str().is_some_and(|reason| !reason.is_empty()), "{page}");
    assert_eq!(find("tokens.revoked").2, "user-1");
    // The object as it is now: the upload shows its file; the purged file is gone.
    let data = page["data"].as_array().unwrap();
    let of = |kind: &str| data.iter().find(|e| e["type"] == kind).unwrap()["data"]["object"].clone();
    assert_eq!(of("upload.succeeded")["status"], "SUCCESS");
    assert_eq!(of("folder.updated")["name"], "Papers");
    assert!(of("file.purged").is_null() && of("file.created").is_null(), "the file was purged since");
    assert_eq!(next, after + events.len() as u64);
    let (nothing, same, _) = events_after(&server, &tenant, next).await;
    assert!(nothing.is_empty() && same == next);

    // Revoking a key writes its event in each of its workspaces.
    let other_key =
        server.cabinet.create_api_key(vec![tenant.workspace.clone()], Role::Read, None).await.unwrap();
    server.cabinet.revoke_api_key(&other_key.key.id).await.unwrap();
    let (events, _, _) = events_after(&server, &tenant, next).await;
    assert_eq!(events, [("key.revoked".to_owned(), other_key.key.id.to_string(), Value::Null)]);
}

#[tokio::test]
async fn another_workspace_sees_none_of_them_and_end_users_and_bad_parameters_are_refused() {
    let server = TestServer::spawn().await;
    let (a, b) = (server.tenant(None, Role::Admin).await, server.tenant(None, Role::Read).await);
    server.upload(&a, "a.txt", b"a").await;
    let (events, _, _) = events_after(&server, &b, 0).await;
    assert!(events.is_empty(), "{events:?}");
    let (events, _, _) = events_after(&server, &a, 0).await;
    assert_eq!(types(&events), ["upload.succeeded", "file.created"]);
    for query in ["limit=0", "limit=501", "wait=61", "after=-1", "after=x", "after=9007199254740992"] {
        let (status, body) =
            server.send(server.request(Method::GET, &format!("/v1/events?{query}"), &a.key)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }
    let (status, token) = server
        .send(server.request(Method::POST, "/v1/tokens", &a.key).json(&json!({"sub": "someone"})))
        .await;
    assert!(status.is_success(), "{token}");
    let (status, _) =
        server.send(server.request(Method::GET, "/v1/events", token["token"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_dialect_writes_the_same_events_as_the_native_api() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant(None, Role::Admin).await;
    // The CMS dialect's upload: a multipart form, its own `Token` scheme.
    let form = reqwest::multipart::Form::new()
        .text("organization_id", tenant.workspace.to_string())
        .part("file", reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("cms.txt"));
    let (status, body) = server
        .send(
            server
                .http
                .post(format!("{}/compat/cms/files/", server.url))
                .header("authorization", format!("Token {}", tenant.key))
                .multipart(form),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let (dialect, after, _) = events_after(&server, &tenant, 0).await;
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("native.txt"));
    let (status, body) =
        server.send(server.request(Method::POST, "/v1/files", &tenant.key).multipart(form)).await;
    assert!(status.is_success(), "{status} {body}");
    let (native, _, _) = events_after(&server, &tenant, after).await;
    assert_eq!(types(&dialect), ["upload.succeeded", "file.created"]);
    assert_eq!(types(&dialect), types(&native), "a direct upload through the dialect and through /v1/files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_returns_with_the_first_event_and_the_stream_sends_them() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant(None, Role::Admin).await;
    let poll = server.send(server.request(Method::GET, "/v1/events?after=0&wait=30", &tenant.key));
    let upload = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.upload(&tenant, "late.txt", b"late").await
    };
    let ((status, page), done) = tokio::join!(poll, upload);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"][0]["type"], "upload.succeeded", "{page}");
    assert_eq!(page["data"][1]["object_id"], done["file"]["id"], "{page}");

    // The stream, from now: the next upload's events, as `id`, `event` and `data` lines.
    let mut stream = server.request(Method::GET, "/v1/events/stream", &tenant.key).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let done = server.upload(&tenant, "streamed.txt", b"streamed").await;
    let mut text = String::new();
    while !text.contains("event: file.created") {
        let chunk =
            tokio::time::timeout(Duration::from_secs(30), stream.chunk()).await.unwrap().unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(!text.contains("late.txt"), "from now, not from the start: {text}");
    assert!(text.contains("id: 3\nevent: upload.succeeded\n"), "{text}");
    assert!(text.contains("id: 4\nevent: file.created\n"), "{text}");
    assert!(text.contains(done["file"]["id"].as_str().unwrap()), "{text}");
    // Reconnecting with Last-Event-ID resumes after it.
    let mut resumed = server
        .request(Method::GET, "/v1/events/stream", &tenant.key)
        .header("last-event-id", "3")
        .send()
        .await
        .unwrap();
    let chunk =
        tokio::time::timeout(Duration::from_secs(30), resumed.chunk()).await.unwrap().unwrap().unwrap();
    let text = std::str::from_utf8(&chunk).unwrap();
    assert!(text.starts_with("id: 4\nevent: file.created\n"), "{text}");
}
