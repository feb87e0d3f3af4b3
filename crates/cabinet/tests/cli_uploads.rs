//! Uploads that are safe to run again: a file whose name and SHA-256 are already in the target
//! folder is skipped and the summary says so; `--on-conflict skip|rename|replace|fail` decides
//! about a different file of the same name. The real binary against a real server on loopback.

use crate::cli_user;
use crate::process;

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cli_user::{names, path_str, random_bytes, server_and_user, sha256_hex, User};
use process::{ServerProcess, Tenant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[test]
fn running_the_same_folder_upload_again_uploads_nothing_twice() {
    let (_dir, _server, user) = server_and_user(None);
    user.write("tree/a.txt", b"alpha");
    user.write("tree/sub/b.txt", b"bravo");
    let tree = user.home.path().join("files/tree");

    let first = user.json(&["upload", path_str(&tree), "--folder", "/X"]);
    assert_eq!(first["uploaded"].as_array().unwrap().len(), 2, "{first}");
    // A new file appears locally, as after an interrupted run that had finished some files.
    user.write("tree/sub/c.txt", b"charlie");
    let again = user.json(&["upload", path_str(&tree), "--folder", "/X"]);
    assert_eq!(again["uploaded"].as_array().unwrap().len(), 1, "only the new file: {again}");
    assert_eq!(again["uploaded"][0]["name"], "c.txt");
    let skipped = again["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2, "{again}");
    assert!(skipped.iter().all(|s| s["identical"] == true && s["reason"] == "already there"), "{again}");
    assert_eq!(names(&user.json(&["ls", "/X/tree"])["files"]), vec!["a.txt"]);
    assert_eq!(names(&user.json(&["ls", "/X/tree/sub"])["files"]), vec!["b.txt", "c.txt"]);

    let human = user.run(&["upload", path_str(&tree), "--folder", "/X"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human.stdout.contains("uploaded 0, skipped 3 (3 already there), failed 0"),
        "the summary says what was skipped:\n{}",
        human.stdout
    );
}

#[test]
fn a_different_file_of_the_same_name_is_skipped_renamed_replaced_or_refused() {
    let (_dir, _server, user) = server_and_user(None);
    let first = user.write("one/report.txt", b"first version");
    let up = user.json(&["upload", path_str(&first), "--folder", "/Docs"]);
    let old_id = up["uploaded"][0]["file"]["id"].as_str().unwrap().to_owned();
    let second = user.write("two/report.txt", b"second version, longer");

    // skip (the default): nothing changes, and it says why.
    let skipped = user.json(&["upload", path_str(&second), "--folder", "/Docs"]);
    assert_eq!(skipped["uploaded"], serde_json::json!([]));
    assert_eq!(skipped["skipped"][0]["identical"], false, "{skipped}");
    assert_eq!(skipped["skipped"][0]["file"]["id"], old_id.as_str());

    // fail: exit 5, nothing uploaded.
    let run = user.run(&["upload", path_str(&second), "--folder", "/Docs", "--on-conflict", "fail"]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("/Docs/report.txt already exists"), "{}", run.stderr);

    // rename: a free name beside it.
    let renamed = user.json(&["upload", path_str(&second), "--folder", "/Docs", "--on-conflict", "rename"]);
    assert_eq!(renamed["uploaded"][0]["file"]["name"], "report (1).txt", "{renamed}");
    assert_eq!(names(&user.json(&["ls", "/Docs"])["files"]), vec!["report (1).txt", "report.txt"]);
    // Identity is name and content: other bytes under the same name get the next free name.
    let third = user.write("three/report.txt", b"third");
    let renamed = user.json(&["upload", path_str(&third), "--folder", "/Docs", "--on-conflict", "rename"]);
    assert_eq!(renamed["uploaded"][0]["file"]["name"], "report (2).txt", "{renamed}");

    // replace: the new one takes the name, the old one goes to the trash.
    let replaced = user.json(&["upload", path_str(&second), "--folder", "/Docs", "--on-conflict", "replace"]);
    let new_id = replaced["uploaded"][0]["file"]["id"].as_str().unwrap().to_owned();
    assert_eq!(replaced["uploaded"][0]["replaced"], serde_json::json!([old_id]), "{replaced}");
    let got = user.json(&["get", "/Docs/report.txt", "-o", path_str(&user.home.path().join("r.txt"))]);
    assert_eq!(got["id"], new_id.as_str());
    assert_eq!(got["sha256"], sha256_hex(b"second version, longer").as_str());
    let trash = user.json(&["trash", "ls"]);
    assert_eq!(trash["data"][0]["id"], old_id.as_str(), "{trash}");

    // An identical file is skipped whatever the mode.
    for mode in ["rename", "replace", "fail"] {
        let again = user.json(&["upload", path_str(&second), "--folder", "/Docs", "--on-conflict", mode]);
        assert_eq!(again["uploaded"], serde_json::json!([]), "{mode}: {again}");
        assert_eq!(again["skipped"][0]["identical"], true, "{mode}: {again}");
    }
}

/// A TCP relay in front of the server that counts every byte clients send through it: the
/// client's API calls and, since the server's public URL is the relay's, the upload bytes too.
/// With `Cut::FirstStoragePut` it also cuts, once, the connection on which a request to the
/// storage route starts, before relaying it: that request never reaches the server, and its
/// client sees the network fail. `Cut::EveryStoragePut` cuts every one.
struct Relay {
    url: String,
    sent: Arc<AtomicU64>,
    /// The requests to the storage route seen (cut or relayed).
    storage_puts: Arc<AtomicU64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cut {
    Nothing,
    FirstStoragePut,
    EveryStoragePut,
}

impl Relay {
    async fn bind() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        (listener, url)
    }

    fn start(listener: TcpListener, url: String, upstream: &str, cut: Cut) -> Self {
        const STORAGE_PUT: &[u8] = b"PUT /storage/";
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let (sent, storage_puts) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (counter, puts) = (sent.clone(), storage_puts.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, counter, puts) = (upstream.clone(), counter.clone(), puts.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else { return };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    // Ends with whether the connection is to be cut.
                    let up = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = client_read.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            let storage_put = buf[..n].windows(STORAGE_PUT.len()).any(|w| w == STORAGE_PUT);
                            if storage_put {
                                let first = puts.fetch_add(1, Ordering::SeqCst) == 0;
                                if cut == Cut::EveryStoragePut || (first && cut == Cut::FirstStoragePut) {
                                    return true;
                                }
                            }
                            if server_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            counter.fetch_add(n as u64, Ordering::SeqCst);
                        }
                        let _ = server_write.shutdown().await;
                        false
                    };
                    let down = async {
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                        let _ = client_write.shutdown().await;
                    };
                    let (mut up, mut down) = (std::pin::pin!(up), std::pin::pin!(down));
                    // Both directions run to their ends, unless a cut drops both sides at once:
                    // then the client's request is never answered.
                    tokio::select! {
                        cut = &mut up => if !cut { down.await },
                        () = &mut down => { up.await; }
                    }
                });
            }
        });
        Relay { url, sent, storage_puts }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

/// A server whose public URL is a relay in front of it that cuts as `cut` says, and a user of the
/// client who reaches the server through the relay.
async fn behind_a_relay(cut: Cut) -> (tempfile::TempDir, ServerProcess, Relay, User) {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::create(dir.path(), "acme", None, "write");
    let (listener, relay_url) = Relay::bind().await;
    let server = ServerProcess::start_with(dir.path(), &["--public-url", &relay_url]);
    let relay = Relay::start(listener, relay_url, &server.url, cut);
    let user = User::new(&relay.url, &tenant.key);
    (dir, server, relay, user)
}

/// A small file whose `PUT` never reached the server (its connection cut) is sent again: the
/// client asks, finds the upload still waiting, and sends the same URL again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_file_whose_put_was_lost_on_the_network_is_sent_again_while_its_upload_waits() {
    let (_dir, _server, relay, user) = behind_a_relay(Cut::FirstStoragePut).await;
    let bytes = random_bytes(300_000);
    let source = user.write("lost-once.bin", &bytes);
    let source_text = path_str(&source).to_owned();
    let (_user, run) = tokio::task::spawn_blocking(move || {
        let run = user.json(&["upload", &source_text, "--folder", "/Lost"]);
        (user, run)
    })
    .await
    .unwrap();
    assert!(relay.storage_puts.load(Ordering::SeqCst) >= 2, "the first PUT was cut, the second relayed");
    let file = &run["uploaded"][0]["file"];
    assert_eq!(file["sha256"], sha256_hex(&bytes).as_str(), "{run}");
}

/// A small file whose every `PUT` is lost on the network is given up on but not cancelled: its
/// bytes could have landed with the answer lost (on S3 the server then finishes the upload), so
/// the upload keeps waiting, holding its reservation, until it finishes or expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_file_given_up_on_after_network_failures_is_not_cancelled() {
    let (_dir, _server, relay, user) = behind_a_relay(Cut::EveryStoragePut).await;
    let bytes = random_bytes(300_000);
    let source = user.write("lost-always.bin", &bytes);
    let source_text = path_str(&source).to_owned();
    let (user, run) = tokio::task::spawn_blocking(move || {
        let run = user.run(&["upload", &source_text, "--folder", "/Lost"]);
        (user, run)
    })
    .await
    .unwrap();
    assert_eq!(run.code, 7, "unavailable: {}", run.stderr);
    assert_eq!(relay.storage_puts.load(Ordering::SeqCst), 3, "sent three times, each cut");
    let quota = tokio::task::spawn_blocking(move || user.json(&["quota"])).await.unwrap();
    assert_eq!(
        quota["reserved_bytes"],
        bytes.len() as u64,
        "the upload still holds its reservation: {quota}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_killed_midway_resends_at_most_one_part_per_part_in_flight() {
    const MIB: u64 = 1 << 20;
    let (_dir, _server, relay, user) = behind_a_relay(Cut::Nothing).await;

    // 96 MiB with the client's defaults: parts of 8 MiB, 4 in flight.
    let size = 96 * MIB;
    let source = user.write("big.bin", &random_bytes(size as usize));
    let args = ["upload", path_str(&source), "--folder", "/Big"];

    // Slowed down and killed (SIGKILL: nothing is saved on the way out) once half is sent.
    let mut first = user.command(&args);
    first
        .args(["--limit-rate", "24MiB", "--json"])
        .env("CABINET_URL", &user.url)
        .env("CABINET_KEY", &user.key)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = first.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while relay.sent() < size / 2 {
        assert!(Instant::now() < deadline, "the upload never got half way: {} bytes", relay.sent());
        assert!(child.try_wait().unwrap().is_none(), "the client ended before it was stopped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = relay.sent();

    let source_text = path_str(&source).to_owned();
    let finished = tokio::task::spawn_blocking(move || {
        let run = user.json(&["upload", &source_text, "--folder", "/Big"]);
        (user, run)
    })
    .await
    .unwrap();
    let (user, resumed) = finished;
    let done = &resumed["uploaded"][0];
    assert_eq!(done["resumed"], true, "{resumed}");
    assert_eq!(done["part_size"], 8 * MIB, "{resumed}");
    assert!(done["parts_skipped"].as_u64().unwrap() >= 1, "the finished parts were kept: {resumed}");
    assert_eq!(done["file"]["size"], size);

    // Everything the client sent, both runs, beyond the file itself: what the kill cost, plus
    // the requests around the bytes (well under a MiB).
    let total = relay.sent();
    let wasted = total.saturating_sub(size);
    eprintln!("sent {total} bytes for {size} ({before} before the kill): {wasted} re-sent");
    assert!(
        wasted <= 4 * 8 * MIB + MIB,
        "sent {total} bytes for a {size}-byte file ({before} before the kill): {wasted} re-sent"
    );
    let listed = user.json(&["ls", "/Big"]);
    assert_eq!(listed["files"][0]["sha256"], done["sha256"], "{listed}");
}

#[tokio::test]
async fn replacing_a_file_in_use_keeps_it_and_says_so() {
    let (_dir, _server, user) = server_and_user(None);
    let first = user.write("one/page.html", b"<p>one</p>");
    let up = user.json(&["upload", path_str(&first), "--folder", "/Site"]);
    let old_id = up["uploaded"][0]["file"]["id"].as_str().unwrap().to_owned();
    let used = process::http_client()
        .post(format!("{}/v1/files/{old_id}/references", user.url))
        .bearer_auth(&user.key)
        .json(&serde_json::json!({"kind": "page", "id": "home", "label": null}))
        .send()
        .await
        .unwrap();
    assert!(used.status().is_success(), "{}", used.status());

    let second = user.write("two/page.html", b"<p>two</p>");
    let source = path_str(&second).to_owned();
    let replaced = tokio::task::spawn_blocking(move || {
        let run = user.json(&["upload", &source, "--folder", "/Site", "--on-conflict", "replace"]);
        (user, run)
    })
    .await
    .unwrap()
    .1;
    let done = &replaced["uploaded"][0];
    assert_eq!(done["replaced"], serde_json::json!([]), "{replaced}");
    assert_eq!(done["not_replaced"]["id"], old_id.as_str(), "{replaced}");
    assert_eq!(done["not_replaced"]["error"]["code"], "file_in_use", "{replaced}");
}
