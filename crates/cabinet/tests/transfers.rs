//! Transfers under a hostile tenant: slow uploads hold no thread and fill only their own
//! workspace's (and key's) slots, a body below the minimum rate is cut, and uploads of unknown
//! size never hold more than the quota while they stream.

use crate::support;

use std::time::Duration;

use cabinet_api::HttpLimits;
use cabinet_core::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{assert_error, Options, Tenant, TestServer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long a transfer that should complete may take before the test calls it hung.
const HANG: Duration = Duration::from_secs(60);

/// A request whose body the test feeds by hand, held open until the test says.
struct HeldBody {
    chunks: mpsc::Sender<Vec<u8>>,
    response: JoinHandle<(StatusCode, Value)>,
}

impl HeldBody {
    /// Sends `request` with a body that is whatever is pushed until `finish`.
    fn send(server: &TestServer, request: reqwest::RequestBuilder) -> Self {
        let (chunks, body) = held_body();
        let http = server.http.clone();
        let request = request.body(body).build().expect("request");
        let response = tokio::spawn(async move { respond(http.execute(request).await).await });
        Self { chunks, response }
    }

    /// A direct upload (`POST /v1/files`, multipart) of `name` whose bytes are pushed by hand.
    fn direct(server: &TestServer, key: &str, name: &str) -> Self {
        let (chunks, body) = held_body();
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::stream(body).file_name(name.to_owned()));
        let request =
            server.request(Method::POST, "/v1/files", key).multipart(form).build().expect("request");
        let http = server.http.clone();
        let response = tokio::spawn(async move { respond(http.execute(request).await).await });
        Self { chunks, response }
    }

    async fn push(&self, bytes: &[u8]) {
        self.chunks.send(bytes.to_vec()).await.expect("the request is still sending");
    }

    /// Ends the body and returns the response.
    async fn finish(self) -> (StatusCode, Value) {
        drop(self.chunks);
        tokio::time::timeout(HANG, self.response).await.expect("the response came").expect("task")
    }
}

fn held_body() -> (mpsc::Sender<Vec<u8>>, reqwest::Body) {
    let (sender, receiver) = mpsc::channel::<Vec<u8>>(4);
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (Ok::<_, std::io::Error>(chunk), receiver))
    });
    (sender, reqwest::Body::wrap_stream(stream))
}

async fn respond(response: reqwest::Result<reqwest::Response>) -> (StatusCode, Value) {
    match response {
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }
        // The server may answer and close before the client finished sending.
        Err(err) => (err.status().unwrap_or(StatusCode::IM_A_TEAPOT), Value::String(err.to_string())),
    }
}

async fn upload_state(server: &TestServer, tenant: &Tenant, id: &str) -> Value {
    let (status, state) =
        server.send(server.request(Method::GET, &format!("/v1/uploads/{id}"), &tenant.key)).await;
    assert_eq!(status, StatusCode::OK, "{state}");
    state
}

/// Polls until the upload reaches `status` (its bytes are arriving, or it ended).
async fn wait_for_status(server: &TestServer, tenant: &Tenant, id: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + HANG;
    loop {
        let state = upload_state(server, tenant, id).await;
        if state["status"] == status {
            return state;
        }
        assert!(tokio::time::Instant::now() < deadline, "upload {id} never became {status}: {state}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the quota until `done` holds for it, checking the ledger's invariant at every look.
async fn watch_quota(server: &TestServer, tenant: &Tenant, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + HANG;
    loop {
        let quota = server.quota(tenant).await;
        assert_ledger_holds(&quota);
        if done(&quota) {
            return quota;
        }
        assert!(tokio::time::Instant::now() < deadline, "the quota never reached the state wanted: {quota}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_ledger_holds(quota: &Value) {
    let (used, reserved) = (quota["used_bytes"].as_u64().unwrap(), quota["reserved_bytes"].as_u64().unwrap());
    if let Some(limit) = quota["limit_bytes"].as_u64() {
        assert!(used + reserved <= limit, "used {used} + reserved {reserved} > limit {limit}");
    }
}

/// Starts an upload of `size` bytes through its signed URL, sends its first byte and waits until
/// the server is receiving it.
async fn held_upload(server: &TestServer, tenant: &Tenant, name: &str, size: u64) -> (String, HeldBody) {
    let (status, ticket) = server.start_upload(tenant, json!({"name": name, "size": size})).await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let id = ticket["id"].as_str().unwrap().to_owned();
    let held = HeldBody::send(server, server.http.put(ticket["upload_url"].as_str().unwrap()));
    held.push(b"x").await;
    wait_for_status(server, tenant, &id, "UPLOADING").await;
    (id, held)
}

#[test]
fn slow_uploads_of_one_workspace_do_not_hold_up_another_workspaces_transfers() {
    // A blocking pool far smaller than the uploads in flight: were each upload to hold one of its
    // threads while it waits for the network, the other workspace's transfers would never run.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let server = TestServer::spawn().await;
        let noisy = server.tenant(None, Role::Admin).await;
        let mut slow = Vec::new();
        for n in 0..12 {
            slow.push(held_upload(&server, &noisy, &format!("slow-{n}.bin"), 2).await);
        }

        let victim = server.tenant(None, Role::Admin).await;
        let bytes = vec![7u8; 3 * 1024 * 1024];
        let done = tokio::time::timeout(HANG, server.upload(&victim, "victim.bin", &bytes))
            .await
            .expect("the other workspace's upload completed");
        let file_id = done["file"]["id"].as_str().unwrap();
        let read = tokio::time::timeout(HANG, async {
            let response = server
                .request(Method::GET, &format!("/v1/files/{file_id}/content"), &victim.key)
                .send()
                .await
                .expect("download");
            assert_eq!(response.status(), StatusCode::OK);
            response.bytes().await.expect("download body")
        })
        .await
        .expect("the other workspace's download completed");
        assert_eq!(read.len(), bytes.len());
        assert!(read == bytes, "the download differs from the upload");

        // The slow uploads were never hurt either: each finishes when its last byte arrives.
        for (id, held) in slow {
            held.push(b"y").await;
            let (status, body) = held.finish().await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(upload_state(&server, &noisy, &id).await["status"], "SUCCESS");
        }
    });
}

#[tokio::test]
async fn a_workspace_at_its_upload_cap_is_refused_with_429_and_others_are_still_served() {
    let server =
        TestServer::spawn_with(Options { max_uploads_per_workspace: Some(2), ..Options::default() }).await;
    let noisy = server.tenant(None, Role::Admin).await;
    let held =
        [held_upload(&server, &noisy, "a.bin", 2).await, held_upload(&server, &noisy, "b.bin", 2).await];

    // The third, through a signed URL: refused before its body is read, in the native shape.
    let (status, ticket) = server.start_upload(&noisy, json!({"name": "c.bin", "size": 2})).await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let response = server.http.put(ticket["upload_url"].as_str().unwrap()).body("zz").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after =
        response.headers().get("retry-after").expect("Retry-After").to_str().unwrap().to_owned();
    assert!(retry_after.parse::<u64>().unwrap() > 0, "Retry-After: {retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_error(StatusCode::TOO_MANY_REQUESTS, &body, StatusCode::TOO_MANY_REQUESTS, "too_many_uploads");
    // Refused, not consumed: the upload still waits for its bytes.
    assert_eq!(upload_state(&server, &noisy, ticket["id"].as_str().unwrap()).await["status"], "WAITING");
    // A direct upload is refused the same way.
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(b"zz".to_vec()).file_name("d.bin"));
    let (status, body) =
        server.send(server.request(Method::POST, "/v1/files", &noisy.key).multipart(form)).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "too_many_uploads");

    // Another workspace has its own slots.
    let other = server.tenant(None, Role::Admin).await;
    server.upload(&other, "other.bin", b"fine").await;

    // Once one of the noisy uploads ends, the refused one goes through.
    let [(_, first), (_, second)] = held;
    first.push(b"y").await;
    assert_eq!(first.finish().await.0, StatusCode::OK);
    let (status, done) =
        server.send(server.http.put(ticket["upload_url"].as_str().unwrap()).body("zz")).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    second.push(b"y").await;
    assert_eq!(second.finish().await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_key_at_its_upload_cap_is_refused_while_another_key_of_the_workspace_is_served() {
    let server = TestServer::spawn_with(Options { max_uploads_per_key: Some(1), ..Options::default() }).await;
    let tenant = server.tenant(None, Role::Admin).await;
    let held = HeldBody::direct(&server, &tenant.key, "held.bin");
    held.push(b"first bytes").await;
    watch_quota(&server, &tenant, |quota| quota["reserved_bytes"].as_u64() > Some(0)).await;

    let form = || {
        reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(b"zz".to_vec()).file_name("more.bin"))
    };
    let (status, body) =
        server.send(server.request(Method::POST, "/v1/files", &tenant.key).multipart(form())).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "too_many_uploads");

    let second_key = server.key_for(&tenant.workspace, Role::Write).await;
    let (status, body) =
        server.send(server.request(Method::POST, "/v1/files", &second_key).multipart(form())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, body) = held.finish().await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["size"], 11);
}

#[tokio::test]
async fn a_body_slower_than_the_minimum_rate_is_cut_and_its_upload_fails_incomplete() {
    let limits =
        HttpLimits { body_min_rate: 200, body_rate_window: Duration::from_secs(1), ..HttpLimits::default() };
    let server = TestServer::spawn_with(Options { http: Some(limits), ..Options::default() }).await;
    let tenant = server.tenant(Some(1 << 20), Role::Admin).await;
    let (id, held) = held_upload(&server, &tenant, "trickle.bin", 1000).await;
    // A byte every 50 ms: never idle for long, but 20 bytes/s, a tenth of the minimum.
    let trickle = async {
        for _ in 0..400 {
            if held.chunks.send(b"x".to_vec()).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            if held.response.is_finished() {
                break;
            }
        }
    };
    tokio::time::timeout(HANG, trickle).await.expect("the trickle ended");
    let (status, body) = held.finish().await;
    assert_ne!(status, StatusCode::OK, "a trickling upload succeeded: {body}");

    let state = wait_for_status(&server, &tenant, &id, "FAILED").await;
    assert_eq!(state["reason"], "incomplete", "{state}");
    let quota = watch_quota(&server, &tenant, |quota| quota["reserved_bytes"] == 0).await;
    assert_eq!(quota["used_bytes"], 0);
    assert_eq!(server.temporary_files(), 0);
}

#[tokio::test]
async fn concurrent_uploads_of_unknown_size_never_hold_more_than_the_quota() {
    let server = TestServer::spawn().await;
    let limit: u64 = 1 << 20;
    let tenant = server.tenant(Some(limit), Role::Admin).await;
    let chunk = vec![5u8; 64 * 1024];

    // The first direct upload reserves what it may bring: all the quota holds.
    let first = HeldBody::direct(&server, &tenant.key, "first.bin");
    first.push(&chunk).await;
    watch_quota(&server, &tenant, |quota| quota["reserved_bytes"] == limit).await;

    // While it streams, nothing else of unknown size fits, and every look at the ledger holds.
    let mut others = Vec::new();
    for n in 0..4 {
        let other = HeldBody::direct(&server, &tenant.key, &format!("other-{n}.bin"));
        // Refused before its body is read, it may have stopped taking bytes already.
        let _ = other.chunks.send(chunk.clone()).await;
        others.push(other);
    }
    for other in others {
        let (status, body) = other.finish().await;
        if status != StatusCode::IM_A_TEAPOT {
            assert_error(status, &body, StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded");
        }
    }
    // Refused before a byte was read, they wrote nothing: no upload of theirs began, so none failed.
    let (status, events) =
        server.send(server.request(Method::GET, "/v1/events?limit=500", &tenant.key)).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    assert!(
        events["data"].as_array().unwrap().iter().all(|event| event["type"] != "upload.failed"),
        "{events}"
    );
    for _ in 0..7 {
        first.push(&chunk).await;
        assert_ledger_holds(&server.quota(&tenant).await);
        assert!(server.temporary_bytes() <= limit, "{} bytes of temporaries", server.temporary_bytes());
    }
    // More than the quota holds is refused, and nothing stays reserved.
    let (status, body) = first.finish().await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["size"], 8 * 64 * 1024);
    let quota = watch_quota(&server, &tenant, |quota| quota["reserved_bytes"] == 0).await;
    assert_eq!(quota["used_bytes"], 8 * 64 * 1024);

    // What was released is free for the next one; one that outgrows it is cut and charged nothing.
    let over = HeldBody::direct(&server, &tenant.key, "over.bin");
    for _ in 0..9 {
        if over.chunks.send(chunk.clone()).await.is_err() {
            break;
        }
    }
    let (status, body) = over.finish().await;
    if status != StatusCode::IM_A_TEAPOT {
        assert_error(status, &body, StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded");
    }
    let quota = watch_quota(&server, &tenant, |quota| quota["reserved_bytes"] == 0).await;
    assert_eq!(quota["used_bytes"], 8 * 64 * 1024);
    assert_eq!(server.temporary_files(), 0);
}
