//! 1. A full disk: the data folder on a small tmpfs.

use super::*;

/// A small tmpfs, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("small-disk");
        std::fs::create_dir(&dir).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output();
        match output {
            Ok(output) if output.status.success() => Some(Tmpfs { dir, _parent: parent }),
            Ok(output) => {
                let why = String::from_utf8_lossy(&output.stderr).into_owned();
                assert!(!must_have_faults(), "mounting a tmpfs failed (the suite needs root): {why}");
                eprintln!("SKIPPED: mounting a tmpfs failed (the suite needs root): {why}");
                None
            }
            Err(err) => {
                assert!(!must_have_faults(), "running mount failed: {err}");
                eprintln!("SKIPPED: running mount failed: {err}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Fills the file system holding `dir` with a ballast file, leaving about `leave` bytes free.
fn ballast(dir: &Path, leave: u64) -> PathBuf {
    use std::io::Write;
    let path = dir.join("ballast");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    loop {
        let free = free_bytes(dir);
        if free <= leave + chunk.len() as u64 {
            break;
        }
        if file.write_all(&chunk).is_err() {
            break;
        }
        file.sync_data().ok();
    }
    path
}

fn free_bytes(dir: &Path) -> u64 {
    let output = Command::new("df").args(["-B1", "--output=avail"]).arg(dir).output().expect("df");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .nth(1)
        .expect("df's figure")
        .trim()
        .parse()
        .expect("a number")
}

/// 1. A full disk mid-upload: the data folder (SQLite and blobs) on a small tmpfs. Uploads that
/// run it out of space are refused cleanly with 503 (no temporary left; a signed upload waits for
/// its bytes again, a direct one releases its reservation); once space is freed the refused signed
/// URLs sent again succeed, new uploads succeed, and the files stored before are intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_uploads_cleanly_and_space_freed_lets_them_succeed_again() {
    let Some(disk) = Tmpfs::mount("16m") else { return };
    let data_dir = disk.dir.join("data");
    let tenant = Tenant::create(&data_dir, "full-disk", None, "write");
    let server = ServerProcess::start(&data_dir);
    let client = Client::new(&server, &tenant.key);

    let mut stored = Vec::new();
    for (i, size) in [1000usize, 100_000, 300_000].into_iter().enumerate() {
        match client.signed_upload(&format!("before-{i}.bin"), content(i as u8, size)).await {
            Attempt::Stored { id, sha256, bytes } => stored.push((id, sha256, bytes)),
            refused => panic!("with room to spare an upload succeeds: {refused:?}"),
        }
    }

    // Leave about 1 MiB free, then send uploads of 3 MiB by both routes.
    let ballast = ballast(&disk.dir, 1024 * 1024);
    let mut refused_uploads = Vec::new();
    for (i, route) in ["signed", "direct", "signed"].into_iter().enumerate() {
        let bytes = content(100 + i as u8, 3 * 1024 * 1024);
        let attempt = match route {
            "signed" => client.signed_upload(&format!("too-big-{i}.bin"), bytes).await,
            _ => client.direct_upload(&format!("too-big-{i}.bin"), bytes).await,
        };
        match attempt {
            Attempt::Stored { id, .. } => panic!("a 3 MiB upload onto 1 MiB of free disk was stored as {id}"),
            Attempt::Refused { upload, status, code } => {
                // The server's trouble, not the client's, and one a retry may get past: never a 500.
                assert_eq!(
                    (status, code.as_str()),
                    (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                    "a full disk is answered 503 unavailable"
                );
                println!("full disk, {route} upload: {status} {code}");
                refused_uploads.extend(upload);
            }
        }
    }
    // A multipart part and a tus PATCH that run out of space are answered the same way.
    let (parts_upload, status, body) =
        client.multipart_first_part("too-big-parts.bin", 3 * 1024 * 1024).await;
    assert_eq!(
        (status, error_code(status, &body).as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "a part onto a full disk is answered 503 unavailable: {body}"
    );
    println!("full disk, multipart part: {status}");
    let (tus_upload, status, body) = client.tus_upload(3 * 1024 * 1024).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a tus PATCH onto a full disk is answered 503: {body}"
    );
    println!("full disk, tus PATCH: {status}");
    client.cancel_upload(&parts_upload).await;
    client.cancel_upload(&tus_upload).await;
    // 503 says to retry: each refused signed upload waits again, holding its reservation, so its
    // URL may be sent again. The refused direct upload holds nothing (its own request made it:
    // a retry is a new upload). No temporary is left behind.
    let mut waiting_bytes = 0;
    for refused in &refused_uploads {
        let upload = status_once_settled(&client, &refused.id).await;
        assert_eq!(
            upload["status"], "WAITING",
            "a signed upload answered 503 waits for its bytes again: {upload}"
        );
        waiting_bytes += refused.bytes.len();
    }
    assert_eq!(refused_uploads.len(), 2, "both signed uploads were refused");
    let quota = client.get_json("/v1/quota").await;
    assert_eq!(
        quota["reserved_bytes"], waiting_bytes,
        "only the waiting uploads hold reservations; the direct one released its own: {quota}"
    );
    let used: usize = stored.iter().map(|(_, _, bytes)| bytes.len()).sum();
    assert_eq!(quota["used_bytes"], used, "{quota}");
    let temporaries = files_under(&data_dir.join("blobs").join("tmp"));
    assert!(temporaries.is_empty(), "temporaries of failed uploads are removed: {temporaries:?}");
    client.assert_all_readable(&stored).await;

    // Space freed: the refused signed URLs, sent again, succeed; new uploads succeed by both
    // routes; nothing stored before was harmed.
    std::fs::remove_file(ballast).unwrap();
    for refused in refused_uploads {
        let (status, body) = client.send(client.http.put(&refused.url).body(refused.bytes.clone())).await;
        assert_eq!((status, &body["status"]), (StatusCode::OK, &json!("SUCCESS")), "sent again: {body}");
        let sha256 = sha256_hex(&refused.bytes);
        assert_eq!(body["file"]["sha256"], sha256, "{body}");
        stored.push((body["file"]["id"].as_str().expect("a file id").to_owned(), sha256, refused.bytes));
    }
    for (i, route) in ["signed", "direct"].into_iter().enumerate() {
        let bytes = content(200 + i as u8, 2 * 1024 * 1024);
        let attempt = match route {
            "signed" => client.signed_upload(&format!("after-{i}.bin"), bytes).await,
            _ => client.direct_upload(&format!("after-{i}.bin"), bytes).await,
        };
        match attempt {
            Attempt::Stored { id, sha256, bytes } => stored.push((id, sha256, bytes)),
            refused => panic!("with space freed an upload succeeds again: {refused:?}"),
        }
    }
    client.assert_all_readable(&stored).await;
    let quota = client.get_json("/v1/quota").await;
    assert_eq!(quota["reserved_bytes"], 0, "nothing is reserved once every upload has ended: {quota}");
    let files = client.get_json("/v1/files?limit=100").await;
    assert_eq!(
        files["data"].as_array().unwrap().len(),
        stored.len(),
        "only the stored files are listed: {files}"
    );

    let log = server.log_tail();
    server.kill();
    assert_no_panic(&log);
    assert_check_clean(&data_dir);
}

/// 1b. The `cabinet` client against a full disk: a file whose `PUT` is answered 503 is sent again
/// to the same URL after the server's `Retry-After`, and stored once space is freed meanwhile; one
/// still refused after three tries is cancelled, so nothing stays reserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_sends_a_file_refused_by_a_full_disk_again_and_cancels_it_when_it_gives_up() {
    use crate::cli_user::{path_str, User};
    let Some(disk) = Tmpfs::mount("16m") else { return };
    let data_dir = disk.dir.join("data");
    let tenant = Tenant::create(&data_dir, "full-disk-client", None, "write");
    let server = ServerProcess::start(&data_dir);
    let client = Client::new(&server, &tenant.key);
    let user = User::new(&server.url, &tenant.key);
    let ballast = ballast(&disk.dir, 1024 * 1024);

    let given_up = user.write("given-up.bin", &content(31, 3 * 1024 * 1024));
    let run = tokio::task::block_in_place(|| {
        user.run(&["upload", path_str(&given_up), "--folder", "/F", "--json"])
    });
    assert_eq!(run.code, 7, "refused three times, the client exits 7 (unavailable): {}", run.stderr);
    let quota = client.get_json("/v1/quota").await;
    assert_eq!(quota["reserved_bytes"], 0, "the client cancelled the upload it gave up on: {quota}");

    // Space freed while the client waits out a refusal: its next try, to the same URL, succeeds.
    const REOPENED: &str = "upload waits for its bytes again";
    let reopened = || server.logs().matches(REOPENED).count();
    // The server writes its log in batches.
    let deadline = Instant::now() + Duration::from_secs(5);
    while reopened() < 3 {
        assert!(
            Instant::now() < deadline,
            "the upload given up on was refused three times: {}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reopened_before = reopened();
    let bytes = content(32, 3 * 1024 * 1024);
    let stored = user.write("stored.bin", &bytes);
    let stored_path = path_str(&stored).to_owned();
    let run = tokio::task::spawn_blocking(move || {
        let run = user.run(&["upload", &stored_path, "--folder", "/F", "--json"]);
        (user, run)
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while reopened() == reopened_before {
        assert!(Instant::now() < deadline, "the first try was never refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::remove_file(ballast).unwrap();
    let (_user, run) = run.await.unwrap();
    assert_eq!(run.code, 0, "sent again once space was freed: {}", run.stderr);
    let file = &run.json()["uploaded"][0]["file"];
    let id = file["id"].as_str().expect("a file id").to_owned();
    client.assert_all_readable(&[(id, sha256_hex(&bytes), bytes)]).await;
    let quota = client.get_json("/v1/quota").await;
    assert_eq!(quota["reserved_bytes"], 0, "{quota}");

    let log = server.log_tail();
    server.kill();
    assert_no_panic(&log);
    assert_check_clean(&data_dir);
}
