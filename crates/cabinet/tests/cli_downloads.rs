//! `cabinet get`: an interrupted download resumes from its own partial file (tracked beside it),
//! a file it did not write is never removed or overwritten without `--force`, and the whole
//! file's SHA-256 is checked before it takes its name. The real binary against a real server.

use crate::cli_user;

use std::process::Stdio;
use std::time::{Duration, Instant};

use cli_user::{path_str, random_bytes, server_and_user, sha256_hex};

#[test]
fn an_interrupted_download_resumes_from_its_own_partial_file() {
    let (_dir, _server, user) = server_and_user(None);
    let bytes = random_bytes(4 * 1024 * 1024 + 17);
    let source = user.write("big.bin", &bytes);
    let id =
        user.json(&["upload", path_str(&source)])["uploaded"][0]["file"]["id"].as_str().unwrap().to_owned();
    let out_dir = user.home.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let target = out_dir.join("big.bin");
    let partial = out_dir.join("big.bin.cabinet-partial");
    let sidecar = out_dir.join("big.bin.cabinet-partial.json");

    // Slowed down, and killed once a megabyte is on disk: like a dropped connection or a ^C.
    let mut slow = user.command(&["get", &id, "-o", path_str(&out_dir), "--limit-rate", "1MiB"]);
    slow.env("CABINET_URL", &user.url).env("CABINET_KEY", &user.key);
    let mut child = slow.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) < 1024 * 1024 {
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!target.exists(), "the file takes its name only when it is whole");
    assert!(sidecar.exists(), "the partial file says whose it is");
    let kept = std::fs::metadata(&partial).unwrap().len();

    let got = user.json(&["get", &id, "-o", path_str(&out_dir)]);
    assert_eq!(got["path"], path_str(&target), "a folder as -o keeps the file's name");
    let resumed_from = got["resumed_from"].as_u64().unwrap();
    assert!(resumed_from >= 1024 * 1024 && resumed_from >= kept, "resumed at {resumed_from}: {got}");
    assert_eq!(std::fs::read(&target).unwrap(), bytes);
    assert!(!partial.exists() && !sidecar.exists(), "nothing left beside it");

    // Once there, getting it again changes nothing.
    let again = user.json(&["get", &id, "-o", path_str(&target)]);
    assert_eq!(again["already_there"], true, "{again}");
}

#[test]
fn get_never_removes_or_overwrites_a_file_it_did_not_write() {
    let (_dir, _server, user) = server_and_user(None);
    let bytes = random_bytes(300_000);
    let source = user.write("report.bin", &bytes);
    let id =
        user.json(&["upload", path_str(&source)])["uploaded"][0]["file"]["id"].as_str().unwrap().to_owned();
    let out_dir = user.home.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let target = out_dir.join("report.bin");

    // An unrelated, shorter file with that name: it stays as it was.
    std::fs::write(&target, b"my own notes").unwrap();
    let run = user.run(&["get", &id, "-o", path_str(&out_dir)]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    assert_eq!(std::fs::read(&target).unwrap(), b"my own notes");

    // Someone else's file where the partial file would go: left alone too.
    let other_target = out_dir.join("elsewhere.bin");
    let in_the_way = out_dir.join("elsewhere.bin.cabinet-partial");
    std::fs::write(&in_the_way, b"not cabinet's").unwrap();
    let run = user.run(&["get", &id, "-o", path_str(&other_target)]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert_eq!(std::fs::read(&in_the_way).unwrap(), b"not cabinet's");

    // --force overwrites the target, with the checked bytes.
    let got = user.json(&["get", &id, "-o", path_str(&target), "--force"]);
    assert_eq!(got["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(std::fs::read(&target).unwrap(), bytes);

    // A partial file of its own with bad bytes: the check fails, it is removed, the next run
    // fetches it whole.
    let fresh = out_dir.join("fresh.bin");
    let partial = out_dir.join("fresh.bin.cabinet-partial");
    let sidecar = out_dir.join("fresh.bin.cabinet-partial.json");
    user.json(&["get", &id, "-o", path_str(&fresh)]);
    std::fs::remove_file(&fresh).unwrap();
    std::fs::write(&partial, vec![0u8; 1000]).unwrap();
    let record = serde_json::json!({"server": user.url, "file_id": id, "sha256": sha256_hex(&bytes), "size": bytes.len()});
    std::fs::write(&sidecar, record.to_string()).unwrap();
    let run = user.run(&["get", &id, "-o", path_str(&fresh)]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("sha256"), "{}", run.stderr);
    assert!(!partial.exists() && !sidecar.exists() && !fresh.exists(), "a corrupt download is not kept");
    let got = user.json(&["get", &id, "-o", path_str(&fresh)]);
    assert_eq!(got["resumed_from"], 0);
    assert_eq!(std::fs::read(&fresh).unwrap(), bytes);

    // -o - writes the bytes to stdout.
    let mut command = user.command(&["get", &id, "-o", "-"]);
    command.env("CABINET_URL", &user.url).env("CABINET_KEY", &user.key);
    let output = command.output().unwrap();
    assert!(output.status.success());
    assert_eq!(sha256_hex(&output.stdout), sha256_hex(&bytes));
}
