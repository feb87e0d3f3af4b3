//! `cabinet admin backup` and `restore` on the embedded store, while a server uploads: the
//! restored data folder serves every backed-up file with the same JSON and bytes, the same keys
//! and signed URLs work, `cabinet admin check` is clean, and a second backup copies only what is
//! new.

use crate::process;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use process::{admin, admin_json, admin_with_env, http_client, ServerProcess};
use serde_json::{json, Value};

/// The fields of a file that must come back as they were (URLs name the server, so they differ).
const KEPT_FIELDS: [&str; 9] =
    ["id", "name", "size", "sha256", "mime_type", "folder_id", "tags", "created_at", "is_favorite"];

async fn upload(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    name: &str,
    bytes: Vec<u8>,
    folder: Option<&str>,
) -> Value {
    let ticket: Value = http
        .post(format!("{base}/v1/uploads"))
        .bearer_auth(key)
        .json(&json!({"name": name, "size": bytes.len(), "folder_id": folder}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = ticket["upload_url"].as_str().unwrap_or_else(|| panic!("no upload URL: {ticket}"));
    let done: Value = http.put(url).body(bytes).send().await.unwrap().json().await.unwrap();
    assert_eq!(done["status"], "SUCCESS", "{done}");
    done["file"].clone()
}

async fn get(http: &reqwest::Client, url: String, key: &str) -> reqwest::Response {
    http.get(url).bearer_auth(key).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_uploads_restores_every_file_its_keys_and_its_signed_urls() {
    let dir = tempfile::tempdir().unwrap();
    let (data, backups, restored) =
        (dir.path().join("data"), dir.path().join("backups"), dir.path().join("restored"));
    let server = ServerProcess::start(&data);
    let key = server.bootstrap_key.clone().unwrap();
    let http = http_client();
    let base = server.url.clone();

    let folder: Value = http
        .post(format!("{base}/v1/folders"))
        .bearer_auth(&key)
        .json(&json!({"name": "Reports"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut files = Vec::new();
    for n in 0..30usize {
        let bytes: Vec<u8> = (0..(n * 997 + 1)).map(|i| (i * 31 + n) as u8).collect();
        let folder_id = (n % 2 == 0).then(|| folder["id"].as_str().unwrap());
        files.push((
            upload(&http, &base, &key, &format!("report {n}.bin"), bytes.clone(), folder_id).await,
            bytes,
        ));
    }
    // One trashed file: its object stays until purged, so it is backed up too.
    let trashed = files[3].0["id"].as_str().unwrap().to_owned();
    assert!(http
        .delete(format!("{base}/v1/files/{trashed}"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    let link: Value = get(
        &http,
        format!("{base}/v1/files/{}/download-url?expires_in=86400", files[0].0["id"].as_str().unwrap()),
        &key,
    )
    .await
    .json()
    .await
    .unwrap();

    // Uploads go on while the backup runs.
    let running = Arc::new(AtomicBool::new(true));
    let background = tokio::spawn({
        let (http, base, key, running) = (http.clone(), base.clone(), key.clone(), running.clone());
        async move {
            let mut made = 0;
            while running.load(Ordering::SeqCst) {
                upload(
                    &http,
                    &base,
                    &key,
                    &format!("meanwhile {made}.bin"),
                    vec![made as u8; 64 * 1024],
                    None,
                )
                .await;
                made += 1;
            }
            made
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let first = tokio::task::spawn_blocking({
        let (data, backups) = (data.clone(), backups.clone());
        move || admin_json(&data, &["backup", "--to", backups.to_str().unwrap(), "--json"])
    })
    .await
    .unwrap();
    running.store(false, Ordering::SeqCst);
    let made_meanwhile = background.await.unwrap();
    assert!(made_meanwhile > 0, "no upload ran during the backup");
    let in_backup = first["files"].as_u64().unwrap();
    assert!(in_backup >= 30, "{first}");
    assert_eq!(
        first["objects_copied"].as_u64().unwrap() + first["objects_already_there"].as_u64().unwrap(),
        in_backup
    );

    // Restored into an empty folder and served: the same files, keys and signed URLs.
    let refused = admin(&data, &["restore", "--from", backups.to_str().unwrap()]);
    assert!(!refused.status.success(), "a restore over a live data folder was allowed");
    assert!(refused.stderr.contains("restore only into an empty data folder"), "{}", refused.stderr);
    let report = admin_json(&restored, &["restore", "--from", backups.to_str().unwrap(), "--json"]);
    assert_eq!(report["files"], first["files"]);
    let check = admin_json(&restored, &["check", "--json"]);
    assert_eq!(check["files_without_objects"], json!([]), "{check}");
    assert_eq!(check["orphan_objects"], json!([]), "{check}");
    assert_eq!(check["ledger_drift"], json!([]), "{check}");
    let copy = ServerProcess::start(&restored);
    assert_eq!(copy.bootstrap_key, None, "the restored store was taken for an empty one");
    for (file, bytes) in &files {
        let id = file["id"].as_str().unwrap();
        let (original, restored) = (
            get(&http, server.at(&format!("/v1/files/{id}")), &key).await,
            get(&http, copy.at(&format!("/v1/files/{id}")), &key).await,
        );
        let (original, restored): (Value, Value) =
            (original.json().await.unwrap(), restored.json().await.unwrap());
        for field in KEPT_FIELDS {
            assert_eq!(original[field], restored[field], "{field} of {id}");
        }
        if id == trashed {
            assert_eq!(original["trashed_at"], restored["trashed_at"]);
            assert!(restored["trashed_at"].is_string(), "the trashed file came back live: {restored}");
            continue;
        }
        let content = get(&http, copy.at(&format!("/v1/files/{id}/content")), &key).await;
        assert_eq!(content.status(), 200);
        assert_eq!(&content.bytes().await.unwrap()[..], &bytes[..], "the bytes of {id}");
    }
    // The trashed file is in the restored trash.
    let trash: Value = get(&http, copy.at("/v1/trash"), &key).await.json().await.unwrap();
    assert!(trash["data"].as_array().unwrap().iter().any(|item| item["id"] == trashed.as_str()), "{trash}");
    // A signed URL the original server handed out works on the copy: the signing key moved too.
    let signed = link["url"].as_str().unwrap().replacen(&server.url, &copy.url, 1);
    let served = http.get(signed).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(&served.bytes().await.unwrap()[..], &files[0].1[..]);

    // A second backup copies only what is new.
    for n in 0..3usize {
        upload(&http, &base, &key, &format!("later {n}.bin"), vec![200 + n as u8; 5000], None).await;
    }
    let second = admin_json(&data, &["backup", "--to", backups.to_str().unwrap(), "--json"]);
    let copied = second["objects_copied"].as_u64().unwrap();
    // The three new files, and uploads that finished after the first snapshot was taken.
    assert!((3..=3 + made_meanwhile).contains(&copied), "{second}");
    assert!(second["objects_already_there"].as_u64().unwrap() >= in_backup, "{second}");
    assert_ne!(second["snapshot"], first["snapshot"]);
}

#[test]
fn backup_and_restore_refuse_postgres_and_s3_with_where_to_look() {
    let dir = tempfile::tempdir().unwrap();
    let run = admin(
        &dir.path().join("data"),
        &["--database-url", "postgres://nobody@127.0.0.1:1/none", "backup", "--to", "/tmp/none"],
    );
    assert!(!run.status.success());
    assert!(run.stderr.contains("pg_dump"), "{}", run.stderr);
    let run = admin_with_env(
        &dir.path().join("data"),
        &[
            "--storage",
            "s3://bucket?endpoint=http://127.0.0.1:1&region=us-east-1",
            "backup",
            "--to",
            "/tmp/none",
        ],
        &[("AWS_ACCESS_KEY_ID", "nobody"), ("AWS_SECRET_ACCESS_KEY", "nothing")],
    );
    assert!(!run.status.success());
    assert!(run.stderr.contains("versioning"), "{}", run.stderr);
}
