//! Two `cabinet serve` processes on one PostgreSQL database, both running the webhook worker,
//! while changes are made through both: each endpoint is leased by one node at a time (a
//! conditional UPDATE), so when nothing fails every event reaches its receiver exactly once.

use crate::process;
#[allow(dead_code)]
use crate::support::receiver;

use std::collections::HashMap;
use std::time::Duration;

use process::{admin_json, http_client, ServerProcess};
use receiver::Receiver;
use reqwest::StatusCode;
use serde_json::{json, Value};

const WORKSPACES: usize = 3;
const FOLDERS_PER_WORKSPACE: usize = 40;

/// A fresh database on the test PostgreSQL, or `None` (a notice, or a failure when the test
/// script said the server is there).
async fn shared_database() -> Option<String> {
    let Ok(database) = std::env::var("CABINET_TEST_DATABASE_URL") else {
        if std::env::var("CABINET_REQUIRE_POSTGRES").as_deref() == Ok("1") {
            panic!("the two-node webhook test needs CABINET_TEST_DATABASE_URL (dev/test sets it)");
        }
        eprintln!("skipping the two-node webhook test: no PostgreSQL test server (dev/test starts one)");
        return None;
    };
    let name = format!("webhooks_two_nodes_{}", ulid::Ulid::new().to_string().to_lowercase());
    let admin = sqlx::PgPool::connect(&database).await.expect("test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    admin.close().await;
    let (base, _) = database.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_deliver_each_event_exactly_once() {
    let Some(database) = shared_database().await else { return };
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let shared = ["--database-url", database.as_str()];
    let mut keys = Vec::new();
    for n in 0..WORKSPACES {
        let name = format!("shared-{n}");
        let mut create = vec!["create-workspace", "--name", name.as_str(), "--json"];
        create.extend(shared);
        let ws = admin_json(dir_a.path(), &create);
        let ws_id = ws["id"].as_str().unwrap().to_owned();
        let mut key_args = vec!["create-key", "--workspace", ws_id.as_str(), "--role", "admin", "--json"];
        key_args.extend(shared);
        keys.push(admin_json(dir_a.path(), &key_args)["key"].as_str().unwrap().to_owned());
    }
    // One server key on both nodes: either opens the secrets the other sealed.
    let secret_key = "ab".repeat(32);
    let mut serve = vec!["--webhook-allow-private", "--s3-secret-key", secret_key.as_str()];
    serve.extend(shared);
    let a = ServerProcess::start_with(dir_a.path(), &serve);
    let b = ServerProcess::start_with(dir_b.path(), &serve);
    let http = http_client();
    let receiver = Receiver::start().await;
    for key in &keys {
        let answer = http
            .post(a.at("/v1/webhooks"))
            .bearer_auth(key)
            .json(&json!({"url": receiver.url}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::CREATED);
    }

    // Changes through both nodes at once, in every workspace.
    let writers: Vec<_> = keys
        .iter()
        .enumerate()
        .flat_map(|(w, key)| [(w, key.clone(), "a", a.url.clone()), (w, key.clone(), "b", b.url.clone())])
        .map(|(w, key, node, base)| {
            let http = http.clone();
            tokio::spawn(async move {
                for n in 0..FOLDERS_PER_WORKSPACE / 2 {
                    let answer = http
                        .post(format!("{base}/v1/folders"))
                        .bearer_auth(&key)
                        .json(&json!({"name": format!("w{w}-{node}-{n}")}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(answer.status(), StatusCode::CREATED);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }

    let mut expected = Vec::new();
    for key in &keys {
        let page: Value = http
            .get(b.at("/v1/events?after=0&limit=500"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = page["data"].as_array().unwrap();
        assert_eq!(events.len(), FOLDERS_PER_WORKSPACE, "{page}");
        expected.extend(events.iter().map(|event| event["id"].as_str().unwrap().to_owned()));
    }
    receiver
        .wait_up_to(Duration::from_secs(60), "every event", |received| {
            let ids: std::collections::HashSet<&str> = received.iter().map(|r| r.id.as_str()).collect();
            expected.iter().all(|id| ids.contains(id.as_str()))
        })
        .await;
    // Anything sent twice would have arrived by now: the nodes poll every 100 ms.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = receiver.received();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for delivery in &received {
        assert_eq!(delivery.answered, 200);
        *counts.entry(delivery.id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(received.len(), expected.len());
    // And per workspace in order.
    let mut last: HashMap<String, u64> = HashMap::new();
    for delivery in &received {
        let (workspace, seq) = delivery.id.rsplit_once('.').unwrap();
        let seq: u64 = seq.parse().unwrap();
        let before = last.insert(workspace.to_owned(), seq).unwrap_or(0);
        assert!(seq > before, "{workspace}: {seq} after {before}");
    }
    eprintln!("two nodes delivered {} events to {WORKSPACES} endpoints, each exactly once", received.len());
}
