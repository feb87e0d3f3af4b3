//! `cabinet admin migrate-store`: 1,000 files in three workspaces move from SQLite and a local
//! folder to PostgreSQL and S3. The first run starts while the old server still serves and is
//! killed midway; the old server goes on changing things, stops, and a second run finishes the
//! move and carries the changes. Then the new deployment serves every file with the same JSON
//! (ids, folders, tags, favorites, trash, public URLs) and bytes, a signed URL the old one
//! handed out still works, `cabinet admin check` is clean there, a third run changes nothing, and
//! a database that is another deployment is refused.

use crate::process;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use process::{admin, admin_json, cabinet_binary, http_client, ServerProcess, Tenant};
use serde_json::{json, Value};

const FILES: usize = 1_000;

/// A fresh database on the test PostgreSQL and a fresh prefix in the test bucket, or `None`
/// (failing instead when the test script said the servers are there).
async fn new_stores(label: &str) -> Option<(String, String)> {
    let (Ok(database), Ok(s3)) =
        (std::env::var("CABINET_TEST_DATABASE_URL"), std::env::var("CABINET_TEST_S3_URL"))
    else {
        if std::env::var("CABINET_REQUIRE_POSTGRES").as_deref() == Ok("1")
            || std::env::var("CABINET_REQUIRE_S3").as_deref() == Ok("1")
        {
            panic!(
                "migrate-store needs CABINET_TEST_DATABASE_URL and CABINET_TEST_S3_URL (dev/test sets them)"
            );
        }
        eprintln!("skipping migrate-store: no PostgreSQL or S3 test server (dev/test starts them)");
        return None;
    };
    let name = format!("{label}_{}", ulid::Ulid::new().to_string().to_lowercase());
    let admin = sqlx::PgPool::connect(&database).await.expect("test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    admin.close().await;
    let (base, _) = database.rsplit_once('/').unwrap();
    let (bucket_part, query) = s3.split_once('?').unwrap_or((&s3, ""));
    Some((format!("{base}/{name}"), format!("{}/{name}?{query}", bucket_part.trim_end_matches('/'))))
}

fn bytes_of(n: usize) -> Vec<u8> {
    // Mostly small files, and every 50th of 256 KiB, so copying the objects takes long enough to be
    // cut in the middle.
    let len = if n.is_multiple_of(50) { 256 * 1024 + n } else { (n * 37) % 4000 + 1 };
    (0..len).map(|i| (i * 31 + n * 7) as u8).collect()
}

struct Workspace {
    key: String,
    folders: Vec<Option<String>>,
}

async fn send(request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {body}");
    body
}

async fn upload(http: &reqwest::Client, base: &str, ws: &Workspace, n: usize) -> String {
    let bytes = bytes_of(n);
    let folder = &ws.folders[n % ws.folders.len()];
    let ticket = send(
        http.post(format!("{base}/v1/uploads"))
            .bearer_auth(&ws.key)
            .json(&json!({"name": format!("file {n}.bin"), "size": bytes.len(), "folder_id": folder})),
    )
    .await;
    let done = send(http.put(ticket["upload_url"].as_str().unwrap()).body(bytes)).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    done["file"]["id"].as_str().unwrap().to_owned()
}

/// Every file as the server at `base` shows it, with `base` written as `BASE` (URLs name their
/// server; everything else must be equal).
async fn files_as_shown(http: &reqwest::Client, base: &str, ws: &Workspace, ids: &[String]) -> Vec<String> {
    futures::stream::iter(ids)
        .map(|id| async move {
            let file = send(http.get(format!("{base}/v1/files/{id}")).bearer_auth(&ws.key)).await;
            file.to_string().replace(base, "BASE")
        })
        .buffered(8)
        .collect()
        .await
}

fn migrate_args<'a>(database: &'a str, storage: &'a str, new_data: &'a str) -> Vec<&'a str> {
    vec![
        "migrate-store",
        "--to-database-url",
        database,
        "--to-storage",
        storage,
        "--to-data-dir",
        new_data,
        "--json",
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_moves_to_postgres_and_s3_keeping_every_id_byte_and_signed_url() {
    let Some((database, storage)) = new_stores("migrate_to").await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (data, new_data) = (dir.path().join("data"), dir.path().join("new-data"));
    let new_data_arg = new_data.to_str().unwrap().to_owned();
    let old = ServerProcess::start(&data);
    let (http, base) = (http_client(), old.url.clone());

    let mut workspaces = vec![Workspace { key: old.bootstrap_key.clone().unwrap(), folders: vec![None] }];
    for name in ["beta", "gamma"] {
        let tenant = Tenant::create(&data, name, Some(1 << 30), "admin");
        workspaces.push(Workspace { key: tenant.key, folders: vec![None] });
    }
    for ws in &mut workspaces {
        let projects = send(
            http.post(format!("{base}/v1/folders")).bearer_auth(&ws.key).json(&json!({"name": "Projects"})),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let year = send(
            http.post(format!("{base}/v1/folders"))
                .bearer_auth(&ws.key)
                .json(&json!({"name": "2026", "parent_id": projects})),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        ws.folders.extend([Some(projects), Some(year)]);
    }
    let ids: Vec<String> = futures::stream::iter(0..FILES)
        .map(|n| {
            let (http, base, ws) = (&http, &base, &workspaces[n % 3]);
            async move { upload(http, base, ws, n).await }
        })
        .buffered(8)
        .collect()
        .await;
    // Organising: tags and a caption, favorites, references, a public rule, the trash.
    for (n, id) in ids.iter().enumerate() {
        let ws = &workspaces[n % 3];
        let file = format!("{base}/v1/files/{id}");
        if n % 10 == 0 {
            send(
                http.patch(&file)
                    .bearer_auth(&ws.key)
                    .json(&json!({"tags": [format!("t{}", n % 4)], "caption": format!("no. {n}")})),
            )
            .await;
        }
        if n % 7 == 0 {
            send(http.post(format!("{file}/favorite")).bearer_auth(&ws.key)).await;
        }
        if n % 11 == 0 {
            send(
                http.post(format!("{file}/references"))
                    .bearer_auth(&ws.key)
                    .json(&json!({"kind": "page", "id": format!("p{n}")})),
            )
            .await;
        }
        if n % 17 == 0 {
            send(
                http.put(format!("{file}/access-rules"))
                    .bearer_auth(&ws.key)
                    .json(&json!({"read": "public"})),
            )
            .await;
        }
        if n % 13 == 0 && n % 11 != 0 {
            send(http.delete(&file).bearer_auth(&ws.key)).await;
        }
    }
    let link = send(
        http.get(format!("{base}/v1/files/{}/download-url?expires_in=86400", ids[1]))
            .bearer_auth(&workspaces[1].key),
    )
    .await["url"]
        .as_str()
        .unwrap()
        .to_owned();

    // The first run, while the old server serves, killed once a third of the objects are in the bucket.
    let mut first = cabinet_harness::cabinet_command(cabinet_binary())
        .arg("--data-dir")
        .arg(&data)
        .arg("admin")
        .args(migrate_args(&database, &storage, &new_data_arg))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut progress = Vec::new();
    for line in BufReader::new(first.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        progress.push(line.clone());
        let copied = line
            .strip_prefix("migrate-store: objects: ")
            .and_then(|rest| rest.split('/').next())
            .and_then(|done| done.parse::<usize>().ok());
        if copied.is_some_and(|done| done >= FILES / 3) {
            first.kill().unwrap();
            break;
        }
    }
    let status = first.wait().unwrap();
    assert!(!status.success(), "the first run finished before it could be cut: {progress:#?}");
    assert!(progress.iter().any(|l| l.contains("table files: ")), "the metadata comes first: {progress:#?}");

    // The old deployment goes on: a new file, a renamed one, one purged from the trash.
    let late = upload(&http, &base, &workspaces[2], FILES).await;
    send(
        http.patch(format!("{base}/v1/files/{}", ids[5]))
            .bearer_auth(&workspaces[2].key)
            .json(&json!({"name": "renamed.bin"})),
    )
    .await;
    let purged = &ids[13];
    assert!(http
        .delete(format!("{base}/v1/files/{purged}?permanent=true"))
        .bearer_auth(&workspaces[1].key)
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    // Each workspace's files, as the old deployment shows them last.
    let mut owned: Vec<Vec<String>> = vec![Vec::new(); 3];
    for (n, id) in ids.iter().enumerate().filter(|(_, id)| *id != purged) {
        owned[n % 3].push(id.clone());
    }
    owned[2].push(late);
    let mut before = Vec::new();
    for (ws, mine) in workspaces.iter().zip(owned) {
        let shown = files_as_shown(&http, &base, ws, &mine).await;
        before.push((mine, shown));
    }
    let mut old = old;
    old.terminate();
    old.wait_for_exit(Duration::from_secs(30)).expect("the old server stops");
    // Meanwhile the old deployment's retention pruned its oldest audit record (as its sweep does:
    // through the prune's gate); the new one, which refuses other deletes, must lose it too.
    let sqlite = sqlx::SqlitePool::connect(&format!("sqlite://{}", data.join("cabinet.db").display()))
        .await
        .expect("the old deployment's database");
    for statement in [
        "UPDATE audit_prune_gate SET horizon = 9223372036854775807",
        "DELETE FROM audit_log WHERE id = (SELECT MIN(id) FROM audit_log)",
        "UPDATE audit_prune_gate SET horizon = 0",
    ] {
        sqlx::query(statement).execute(&sqlite).await.expect(statement);
    }
    sqlite.close().await;

    // The second run finishes the move and carries what changed.
    let second = admin_json(&data, &migrate_args(&database, &storage, &new_data_arg));
    assert!(second["objects_already_there"].as_u64().unwrap() >= (FILES / 3) as u64, "{second}");
    assert!(second["objects_copied"].as_u64().unwrap() > 0, "{second}");
    let table = |report: &Value, name: &str| {
        report["tables"].as_array().unwrap().iter().find(|t| t["table"] == name).cloned().unwrap()
    };
    assert!(
        table(&second, "files")["written"].as_u64().unwrap() >= 2,
        "the late file and the rename: {second}"
    );
    assert_eq!(table(&second, "audit_log")["deleted"], 1, "the pruned audit record: {second}");
    assert!(table(&second, "files")["deleted"].as_u64().unwrap() >= 1, "the purged file: {second}");

    // The key files went with it: the signing key always, the S3 secret key when there is one.
    assert!(data.join("signing.key").exists());
    for name in ["signing.key", "s3-secret.key"] {
        if let Ok(key) = std::fs::read(data.join(name)) {
            assert_eq!(std::fs::read(new_data.join(name)).unwrap(), key, "{name}");
        }
    }

    // The new deployment: same JSON, same bytes, the old signed URL works.
    let new = ServerProcess::start_with(&new_data, &["--database-url", &database, "--storage", &storage]);
    assert!(new.bootstrap_key.is_none(), "the new database has the old workspaces");
    for (ws, (mine, shown_before)) in workspaces.iter().zip(&before) {
        let shown_after = files_as_shown(&http, &new.url, ws, mine).await;
        for (a, b) in shown_before.iter().zip(&shown_after) {
            assert_eq!(a, b, "a file differs after the move");
        }
        // Every file not in the trash, read back through the new deployment.
        let live: Vec<(String, Option<usize>)> = shown_before
            .iter()
            .map(|shown| serde_json::from_str::<Value>(shown).unwrap())
            .filter(|file| file["trashed_at"].is_null())
            .map(|file| {
                let n = file["name"]
                    .as_str()
                    .and_then(|name| name.strip_prefix("file ")?.strip_suffix(".bin")?.parse().ok());
                (file["id"].as_str().unwrap().to_owned(), n)
            })
            .collect();
        assert!(live.len() > mine.len() / 2, "most files are not in the trash");
        futures::stream::iter(&live)
            .for_each_concurrent(8, |(id, n)| {
                let (http, new) = (&http, &new);
                async move {
                    let body = http
                        .get(new.at(&format!("/v1/files/{id}/content")))
                        .bearer_auth(&ws.key)
                        .send()
                        .await
                        .unwrap();
                    assert!(body.status().is_success(), "{id}: {}", body.status());
                    let body = body.bytes().await.unwrap();
                    if let Some(n) = n {
                        assert_eq!(
                            body.as_ref(),
                            bytes_of(*n).as_slice(),
                            "{id}: other bytes after the move"
                        );
                    }
                }
            })
            .await;
    }
    let moved_link = link.replace(&base, &new.url);
    let response = http.get(&moved_link).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "the old signed URL on the new deployment: {}",
        response.status()
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), bytes_of(1).as_slice());
    drop(new);

    let check = admin(&new_data, &["check", "--json", "--database-url", &database, "--storage", &storage]);
    assert!(check.status.success(), "check after the move: {}\n{}", check.stdout, check.stderr);

    // Again: nothing to do.
    let third = admin_json(&data, &migrate_args(&database, &storage, &new_data_arg));
    assert_eq!(third["objects_copied"], 0, "{third}");
    assert!(
        third["tables"].as_array().unwrap().iter().all(|t| t["written"] == 0 && t["deleted"] == 0),
        "{third}"
    );

    // Another deployment's database is refused, untouched.
    let Some((other_database, other_storage)) = new_stores("migrate_other").await else { return };
    admin_json(
        &new_data,
        &["create-workspace", "--name", "theirs", "--json", "--database-url", &other_database],
    );
    let refused = admin(&data, &migrate_args(&other_database, &other_storage, &new_data_arg));
    assert!(!refused.status.success());
    assert!(refused.stderr.contains("which the source does not"), "{}", refused.stderr);
}
