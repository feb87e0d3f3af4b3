//! The metadata port's conformance suite: written once, run against SQLite and PostgreSQL. A
//! backend is done when it passes. PostgreSQL runs when `CABINET_TEST_DATABASE_URL` is set (the
//! test script starts one); with `CABINET_REQUIRE_POSTGRES=1` its absence is a failure.

use std::sync::Arc;

use cabinet_core::ports::{FileCursor, FileListQuery};
use cabinet_core::{
    ApiKey, ApiKeyId, Error, FailureReason, FileId, FileRecord, MetadataStore, Role, Upload, UploadId,
    UploadStatus, Workspace, WorkspaceId,
};
use chrono::{DateTime, Duration, Utc};

struct Backend {
    store: Arc<dyn MetadataStore>,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    Backend { store: cabinet_store_sql::connect(&url).await.unwrap(), _dir: Some(dir) }
}

async fn postgres() -> Option<Backend> {
    let Ok(admin_url) = std::env::var("CABINET_TEST_DATABASE_URL") else {
        if std::env::var("CABINET_REQUIRE_POSTGRES").as_deref() == Ok("1") {
            panic!("CABINET_REQUIRE_POSTGRES=1 but CABINET_TEST_DATABASE_URL is not set");
        }
        eprintln!("skipping PostgreSQL: CABINET_TEST_DATABASE_URL is not set");
        return None;
    };
    // A fresh database per test, so tests run in parallel without seeing each other.
    let name = format!("conformance_{}", ulid::Ulid::new().to_string().to_lowercase());
    let admin = sqlx::PgPool::connect(&admin_url).await.expect("connect to the test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    admin.close().await;
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    Some(Backend { store: cabinet_store_sql::connect(&format!("{base}/{name}")).await.unwrap(), _dir: None })
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $check() { super::$check(&*super::sqlite().await.store).await; })*
        }
        mod postgres {
            $(#[tokio::test] async fn $check() {
                if let Some(backend) = super::postgres().await { super::$check(&*backend.store).await; }
            })*
        }
    };
}

conformance!(
    workspaces_are_created_listed_and_unique_by_name,
    keys_are_found_by_secret_hash_and_revoked,
    reservations_never_pass_the_limit,
    racing_reservations_grant_exactly_what_fits,
    an_upload_begins_receiving_once,
    finishing_turns_the_reservation_into_a_file_once,
    failing_releases_the_reservation_once,
    expired_uploads_are_found_by_their_cutoffs,
    direct_files_are_charged_within_the_quota,
    files_page_newest_first_by_keyset,
    deleting_a_file_reclaims_its_bytes,
    every_lookup_is_scoped_to_its_workspace,
    blob_keys_in_use_are_those_of_files_and_live_uploads,
);

fn now() -> DateTime<Utc> {
    cabinet_core::clock::truncate_to_millis(Utc::now())
}

async fn workspace(store: &dyn MetadataStore, limit: Option<u64>) -> Workspace {
    let ws = Workspace {
        id: WorkspaceId::generate(),
        name: format!("ws-{}", ulid::Ulid::new()),
        limit_bytes: limit,
        max_file_bytes: None,
        used_bytes: 0,
        reserved_bytes: 0,
        created_at: now(),
    };
    store.create_workspace(&ws).await.unwrap();
    ws
}

fn upload(ws: &WorkspaceId, size: u64) -> Upload {
    let file_id = FileId::generate();
    Upload {
        workspace_id: ws.clone(),
        id: UploadId::generate(),
        name: "a.bin".into(),
        size,
        declared_mime: Some("application/octet-stream".into()),
        sha256: None,
        folder_id: None,
        status: UploadStatus::Waiting,
        failure_reason: None,
        blob_key: format!("{ws}/{file_id}"),
        file_id,
        created_at: now(),
        updated_at: now(),
        expires_at: now() + Duration::hours(1),
    }
}

fn file_of(upload: &Upload, at: DateTime<Utc>) -> FileRecord {
    FileRecord {
        workspace_id: upload.workspace_id.clone(),
        id: upload.file_id.clone(),
        name: upload.name.clone(),
        mime_type: "text/plain".into(),
        size: upload.size,
        sha256: "0".repeat(64),
        folder_id: None,
        blob_key: upload.blob_key.clone(),
        created_at: at,
        updated_at: at,
    }
}

fn direct_file(ws: &WorkspaceId, size: u64, at: DateTime<Utc>) -> FileRecord {
    let id = FileId::generate();
    FileRecord {
        workspace_id: ws.clone(),
        blob_key: format!("{ws}/{id}"),
        id,
        name: "direct.txt".into(),
        mime_type: "text/plain".into(),
        size,
        sha256: "1".repeat(64),
        folder_id: None,
        created_at: at,
        updated_at: at,
    }
}

async fn ledger(store: &dyn MetadataStore, ws: &WorkspaceId) -> (u64, u64) {
    let ws = store.get_workspace(ws).await.unwrap();
    (ws.used_bytes, ws.reserved_bytes)
}

async fn workspaces_are_created_listed_and_unique_by_name(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(1000)).await;
    assert_eq!(store.get_workspace(&ws.id).await.unwrap(), ws);
    assert!(store.list_workspaces().await.unwrap().contains(&ws));
    let twin = Workspace { id: WorkspaceId::generate(), ..ws.clone() };
    let err = store.create_workspace(&twin).await.unwrap_err();
    assert_eq!(err.code(), "workspace_exists");
    assert!(matches!(store.get_workspace(&WorkspaceId::generate()).await, Err(Error::NotFound(_))));
}

async fn keys_are_found_by_secret_hash_and_revoked(store: &dyn MetadataStore) {
    let a = workspace(store, None).await;
    let b = workspace(store, None).await;
    let key = ApiKey {
        id: ApiKeyId::generate(),
        name: Some("ci".into()),
        role: Role::Write,
        workspaces: vec![b.id.clone(), a.id.clone()],
        hint: "abcd".into(),
        created_at: now(),
        revoked_at: None,
    };
    store.create_api_key(&key, "hash-1").await.unwrap();
    assert_eq!(store.find_api_key("hash-1").await.unwrap(), Some(key.clone()));
    assert_eq!(store.find_api_key("hash-2").await.unwrap(), None);
    assert_eq!(store.list_api_keys(&a.id).await.unwrap(), vec![key.clone()]);
    let first = now();
    store.revoke_api_key(&key.id, first).await.unwrap();
    store.revoke_api_key(&key.id, first + Duration::hours(1)).await.unwrap();
    assert_eq!(store.find_api_key("hash-1").await.unwrap().unwrap().revoked_at, Some(first));
    assert!(matches!(store.revoke_api_key(&ApiKeyId::generate(), first).await, Err(Error::NotFound(_))));
}

async fn reservations_never_pass_the_limit(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(100)).await;
    store.insert_upload_reserving(&upload(&ws.id, 60)).await.unwrap();
    store.insert_upload_reserving(&upload(&ws.id, 40)).await.unwrap();
    let over = upload(&ws.id, 1);
    match store.insert_upload_reserving(&over).await {
        Err(Error::QuotaExceeded { requested: 1, available: 0 }) => {}
        other => panic!("expected a quota error, got {other:?}"),
    }
    assert!(matches!(store.get_upload(&ws.id, &over.id).await, Err(Error::NotFound(_))));
    assert_eq!(ledger(store, &ws.id).await, (0, 100));
    let unlimited = workspace(store, None).await;
    store.insert_upload_reserving(&upload(&unlimited.id, 1 << 50)).await.unwrap();
}

async fn racing_reservations_grant_exactly_what_fits(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(20 * 1000)).await;
    let attempts = (0..50).map(|_| {
        let upload = upload(&ws.id, 1000);
        async move { store.insert_upload_reserving(&upload).await }
    });
    let results = futures::future::join_all(attempts).await;
    let granted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(granted, 20);
    assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|e| e.code() == "quota_exceeded"));
    assert_eq!(ledger(store, &ws.id).await, (0, 20_000));
}

async fn an_upload_begins_receiving_once(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let up = upload(&ws.id, 5);
    store.insert_upload_reserving(&up).await.unwrap();
    assert!(store.begin_receiving(&ws.id, &up.id, now()).await.unwrap());
    assert!(!store.begin_receiving(&ws.id, &up.id, now()).await.unwrap());
    assert_eq!(store.get_upload(&ws.id, &up.id).await.unwrap().status, UploadStatus::Uploading);
    assert_eq!(store.receiving_uploads(10).await.unwrap(), vec![(ws.id.clone(), up.id.clone())]);
}

async fn finishing_turns_the_reservation_into_a_file_once(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(1000)).await;
    let up = upload(&ws.id, 300);
    store.insert_upload_reserving(&up).await.unwrap();
    let file = file_of(&up, now());
    assert!(store.finish_upload(&ws.id, &up.id, &file).await.unwrap());
    assert_eq!(ledger(store, &ws.id).await, (300, 0));
    assert_eq!(store.get_file(&ws.id, &file.id).await.unwrap(), file);
    assert_eq!(store.get_upload(&ws.id, &up.id).await.unwrap().status, UploadStatus::Success);
    assert!(!store.finish_upload(&ws.id, &up.id, &file).await.unwrap());
    assert!(!store.fail_upload(&ws.id, &up.id, FailureReason::Expired, now()).await.unwrap());
    assert_eq!(ledger(store, &ws.id).await, (300, 0));
}

async fn failing_releases_the_reservation_once(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(1000)).await;
    let up = upload(&ws.id, 300);
    store.insert_upload_reserving(&up).await.unwrap();
    assert!(store.fail_upload(&ws.id, &up.id, FailureReason::ChecksumMismatch, now()).await.unwrap());
    assert!(!store.fail_upload(&ws.id, &up.id, FailureReason::Expired, now()).await.unwrap());
    let failed = store.get_upload(&ws.id, &up.id).await.unwrap();
    assert_eq!(
        (failed.status, failed.failure_reason),
        (UploadStatus::Failed, Some(FailureReason::ChecksumMismatch))
    );
    assert_eq!(ledger(store, &ws.id).await, (0, 0));
    assert!(!store.finish_upload(&ws.id, &up.id, &file_of(&up, now())).await.unwrap());
    assert!(matches!(store.get_file(&ws.id, &up.file_id).await, Err(Error::NotFound(_))));
}

async fn expired_uploads_are_found_by_their_cutoffs(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let t = now();
    let mut waiting = upload(&ws.id, 1);
    waiting.expires_at = t - Duration::minutes(1);
    let mut receiving = upload(&ws.id, 1);
    receiving.expires_at = t - Duration::minutes(1);
    let fresh = upload(&ws.id, 1);
    for up in [&waiting, &receiving, &fresh] {
        store.insert_upload_reserving(up).await.unwrap();
    }
    store.begin_receiving(&ws.id, &receiving.id, t).await.unwrap();
    let found = store.expired_uploads(t, t - Duration::hours(1), 100).await.unwrap();
    assert_eq!(found, vec![(ws.id.clone(), waiting.id.clone())]);
    let mut found = store.expired_uploads(t, t, 100).await.unwrap();
    found.sort();
    let mut expected = vec![(ws.id.clone(), waiting.id.clone()), (ws.id.clone(), receiving.id.clone())];
    expected.sort();
    assert_eq!(found, expected);
}

async fn direct_files_are_charged_within_the_quota(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(100)).await;
    store.insert_upload_reserving(&upload(&ws.id, 50)).await.unwrap();
    store.insert_file_charging(&direct_file(&ws.id, 50, now())).await.unwrap();
    let over = direct_file(&ws.id, 1, now());
    assert_eq!(store.insert_file_charging(&over).await.unwrap_err().code(), "quota_exceeded");
    assert!(matches!(store.get_file(&ws.id, &over.id).await, Err(Error::NotFound(_))));
    assert_eq!(ledger(store, &ws.id).await, (50, 50));
}

async fn files_page_newest_first_by_keyset(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let t = now();
    let mut expected = Vec::new();
    for i in 0..5 {
        // Two files share each timestamp, so the id breaks ties.
        for _ in 0..2 {
            let file = direct_file(&ws.id, 1, t + Duration::milliseconds(i));
            store.insert_file_charging(&file).await.unwrap();
            expected.push(file);
        }
    }
    expected.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_files(&ws.id, &FileListQuery { limit: 3, after: after.clone() }).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|f: &FileRecord| FileCursor { created_at: f.created_at, id: f.id.clone() });
        seen.extend(page);
    }
    assert_eq!(seen, expected);
}

async fn deleting_a_file_reclaims_its_bytes(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(100)).await;
    let file = direct_file(&ws.id, 70, now());
    store.insert_file_charging(&file).await.unwrap();
    assert_eq!(store.usage(&ws.id).await.unwrap(), cabinet_core::Usage { total_size: 70, file_count: 1 });
    assert_eq!(store.delete_file(&ws.id, &file.id).await.unwrap(), file);
    assert_eq!(ledger(store, &ws.id).await, (0, 0));
    assert_eq!(store.usage(&ws.id).await.unwrap(), cabinet_core::Usage { total_size: 0, file_count: 0 });
    assert!(matches!(store.delete_file(&ws.id, &file.id).await, Err(Error::NotFound(_))));
}

async fn every_lookup_is_scoped_to_its_workspace(store: &dyn MetadataStore) {
    let mine = workspace(store, None).await;
    let theirs = workspace(store, None).await;
    let up = upload(&mine.id, 10);
    store.insert_upload_reserving(&up).await.unwrap();
    let file = direct_file(&mine.id, 10, now());
    store.insert_file_charging(&file).await.unwrap();
    assert!(matches!(store.get_upload(&theirs.id, &up.id).await, Err(Error::NotFound(_))));
    assert!(matches!(store.get_file(&theirs.id, &file.id).await, Err(Error::NotFound(_))));
    assert!(matches!(store.delete_file(&theirs.id, &file.id).await, Err(Error::NotFound(_))));
    assert!(!store.begin_receiving(&theirs.id, &up.id, now()).await.unwrap());
    assert!(!store.fail_upload(&theirs.id, &up.id, FailureReason::Cancelled, now()).await.unwrap());
    assert!(store
        .list_files(&theirs.id, &FileListQuery { limit: 10, after: None })
        .await
        .unwrap()
        .is_empty());
    assert_eq!(ledger(store, &mine.id).await, (10, 10));
    assert_eq!(ledger(store, &theirs.id).await, (0, 0));
}

async fn blob_keys_in_use_are_those_of_files_and_live_uploads(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let live = upload(&ws.id, 1);
    let failed = upload(&ws.id, 1);
    store.insert_upload_reserving(&live).await.unwrap();
    store.insert_upload_reserving(&failed).await.unwrap();
    store.fail_upload(&ws.id, &failed.id, FailureReason::Cancelled, now()).await.unwrap();
    let file = direct_file(&ws.id, 1, now());
    store.insert_file_charging(&file).await.unwrap();
    let keys =
        vec![live.blob_key.clone(), failed.blob_key.clone(), file.blob_key.clone(), "ws_x/none".into()];
    let owned = store.blob_keys_in_use(&keys).await.unwrap();
    assert_eq!(owned, [live.blob_key, file.blob_key].into_iter().collect());
}
