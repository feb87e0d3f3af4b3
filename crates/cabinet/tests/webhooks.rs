//! Webhooks (`/v1/webhooks`) against a real receiver on loopback: only admin keys of the
//! workspace manage them; deliveries arrive in the workspace's order, signed as Standard Webhooks
//! specifies; a failed delivery is retried before later events; a receiver failing past the retry
//! period has its endpoint disabled and `webhook.disabled` recorded; replay sends again; a rotated
//! secret signs alongside the old one; receivers on non-public addresses are refused unless the
//! operator allows them, when saved and again when connecting; the delivery log says what
//! happened.

use crate::support;

use cabinet::webhook_sender::HttpWebhookSender;
use cabinet_core::webhooks::{SendOutcome, WebhookRequest, WebhookSender};
use cabinet_core::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::receiver::{Received, Receiver};
use support::{Options, Tenant, TestServer};

async fn spawn() -> TestServer {
    TestServer::spawn_with(Options { webhooks: true, ..Options::default() }).await
}

async fn create_hook(server: &TestServer, tenant: &Tenant, body: Value) -> Value {
    let (status, hook) =
        server.send(server.request(Method::POST, "/v1/webhooks", &tenant.key).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    hook
}

async fn create_folder(server: &TestServer, tenant: &Tenant, name: &str) -> String {
    let (status, folder) = server
        .send(server.request(Method::POST, "/v1/folders", &tenant.key).json(&json!({"name": name})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{folder}");
    folder["id"].as_str().unwrap().to_owned()
}

async fn get_hook(server: &TestServer, tenant: &Tenant, id: &str) -> Value {
    let (status, hook) =
        server.send(server.request(Method::GET, &format!("/v1/webhooks/{id}"), &tenant.key)).await;
    assert_eq!(status, StatusCode::OK, "{hook}");
    hook
}

async fn deliveries(server: &TestServer, tenant: &Tenant, id: &str) -> Vec<Value> {
    let (status, log) = server
        .send(server.request(Method::GET, &format!("/v1/webhooks/{id}/deliveries?limit=100"), &tenant.key))
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    log["data"].as_array().unwrap().clone()
}

/// Waits until the endpoint's stored cursor reaches `seq`: acknowledged deliveries enter the log
/// with the cursor they move, which the worker writes for several at once.
async fn wait_for_cursor(server: &TestServer, tenant: &Tenant, id: &str, seq: u64) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let hook = get_hook(server, tenant, id).await;
        if hook["delivered_seq"].as_u64().unwrap() >= seq {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "cursor stuck: {hook}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn acknowledged(received: &[Received]) -> Vec<Received> {
    received.iter().filter(|r| (200..300).contains(&r.answered)).cloned().collect()
}

#[tokio::test]
async fn only_admin_keys_of_the_workspace_manage_its_webhooks() {
    let server = TestServer::spawn_with(Options { webhooks: true, ..Options::default() }).await;
    let receiver = Receiver::start().await;
    let tenant = server.tenant.clone();

    let hook = create_hook(&server, &tenant, json!({"url": receiver.url, "event_types": ["file.*"]})).await;
    let id = hook["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wh_"), "{hook}");
    let secret = hook["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() >= 6 + 32, "{hook}");
    assert_eq!(hook["event_types"], json!(["file.*"]));
    assert_eq!(hook["enabled"], true);

    // The secret is shown once: neither the details nor the list carry it.
    let details = get_hook(&server, &tenant, &id).await;
    assert!(details.get("secret").is_none(), "{details}");
    assert_eq!(details["url"], receiver.url);
    let (status, list) = server.send(server.request(Method::GET, "/v1/webhooks", &tenant.key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    assert!(list["data"][0].get("secret").is_none());

    let (status, changed) = server
        .send(
            server
                .request(Method::PATCH, &format!("/v1/webhooks/{id}"), &tenant.key)
                .json(&json!({"event_types": ["folder.created", "upload.*"], "enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["event_types"], json!(["folder.created", "upload.*"]));
    assert_eq!(changed["enabled"], false);

    // Bad filters and URLs are refused in the native error shape.
    for (body, code) in [
        (json!({"url": receiver.url, "event_types": []}), "invalid_webhook_event_types"),
        (json!({"url": receiver.url, "event_types": ["File.Created"]}), "invalid_webhook_event_types"),
        (json!({"url": "ftp://example.com/hook"}), "invalid_webhook_url"),
        (json!({"url": "not a url"}), "invalid_webhook_url"),
        (json!({"url": "http://user:pw@example.com/"}), "invalid_webhook_url"),
    ] {
        let (status, error) =
            server.send(server.request(Method::POST, "/v1/webhooks", &tenant.key).json(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {error}");
        assert_eq!(error["error"]["code"], code, "{body}: {error}");
    }

    // A write or read key is refused; so is an end-user token.
    for role in [Role::Write, Role::Read] {
        let key = server.key_for(&tenant.workspace, role).await;
        for (method, path) in [
            (Method::GET, "/v1/webhooks".to_owned()),
            (Method::GET, format!("/v1/webhooks/{id}")),
            (Method::DELETE, format!("/v1/webhooks/{id}")),
            (Method::GET, format!("/v1/webhooks/{id}/deliveries")),
            (Method::POST, format!("/v1/webhooks/{id}/rotate-secret")),
        ] {
            let (status, error) = server.send(server.request(method.clone(), &path, &key)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {error}");
            assert_eq!(error["error"]["code"], "forbidden");
        }
        let (status, _) = server
            .send(server.request(Method::POST, "/v1/webhooks", &key).json(&json!({"url": receiver.url})))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    // Another workspace's admin sees none of it, and cannot touch it.
    let other = server.tenant(None, Role::Admin).await;
    let (_, list) = server.send(server.request(Method::GET, "/v1/webhooks", &other.key)).await;
    assert_eq!(list["data"], json!([]), "{list}");
    for (method, path) in [
        (Method::GET, format!("/v1/webhooks/{id}")),
        (Method::PATCH, format!("/v1/webhooks/{id}")),
        (Method::DELETE, format!("/v1/webhooks/{id}")),
        (Method::GET, format!("/v1/webhooks/{id}/deliveries")),
        (Method::POST, format!("/v1/webhooks/{id}/rotate-secret")),
        (Method::POST, format!("/v1/webhooks/{id}/replay")),
    ] {
        let mut request = server.request(method.clone(), &path, &other.key);
        if method == Method::PATCH {
            request = request.json(&json!({"enabled": true}));
        } else if path.ends_with("replay") {
            request = request.json(&json!({"after": 0}));
        }
        let (status, error) = server.send(request).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {error}");
        assert_eq!(error["error"]["code"], "not_found");
    }

    let (status, _) =
        server.send(server.request(Method::DELETE, &format!("/v1/webhooks/{id}"), &tenant.key)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) =
        server.send(server.request(Method::GET, &format!("/v1/webhooks/{id}"), &tenant.key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deliveries_arrive_in_order_signed_and_only_of_the_filtered_types() {
    let server = spawn().await;
    let receiver = Receiver::start().await;
    let folders_only = Receiver::start().await;
    let tenant = server.tenant.clone();
    let hook = create_hook(&server, &tenant, json!({"url": receiver.url})).await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    create_hook(&server, &tenant, json!({"url": folders_only.url, "event_types": ["folder.*"]})).await;
    // Another workspace's changes reach neither.
    let other = server.tenant(None, Role::Admin).await;
    create_folder(&server, &other, "theirs").await;

    let folder = create_folder(&server, &tenant, "Docs").await;
    let upload = server.upload(&tenant, "a.txt", b"hello").await;
    let file = upload["file"]["id"].as_str().unwrap().to_owned();
    let (status, _) = server
        .send(
            server
                .request(Method::PATCH, &format!("/v1/folders/{folder}"), &tenant.key)
                .json(&json!({"name": "Papers"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Each event of the feed, once, in its order, with the feed's own shape.
    let (_, feed) = server.send(server.get("/v1/events?after=0")).await;
    let feed = feed["data"].as_array().unwrap().clone();
    let received = receiver.wait_for("every event", |r| r.len() >= feed.len()).await;
    assert_eq!(received.len(), feed.len(), "{received:?}");
    for (delivery, event) in received.iter().zip(&feed) {
        assert_eq!(delivery.id, event["id"].as_str().unwrap(), "webhook-id is the event id");
        let body = delivery.json();
        assert_eq!(body["id"], event["id"]);
        assert_eq!(body["seq"], event["seq"]);
        assert_eq!(body["type"], event["type"]);
        assert_eq!(body["object_id"], event["object_id"]);
        assert!(delivery.signed_by(&secret), "{delivery:?}");
        assert!(!delivery.signed_by("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
        let timestamp: i64 = delivery.timestamp.parse().expect("a unix timestamp");
        assert!((timestamp - chrono::Utc::now().timestamp()).abs() < 600, "{timestamp}");
    }
    let kinds: Vec<String> = received.iter().map(|r| r.json()["type"].as_str().unwrap().to_owned()).collect();
    for kind in ["folder.created", "file.created", "upload.succeeded", "folder.updated"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} missing from {kinds:?}");
    }
    let file_event = received.iter().find(|r| r.json()["type"] == "file.created").unwrap().json();
    assert_eq!(file_event["object_id"], file);
    assert_eq!(file_event["data"]["object"]["id"], file, "the object as the API shows it");

    let folder_events = folders_only.wait_for("the folder events", |r| r.len() >= 2).await;
    let folder_kinds: Vec<Value> = folder_events.iter().map(|r| r.json()["type"].clone()).collect();
    assert_eq!(folder_kinds, vec![json!("folder.created"), json!("folder.updated")]);
    // The filter passed over the rest, and its cursor with it.
    let list = server.send(server.get("/v1/webhooks")).await.1;
    for hook in list["data"].as_array().unwrap() {
        let newest = feed.last().unwrap()["seq"].as_u64().unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let now = get_hook(&server, &tenant, hook["id"].as_str().unwrap()).await;
            if now["delivered_seq"].as_u64() == Some(newest) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "cursor stuck: {now}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    // The delivery log: one successful attempt per event, newest first.
    let log = deliveries(&server, &tenant, hook["id"].as_str().unwrap()).await;
    assert_eq!(log.len(), feed.len(), "{log:?}");
    for (entry, event) in log.iter().rev().zip(&feed) {
        assert_eq!(entry["event_id"], event["id"]);
        assert_eq!(entry["attempt"], 1);
        assert_eq!(entry["status"], 200);
        assert_eq!(entry["error"], Value::Null);
        assert!(entry["duration_ms"].as_u64().is_some());
    }
    // Paged: two at a time, no overlap.
    let (_, first) = server
        .send(server.get(&format!("/v1/webhooks/{}/deliveries?limit=2", hook["id"].as_str().unwrap())))
        .await;
    let before = first["next_before"].as_str().expect("a next page");
    let (_, second) = server
        .send(server.get(&format!(
            "/v1/webhooks/{}/deliveries?limit=2&before={before}",
            hook["id"].as_str().unwrap()
        )))
        .await;
    assert_eq!(second["data"][0]["id"], log[2]["id"], "{second}");
    let (status, error) = server
        .send(server.get(&format!("/v1/webhooks/{}/deliveries?limit=0", hook["id"].as_str().unwrap())))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
}

#[tokio::test]
async fn a_failed_delivery_is_retried_before_any_later_event() {
    let server = spawn().await;
    let receiver = Receiver::start().await;
    let tenant = server.tenant.clone();
    let hook =
        create_hook(&server, &tenant, json!({"url": receiver.url, "event_types": ["folder.created"]})).await;
    let id = hook["id"].as_str().unwrap();
    receiver.answer(500);
    create_folder(&server, &tenant, "one").await;
    receiver.wait_for("the first attempt", |r| !r.is_empty()).await;
    create_folder(&server, &tenant, "two").await;
    // The retry waits for its backoff (on the server's clock): nothing later goes out first.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let failed = get_hook(&server, &tenant, id).await;
    assert_eq!(failed["failed_attempts"], 1, "{failed}");
    assert!(failed["next_attempt_at"].is_string(), "{failed}");
    assert!(receiver.received().iter().all(|r| r.json()["seq"] == receiver.received()[0].json()["seq"]));

    receiver.answer(200);
    server.clock.advance(chrono::Duration::hours(2));
    let received = receiver.wait_for("both folders", |r| acknowledged(r).len() >= 2).await;
    let seqs: Vec<u64> = received.iter().map(|r| r.json()["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs.len(), 3, "{seqs:?}");
    assert_eq!(seqs[0], seqs[1], "the same event again: {seqs:?}");
    assert!(seqs[2] > seqs[1], "{seqs:?}");
    assert_eq!(received[0].id, received[1].id, "webhook-id is stable across retries");
    assert_eq!((received[0].answered, received[1].answered), (500, 200));

    wait_for_cursor(&server, &tenant, id, seqs[2]).await;
    let log = deliveries(&server, &tenant, id).await;
    let attempts: Vec<(Value, Value, Value)> =
        log.iter().rev().map(|d| (d["seq"].clone(), d["attempt"].clone(), d["status"].clone())).collect();
    assert_eq!(
        attempts,
        vec![
            (json!(seqs[0]), json!(1), json!(500)),
            (json!(seqs[0]), json!(2), json!(200)),
            (json!(seqs[2]), json!(1), json!(200)),
        ]
    );
    assert!(log.last().unwrap()["error"].as_str().unwrap().contains("500"), "{log:?}");
    assert_eq!(get_hook(&server, &tenant, id).await["failed_attempts"], 0);
}

#[tokio::test]
async fn a_receiver_down_past_the_retry_period_gets_its_endpoint_disabled() {
    let server = TestServer::spawn_with(Options {
        webhooks: true,
        webhook_retry_period: Some(chrono::Duration::hours(1)),
        ..Options::default()
    })
    .await;
    let receiver = Receiver::start().await;
    let watcher = Receiver::start().await;
    let tenant = server.tenant.clone();
    let hook = create_hook(&server, &tenant, json!({"url": receiver.url})).await;
    let id = hook["id"].as_str().unwrap();
    create_hook(&server, &tenant, json!({"url": watcher.url, "event_types": ["webhook.disabled"]})).await;
    receiver.down();
    create_folder(&server, &tenant, "lost").await;

    // Failures within the period are retried; the first one past it disables the endpoint.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let disabled = loop {
        let now = get_hook(&server, &tenant, id).await;
        if now["enabled"] == false {
            break now;
        }
        assert!(tokio::time::Instant::now() < deadline, "never disabled: {now}");
        server.clock.advance(chrono::Duration::minutes(20));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(disabled["disabled_reason"], "retries_exhausted", "{disabled}");
    let log = deliveries(&server, &tenant, id).await;
    assert!(log.len() >= 2, "retried before giving up: {log:?}");
    assert!(log.iter().all(|d| d["error"].is_string()), "{log:?}");

    // The feed says so, and another endpoint is told.
    let (_, feed) = server.send(server.get("/v1/events?after=0")).await;
    let event = feed["data"].as_array().unwrap().iter().find(|e| e["type"] == "webhook.disabled").cloned();
    let event = event.unwrap_or_else(|| panic!("no webhook.disabled in {feed}"));
    assert_eq!(event["object_id"], id);
    assert_eq!(event["detail"], "retries_exhausted");
    let told = watcher.wait_for("webhook.disabled", |r| !r.is_empty()).await;
    assert_eq!(told[0].json()["object_id"], id);

    // Enabled again, it resumes with the event it never acknowledged.
    receiver.up().await;
    let (status, enabled) = server
        .send(
            server
                .request(Method::PATCH, &format!("/v1/webhooks/{id}"), &tenant.key)
                .json(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{enabled}");
    assert_eq!(enabled["disabled_reason"], Value::Null);
    let got = receiver.wait_for("the event it missed", |r| !acknowledged(r).is_empty()).await;
    assert_eq!(acknowledged(&got)[0].json()["type"], "folder.created");
}

#[tokio::test]
async fn replay_sends_the_events_after_a_seq_again_in_order() {
    let server = spawn().await;
    let receiver = Receiver::start().await;
    let tenant = server.tenant.clone();
    let hook = create_hook(&server, &tenant, json!({"url": receiver.url, "event_types": ["folder.*"]})).await;
    let id = hook["id"].as_str().unwrap();
    for name in ["a", "b", "c"] {
        create_folder(&server, &tenant, name).await;
    }
    let first = receiver.wait_for("three events", |r| r.len() >= 3).await;
    let seqs: Vec<u64> = first.iter().map(|r| r.json()["seq"].as_u64().unwrap()).collect();
    // From a stored cursor (acknowledgements are stored a few at once): a replay that meets
    // deliveries not yet stored sends them again too, which the store's conformance tests cover.
    wait_for_cursor(&server, &tenant, id, seqs[2]).await;

    let (status, replayed) = server
        .send(
            server
                .request(Method::POST, &format!("/v1/webhooks/{id}/replay"), &tenant.key)
                .json(&json!({"after": seqs[0]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!(replayed["delivered_seq"], seqs[0]);
    let all = receiver.wait_for("the replay", |r| r.len() >= 5).await;
    let again: Vec<u64> = all[3..].iter().map(|r| r.json()["seq"].as_u64().unwrap()).collect();
    assert_eq!(again, seqs[1..].to_vec());
    assert_eq!(all[3].id, first[1].id, "the same webhook-id as the first delivery");

    let (status, error) = server
        .send(
            server.request(Method::POST, &format!("/v1/webhooks/{id}/replay"), &tenant.key).json(&json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
}

#[tokio::test]
async fn a_new_url_is_followed_at_once_even_while_a_backlog_is_being_sent() {
    let server = spawn().await;
    let (old, new) = (Receiver::start().await, Receiver::start().await);
    // Each delivery to the old URL takes 100 ms, so the node never runs out of events to send
    // while the backlog lasts (before, it went on sending them all to the old URL).
    old.answer_after(std::time::Duration::from_millis(100));
    let tenant = server.tenant.clone();
    let hook = create_hook(&server, &tenant, json!({"url": old.url, "event_types": ["folder.*"]})).await;
    let id = hook["id"].as_str().unwrap();
    for n in 0..30 {
        create_folder(&server, &tenant, &format!("f{n}")).await;
    }
    old.wait_for("the first deliveries", |r| r.len() >= 2).await;

    let (status, changed) = server
        .send(
            server
                .request(Method::PATCH, &format!("/v1/webhooks/{id}"), &tenant.key)
                .json(&json!({"url": new.url})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let sent_before = old.received().len();
    let seq = |r: &Received| r.json()["seq"].as_u64().unwrap();
    let last = hook["delivered_seq"].as_u64().unwrap() + 30;
    let got =
        new.wait_for("the rest of the backlog at the new URL", |r| r.iter().any(|r| seq(r) == last)).await;

    // The delivery under way when the URL changed may still end at the old one; no later one does.
    let old_got = old.received();
    assert!(
        old_got.len() <= sent_before + 1,
        "{} sent to the old URL after the change",
        old_got.len() - sent_before
    );
    assert!(old_got.len() < 30, "{old_got:?}");
    let mut all: Vec<u64> = old_got.iter().chain(&got).map(seq).collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all, (last - 29..=last).collect::<Vec<_>>(), "every event reached one URL or the other");
    let at_new: Vec<u64> = got.iter().map(seq).collect();
    assert!(at_new.windows(2).all(|pair| pair[0] < pair[1]), "in order: {at_new:?}");
}

#[tokio::test]
async fn a_rotated_secret_signs_alongside_the_old_one_for_the_grace_period() {
    let server = spawn().await;
    let receiver = Receiver::start().await;
    let tenant = server.tenant.clone();
    let hook = create_hook(&server, &tenant, json!({"url": receiver.url, "event_types": ["folder.*"]})).await;
    let id = hook["id"].as_str().unwrap();
    let old = hook["secret"].as_str().unwrap().to_owned();
    let (status, rotated) = server
        .send(server.request(Method::POST, &format!("/v1/webhooks/{id}/rotate-secret"), &tenant.key))
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated["previous_secret_expires_at"].is_string(), "{rotated}");

    create_folder(&server, &tenant, "during").await;
    let during = receiver.wait_for("a delivery", |r| !r.is_empty()).await;
    assert_eq!(during[0].signature.split(' ').count(), 2, "{:?}", during[0]);
    assert!(during[0].signed_by(&new) && during[0].signed_by(&old));

    // After the grace period only the new secret signs.
    server.clock.advance(chrono::Duration::hours(25));
    create_folder(&server, &tenant, "after").await;
    let after = receiver.wait_for("a second delivery", |r| r.len() >= 2).await;
    assert_eq!(after[1].signature.split(' ').count(), 1, "{:?}", after[1]);
    assert!(after[1].signed_by(&new) && !after[1].signed_by(&old));
}

#[tokio::test]
async fn receivers_on_non_public_addresses_are_refused_without_the_operator_flag() {
    // The default server: private receivers are not allowed.
    let server = TestServer::spawn().await;
    let receiver = Receiver::start().await;
    for url in [
        receiver.url.clone(),
        "http://localhost:9/hook".to_owned(),
        "http://app.localhost/".to_owned(),
        "http://[::1]/".to_owned(),
        "http://10.0.0.8/".to_owned(),
        "http://192.168.1.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://100.64.0.1/".to_owned(),
        "http://[fd00::1]/".to_owned(),
        "http://[::ffff:127.0.0.1]/".to_owned(),
        "http://0.0.0.0/".to_owned(),
        "http://2130706433/".to_owned(),
    ] {
        let (status, error) = server
            .send(server.request(Method::POST, "/v1/webhooks", &server.tenant.key).json(&json!({"url": url})))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {error}");
        assert_eq!(error["error"]["code"], "webhook_url_not_public", "{url}: {error}");
    }
    let (status, list) = server.send(server.get("/v1/webhooks")).await;
    assert_eq!((status, list["data"].clone()), (StatusCode::OK, json!([])));

    // And at connect time, whatever the URL named when it was saved: the sender refuses an
    // address, and a name that resolves only to refused addresses.
    let sender = HttpWebhookSender::new(false).unwrap();
    for url in [receiver.url.clone(), format!("http://localhost:{}/hook", receiver.address.port())] {
        let outcome =
            sender.send(WebhookRequest { url: url.clone(), headers: vec![], body: b"{}".to_vec() }).await;
        match outcome {
            SendOutcome::Failed(error) => assert!(error.contains("refused"), "{url}: {error}"),
            other => panic!("{url} was sent: {other:?}"),
        }
    }
    assert!(receiver.received().is_empty(), "nothing reached the receiver");
    // With the operator's flag, the same receiver is reached.
    let allowed = HttpWebhookSender::new(true).unwrap();
    let outcome = allowed
        .send(WebhookRequest { url: receiver.url.clone(), headers: vec![], body: b"{}".to_vec() })
        .await;
    assert_eq!(outcome, SendOutcome::Answered(200));
}

#[tokio::test]
async fn retention_keeps_the_events_an_enabled_endpoint_still_needs() {
    let server = TestServer::spawn_with(Options {
        webhooks: true,
        webhook_retry_period: Some(chrono::Duration::days(30)),
        ..Options::default()
    })
    .await;
    let receiver = Receiver::start().await;
    let tenant = server.tenant.clone();
    let hook = create_hook(&server, &tenant, json!({"url": receiver.url, "event_types": ["folder.*"]})).await;
    let id = hook["id"].as_str().unwrap();
    receiver.answer(503);
    create_folder(&server, &tenant, "kept").await;
    receiver.wait_for("a failed attempt", |r| !r.is_empty()).await;

    // Past the feed's retention (7 days), the event the endpoint has not acknowledged stays.
    server.clock.advance(chrono::Duration::days(8));
    server.cabinet.prune_old_events().await.unwrap();
    let (_, feed) = server.send(server.get("/v1/events?after=0")).await;
    assert_eq!(feed["data"].as_array().unwrap().len(), 1, "{feed}");
    receiver.answer(200);
    // A retry that came due with the jump above may have failed since (or be failing now), and
    // waits for its backoff on the server's clock: moved past it until the event is taken.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let got = loop {
        let got = receiver.received();
        if !acknowledged(&got).is_empty() {
            break got;
        }
        assert!(tokio::time::Instant::now() < deadline, "the kept event never went out: {got:?}");
        server.clock.advance(chrono::Duration::hours(2));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(acknowledged(&got)[0].json()["type"], "folder.created");
    // Acknowledged, it goes with the retention like any other.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while get_hook(&server, &tenant, id).await["delivered_seq"] != 1 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.clock.advance(chrono::Duration::days(8));
    assert_eq!(server.cabinet.prune_old_events().await.unwrap(), 1);

    // A disabled endpoint keeps nothing: what the retention removed meanwhile is skipped when it
    // is enabled again, and it goes on with what comes next.
    let (status, _) = server
        .send(
            server
                .request(Method::PATCH, &format!("/v1/webhooks/{id}"), &tenant.key)
                .json(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    create_folder(&server, &tenant, "gone").await;
    server.clock.advance(chrono::Duration::days(8));
    assert_eq!(server.cabinet.prune_old_events().await.unwrap(), 1);
    let (status, _) = server
        .send(
            server
                .request(Method::PATCH, &format!("/v1/webhooks/{id}"), &tenant.key)
                .json(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Nothing left to send: the cursor moves past what was removed (rather than the endpoint
    // staying due, and claimed again and again, for events that are gone).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while get_hook(&server, &tenant, id).await["delivered_seq"] != 2 {
        assert!(tokio::time::Instant::now() < deadline, "the cursor stayed before the removed event");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    create_folder(&server, &tenant, "next").await;
    let got = receiver.wait_for("the next event", |r| acknowledged(r).len() >= 2).await;
    let last = acknowledged(&got)[1].json();
    assert_eq!(last["seq"], 3, "{last}");
    assert_eq!(acknowledged(&got).len(), 2);
}

/// The endpoints' stored secrets, straight from the metadata database.
async fn stored_secrets(server: &TestServer) -> Vec<(String, Option<String>)> {
    let query = "SELECT secret, previous_secret FROM webhooks ORDER BY id";
    if server.database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&server.database_url).await.expect("open SQLite");
        let rows = sqlx::query_as(query).fetch_all(&pool).await.expect("read the secrets");
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(&server.database_url).await.expect("connect to PostgreSQL");
        let rows = sqlx::query_as(query).fetch_all(&pool).await.expect("read the secrets");
        pool.close().await;
        rows
    }
}

/// Whether the secret (as shown, or its key bytes in base64) appears anywhere in `bytes`.
fn holds_secret(bytes: &[u8], secret: &str) -> bool {
    let key = secret.strip_prefix("whsec_").unwrap();
    [secret.as_bytes(), key.as_bytes()].iter().any(|needle| bytes.windows(needle.len()).any(|w| w == *needle))
}

#[tokio::test]
async fn secrets_are_sealed_in_the_database_and_still_sign() {
    let server = spawn().await;
    let receiver = Receiver::start().await;
    let tenant = server.tenant.clone();
    let hook = create_hook(&server, &tenant, json!({"url": receiver.url, "event_types": ["folder.*"]})).await;
    let id = hook["id"].as_str().unwrap();
    let old = hook["secret"].as_str().unwrap().to_owned();
    let (status, rotated) = server
        .send(server.request(Method::POST, &format!("/v1/webhooks/{id}/rotate-secret"), &tenant.key))
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();

    let stored = stored_secrets(&server).await;
    assert_eq!(stored.len(), 1);
    let (secret, previous) = &stored[0];
    let previous = previous.as_deref().expect("the replaced secret is kept for the grace period");
    for value in [secret.as_str(), previous] {
        assert!(!value.starts_with("whsec_"), "stored as shown: {value}");
        assert!(!holds_secret(value.as_bytes(), &old) && !holds_secret(value.as_bytes(), &new), "{value}");
    }
    if server.database_url.starts_with("sqlite:") {
        // Not in any page of the database or its write-ahead log either.
        for file in ["cabinet.db", "cabinet.db-wal"] {
            let bytes = std::fs::read(server.dir.path().join(file)).unwrap_or_default();
            assert!(!holds_secret(&bytes, &old) && !holds_secret(&bytes, &new), "{file} holds a secret");
        }
    }

    create_folder(&server, &tenant, "sealed").await;
    let received = receiver.wait_for("a delivery", |r| !r.is_empty()).await;
    assert!(received[0].signed_by(&new) && received[0].signed_by(&old), "{:?}", received[0]);
}

#[tokio::test]
async fn a_secret_stored_unsealed_by_an_earlier_version_signs_and_is_sealed() {
    let server = spawn().await;
    let receiver = Receiver::start().await;
    let tenant = server.tenant.clone();
    let hook = create_hook(&server, &tenant, json!({"url": receiver.url, "event_types": ["folder.*"]})).await;
    let id = hook["id"].as_str().unwrap();
    // As the version before sealing stored it: the secret as shown.
    let legacy = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    server.raw_sql(&format!("UPDATE webhooks SET secret = '{legacy}' WHERE id = '{id}'")).await;

    create_folder(&server, &tenant, "before").await;
    let received = receiver.wait_for("a delivery", |r| !r.is_empty()).await;
    assert!(received[0].signed_by(legacy), "{:?}", received[0]);

    assert_eq!(server.cabinet.seal_plain_webhook_secrets().await.unwrap(), 1);
    assert_eq!(server.cabinet.seal_plain_webhook_secrets().await.unwrap(), 0, "nothing left to seal");
    let stored = stored_secrets(&server).await;
    assert!(!holds_secret(stored[0].0.as_bytes(), legacy), "{stored:?}");
    create_folder(&server, &tenant, "after").await;
    let received = receiver.wait_for("a second delivery", |r| r.len() >= 2).await;
    assert!(received[1].signed_by(legacy), "{:?}", received[1]);
}
