//! The metadata port's conformance suite: written once, run against SQLite and PostgreSQL. A
//! backend is done when it passes. PostgreSQL runs when `CABINET_TEST_DATABASE_URL` is set (the
//! test script starts one); with `CABINET_REQUIRE_POSTGRES=1` its absence is a failure.

use std::sync::Arc;

use cabinet_core::audit::{AuditActor, AuditQuery, NewAuditRecord};
use cabinet_core::listing::{
    Cursor, FileFilter, FolderFilter, FolderScope, Paging, Sort, SortKey, Sortable, Start,
};
use cabinet_core::ports::{Begin, FileChange, Finish, FolderChange, Reservation, SearchHit, TrashEntry};
use cabinet_core::s3_objects::{S3Checksum, S3Headers, S3Listed, S3Object};
use cabinet_core::{
    ApiKey, ApiKeyId, Error, FailureReason, FileId, FileRecord, FileReference, Folder, FolderId,
    MetadataStore, Role, Upload, UploadId, UploadStatus, Workspace, WorkspaceId,
};
use chrono::{DateTime, Duration, Utc};

mod files;
mod folders;
mod links;
mod search;
mod uploads;
mod webhooks;

use files::*;
use folders::*;
use links::*;
use search::*;
use uploads::*;
use webhooks::*;

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
    s3_keys_keep_their_sealed_secret_scope_and_revocation,
    a_workspace_is_deleted_with_everything_of_its_own_once_it_holds_nothing,
    a_files_details_come_with_its_references_oldest_first,
    a_pages_references_are_read_at_once_within_the_workspace,
    reservations_never_pass_the_limit,
    racing_reservations_grant_exactly_what_fits,
    reservations_committed_together_are_each_judged_by_their_quota,
    an_upload_begins_receiving_once,
    racing_uploads_of_unknown_size_reserve_only_what_the_quota_holds,
    a_multipart_upload_keeps_its_part_size_and_store_id,
    finishing_turns_the_reservation_into_a_file_once,
    uploads_finished_together_are_each_judged_on_their_own,
    uploads_finished_together_within_their_reservations_are_each_written,
    uploads_finished_together_report_each_quota_threshold_they_cross,
    uploads_begun_together_each_reserve_what_the_quota_holds,
    signed_uploads_begun_together_each_begin_once,
    direct_uploads_inserted_together_are_receiving_and_reserve_what_the_quota_holds,
    failing_releases_the_reservation_once,
    expired_uploads_are_found_by_their_cutoffs,
    uploads_failed_before_their_url_expired_are_found_once_it_has,
    direct_files_are_charged_within_the_quota,
    files_page_newest_first_by_keyset,
    a_name_query_pages_and_counts_its_matches_in_every_order,
    deleting_a_file_reclaims_its_bytes,
    every_lookup_is_scoped_to_its_workspace,
    blob_keys_in_use_are_those_of_files_and_live_uploads,
    file_blobs_pages_through_every_file_once_in_key_order,
    sibling_folders_have_distinct_names_case_insensitively,
    a_folder_cannot_move_into_its_own_subtree,
    folders_nest_no_deeper_than_the_limit_and_cycles_are_seen_at_any_depth,
    folder_paths_run_from_the_root,
    trashing_a_folder_takes_its_subtree_and_restoring_brings_it_back,
    purging_a_folder_reclaims_the_bytes_of_everything_below_it,
    file_changes_update_metadata_tags_and_place,
    lists_filter_by_folder_tags_favorite_type_and_reference,
    search_finds_files_and_folders_by_folded_substring,
    search_sees_only_its_workspace_and_follows_renames_and_deletes,
    the_unfiltered_total_follows_every_change_of_liveness,
    signing_keys_start_with_key_zero_and_retire_in_order,
    link_generations_move_on_per_workspace,
    a_workspace_keeps_its_own_cors_list_until_it_inherits_again,
    a_public_read_rule_is_seen_at_any_level_and_only_in_its_workspace,
    an_external_id_is_unique_among_the_live_files_of_a_workspace,
    tags_keep_their_spelling_and_match_whatever_the_case,
    an_upload_keeps_whether_it_awaits_its_record_and_is_found_by_its_file_id,
    a_folder_keeps_its_shared_mark,
    a_webhook_is_leased_to_one_node_at_a_time_and_its_cursor_moves_under_its_lease,
    a_webhook_lease_is_renewed_only_by_its_holder,
    acknowledged_deliveries_are_logged_with_the_cursor_they_move,
    plain_webhook_secrets_are_found_and_replaced_only_as_read,
    a_replay_takes_the_lease_from_the_node_that_was_sending,
    changing_an_endpoint_takes_the_lease_from_the_node_that_was_sending,
    events_are_pruned_oldest_first_and_never_one_an_enabled_endpoint_still_needs,
);

/// The names a workspace's search for `q` finds, files and folders, by name.
async fn found(store: &dyn MetadataStore, ws: &WorkspaceId, q: &str) -> Vec<String> {
    let q = cabinet_core::names::fold(q);
    let files = FileFilter { name_contains: Some(q.clone()), ..Default::default() };
    let folders = FolderFilter { name_contains: Some(q), ..Default::default() };
    let sort = Sort { key: SortKey::Name, descending: false };
    let (hits, total) = store.search(ws, &files, &folders, sort, &first_page(50)).await.unwrap();
    assert_eq!(total as usize, hits.len());
    hits.into_iter()
        .map(|hit| match hit {
            SearchHit::Folder(f) => format!("folder:{}", f.name),
            SearchHit::File(f) => format!("file:{}", f.name),
        })
        .collect()
}

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
        size_known: true,
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
        created_by: None,
        part_size: None,
        multipart_id: None,
        awaits_record: false,
    }
}

fn file_of(upload: &Upload, at: DateTime<Utc>) -> FileRecord {
    FileRecord::new(
        upload.workspace_id.clone(),
        upload.file_id.clone(),
        upload.name.clone(),
        "text/plain".into(),
        upload.size,
        "0".repeat(64),
        None,
        upload.blob_key.clone(),
        at,
    )
}

fn direct_file(ws: &WorkspaceId, size: u64, at: DateTime<Utc>) -> FileRecord {
    named_file(ws, "direct.txt", None, size, at)
}

fn named_file(
    ws: &WorkspaceId,
    name: &str,
    folder: Option<&FolderId>,
    size: u64,
    at: DateTime<Utc>,
) -> FileRecord {
    let id = FileId::generate();
    FileRecord::new(
        ws.clone(),
        id.clone(),
        name.into(),
        "text/plain".into(),
        size,
        "1".repeat(64),
        folder.cloned(),
        format!("{ws}/{id}"),
        at,
    )
}

fn folder(ws: &WorkspaceId, name: &str, parent: Option<&FolderId>) -> Folder {
    Folder {
        workspace_id: ws.clone(),
        id: FolderId::generate(),
        parent_id: parent.cloned(),
        name: name.into(),
        is_favorite: false,
        is_shared: false,
        trashed_at: None,
        created_at: now(),
        updated_at: now(),
    }
}

fn first_page(limit: u32) -> Paging {
    Paging { limit, start: Start::First }
}

async fn all_files(store: &dyn MetadataStore, ws: &WorkspaceId, filter: FileFilter) -> Vec<FileRecord> {
    store.list_files(ws, &filter, Sort::NEWEST_FIRST, &first_page(100)).await.unwrap().0
}

async fn ledger(store: &dyn MetadataStore, ws: &WorkspaceId) -> (u64, u64) {
    let ws = store.get_workspace(ws).await.unwrap();
    (ws.used_bytes, ws.reserved_bytes)
}
