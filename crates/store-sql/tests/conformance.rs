//! The metadata port's conformance suite: written once, run against SQLite and PostgreSQL. A
//! backend is done when it passes. PostgreSQL runs when `CABINET_TEST_DATABASE_URL` is set (the
//! test script starts one); with `CABINET_REQUIRE_POSTGRES=1` its absence is a failure.

use std::sync::Arc;

use cabinet_core::listing::{
    Cursor, FileFilter, FolderFilter, FolderScope, Paging, Sort, SortKey, Sortable, Start,
};
use cabinet_core::ports::{FileChange, FolderChange, SearchHit, TrashEntry};
use cabinet_core::{
    ApiKey, ApiKeyId, Error, FailureReason, FileId, FileRecord, FileReference, Folder, FolderId,
    MetadataStore, Role, Upload, UploadId, UploadStatus, Workspace, WorkspaceId,
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
    a_files_details_come_with_its_references_oldest_first,
    a_pages_references_are_read_at_once_within_the_workspace,
    reservations_never_pass_the_limit,
    racing_reservations_grant_exactly_what_fits,
    an_upload_begins_receiving_once,
    racing_uploads_of_unknown_size_reserve_only_what_the_quota_holds,
    a_multipart_upload_keeps_its_part_size_and_store_id,
    finishing_turns_the_reservation_into_a_file_once,
    failing_releases_the_reservation_once,
    expired_uploads_are_found_by_their_cutoffs,
    direct_files_are_charged_within_the_quota,
    files_page_newest_first_by_keyset,
    deleting_a_file_reclaims_its_bytes,
    every_lookup_is_scoped_to_its_workspace,
    blob_keys_in_use_are_those_of_files_and_live_uploads,
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

/// The search index is scoped by workspace inside (both dialects): what it holds for one
/// workspace is never found by another, and it follows renames and deletes.
async fn search_sees_only_its_workspace_and_follows_renames_and_deletes(store: &dyn MetadataStore) {
    let a = workspace(store, None).await;
    let b = workspace(store, None).await;
    store.insert_folder(&folder(&a.id, "Quarterly plans", None)).await.unwrap();
    let report = named_file(&a.id, "Quarterly report.pdf", None, 1, now());
    store.insert_file_charging(&report).await.unwrap();
    store.insert_file_charging(&named_file(&b.id, "Holiday.jpg", None, 1, now())).await.unwrap();
    assert_eq!(
        found(store, &a.id, "quarterly").await,
        vec!["folder:Quarterly plans", "file:Quarterly report.pdf"]
    );
    assert!(found(store, &b.id, "quarterly").await.is_empty());
    assert!(found(store, &b.id, "qu").await.is_empty(), "a short query scans only the workspace too");
    assert_eq!(found(store, &b.id, "holiday").await, vec!["file:Holiday.jpg"]);
    assert!(found(store, &a.id, "holiday").await.is_empty());

    let renamed = FileChange { name: Some("Annual review.pdf".into()), ..FileChange::default() };
    store.update_file(&a.id, &report.id, &renamed, now()).await.unwrap();
    assert_eq!(found(store, &a.id, "quarterly").await, vec!["folder:Quarterly plans"]);
    assert_eq!(found(store, &a.id, "annual").await, vec!["file:Annual review.pdf"]);
    store.delete_file(&a.id, &report.id, now()).await.unwrap();
    assert!(found(store, &a.id, "annual").await.is_empty());
}

/// The unfiltered list's `total` comes from a counter, not a count: it must agree with the files
/// themselves after every way a file becomes live or stops being live.
async fn the_unfiltered_total_follows_every_change_of_liveness(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let other = workspace(store, None).await;
    async fn check(store: &dyn MetadataStore, ws: &WorkspaceId, expected: u64) {
        let (page, total) =
            store.list_files(ws, &FileFilter::default(), Sort::NEWEST_FIRST, &first_page(100)).await.unwrap();
        assert_eq!(page.len() as u64, expected, "live files listed");
        assert_eq!(total, expected, "the unfiltered total");
        // A page past the end has no row to carry the total with it.
        let past_the_end = Paging { limit: 10, start: Start::Offset(expected + 5) };
        let (page, total) =
            store.list_files(ws, &FileFilter::default(), Sort::NEWEST_FIRST, &past_the_end).await.unwrap();
        assert_eq!((page.len(), total), (0, expected), "the total of a page past the end");
        // A filtered list that keeps every file is still counted, and must agree.
        let every_size = FileFilter { min_size: Some(0), ..FileFilter::default() };
        let (_, counted) =
            store.list_files(ws, &every_size, Sort::NEWEST_FIRST, &first_page(1)).await.unwrap();
        assert_eq!(counted, expected, "the counted total");
    }
    check(store, &ws.id, 0).await;
    store.insert_file_charging(&direct_file(&other.id, 1, now())).await.unwrap();
    let a = folder(&ws.id, "a", None);
    store.insert_folder(&a).await.unwrap();
    let loose = named_file(&ws.id, "loose.txt", None, 1, now());
    store.insert_file_charging(&loose).await.unwrap();
    for name in ["1.txt", "2.txt", "3.txt"] {
        store.insert_file_charging(&named_file(&ws.id, name, Some(&a.id), 1, now())).await.unwrap();
    }
    let up = upload(&ws.id, 4);
    store.insert_upload_reserving(&up).await.unwrap();
    assert!(store.finish_upload(&ws.id, &up.id, &file_of(&up, now())).await.unwrap());
    check(store, &ws.id, 5).await;
    store
        .update_file(
            &ws.id,
            &loose.id,
            &FileChange { name: Some("renamed.txt".into()), ..FileChange::default() },
            now(),
        )
        .await
        .unwrap();
    check(store, &ws.id, 5).await;
    store.trash_file(&ws.id, &loose.id, now()).await.unwrap();
    check(store, &ws.id, 4).await;
    store.trash_folder(&ws.id, &a.id, now()).await.unwrap();
    check(store, &ws.id, 1).await;
    store.restore_folder(&ws.id, &a.id, None, "a", true, now()).await.unwrap();
    check(store, &ws.id, 4).await;
    store.restore_file(&ws.id, &loose.id, None, now()).await.unwrap();
    check(store, &ws.id, 5).await;
    store.trash_file(&ws.id, &loose.id, now()).await.unwrap();
    // Deleting a trashed file leaves the live count alone; deleting a live one lowers it.
    store.delete_file(&ws.id, &loose.id, now()).await.unwrap();
    check(store, &ws.id, 4).await;
    let finished = file_of(&up, now()).id;
    store.delete_file(&ws.id, &finished, now()).await.unwrap();
    check(store, &ws.id, 3).await;
    store.purge_folder(&ws.id, &a.id, now()).await.unwrap();
    check(store, &ws.id, 0).await;
    check(store, &other.id, 1).await;
}

async fn sibling_folders_have_distinct_names_case_insensitively(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let parent = folder(&ws.id, "Parent", None);
    store.insert_folder(&parent).await.unwrap();
    store.insert_folder(&folder(&ws.id, "Reports", Some(&parent.id))).await.unwrap();
    let err = store.insert_folder(&folder(&ws.id, "REPORTS", Some(&parent.id))).await.unwrap_err();
    assert_eq!(err.code(), "name_taken");
    // The same name elsewhere, or at the root, is fine.
    store.insert_folder(&folder(&ws.id, "Reports", None)).await.unwrap();
    let err = store.insert_folder(&folder(&ws.id, "reports", None)).await.unwrap_err();
    assert_eq!(err.code(), "name_taken");
    // Other workspaces have their own names.
    let other = workspace(store, None).await;
    store.insert_folder(&folder(&other.id, "Reports", None)).await.unwrap();
}

async fn a_folder_cannot_move_into_its_own_subtree(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let a = folder(&ws.id, "a", None);
    let b = folder(&ws.id, "b", Some(&a.id));
    let c = folder(&ws.id, "c", Some(&b.id));
    for f in [&a, &b, &c] {
        store.insert_folder(f).await.unwrap();
    }
    for target in [&c.id, &b.id] {
        let change = FolderChange { parent: Some(Some(target.clone())), ..Default::default() };
        let err = store.update_folder(&ws.id, &a.id, &change, now()).await.unwrap_err();
        assert_eq!(err.code(), "folder_cycle");
    }
    let to_root = FolderChange { parent: Some(None), ..Default::default() };
    let moved = store.update_folder(&ws.id, &c.id, &to_root, now()).await.unwrap();
    assert_eq!(moved.parent_id, None);
    let under_c = FolderChange { parent: Some(Some(c.id.clone())), ..Default::default() };
    assert_eq!(
        store.update_folder(&ws.id, &a.id, &under_c, now()).await.unwrap().parent_id,
        Some(c.id.clone())
    );
}

async fn folders_nest_no_deeper_than_the_limit_and_cycles_are_seen_at_any_depth(store: &dyn MetadataStore) {
    use cabinet_core::folders::MAX_FOLDER_DEPTH;
    let ws = workspace(store, None).await;
    let mut chain: Vec<Folder> = Vec::new();
    for level in 0..MAX_FOLDER_DEPTH {
        let next = folder(&ws.id, &format!("level {level}"), chain.last().map(|f| &f.id));
        store.insert_folder(&next).await.unwrap();
        chain.push(next);
    }
    let bottom = &chain[chain.len() - 1];
    let err = store.insert_folder(&folder(&ws.id, "too deep", Some(&bottom.id))).await.unwrap_err();
    assert_eq!(err.code(), "folder_too_deep");
    let top_under_bottom = FolderChange { parent: Some(Some(bottom.id.clone())), ..Default::default() };
    let err = store.update_folder(&ws.id, &chain[0].id, &top_under_bottom, now()).await.unwrap_err();
    assert_eq!(err.code(), "folder_cycle");
    let path = store.folder_path(&ws.id, &bottom.id).await.unwrap();
    assert_eq!(path.len(), MAX_FOLDER_DEPTH as usize);
    assert_eq!(path[0].id, chain[0].id);
    // A two-level folder fits where its lower level lands exactly on the limit, not below it.
    let pair = folder(&ws.id, "pair", None);
    store.insert_folder(&pair).await.unwrap();
    store.insert_folder(&folder(&ws.id, "inner", Some(&pair.id))).await.unwrap();
    let depth = MAX_FOLDER_DEPTH as usize;
    let under =
        |parent: &Folder| FolderChange { parent: Some(Some(parent.id.clone())), ..Default::default() };
    let err = store.update_folder(&ws.id, &pair.id, &under(&chain[depth - 2]), now()).await.unwrap_err();
    assert_eq!(err.code(), "folder_too_deep");
    store.update_folder(&ws.id, &pair.id, &under(&chain[depth - 3]), now()).await.unwrap();
}

async fn folder_paths_run_from_the_root(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let a = folder(&ws.id, "a", None);
    let b = folder(&ws.id, "b", Some(&a.id));
    store.insert_folder(&a).await.unwrap();
    store.insert_folder(&b).await.unwrap();
    let path = store.folder_path(&ws.id, &b.id).await.unwrap();
    assert_eq!(path.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
    let other = workspace(store, None).await;
    assert!(matches!(store.folder_path(&other.id, &b.id).await, Err(Error::NotFound(_))));
}

async fn trashing_a_folder_takes_its_subtree_and_restoring_brings_it_back(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let a = folder(&ws.id, "a", None);
    let b = folder(&ws.id, "b", Some(&a.id));
    store.insert_folder(&a).await.unwrap();
    store.insert_folder(&b).await.unwrap();
    let in_b = named_file(&ws.id, "deep.txt", Some(&b.id), 5, now());
    store.insert_file_charging(&in_b).await.unwrap();
    assert!(!store.folder_is_empty(&ws.id, &a.id).await.unwrap());
    store.trash_folder(&ws.id, &a.id, now()).await.unwrap();
    assert!(store.get_folder(&ws.id, &b.id).await.unwrap().trashed_at.is_some());
    assert!(store.get_file(&ws.id, &in_b.id).await.unwrap().trashed_at.is_some());
    assert_eq!(store.trash_entries(&ws.id, 10).await.unwrap(), vec![TrashEntry::Folder(a.id.clone())]);
    assert!(all_files(store, &ws.id, FileFilter::default()).await.is_empty());
    // Trashed things keep counting against the quota.
    assert_eq!(ledger(store, &ws.id).await, (5, 0));
    // The name is free again while the folder is in the trash.
    store.insert_folder(&folder(&ws.id, "a", None)).await.unwrap();
    let err = store.restore_folder(&ws.id, &a.id, None, "a", true, now()).await.unwrap_err();
    assert_eq!(err.code(), "name_taken");
    store.restore_folder(&ws.id, &a.id, None, "a (2)", true, now()).await.unwrap();
    assert!(store.get_folder(&ws.id, &b.id).await.unwrap().trashed_at.is_none());
    assert!(store.get_file(&ws.id, &in_b.id).await.unwrap().trashed_at.is_none());
    assert!(store.trash_entries(&ws.id, 10).await.unwrap().is_empty());
}

async fn purging_a_folder_reclaims_the_bytes_of_everything_below_it(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(1000)).await;
    let a = folder(&ws.id, "a", None);
    let b = folder(&ws.id, "b", Some(&a.id));
    store.insert_folder(&a).await.unwrap();
    store.insert_folder(&b).await.unwrap();
    let keep = named_file(&ws.id, "keep.txt", None, 7, now());
    store.insert_file_charging(&keep).await.unwrap();
    for parent in [&a.id, &b.id] {
        store.insert_file_charging(&named_file(&ws.id, "x.txt", Some(parent), 100, now())).await.unwrap();
    }
    let purged = store.purge_folder(&ws.id, &a.id, now()).await.unwrap();
    assert_eq!(purged.len(), 2);
    assert_eq!(ledger(store, &ws.id).await, (7, 0));
    assert!(matches!(store.get_folder(&ws.id, &b.id).await, Err(Error::NotFound(_))));
    assert_eq!(all_files(store, &ws.id, FileFilter::default()).await, vec![keep]);
}

async fn file_changes_update_metadata_tags_and_place(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let dir = folder(&ws.id, "dir", None);
    store.insert_folder(&dir).await.unwrap();
    let file = direct_file(&ws.id, 3, now());
    store.insert_file_charging(&file).await.unwrap();
    let mut metadata = serde_json::Map::new();
    metadata.insert("k".into(), serde_json::json!([1, 2]));
    let later = now() + Duration::seconds(5);
    let change = FileChange {
        name: Some("Renamed.PDF".into()),
        folder: Some(Some(dir.id.clone())),
        is_favorite: Some(true),
        alt_text: Some(Some("alt".into())),
        caption: Some(Some("cap".into())),
        copyright: Some(Some("(c)".into())),
        metadata: Some(metadata.clone()),
        tags: Some(vec!["a".into(), "b".into()]),
    };
    let changed = store.update_file(&ws.id, &file.id, &change, later).await.unwrap();
    assert_eq!(changed.name, "Renamed.PDF");
    assert_eq!(changed.folder_id, Some(dir.id.clone()));
    assert!(changed.is_favorite);
    assert_eq!(
        (changed.alt_text.as_deref(), changed.caption.as_deref(), changed.copyright.as_deref()),
        (Some("alt"), Some("cap"), Some("(c)"))
    );
    assert_eq!(changed.metadata, metadata);
    assert_eq!(changed.tags, vec!["a", "b"]);
    assert_eq!(changed.updated_at, later);
    assert_eq!(store.get_file(&ws.id, &file.id).await.unwrap(), changed);
    let cleared = FileChange {
        alt_text: Some(None),
        tags: Some(vec!["b".into()]),
        folder: Some(None),
        ..Default::default()
    };
    let changed = store.update_file(&ws.id, &file.id, &cleared, later).await.unwrap();
    assert_eq!((changed.alt_text, changed.tags, changed.folder_id), (None, vec!["b".to_owned()], None));
    assert_eq!(store.tag_counts(&ws.id).await.unwrap(), vec![("b".to_owned(), 1)]);
}

async fn lists_filter_by_folder_tags_favorite_type_and_reference(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let dir = folder(&ws.id, "dir", None);
    let sub = folder(&ws.id, "sub", Some(&dir.id));
    store.insert_folder(&dir).await.unwrap();
    store.insert_folder(&sub).await.unwrap();
    let at_root = named_file(&ws.id, "root.png", None, 1, now());
    let mut in_dir = named_file(&ws.id, "dir.pdf", Some(&dir.id), 2, now());
    in_dir.mime_type = "application/pdf".into();
    let in_sub = named_file(&ws.id, "sub.txt", Some(&sub.id), 3, now());
    for f in [&at_root, &in_dir, &in_sub] {
        store.insert_file_charging(f).await.unwrap();
    }
    let tag = |tags: &[&str]| FileChange {
        tags: Some(tags.iter().map(|t| t.to_string()).collect()),
        ..Default::default()
    };
    store.update_file(&ws.id, &at_root.id, &tag(&["x", "y"]), now()).await.unwrap();
    store.update_file(&ws.id, &in_dir.id, &tag(&["x"]), now()).await.unwrap();
    store
        .update_file(&ws.id, &in_sub.id, &FileChange { is_favorite: Some(true), ..Default::default() }, now())
        .await
        .unwrap();
    let reference =
        FileReference { kind: "conversation".into(), id: "c1".into(), label: None, created_at: now() };
    store.add_reference(&ws.id, &in_sub.id, &reference).await.unwrap();
    let names = |files: Vec<FileRecord>| {
        let mut names: Vec<String> = files.into_iter().map(|f| f.name).collect();
        names.sort();
        names
    };
    let cases: Vec<(FileFilter, Vec<&str>)> = vec![
        (FileFilter { folder: FolderScope::Root, ..Default::default() }, vec!["root.png"]),
        (FileFilter { folder: FolderScope::In(dir.id.clone()), ..Default::default() }, vec!["dir.pdf"]),
        (
            FileFilter { folder: FolderScope::Subtree(dir.id.clone()), ..Default::default() },
            vec!["dir.pdf", "sub.txt"],
        ),
        (FileFilter { tags_all: vec!["x".into(), "y".into()], ..Default::default() }, vec!["root.png"]),
        (
            FileFilter { tags_any: vec!["y".into(), "x".into()], ..Default::default() },
            vec!["dir.pdf", "root.png"],
        ),
        (FileFilter { favorite: Some(true), ..Default::default() }, vec!["sub.txt"]),
        (FileFilter { mime_prefix: Some("application/".into()), ..Default::default() }, vec!["dir.pdf"]),
        (
            FileFilter { referenced_by: Some(("conversation".into(), "c1".into())), ..Default::default() },
            vec!["sub.txt"],
        ),
        (FileFilter { min_size: Some(2), max_size: Some(2), ..Default::default() }, vec!["dir.pdf"]),
    ];
    for (filter, expected) in cases {
        assert_eq!(names(all_files(store, &ws.id, filter.clone()).await), expected, "{filter:?}");
    }
    let by_name = store
        .list_files(
            &ws.id,
            &FileFilter::default(),
            Sort { key: SortKey::Name, descending: false },
            &first_page(10),
        )
        .await
        .unwrap()
        .0;
    assert_eq!(
        by_name.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        vec!["dir.pdf", "root.png", "sub.txt"]
    );
    assert_eq!(store.list_references(&ws.id, &in_sub.id).await.unwrap(), vec![reference]);
    store.remove_reference(&ws.id, &in_sub.id, "conversation", "c1").await.unwrap();
    assert!(matches!(
        store.remove_reference(&ws.id, &in_sub.id, "conversation", "c1").await,
        Err(Error::NotFound(_))
    ));
}

async fn search_finds_files_and_folders_by_folded_substring(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    store.insert_folder(&folder(&ws.id, "Quarterly Reports", None)).await.unwrap();
    for name in ["Report.PDF", "RÉSUMÉ.docx", "holiday.jpg"] {
        store.insert_file_charging(&named_file(&ws.id, name, None, 1, now())).await.unwrap();
    }
    let ws_id = ws.id.clone();
    let search = |q: &str| {
        let ws_id = ws_id.clone();
        let q = cabinet_core::names::fold(q);
        let files = FileFilter { name_contains: Some(q.clone()), ..Default::default() };
        let folders = FolderFilter { name_contains: Some(q), ..Default::default() };
        async move {
            let (hits, total) = store
                .search(
                    &ws_id,
                    &files,
                    &folders,
                    Sort { key: SortKey::Name, descending: false },
                    &first_page(10),
                )
                .await
                .unwrap();
            assert_eq!(total as usize, hits.len());
            hits.into_iter()
                .map(|hit| match hit {
                    SearchHit::Folder(f) => format!("folder:{}", f.name),
                    SearchHit::File(f) => format!("file:{}", f.name),
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(search("report").await, vec!["folder:Quarterly Reports", "file:Report.PDF"]);
    assert_eq!(search("résumé").await, vec!["file:RÉSUMÉ.docx"]);
    assert_eq!(search("li").await, vec!["file:holiday.jpg"]);
    assert!(search("zzz").await.is_empty());
    assert!(search("100%").await.is_empty());
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

async fn workspaces_are_created_listed_and_unique_by_name(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(1000)).await;
    assert_eq!(store.get_workspace(&ws.id).await.unwrap(), ws);
    assert!(store.list_workspaces().await.unwrap().contains(&ws));
    let twin = Workspace { id: WorkspaceId::generate(), ..ws.clone() };
    let err = store.create_workspace(&twin).await.unwrap_err();
    assert_eq!(err.code(), "workspace_exists");
    assert!(matches!(store.get_workspace(&WorkspaceId::generate()).await, Err(Error::NotFound(_))));
}

async fn a_files_details_come_with_its_references_oldest_first(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let other = workspace(store, None).await;
    let file = named_file(&ws.id, "used.txt", None, 3, now());
    store.insert_file_charging(&file).await.unwrap();
    let (found, references) = store.get_file_with_references(&ws.id, &file.id).await.unwrap();
    assert_eq!((found, references), (store.get_file(&ws.id, &file.id).await.unwrap(), vec![]));
    let reference = |kind: &str, id: &str, label: Option<&str>, at| FileReference {
        kind: kind.into(),
        id: id.into(),
        label: label.map(str::to_owned),
        created_at: at,
    };
    let newer = reference("conversation", "c2", Some("Second"), now() + Duration::seconds(5));
    let older = reference("post", "p1", None, now());
    store.add_reference(&ws.id, &file.id, &newer).await.unwrap();
    store.add_reference(&ws.id, &file.id, &older).await.unwrap();
    let (found, references) = store.get_file_with_references(&ws.id, &file.id).await.unwrap();
    assert_eq!(found.id, file.id);
    assert_eq!(references, vec![older, newer]);
    assert_eq!(references, store.list_references(&ws.id, &file.id).await.unwrap());
    for (ws, id) in [(&other.id, &file.id), (&ws.id, &FileId::generate())] {
        assert!(matches!(store.get_file_with_references(ws, id).await, Err(Error::NotFound("file"))));
    }
}

async fn a_pages_references_are_read_at_once_within_the_workspace(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let other = workspace(store, None).await;
    let used = named_file(&ws.id, "used.txt", None, 3, now());
    let unused = named_file(&ws.id, "unused.txt", None, 3, now());
    let theirs = named_file(&other.id, "theirs.txt", None, 3, now());
    for file in [&used, &unused, &theirs] {
        store.insert_file_charging(file).await.unwrap();
    }
    let reference = |id: &str, seconds| FileReference {
        kind: "page".into(),
        id: id.into(),
        label: None,
        created_at: now() + Duration::seconds(seconds),
    };
    store.add_reference(&ws.id, &used.id, &reference("b", 5)).await.unwrap();
    store.add_reference(&ws.id, &used.id, &reference("a", 0)).await.unwrap();
    store.add_reference(&other.id, &theirs.id, &reference("x", 0)).await.unwrap();
    let found =
        store.references_of(&ws.id, &[used.id.clone(), unused.id.clone(), theirs.id.clone()]).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[&used.id], store.list_references(&ws.id, &used.id).await.unwrap());
    assert_eq!(found[&used.id].iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(store.references_of(&ws.id, &[]).await.unwrap().is_empty());
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

async fn racing_uploads_of_unknown_size_reserve_only_what_the_quota_holds(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(10_000)).await;
    store.insert_upload_reserving(&upload(&ws.id, 1_000)).await.unwrap();
    let unknown: Vec<Upload> =
        (0..8).map(|_| Upload { size: 0, size_known: false, ..upload(&ws.id, 0) }).collect();
    for up in &unknown {
        store.insert_upload_reserving(up).await.unwrap();
    }
    let grants = futures::future::join_all(
        unknown.iter().map(|up| store.begin_receiving_reserving(&ws.id, &up.id, now(), 4_000)),
    )
    .await;
    let mut grants: Vec<u64> = grants.into_iter().map(|grant| grant.unwrap().unwrap()).collect();
    grants.sort_unstable();
    // 9,000 bytes were free: two uploads get all they asked for, one the rest, the others nothing.
    assert_eq!(grants, vec![0, 0, 0, 0, 0, 1_000, 4_000, 4_000]);
    assert_eq!(ledger(store, &ws.id).await, (0, 10_000));
    // Only once: a second begin reserves nothing more.
    assert_eq!(store.begin_receiving_reserving(&ws.id, &unknown[0].id, now(), 4_000).await.unwrap(), None);

    // The file's size is charged, the rest released, and the upload records the file's size.
    let mut granted = None;
    for up in &unknown {
        if store.get_upload(&ws.id, &up.id).await.unwrap().size == 4_000 {
            granted = Some(up);
        }
    }
    let granted = granted.expect("an upload granted 4,000 bytes");
    let mut file = file_of(granted, now());
    file.size = 1_500;
    assert!(store.finish_upload(&ws.id, &granted.id, &file).await.unwrap());
    assert_eq!(ledger(store, &ws.id).await, (1_500, 6_000));
    assert_eq!(store.get_upload(&ws.id, &granted.id).await.unwrap().size, 1_500);
    for up in &unknown {
        store.fail_upload(&ws.id, &up.id, FailureReason::Incomplete, now()).await.unwrap();
    }
    assert_eq!(ledger(store, &ws.id).await, (1_500, 1_000));
    let unlimited = workspace(store, None).await;
    let up = Upload { size: 0, size_known: false, ..upload(&unlimited.id, 0) };
    store.insert_upload_reserving(&up).await.unwrap();
    assert_eq!(
        store.begin_receiving_reserving(&unlimited.id, &up.id, now(), 1 << 40).await.unwrap(),
        Some(1 << 40)
    );
}

async fn a_multipart_upload_keeps_its_part_size_and_store_id(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(10 << 30)).await.id;
    let mut multipart = upload(&ws, 6 << 30);
    multipart.part_size = Some(5 << 30);
    multipart.multipart_id = Some("2~opaque/id=".into());
    store.insert_upload_reserving(&multipart).await.unwrap();
    let plain = upload(&ws, 1);
    store.insert_upload_reserving(&plain).await.unwrap();
    let stored = store.get_upload(&ws, &multipart.id).await.unwrap();
    assert_eq!((stored.part_size, stored.multipart_id.as_deref()), (Some(5 << 30), Some("2~opaque/id=")));
    assert_eq!(stored.size, 6 << 30);
    let stored = store.get_upload(&ws, &plain.id).await.unwrap();
    assert_eq!((stored.part_size, stored.multipart_id), (None, None));
    assert_eq!(ledger(store, &ws).await, (0, (6 << 30) + 1));
}

async fn finishing_turns_the_reservation_into_a_file_once(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(1000)).await;
    let up = upload(&ws.id, 300);
    store.insert_upload_reserving(&up).await.unwrap();
    let file = file_of(&up, now());
    assert!(store.finish_upload(&ws.id, &up.id, &file).await.unwrap());
    assert_eq!(ledger(store, &ws.id).await, (300, 0));
    assert_eq!(store.get_file(&ws.id, &file.id).await.unwrap(), file);
    let finished = store.get_upload(&ws.id, &up.id).await.unwrap();
    assert_eq!(finished.status, UploadStatus::Success);
    // What the core answers without reading it back.
    assert_eq!(finished, up.finished_as(&file));
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
    let mut start = Start::First;
    loop {
        let paging = Paging { limit: 3, start: start.clone() };
        let (page, total) =
            store.list_files(&ws.id, &FileFilter::default(), Sort::NEWEST_FIRST, &paging).await.unwrap();
        assert_eq!(total, 10);
        let Some(last) = page.last() else { break };
        start = Start::After(Cursor { value: last.sort_value(SortKey::CreatedAt), id: last.id.to_string() });
        seen.extend(page);
    }
    assert_eq!(seen, expected);
    let (by_offset, _) = store
        .list_files(
            &ws.id,
            &FileFilter::default(),
            Sort::NEWEST_FIRST,
            &Paging { limit: 3, start: Start::Offset(3) },
        )
        .await
        .unwrap();
    assert_eq!(by_offset, expected[3..6].to_vec());
}

async fn deleting_a_file_reclaims_its_bytes(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(100)).await;
    let file = direct_file(&ws.id, 70, now());
    store.insert_file_charging(&file).await.unwrap();
    let usage = |total_size, file_count, trashed_size, trashed_count| cabinet_core::Usage {
        total_size,
        file_count,
        trashed_size,
        trashed_count,
    };
    assert_eq!(store.usage(&ws.id).await.unwrap(), usage(70, 1, 0, 0));
    // In the trash it still holds its bytes, and is told apart.
    store.trash_file(&ws.id, &file.id, now()).await.unwrap();
    assert_eq!(store.usage(&ws.id).await.unwrap(), usage(70, 1, 70, 1));
    assert_eq!(store.delete_file(&ws.id, &file.id, now()).await.unwrap().id, file.id);
    assert_eq!(ledger(store, &ws.id).await, (0, 0));
    assert_eq!(store.usage(&ws.id).await.unwrap(), usage(0, 0, 0, 0));
    assert!(matches!(store.delete_file(&ws.id, &file.id, now()).await, Err(Error::NotFound(_))));
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
    assert!(matches!(store.delete_file(&theirs.id, &file.id, now()).await, Err(Error::NotFound(_))));
    assert!(!store.begin_receiving(&theirs.id, &up.id, now()).await.unwrap());
    assert!(!store.fail_upload(&theirs.id, &up.id, FailureReason::Cancelled, now()).await.unwrap());
    assert!(all_files(store, &theirs.id, FileFilter::default()).await.is_empty());
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
