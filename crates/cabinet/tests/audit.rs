//! The audit log (`GET /v1/audit`): a change on every HTTP surface (native, the four dialects,
//! tus, the resumable-upload draft) is recorded with who, what, which object, when, from where
//! and how it ended; so is a refusal of an authenticated caller (role, another workspace's id,
//! quota); an unauthenticated request and a successful read leave nothing; another workspace's
//! records are invisible; the filters and the cursor page; the store refuses to change a record
//! or delete one the retention has not reached; the prune removes only what it has.

use crate::support;

use std::sync::{Arc, Mutex};

use cabinet_core::audit::{AuditActor, AuditDraft, AuditNote, AuditQuery, NewAuditRecord};
use cabinet_core::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{Tenant, TestServer};

/// The tenant's records (newest first) matching `query` (a query string), read with `key`.
async fn audit(server: &TestServer, key: &str, query: &str) -> Value {
    let (status, page) = server.send(server.request(Method::GET, &format!("/v1/audit?{query}"), key)).await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    page
}

fn records(page: &Value) -> Vec<Value> {
    page["data"].as_array().unwrap().clone()
}

/// The one record with this action and object, failing when there is not exactly one.
fn the_record<'a>(all: &'a [Value], action: &str, object: Option<&str>) -> &'a Value {
    let found: Vec<&Value> = all
        .iter()
        .filter(|r| r["action"] == action && object.is_none_or(|object| r["object_id"] == object))
        .collect();
    assert_eq!(found.len(), 1, "one {action} {object:?} in {all:#?}");
    found[0]
}

/// The id of the key whose secret is `secret`, as the log shows it.
async fn key_id(server: &TestServer, tenant: &Tenant) -> String {
    let keys = server.cabinet.list_api_keys(&tenant.workspace).await.unwrap();
    let hint = &tenant.key[tenant.key.len() - 4..];
    keys.into_iter().find(|key| key.hint == hint).expect("the tenant's key").id.to_string()
}

#[tokio::test]
async fn a_change_on_every_surface_is_recorded_with_who_what_which_and_where() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant(None, Role::Admin).await;
    let key = key_id(&server, &tenant).await;
    let before = server.cabinet.now();

    // Native: create a folder, upload, rename and trash a file.
    let (status, folder) = server
        .send(server.request(Method::POST, "/v1/folders", &tenant.key).json(&json!({"name": "Docs"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{folder}");
    let done = server.upload(&tenant, "a.txt", b"audited").await;
    let file_id = done["file"]["id"].as_str().unwrap().to_owned();
    let (status, _) = server
        .send(
            server
                .request(Method::PATCH, &format!("/v1/files/{file_id}"), &tenant.key)
                .json(&json!({"name": "b.txt"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) =
        server.send(server.request(Method::DELETE, &format!("/v1/files/{file_id}"), &tenant.key)).await;
    assert!(status.is_success());
    // A direct upload, whose record commits with its file (one record, not a second after it).
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(b"direct".to_vec()).file_name("d.txt"));
    let (status, direct) =
        server.send(server.request(Method::POST, "/v1/files", &tenant.key).multipart(form)).await;
    assert_eq!(status, StatusCode::CREATED, "{direct}");
    // Reads that succeed are not recorded.
    let (status, _) = server.send(server.request(Method::GET, "/v1/files", &tenant.key)).await;
    assert_eq!(status, StatusCode::OK);

    // The four dialects.
    let (status, body) = server
        .send(
            server
                .request(Method::POST, "/compat/mavera/api/v1/folders", &tenant.key)
                .json(&json!({"name": "Brand", "workspace_id": tenant.workspace.as_str()})),
        )
        .await;
    assert!(status.is_success(), "mavera: {status} {body}");
    let (status, body) = server
        .send(
            server
                .http
                .post(format!("{}/compat/mavi/serve/api/v2/upload/signed-url", server.url))
                .header("Authorization", &tenant.key)
                .json(&json!({"original_filename": "clip.mp4"})),
        )
        .await;
    assert!(status.is_success(), "mavi: {status} {body}");
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
    assert!(status.is_success(), "cms: {status} {body}");
    let (status, body) = server
        .send(
            server
                .request(Method::POST, "/compat/serenities/api/v1/files/createFolder", &tenant.key)
                .json(&json!({"name": "Reports"})),
        )
        .await;
    assert!(status.is_success(), "serenities: {status} {body}");

    // tus and the resumable-upload draft: creating an upload.
    let (status, body) = server
        .send(
            server
                .request(Method::POST, "/tus/v1/", &tenant.key)
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Length", "5")
                .header("Upload-Metadata", "filename dC50eHQ="),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "tus: {body}");
    let (status, body) = server
        .send(
            server
                .request(Method::POST, "/resumable/v1/", &tenant.key)
                .header("Upload-Draft-Interop-Version", "7")
                .header("Upload-Complete", "?1")
                .header("Content-Disposition", "inline; filename=\"r.txt\"")
                .body(b"resumed".to_vec()),
        )
        .await;
    assert!(status.is_success(), "resumable: {status} {body}");

    let all = records(&audit(&server, &tenant.key, "limit=500").await);
    let folder_record = the_record(&all, "POST /v1/folders", None);
    assert_eq!(folder_record["actor"], json!({"kind": "key", "id": key}));
    assert_eq!(folder_record["status"], 201);
    assert_eq!(folder_record["error_code"], Value::Null);
    assert_eq!(folder_record["client_address"], "127.0.0.1");
    assert_eq!(folder_record["workspace_id"], tenant.workspace.as_str());
    let at: chrono::DateTime<chrono::Utc> = folder_record["at"].as_str().unwrap().parse().unwrap();
    assert!(at >= before - chrono::Duration::seconds(1) && at <= server.cabinet.now(), "{at}");
    // The reservation's and the direct upload's records, committed with their changes, name the
    // same who, where and how as one the layer appends.
    for action in ["POST /v1/uploads", "POST /v1/files"] {
        let record = the_record(&all, action, None);
        assert_eq!(record["actor"], json!({"kind": "key", "id": key}), "{record}");
        assert_eq!(record["status"], 201, "{record}");
        assert_eq!(record["error_code"], Value::Null, "{record}");
        assert_eq!(record["client_address"], "127.0.0.1", "{record}");
        assert_eq!(record["workspace_id"], tenant.workspace.as_str(), "{record}");
    }
    assert_eq!(the_record(&all, "PATCH /v1/files/{id}", Some(&file_id))["status"], 200);
    the_record(&all, "DELETE /v1/files/{id}", Some(&file_id));
    the_record(&all, "POST /compat/mavera/api/v1/folders", None);
    the_record(&all, "POST /compat/mavi/serve/api/v2/upload/signed-url", None);
    the_record(&all, "POST /compat/cms/files/", None);
    the_record(&all, "POST /compat/serenities/api/v1/files/createFolder", None);
    assert_eq!(the_record(&all, "POST /tus/v1/", None)["status"], 201);
    the_record(&all, "POST /resumable/v1/", None);
    assert!(all.iter().all(|r| r["action"] != "GET /v1/files"), "a read that succeeded: {all:#?}");
    // Newest first, numbered in order.
    let ids: Vec<u64> = all.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "{ids:?}");
}

/// The core commits a reservation's or a direct upload's record with it, where the handler
/// declared its answer: with no layer around the call, the record is in the log once the call
/// returns, and the note tells the layer it need append none. Undeclared, nothing is taken.
#[tokio::test]
async fn a_reservation_or_direct_upload_commits_its_record_with_it() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant(None, Role::Admin).await;
    let caller = server.cabinet.authenticate(&tenant.key, None).await.unwrap();
    let reserve = |declared: bool| {
        let (cabinet, caller) = (server.cabinet.clone(), caller.clone());
        let draft = AuditDraft {
            action: "POST /v1/uploads".into(),
            object_id: None,
            client_address: Some("192.0.2.7".into()),
        };
        let note = Arc::new(Mutex::new(AuditNote {
            caller: Some(caller.clone()),
            draft: Some(draft),
            ..AuditNote::default()
        }));
        let run = cabinet_core::audit::noting(note.clone(), async move {
            if declared {
                cabinet_core::audit::answers_change_with(201);
            }
            let upload = cabinet_core::uploads::NewUpload {
                name: "r.bin".into(),
                size: Some(3),
                ..Default::default()
            };
            cabinet.start_upload(&caller, upload).await.unwrap()
        });
        async move {
            let ticket = run.await;
            let recorded = note.lock().unwrap().recorded;
            (ticket, recorded)
        }
    };
    let query = AuditQuery { limit: 10, ..AuditQuery::default() };

    let (_, recorded) = reserve(true).await;
    assert_eq!(recorded, Some(201), "the note says the record committed with the change");
    let log = server.cabinet.audit_log_of(&tenant.workspace, &query).await.unwrap();
    assert_eq!(log.len(), 1, "{log:#?}");
    let record = &log[0].record;
    assert_eq!((record.action.as_str(), record.status), ("POST /v1/uploads", 201));
    assert_eq!(record.client_address.as_deref(), Some("192.0.2.7"));
    assert_eq!(record.actor, AuditActor::from(&caller.actor));

    let (_, recorded) = reserve(false).await;
    assert_eq!(recorded, None, "undeclared, the layer appends the record");
    assert_eq!(server.cabinet.audit_log_of(&tenant.workspace, &query).await.unwrap().len(), 1);

    // A direct upload's record commits with its finish (its first commit, the upload's insert,
    // settles nothing yet).
    let draft = AuditDraft { action: "POST /v1/files".into(), object_id: None, client_address: None };
    let note = Arc::new(Mutex::new(AuditNote {
        caller: Some(caller.clone()),
        draft: Some(draft),
        ..AuditNote::default()
    }));
    let cabinet = server.cabinet.clone();
    let direct_caller = caller.clone();
    let file = cabinet_core::audit::noting(note.clone(), async move {
        cabinet_core::audit::answers_change_with(201);
        let meta = cabinet_core::files::DirectUpload { name: "d.bin".into(), ..Default::default() };
        let body = futures::stream::once(async { Ok(bytes::Bytes::from_static(b"direct")) });
        cabinet.upload_direct(&direct_caller, meta, Box::pin(body)).await.unwrap()
    })
    .await;
    assert_eq!(file.size, 6);
    assert_eq!(note.lock().unwrap().recorded, Some(201));
    let log = server.cabinet.audit_log_of(&tenant.workspace, &query).await.unwrap();
    assert_eq!(log.len(), 2, "{log:#?}");
    assert_eq!((log[0].record.action.as_str(), log[0].record.status), ("POST /v1/files", 201));
}

#[tokio::test]
async fn refusals_of_authenticated_callers_are_recorded_and_unauthenticated_requests_are_not() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant(Some(100), Role::Admin).await;
    let other = server.tenant(None, Role::Admin).await;
    let reader = server.key_for(&tenant.workspace, Role::Read).await;

    // 403: a read key changing something.
    let (status, _) =
        server.send(server.request(Method::POST, "/v1/folders", &reader).json(&json!({"name": "X"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // 404: another workspace's file, by id.
    let theirs = server.upload(&other, "theirs.txt", b"theirs").await;
    let their_file = theirs["file"]["id"].as_str().unwrap();
    let (status, _) =
        server.send(server.request(Method::DELETE, &format!("/v1/files/{their_file}"), &tenant.key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) =
        server.send(server.request(Method::GET, &format!("/v1/files/{their_file}"), &tenant.key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Over the quota (100 bytes).
    let (status, _) = server.start_upload(&tenant, json!({"name": "big.bin", "size": 500})).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE);
    // An end user refused a key-only route.
    let (status, token) = server
        .send(server.request(Method::POST, "/v1/tokens", &tenant.key).json(&json!({"sub": "user-7"})))
        .await;
    assert!(status.is_success(), "{token}");
    let (status, _) =
        server.send(server.request(Method::GET, "/v1/quota", token["token"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Unauthenticated: no key, a wrong key; neither is recorded anywhere.
    let (status, _) =
        server.send(server.http.post(format!("{}/v1/folders", server.url)).json(&json!({"name": "Y"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .send(server.request(Method::POST, "/v1/folders", "cab_not-a-key").json(&json!({"name": "Z"})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let all = records(&audit(&server, &tenant.key, "limit=500").await);
    let forbidden = the_record(&all, "POST /v1/folders", None);
    assert_eq!(
        (forbidden["status"].as_u64(), forbidden["error_code"].as_str()),
        (Some(403), Some("forbidden"))
    );
    let deleted = the_record(&all, "DELETE /v1/files/{id}", Some(their_file));
    assert_eq!((deleted["status"].as_u64(), deleted["error_code"].as_str()), (Some(404), Some("not_found")));
    let read = the_record(&all, "GET /v1/files/{id}", Some(their_file));
    assert_eq!(read["status"], 404, "a refused read is recorded too");
    let quota = the_record(&all, "POST /v1/uploads", None);
    assert_eq!((quota["status"].as_u64(), quota["error_code"].as_str()), (Some(507), Some("quota_exceeded")));
    let end_user = the_record(&all, "GET /v1/quota", None);
    assert_eq!(end_user["actor"], json!({"kind": "end_user", "id": "user-7"}));
    assert_eq!(end_user["status"], 403);
    the_record(&all, "POST /v1/tokens", None);
    assert_eq!(all.len(), 6, "nothing for the unauthenticated requests: {all:#?}");

    // The other workspace sees its own upload's records, none of these.
    let theirs = records(&audit(&server, &other.key, "limit=500").await);
    assert!(!theirs.is_empty());
    assert!(theirs.iter().all(|r| r["workspace_id"] == other.workspace.as_str()), "{theirs:#?}");
    assert!(theirs.iter().all(|r| r["status"].as_u64().unwrap() < 400), "{theirs:#?}");
    // Only admins read the log, in the native error shape.
    let (status, body) = server.send(server.request(Method::GET, "/v1/audit", &reader)).await;
    support::assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = server.send(server.http.get(format!("{}/v1/audit", server.url))).await;
    support::assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn filters_and_the_cursor_page_through_the_log() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant(None, Role::Admin).await;
    let writer = server.key_for(&tenant.workspace, Role::Write).await;
    let writer_id =
        key_id(&server, &Tenant { workspace: tenant.workspace.clone(), key: writer.clone() }).await;
    let mut folders = Vec::new();
    for name in ["A", "B", "C", "D", "E"] {
        let (status, folder) = server
            .send(server.request(Method::POST, "/v1/folders", &writer).json(&json!({"name": name})))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        folders.push(folder["id"].as_str().unwrap().to_owned());
    }
    let (status, _) = server
        .send(server.request(Method::DELETE, &format!("/v1/folders/{}", folders[0]), &tenant.key))
        .await;
    assert!(status.is_success());
    let (status, _) =
        server.send(server.request(Method::GET, "/v1/files/file_00000000000000000000000000", &writer)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // By actor (the key's id, or a kind), by action, by object, by status class.
    let by_writer = records(&audit(&server, &tenant.key, &format!("actor={writer_id}")).await);
    assert_eq!(by_writer.len(), 6, "{by_writer:#?}");
    assert_eq!(records(&audit(&server, &tenant.key, "actor=key").await).len(), 7);
    assert_eq!(records(&audit(&server, &tenant.key, "actor=admin_cli").await).len(), 0);
    let deletes = records(&audit(&server, &tenant.key, "action=DELETE%20/v1/folders/%7Bid%7D").await);
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0]["object_id"], folders[0].as_str());
    let on_first = records(&audit(&server, &tenant.key, &format!("object_id={}", folders[0])).await);
    assert_eq!(on_first.len(), 1, "creating a folder names no id in its path: {on_first:#?}");
    let refused = records(&audit(&server, &tenant.key, "status=4xx").await);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["status"], 404);
    assert_eq!(records(&audit(&server, &tenant.key, "status=2xx").await).len(), 6);
    // By time: everything is from now; nothing before an hour ago or after an hour from now.
    let hour_ago = (server.cabinet.now() - chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let in_an_hour = (server.cabinet.now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(records(&audit(&server, &tenant.key, &format!("from={hour_ago}")).await).len(), 7);
    assert_eq!(records(&audit(&server, &tenant.key, &format!("to={hour_ago}")).await).len(), 0);
    assert_eq!(records(&audit(&server, &tenant.key, &format!("from={in_an_hour}")).await).len(), 0);

    // Pages of three: 3, 3, 1, then no cursor; together every record once, newest first.
    let mut seen = Vec::new();
    let mut query = "limit=3".to_owned();
    loop {
        let page = audit(&server, &tenant.key, &query).await;
        seen.extend(records(&page).iter().map(|r| r["id"].as_u64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=3&cursor={cursor}"),
            None => break,
        }
    }
    // The reads of the log itself are not recorded (they succeed), so the count holds.
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert!(seen.windows(2).all(|pair| pair[0] > pair[1]), "{seen:?}");
    let long = "x".repeat(1025);
    for bad in [
        "status=200",
        "cursor=abc",
        "limit=0",
        "limit=501",
        "from=yesterday",
        "actor=a%00b",
        &format!("object_id={long}"),
    ] {
        let (status, body) =
            server.send(server.request(Method::GET, &format!("/v1/audit?{bad}"), &tenant.key)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"]["code"].is_string(), "{bad}: {body}");
    }
}

/// Runs a statement on the metadata database and says whether the database took it.
async fn try_sql(server: &TestServer, statement: &str) -> Result<u64, String> {
    if server.database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&server.database_url).await.expect("open SQLite");
        let result = sqlx::query(statement).execute(&pool).await;
        pool.close().await;
        result.map(|done| done.rows_affected()).map_err(|err| err.to_string())
    } else {
        let pool = sqlx::PgPool::connect(&server.database_url).await.expect("connect to PostgreSQL");
        let result = sqlx::query(statement).execute(&pool).await;
        pool.close().await;
        result.map(|done| done.rows_affected()).map_err(|err| err.to_string())
    }
}

#[tokio::test]
async fn the_store_refuses_changes_and_the_prune_removes_only_what_is_past_retention() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant(None, Role::Admin).await;
    let now = server.cabinet.now();
    let record = |days_ago: i64, action: &str| NewAuditRecord {
        workspace_id: tenant.workspace.clone(),
        at: now - chrono::Duration::days(days_ago),
        actor: AuditActor::AdminCli,
        action: action.to_owned(),
        object_id: None,
        client_address: None,
        status: 200,
        error_code: None,
    };
    server
        .cabinet
        .append_audit(&[record(120, "admin old"), record(30, "admin recent"), record(0, "admin today")])
        .await
        .unwrap();
    let all = || async {
        let query = AuditQuery { limit: 500, ..AuditQuery::default() };
        server.cabinet.audit_log_of(&tenant.workspace, &query).await.unwrap()
    };
    assert_eq!(all().await.len(), 3);

    // Append-only at the database: no update, no delete (not even of an old record, outside the
    // prune), no truncation on PostgreSQL.
    let update = try_sql(&server, "UPDATE audit_log SET status = 500").await;
    assert!(update.as_ref().is_err_and(|err| err.contains("append-only")), "{update:?}");
    let delete = try_sql(&server, "DELETE FROM audit_log").await;
    assert!(delete.as_ref().is_err_and(|err| err.contains("append-only")), "{delete:?}");
    if !server.database_url.starts_with("sqlite:") {
        let truncate = try_sql(&server, "TRUNCATE audit_log").await;
        assert!(truncate.as_ref().is_err_and(|err| err.contains("append-only")), "{truncate:?}");
    }
    assert_eq!(all().await.len(), 3);

    // The prune (the maintenance sweep's), with the default retention of 90 days: the 120-day-old
    // record goes, the others stay; and the gate is closed again after it.
    assert_eq!(server.cabinet.prune_old_audit().await.unwrap(), 1);
    let left: Vec<String> = all().await.into_iter().map(|r| r.record.action).collect();
    assert_eq!(left, ["admin today", "admin recent"]);
    let delete = try_sql(&server, "DELETE FROM audit_log").await;
    assert!(delete.is_err(), "{delete:?}");
    // A shorter horizon prunes more: what the configured retention does.
    assert_eq!(server.cabinet.prune_audit_before(now - chrono::Duration::days(7)).await.unwrap(), 1);
    assert_eq!(all().await.len(), 1);
}
