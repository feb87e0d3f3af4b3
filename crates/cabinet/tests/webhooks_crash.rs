//! SIGKILL of the real server between commits and their deliveries, in rounds, under concurrent
//! uploads into two workspaces with a webhook each: once the server is back and the uploads have
//! stopped, every event the feed (`GET /v1/events`) holds was delivered (acknowledged) at least
//! once, nothing was delivered that is not in the feed (no event of a change that did not commit),
//! and per workspace the first deliveries came in the feed's order. In one round the receiver is
//! down across the kill and for a while after: it gets everything once it is back.
//!
//! `CABINET_WEBHOOK_CRASH_ROUNDS` (default 3; `CABINET_LONG=1`: 20) sets how many kills; SQLite
//! and the local folder.

use crate::process;
#[allow(dead_code)]
use crate::support::receiver;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use process::{http_client, ServerProcess, Tenant};
use rand::{Rng, SeedableRng};
use receiver::Receiver;
use reqwest::StatusCode;
use serde_json::{json, Value};

const UPLOADERS_PER_WORKSPACE: usize = 4;

fn rounds() -> usize {
    if let Ok(rounds) = std::env::var("CABINET_WEBHOOK_CRASH_ROUNDS") {
        return rounds.parse().expect("CABINET_WEBHOOK_CRASH_ROUNDS is a number");
    }
    if std::env::var("CABINET_LONG").as_deref() == Ok("1") {
        20
    } else {
        3
    }
}

/// Uploads small files (direct, multipart) one after another until told to stop or the server
/// goes away; counts what succeeded.
async fn upload_until_stopped(
    client: reqwest::Client,
    base: String,
    key: String,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
) {
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(format!("payload {n}").into_bytes())
                .file_name(format!("f{n}.txt")),
        );
        match client.post(format!("{base}/v1/files")).bearer_auth(&key).multipart(form).send().await {
            Ok(answer) if answer.status() == StatusCode::CREATED => {
                done.fetch_add(1, Ordering::SeqCst);
            }
            _ => return,
        }
    }
}

/// Every event of the workspace's feed.
async fn feed(client: &reqwest::Client, base: &str, key: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = client
            .get(format!("{base}/v1/events?after={after}&limit=500"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = page["data"].as_array().unwrap();
        if data.is_empty() {
            return events;
        }
        events.extend(data.iter().cloned());
        after = page["next_after"].as_u64().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_committed_event_is_delivered_in_order_across_sigkills() {
    let seed: u64 = rand::thread_rng().gen();
    eprintln!("webhook crash test seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let data = tempfile::tempdir().unwrap();
    let client = http_client();
    let flags = ["--webhook-allow-private"];
    let mut server = ServerProcess::start_with(data.path(), &flags);
    let first_key = server.bootstrap_key.clone().expect("a bootstrap key");
    let second = Tenant::create(data.path(), "second", None, "admin");
    let keys = [first_key, second.key.clone()];
    let receiver = Receiver::start().await;
    for key in &keys {
        let answer = client
            .post(format!("{}/v1/webhooks", server.url))
            .bearer_auth(key)
            .json(&json!({"url": receiver.url}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::CREATED);
    }

    let down_round = rounds() / 2;
    let uploaded = Arc::new(AtomicUsize::new(0));
    for round in 0..rounds() {
        let stop = Arc::new(AtomicBool::new(false));
        let uploaders: Vec<_> = keys
            .iter()
            .flat_map(|key| std::iter::repeat_n(key.clone(), UPLOADERS_PER_WORKSPACE))
            .map(|key| {
                tokio::spawn(upload_until_stopped(
                    client.clone(),
                    server.url.clone(),
                    key,
                    stop.clone(),
                    uploaded.clone(),
                ))
            })
            .collect();
        if round == down_round {
            receiver.down();
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..800))).await;
        let _ = server.kill();
        for uploader in uploaders {
            let _ = uploader.await;
        }
        server = ServerProcess::start_with(data.path(), &flags);
        if round == down_round {
            // Down for a while after the restart too: the endpoints retry, then catch up.
            tokio::time::sleep(Duration::from_secs(2)).await;
            receiver.up().await;
        }
        eprintln!("webhook crash round {round}: killed under uploads, restarted");
    }

    // Settle: the server runs on with no more changes until every event is acknowledged.
    let mut feeds: HashMap<String, Vec<Value>> = HashMap::new();
    for key in &keys {
        let events = feed(&client, &server.url, key).await;
        assert!(!events.is_empty());
        let workspace = events[0]["workspace_id"].as_str().unwrap().to_owned();
        feeds.insert(workspace, events);
    }
    let expected: HashSet<String> =
        feeds.values().flatten().map(|event| event["id"].as_str().unwrap().to_owned()).collect();
    // A kill leaves the endpoints leased to the dead process, which no longer renews them: the
    // restarted one resumes once the lease (5 s) runs out.
    let received = receiver
        .wait_up_to(Duration::from_secs(60), "every committed event", |received| {
            let acknowledged: HashSet<&str> =
                received.iter().filter(|r| (200..300).contains(&r.answered)).map(|r| r.id.as_str()).collect();
            expected.iter().all(|id| acknowledged.contains(id.as_str()))
        })
        .await;

    // Nothing delivered that the feed does not hold, each with the feed's type.
    let types: HashMap<&str, &Value> =
        feeds.values().flatten().map(|event| (event["id"].as_str().unwrap(), &event["type"])).collect();
    for delivery in &received {
        let kind = types.get(delivery.id.as_str());
        assert!(kind.is_some(), "{} was delivered but is not in the feed", delivery.id);
        assert_eq!(&&delivery.json()["type"], kind.unwrap(), "{}", delivery.id);
    }
    // Per workspace, the first acknowledged delivery of each event came in the feed's order.
    let mut firsts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for delivery in received.iter().filter(|r| (200..300).contains(&r.answered)) {
        if seen.insert(delivery.id.clone()) {
            let (workspace, seq) = delivery.id.rsplit_once('.').unwrap();
            firsts.entry(workspace.to_owned()).or_default().push(seq.parse().unwrap());
        }
    }
    for (workspace, seqs) in &firsts {
        assert!(
            seqs.windows(2).all(|pair| pair[0] < pair[1]),
            "{workspace}: first deliveries out of order: {seqs:?}"
        );
        assert_eq!(seqs.len(), feeds[workspace].len(), "{workspace}");
    }
    let repeats = received.iter().filter(|r| (200..300).contains(&r.answered)).count() - seen.len();
    eprintln!(
        "webhook crash rounds: {} rounds, {} files uploaded, {} events all delivered in order ({repeats} delivered \
         again after a kill; the receiver was down across round {down_round})",
        rounds(),
        uploaded.load(Ordering::SeqCst),
        expected.len()
    );
    let _ = server.kill();
}
