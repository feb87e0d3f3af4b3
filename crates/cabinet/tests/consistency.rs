//! `cabinet admin check` finds what does not add up between the stores — orphan objects, files
//! whose object is gone, a drifted quota ledger — and `--repair` fixes what can be fixed safely.

use crate::process;

use std::path::Path;

use process::{admin, http_client, ServerProcess, Tenant};
use serde_json::{json, Value};

async fn upload(server: &ServerProcess, tenant: &Tenant, name: &str, bytes: &[u8]) -> Value {
    let http = http_client();
    let ticket: Value = http
        .post(server.at("/v1/uploads"))
        .bearer_auth(&tenant.key)
        .json(&json!({"name": name, "size": bytes.len()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    http.put(ticket["upload_url"].as_str().unwrap())
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn check(dir: &Path, repair: bool) -> (bool, Value) {
    let mut args = vec!["check", "--json"];
    if repair {
        args.push("--repair");
    }
    let run = admin(dir, &args);
    (
        run.status.success(),
        serde_json::from_str(run.stdout.trim()).unwrap_or_else(|_| panic!("{}\n{}", run.stdout, run.stderr)),
    )
}

#[tokio::test]
async fn check_reports_orphans_missing_objects_and_ledger_drift_and_repair_fixes_what_it_safely_can() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::create(dir.path(), "acme", Some(1_000_000), "write");
    let server = ServerProcess::start(dir.path());
    let kept = upload(&server, &tenant, "kept.txt", b"kept bytes").await;
    let lost = upload(&server, &tenant, "lost.txt", b"lost bytes").await;
    drop(server);

    let (clean, report) = check(dir.path(), false);
    assert!(clean, "a fresh store is consistent: {report}");

    let ws = tenant.workspace_id.as_str();
    let objects = dir.path().join("blobs/objects").join(ws);
    std::fs::write(objects.join("file_01jdq4x7m2c8v5n3k9w6r1t0ya"), b"nobody owns me").unwrap();
    // Not of a shape Cabinet writes (an operator's, another deployment's prefix): never judged.
    let foreign = dir.path().join("blobs/objects/other-deployment").join(ws);
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("file_01jdq4x7m2c8v5n3k9w6r1t0yb"), b"someone else's").unwrap();
    let lost_id = lost["file"]["id"].as_str().unwrap();
    std::fs::remove_file(objects.join(lost_id)).unwrap();
    let db = format!("sqlite://{}", dir.path().join("cabinet.db").display());
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    sqlx::query("UPDATE workspaces SET used_bytes = used_bytes + 999 WHERE id = ?")
        .bind(ws)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let (clean, report) = check(dir.path(), false);
    assert!(!clean);
    assert_eq!(report["orphan_objects"], json!([format!("{ws}/file_01jdq4x7m2c8v5n3k9w6r1t0ya")]));
    assert_eq!(report["files_without_objects"][0][0], lost_id);
    assert_eq!(report["ledger_drift"][0]["recorded_used"], 20 + 999);
    assert_eq!(report["ledger_drift"][0]["actual_used"], 20);
    assert!(
        objects.join("file_01jdq4x7m2c8v5n3k9w6r1t0ya").exists(),
        "a check without --repair changes nothing"
    );

    let (_, repaired) = check(dir.path(), true);
    assert_eq!(repaired["repaired"], true);
    let (clean, after) = check(dir.path(), false);
    assert!(!clean, "a missing object can only be reported");
    assert_eq!(after["orphan_objects"], json!([]));
    assert_eq!(after["ledger_drift"], json!([]));
    assert_eq!(after["files_without_objects"][0][0], lost_id);
    assert!(
        objects.join(kept["file"]["id"].as_str().unwrap()).exists(),
        "repair never touches owned objects"
    );
    assert!(foreign.join("file_01jdq4x7m2c8v5n3k9w6r1t0yb").exists(), "nor objects that are not Cabinet's");
}

#[test]
fn migrate_applies_the_schema_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let run = admin(dir.path(), &["migrate", "--json"]);
        assert!(run.status.success(), "{}", run.stderr);
        assert_eq!(serde_json::from_str::<Value>(run.stdout.trim()).unwrap(), json!({"migrated": true}));
    }
}

/// A store of more objects than the sweep after a restart judges before serving: the server gets
/// the rest of the sweep to finish while it serves, which removes every orphan and nothing owned.
#[tokio::test]
async fn a_store_larger_than_the_sweep_before_serving_is_swept_whole_while_serving() {
    use crate::support::TestServer;
    use cabinet_core::maintenance::OBJECTS_SWEPT_BEFORE_SERVING;

    let server = TestServer::spawn().await;
    let bytes = b"owned bytes".as_slice();
    let kept = server.upload(&server.tenant, "kept.txt", bytes).await;
    let kept_id = kept["file"]["id"].as_str().unwrap().to_owned();
    let objects = server.dir.path().join("blobs/objects").join(server.tenant.workspace.as_str());
    // More than two pages of the store's listing (500 keys a page).
    const ORPHANS: u64 = 1_200;
    for _ in 0..ORPHANS {
        std::fs::write(objects.join(cabinet_core::FileId::generate().as_str()), b"nobody's").unwrap();
    }
    assert_eq!(server.stored_blobs() as u64, ORPHANS + 1);

    // One object judged before serving: the first page of the listing is, and the rest is left.
    let (report, rest) = server.cabinet.recover_before_serving(1).await.unwrap();
    assert!(report.orphan_sweep_continues, "{report:?}");
    let rest = rest.expect("the rest of the sweep, for while the server serves");
    let before = report.orphan_blobs_removed;
    assert!((499..=500).contains(&before), "one page of 500 keys was judged: {report:?}");
    assert_eq!(server.stored_blobs() as u64, ORPHANS + 1 - before);
    // It serves meanwhile.
    let (status, _) = server
        .send(server.request(reqwest::Method::GET, &format!("/v1/files/{kept_id}"), &server.tenant.key))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);

    let after = rest.finish().await.unwrap();
    assert_eq!(before + after, ORPHANS, "every orphan, once");
    assert_eq!(server.stored_blobs(), 1, "only the owned object is left");
    let content = server
        .request(reqwest::Method::GET, &format!("/v1/files/{kept_id}/content"), &server.tenant.key)
        .send()
        .await
        .unwrap();
    assert_eq!(content.status(), reqwest::StatusCode::OK);
    assert_eq!(content.bytes().await.unwrap().as_ref(), bytes);

    // A store within the bound is swept whole before serving, as is every store by
    // `recover_after_restart`.
    std::fs::write(objects.join(cabinet_core::FileId::generate().as_str()), b"nobody's").unwrap();
    let (report, rest) = server.cabinet.recover_before_serving(OBJECTS_SWEPT_BEFORE_SERVING).await.unwrap();
    assert!(rest.is_none() && !report.orphan_sweep_continues, "{report:?}");
    assert_eq!(report.orphan_blobs_removed, 1);
    assert_eq!(server.stored_blobs(), 1);
}
