//! The client commands (`cabinet upload|ls|find|get|mv|rm|restore|fav|tag|quota|url`), through
//! the real binary against a real server on loopback: what they print as JSON and for people,
//! what they change on the server, and the exit codes scripts rely on.

use crate::cli_user;
use crate::process;

use std::process::Stdio;

use cli_user::{finish, names, path_str, random_bytes, server_and_user, sha256_hex, User};
use process::{http_client, Tenant};
use serde_json::Value;

#[test]
fn a_directory_tree_uploads_in_parallel_and_every_command_sees_and_changes_it() {
    let (_dir, _server, user) = server_and_user(None);
    let a = random_bytes(3000);
    let b = random_bytes(70_000);
    let c = b"a small note".to_vec();
    user.write("tree/a.bin", &a);
    user.write("tree/sub/b.bin", &b);
    user.write("tree/sub/deeper/c.txt", &c);
    let tree = user.home.path().join("files/tree");

    let uploaded =
        user.json(&["upload", path_str(&tree), "--folder", "/Imports/2026", "--jobs", "3", "--tag", "batch"]);
    let done = uploaded["uploaded"].as_array().expect("uploaded");
    assert_eq!(done.len(), 3, "{uploaded}");
    assert_eq!(uploaded["failed"], serde_json::json!([]));
    for item in done {
        let expected = match item["name"].as_str().unwrap() {
            "a.bin" => sha256_hex(&a),
            "b.bin" => sha256_hex(&b),
            "c.txt" => sha256_hex(&c),
            other => panic!("unexpected upload {other}"),
        };
        assert_eq!(item["sha256"], expected.as_str());
        assert_eq!(item["file"]["sha256"], expected.as_str(), "the server stored what was sent");
        assert_eq!(item["file"]["tags"], serde_json::json!(["batch"]));
    }

    // The tree is recreated under the folder: /Imports/2026/tree/{a.bin, sub/{b.bin, deeper/c.txt}}.
    let listed = user.json(&["ls", "/Imports/2026/tree"]);
    assert_eq!(names(&listed["folders"]), vec!["sub"]);
    assert_eq!(names(&listed["files"]), vec!["a.bin"]);
    let deeper = user.json(&["ls", "/imports/2026/tree/sub/deeper"]);
    assert_eq!(names(&deeper["files"]), vec!["c.txt"], "paths resolve case-insensitively");
    let c_id = deeper["files"][0]["id"].as_str().unwrap().to_owned();
    let sub = user.json(&["ls", "/Imports/2026/tree/sub"]);
    let b_id = sub["files"][0]["id"].as_str().unwrap().to_owned();
    let sub_id = listed["folders"][0]["id"].as_str().unwrap().to_owned();

    // Uploading again into the same place reuses the folders.
    user.json(&[
        "upload",
        path_str(&tree.join("sub/deeper/c.txt")),
        "--folder",
        "/Imports/2026/tree/sub/deeper",
    ]);
    let deeper_again = user.json(&["ls", deeper["folder_id"].as_str().unwrap()]);
    assert_eq!(deeper_again["files"].as_array().unwrap().len(), 1, "the same file is not uploaded twice");
    let root = user.json(&["ls"]);
    assert_eq!(names(&root["folders"]), vec!["Imports"], "no duplicate folders: {root}");

    // Human output: a table with names, sizes and ids.
    let human = user.run(&["ls", "/Imports/2026/tree/sub"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(human.stdout.contains("NAME") && human.stdout.contains("b.bin"), "{}", human.stdout);
    assert!(human.stdout.contains("68.4 KiB"), "sizes read as people write them:\n{}", human.stdout);
    assert!(human.stdout.contains("deeper/") && human.stdout.contains(&b_id), "{}", human.stdout);

    // find
    let found = user.json(&["find", "B.BI"]);
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["data"][0]["id"], b_id.as_str());
    let human = user.run(&["find", "deep"]);
    assert!(human.stdout.contains("folder") && human.stdout.contains("deeper/"), "{}", human.stdout);

    // fav: toggle, then --off
    let fav = user.json(&["fav", &b_id]);
    assert_eq!(fav["is_favorite"], true);
    let human = user.run(&["ls", "/Imports/2026/tree/sub"]);
    assert!(human.stdout.lines().any(|l| l.starts_with('★') && l.contains("b.bin")), "{}", human.stdout);
    let fav = user.json(&["fav", &b_id, "--off"]);
    assert_eq!(fav["is_favorite"], false);
    let fav = user.json(&["fav", &sub_id, "--on"]);
    assert_eq!(fav["is_favorite"], true, "folders have favorites too");

    // tag: add and remove, then --set
    let tagged = user.json(&["tag", &b_id, "+red", "-batch", "blue"]);
    let mut tags: Vec<&str> = tagged["tags"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    tags.sort();
    assert_eq!(tags, vec!["blue", "red"], "{tagged}");
    let tagged = user.json(&["tag", &b_id, "--set", "one,two"]);
    assert_eq!(tagged["tags"], serde_json::json!(["one", "two"]));

    // mv: into another folder and renamed; then a folder to the root
    let moved = user.json(&["mv", &c_id, "/Imports", "--name", "renamed.txt"]);
    assert_eq!(moved["name"], "renamed.txt");
    let imports = user.json(&["ls", "/Imports"]);
    assert!(names(&imports["files"]).contains(&"renamed.txt".to_owned()), "{imports}");
    assert_eq!(moved["folder_id"], imports["folder_id"]);
    let moved = user.json(&["mv", "/Imports/2026/tree/sub/deeper", "/"]);
    assert_eq!(moved["parent_id"], Value::Null);

    // rm to the trash, then restore
    let removed = user.json(&["rm", &b_id]);
    assert!(removed[0]["trashed_at"].is_string(), "{removed}");
    assert!(user.json(&["find", "b.bin"])["total"] == 0, "a trashed file is not found");
    let restored = user.json(&["restore", &b_id]);
    assert_eq!(restored[0]["file"]["id"], b_id.as_str());
    assert_eq!(restored[0]["file"]["trashed_at"], Value::Null);
    let removed = user.json(&["rm", "-r", "/Imports/2026"]);
    assert!(removed[0]["trashed_at"].is_string(), "{removed}");
    assert!(user.run(&["ls", "/Imports/2026"]).code == 3, "a trashed folder's path is gone");

    // quota: what is stored
    let quota = user.json(&["quota"]);
    assert!(quota["used_bytes"].as_u64().unwrap() >= (a.len() + b.len() + c.len()) as u64, "{quota}");
    let human = user.run(&["quota"]);
    assert!(human.stdout.contains("used") && human.stdout.contains("no limit"), "{}", human.stdout);
}

#[tokio::test]
async fn a_signed_url_works_with_a_plain_get_and_expires() {
    let (_dir, _server, user) = server_and_user(None);
    let source = user.write("hello.txt", b"hello, signed world");
    let id =
        user.json(&["upload", path_str(&source)])["uploaded"][0]["file"]["id"].as_str().unwrap().to_owned();

    let signed = user.json(&["url", &id, "--expires", "1h"]);
    let url = signed["url"].as_str().unwrap().to_owned();
    let expires_at = chrono::DateTime::parse_from_rfc3339(signed["expires_at"].as_str().unwrap()).unwrap();
    // An hour, rounded up to the end of the server's URL window (10 minutes), so caches can hit.
    let past_an_hour = expires_at.timestamp() - (chrono::Utc::now() + chrono::Duration::hours(1)).timestamp();
    assert!((-60..=600).contains(&past_an_hour), "{signed}");
    let response = http_client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"hello, signed world");

    let human = user.run(&["url", &id, "--expires", "2s"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    let short = human.stdout.trim().to_owned();
    assert!(short.starts_with("http"), "the URL alone on stdout: {short}");
    assert_eq!(http_client().get(&short).send().await.unwrap().status(), 200);
    // The URL works until it expires, then is refused: poll for the refusal, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let late = loop {
        let status = http_client().get(&short).send().await.unwrap().status();
        if status != 200 || std::time::Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(late.is_client_error(), "an expired URL is refused, got {late}");

    let run = user.run(&["url", &id, "--expires", "soon"]);
    assert_eq!(run.code, 2, "a bad duration is a usage error: {}", run.stderr);
}

#[test]
fn exit_codes_mean_something() {
    let (dir, server, user) = server_and_user(Some(10_000));
    let small = user.write("small.txt", b"fits");
    let id =
        user.json(&["upload", path_str(&small)])["uploaded"][0]["file"]["id"].as_str().unwrap().to_owned();

    // 4: a wrong key, with the API's message (and as JSON with --json).
    let stranger = User::new(&server.url, "cab_not_a_real_key_at_all");
    let run = stranger.run(&["ls"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.starts_with("cabinet: "), "{}", run.stderr);
    let run = stranger.run(&["quota", "--json"]);
    assert_eq!(run.code, 4);
    let error = run.error_json();
    assert_eq!(error["error"]["code"], "unauthenticated", "{error}");
    assert_eq!(error["error"]["exit_code"], 4);
    assert_eq!(run.stdout, "", "nothing on stdout when it fails");

    // 4 also for a key that may not: a read key uploading.
    let reader = Tenant::create(dir.path(), "readers", None, "read");
    let run = User::new(&server.url, &reader.key).run(&["upload", path_str(&small)]);
    assert_eq!(run.code, 4, "{}", run.stderr);

    // 3: no such file, folder, or local path.
    let missing = "file_01jdq4x7m2c8v5n3k9w6r1t0ya";
    let run = user.run(&["get", missing, "--json"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.error_json()["error"]["code"], "not_found");
    assert_eq!(user.run(&["ls", "/No/Such/Folder"]).code, 3);
    assert_eq!(user.run(&["upload", "/definitely/not/here.txt"]).code, 3);

    // 5: a conflict (restoring what is not in the trash).
    let run = user.run(&["restore", &id]);
    assert_eq!(run.code, 5, "{}", run.stderr);

    let human = user.run(&["quota"]);
    assert!(human.stdout.contains("of 9.8 KiB") && human.stdout.contains('%'), "{}", human.stdout);

    // 6: over the quota.
    let big = user.write("big.bin", &random_bytes(20_000));
    let run = user.run(&["upload", path_str(&big), "--json"]);
    assert_eq!(run.code, 6, "{}", run.stderr);
    let report: Value = serde_json::from_str(run.stdout.trim()).expect("the upload report");
    assert_eq!(report["failed"][0]["error"]["code"], "quota_exceeded", "{report}");
    assert_eq!(run.error_json()["error"]["exit_code"], 6, "stderr holds the JSON error alone");

    // 2: usage.
    assert_eq!(user.run(&["mv", &id]).code, 2, "mv without a destination or a name");
    assert_eq!(user.run(&["ls", "--no-such-flag"]).code, 2);
    assert_eq!(user.run(&["rm", "not-an-id"]).code, 2);

    // 7: nobody listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let offline = User::new(&format!("http://127.0.0.1:{port}"), &user.key);
    let run = offline.run(&["quota", "--json"]);
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert_eq!(run.error_json()["error"]["code"], "unreachable");
}

#[test]
fn settings_come_from_flags_then_environment_then_a_profile() {
    let (_dir, server, user) = server_and_user(None);
    let config = user.home.path().join("config/cabinet/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!(
            "default_profile = \"work\"\n[profiles.work]\nurl = \"{}/v1/\"\nkey = \"{}\"\n\n[profiles.broken]\nurl = \"{}\"\nkey = \"cab_wrong\"\n",
            server.url, user.key, server.url
        ),
    )
    .unwrap();
    let plain = |args: &[&str]| finish(user.command(args).output().unwrap());

    let run = plain(&["quota", "--json"]);
    assert_eq!(run.code, 0, "the default profile is used: {}", run.stderr);
    assert_eq!(plain(&["quota", "--profile", "broken"]).code, 4, "--profile picks another");
    assert_eq!(plain(&["quota", "--profile", "nope"]).code, 2, "an unknown profile is a usage error");
    let run = plain(&["quota", "--profile", "broken", "--key", &user.key]);
    assert_eq!(run.code, 0, "--key wins over the profile: {}", run.stderr);
    let mut with_env = user.command(&["quota", "--profile", "work"]);
    with_env.env("CABINET_KEY", "cab_wrong_from_env");
    assert_eq!(finish(with_env.output().unwrap()).code, 4, "CABINET_KEY wins over the profile");

    std::fs::remove_file(&config).unwrap();
    let run = plain(&["quota"]);
    assert_eq!(run.code, 2, "no server configured: {}", run.stderr);
    assert!(run.stderr.contains("CABINET_URL"), "{}", run.stderr);
}

#[test]
fn a_large_file_above_the_threshold_goes_in_parts_and_arrives_whole_and_verified() {
    let (_dir, _server, user) = server_and_user(None);
    let bytes = random_bytes(11 * 1024 * 1024 + 5);
    let source = user.write("large.bin", &bytes);
    let uploaded =
        user.json(&["upload", path_str(&source), "--multipart-threshold", "1MiB", "--part-size", "5MiB"]);
    let done = &uploaded["uploaded"][0];
    assert_eq!(done["file"]["sha256"], sha256_hex(&bytes).as_str(), "{uploaded}");
    assert_eq!(done["multipart"], true, "sent in parts: {uploaded}");
    assert_eq!(done["parts_total"], 3);
    assert_eq!(done["parts_sent"], 3);
    assert_eq!(done["resumed"], false);
    assert_eq!(done["file"]["size"], bytes.len() as u64);
    let state =
        std::fs::read_to_string(user.home.path().join("state/cabinet/uploads.json")).unwrap_or_default();
    assert!(!state.contains(done["upload_id"].as_str().unwrap()), "a finished upload is forgotten: {state}");
}

/// The server offers multipart upload sessions (`"multipart": true` answered with a `multipart`
/// object), which the resume tests rely on: without them they would prove nothing.
async fn assert_server_has_multipart(user: &User) {
    let response = http_client()
        .post(format!("{}/v1/uploads", user.url))
        .bearer_auth(&user.key)
        .json(&serde_json::json!({"name": "probe.bin", "size": 6 * 1024 * 1024, "multipart": true, "part_size": 5 * 1024 * 1024}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let ticket: Value = response.json().await.unwrap();
    let id = ticket["id"].as_str().unwrap().to_owned();
    let _ = http_client().delete(format!("{}/v1/uploads/{id}", user.url)).bearer_auth(&user.key).send().await;
    assert!(ticket["multipart"].is_object(), "a multipart ticket: {ticket}");
}

async fn parts_received(user: &User, upload_id: &str) -> Vec<u64> {
    let listed: Value = http_client()
        .get(format!("{}/v1/uploads/{upload_id}/parts", user.url))
        .bearer_auth(&user.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut numbers: Vec<u64> =
        listed["parts"].as_array().into_iter().flatten().filter_map(|p| p["part_number"].as_u64()).collect();
    numbers.sort();
    numbers
}

/// Starts `cabinet upload ARGS` slowed to `rate` (so it can be stopped part-way, like a dropped
/// connection or a ^C would), kills it once the server holds `min_parts` parts, and returns the
/// upload's id and the parts the server kept.
async fn interrupt_after_parts(
    user: &User,
    args: &[&str],
    rate: &str,
    min_parts: usize,
) -> (String, Vec<u64>) {
    let mut slow = user.command(args);
    slow.args(["--limit-rate", rate, "--json"]).env("CABINET_URL", &user.url).env("CABINET_KEY", &user.key);
    let mut child = slow.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let state_file = user.home.path().join("state/cabinet/uploads.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let upload_id = loop {
        assert!(std::time::Instant::now() < deadline, "the client never recorded its upload");
        let state: Value = std::fs::read(&state_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Value::Null);
        if let Some(id) = state["uploads"][0]["upload_id"].as_str() {
            break id.to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    while parts_received(user, &upload_id).await.len() < min_parts {
        assert!(std::time::Instant::now() < deadline, "the parts never arrived");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // A part whose last bytes were already out may still be recorded: wait until two looks, a
    // moment apart, agree.
    let mut parts = parts_received(user, &upload_id).await;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let again = parts_received(user, &upload_id).await;
        if again == parts {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the parts never settled");
        parts = again;
    }
    (upload_id, parts)
}

#[tokio::test]
async fn an_interrupted_multipart_upload_resumes_and_sends_only_the_missing_parts() {
    let (_dir, _server, user) = server_and_user(None);
    assert_server_has_multipart(&user).await;
    const PART: usize = 5 * 1024 * 1024;
    let bytes = random_bytes(5 * PART + 1234);
    let source = user.write("huge.bin", &bytes);
    let args =
        ["upload", path_str(&source), "--multipart-threshold", "5MiB", "--part-size", "5MiB", "--jobs", "1"];

    let (upload_id, before) = interrupt_after_parts(&user, &args, "8MiB", 2).await;
    assert!(before.len() >= 2 && before.len() < 6, "stopped part-way: {before:?}");

    let resumed = user.json(&args);
    let done = &resumed["uploaded"][0];
    assert_eq!(done["upload_id"], upload_id.as_str(), "the same upload went on: {resumed}");
    assert_eq!(done["resumed"], true);
    assert_eq!(done["parts_total"], 6);
    assert_eq!(done["parts_skipped"], before.len() as u64, "{resumed}");
    assert_eq!(done["parts_sent"], 6 - before.len() as u64, "only the missing parts were sent: {resumed}");
    assert_eq!(done["file"]["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(done["file"]["size"], bytes.len() as u64);
    let state = std::fs::read_to_string(user.home.path().join("state/cabinet/uploads.json")).unwrap();
    assert!(!state.contains(&upload_id), "a finished upload is forgotten: {state}");
}

#[tokio::test]
async fn an_upload_that_ended_on_the_server_meanwhile_is_started_over() {
    let (_dir, _server, user) = server_and_user(None);
    assert_server_has_multipart(&user).await;
    let bytes = random_bytes(2 * 5 * 1024 * 1024 + 10);
    let source = user.write("again.bin", &bytes);
    let args =
        ["upload", path_str(&source), "--multipart-threshold", "5MiB", "--part-size", "5MiB", "--jobs", "1"];
    let (upload_id, before) = interrupt_after_parts(&user, &args, "4MiB", 1).await;
    assert!(!before.is_empty() && before.len() < 3, "{before:?}");
    let cancelled: Value = http_client()
        .delete(format!("{}/v1/uploads/{upload_id}", user.url))
        .bearer_auth(&user.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["status"], "FAILED", "{cancelled}");

    let again = user.json(&args);
    let done = &again["uploaded"][0];
    assert_ne!(done["upload_id"], upload_id.as_str(), "a new upload: {again}");
    assert_eq!(done["resumed"], false);
    assert_eq!(done["parts_skipped"], 0);
    assert_eq!(done["parts_sent"], 3);
    assert_eq!(done["file"]["sha256"], sha256_hex(&bytes).as_str());
}
