//! Graceful shutdown of the real binary: on SIGTERM it stops accepting connections, lets an
//! in-flight upload finish and exits 0; an upload still running when the grace period ends
//! leaves nothing half-committed — after a restart it is FAILED or SUCCESS and the ledger adds up.

use crate::process;

use std::time::{Duration, Instant};

use process::ServerProcess;
use reqwest::StatusCode;
use serde_json::{json, Value};

const SIZE: usize = 20 * 1024;

/// A body of `SIZE` bytes sent in 20 chunks, `gap` apart.
fn slow_body(gap: Duration) -> reqwest::Body {
    let stream = futures::stream::unfold(0usize, move |i| async move {
        if i == 20 {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        Some((Ok::<_, std::io::Error>(vec![b'z'; SIZE / 20]), i + 1))
    });
    reqwest::Body::wrap_stream(stream)
}

async fn start_upload(http: &reqwest::Client, server: &ServerProcess, key: &str) -> Value {
    let ticket: Value = http
        .post(format!("{}/v1/uploads", server.url))
        .bearer_auth(key)
        .json(&json!({"name": "in-flight.bin", "size": SIZE}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ticket["status"], "WAITING", "{ticket}");
    ticket
}

/// Waits until the server has started receiving the upload's body (its status is UPLOADING), so
/// the signal lands mid-upload rather than before it.
async fn receiving(http: &reqwest::Client, server: &ServerProcess, key: &str, ticket: &Value) {
    let path = format!("/v1/uploads/{}", ticket["id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, state) = get(http, server, key, &path).await;
        if state["status"] == "UPLOADING" {
            return;
        }
        assert!(Instant::now() < deadline, "the upload never started: {state}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn refuses_connections(url: &str) -> bool {
    let address = url.trim_start_matches("http://");
    std::net::TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_millis(200)).is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_upload_finish_refuses_new_connections_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start_with(dir.path(), &["--shutdown-grace", "15"]);
    let key = server.bootstrap_key.clone().unwrap();
    let http = reqwest::Client::new();
    let ticket = start_upload(&http, &server, &key).await;
    // ~2 s of body.
    let upload = tokio::spawn(
        http.put(ticket["upload_url"].as_str().unwrap()).body(slow_body(Duration::from_millis(100))).send(),
    );
    receiving(&http, &server, &key, &ticket).await;
    let signalled = Instant::now();
    server.terminate();

    // "At once", bounded loosely enough for a loaded machine: the listener closes before the drain.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !refuses_connections(&server.url) {
        assert!(Instant::now() < deadline, "still accepting connections 5 s after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = upload.await.unwrap().expect("the in-flight upload got an answer");
    assert_eq!(response.status(), StatusCode::OK);
    let done: Value = response.json().await.unwrap();
    assert_eq!(done["status"], "SUCCESS", "{done}");
    let answered = Instant::now();
    let status = tokio::task::block_in_place(|| server.wait_for_exit(Duration::from_secs(15)))
        .expect("the process did not exit within the grace period");
    assert!(status.success(), "exit status {status}");
    assert!(signalled.elapsed() < Duration::from_secs(15));
    // The client's other connection, idle since its last request, did not hold the exit until the
    // idle timeout (10 s).
    let exited_after = answered.elapsed();
    assert!(exited_after < Duration::from_secs(5), "exited {exited_after:?} after the last answer");

    // The file survived the restart.
    let server = ServerProcess::start(dir.path());
    let (status, state) =
        get(&http, &server, &key, &format!("/v1/uploads/{}", ticket["id"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state["status"], "SUCCESS");
}

async fn get(http: &reqwest::Client, server: &ServerProcess, key: &str, path: &str) -> (StatusCode, Value) {
    let response = http.get(format!("{}{path}", server.url)).bearer_auth(key).send().await.unwrap();
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_by_the_end_of_the_grace_period_is_failed_or_finished_never_half_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start_with(dir.path(), &["--shutdown-grace", "1"]);
    let key = server.bootstrap_key.clone().unwrap();
    let http = reqwest::Client::new();
    let ticket = start_upload(&http, &server, &key).await;
    // ~6 s of body: far longer than the grace period.
    let upload = tokio::spawn(
        http.put(ticket["upload_url"].as_str().unwrap()).body(slow_body(Duration::from_millis(300))).send(),
    );
    receiving(&http, &server, &key, &ticket).await;
    let signalled = Instant::now();
    server.terminate();
    let status = tokio::task::block_in_place(|| server.wait_for_exit(Duration::from_secs(5)))
        .expect("the process outlived its grace period");
    assert!(status.success(), "exit status {status}");
    assert!(signalled.elapsed() < Duration::from_secs(3), "took {:?}", signalled.elapsed());
    if let Ok(Ok(response)) = upload.await {
        assert!(!response.status().is_success(), "a cut upload was reported as stored");
    }

    let restarted = ServerProcess::start(dir.path());
    let (_, state) =
        get(&http, &restarted, &key, &format!("/v1/uploads/{}", ticket["id"].as_str().unwrap())).await;
    let (_, quota) = get(&http, &restarted, &key, "/v1/quota").await;
    let (_, files) = get(&http, &restarted, &key, "/v1/files").await;
    let stored: u64 = files["data"].as_array().unwrap().iter().map(|f| f["size"].as_u64().unwrap()).sum();
    match state["status"].as_str() {
        Some("FAILED") => {
            assert!(matches!(state["reason"].as_str(), Some("interrupted" | "incomplete")), "{state}");
            assert_eq!(stored, 0);
        }
        Some("SUCCESS") => assert_eq!(stored, SIZE as u64),
        other => panic!("the upload is {other:?} after a restart: {state}"),
    }
    assert_eq!(quota["reserved_bytes"], 0, "{quota}");
    assert_eq!(quota["used_bytes"], stored, "{quota}");
    let leftovers = std::fs::read_dir(dir.path().join("blobs/tmp")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(leftovers, 0, "temporary objects left behind");
}
