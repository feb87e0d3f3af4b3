//! Workspaces, keys and files: lists, totals, references, changes and deletion.

use super::*;

/// The unfiltered list's `total` comes from a counter, not a count: it must agree with the files
/// themselves after every way a file becomes live or stops being live.
pub(crate) async fn the_unfiltered_total_follows_every_change_of_liveness(store: &dyn MetadataStore) {
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

pub(crate) async fn file_changes_update_metadata_tags_and_place(store: &dyn MetadataStore) {
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
        external_id: None,
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

pub(crate) async fn lists_filter_by_folder_tags_favorite_type_and_reference(store: &dyn MetadataStore) {
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

pub(crate) async fn workspaces_are_created_listed_and_unique_by_name(store: &dyn MetadataStore) {
    let ws = workspace(store, Some(1000)).await;
    assert_eq!(store.get_workspace(&ws.id).await.unwrap(), ws);
    assert!(store.list_workspaces().await.unwrap().contains(&ws));
    let twin = Workspace { id: WorkspaceId::generate(), ..ws.clone() };
    let err = store.create_workspace(&twin).await.unwrap_err();
    assert_eq!(err.code().as_str(), "workspace_exists");
    assert!(matches!(store.get_workspace(&WorkspaceId::generate()).await, Err(Error::NotFound(_))));
}

pub(crate) async fn a_files_details_come_with_its_references_oldest_first(store: &dyn MetadataStore) {
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

pub(crate) async fn a_pages_references_are_read_at_once_within_the_workspace(store: &dyn MetadataStore) {
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

pub(crate) async fn keys_are_found_by_secret_hash_and_revoked(store: &dyn MetadataStore) {
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

pub(crate) async fn s3_keys_keep_their_sealed_secret_scope_and_revocation(store: &dyn MetadataStore) {
    use cabinet_core::s3_keys::S3Key;
    let a = workspace(store, None).await;
    let key = |workspace_id: Option<WorkspaceId>, access_key_id: &str| S3Key {
        access_key_id: access_key_id.to_owned(),
        id: ApiKeyId::generate(),
        workspace_id,
        role: Role::Read,
        name: Some("backup".into()),
        created_at: now(),
        revoked_at: None,
    };
    let of_a = key(Some(a.id.clone()), &format!("CABA{}", ApiKeyId::generate()));
    let operator = key(None, &format!("CABO{}", ApiKeyId::generate()));
    store.create_s3_key(&of_a, "sealed-a").await.unwrap();
    store.create_s3_key(&operator, "sealed-o").await.unwrap();
    assert_eq!(
        store.find_s3_key(&of_a.access_key_id).await.unwrap(),
        Some((of_a.clone(), "sealed-a".to_owned()))
    );
    assert_eq!(store.find_s3_key("CABNONE").await.unwrap(), None);
    assert_eq!(store.list_s3_keys(Some(&a.id)).await.unwrap(), vec![of_a.clone()]);
    assert!(store.list_s3_keys(None).await.unwrap().contains(&operator));
    assert!(!store.list_s3_keys(None).await.unwrap().contains(&of_a));
    let first = now();
    store.revoke_s3_key(&of_a.access_key_id, first).await.unwrap();
    store.revoke_s3_key(&of_a.access_key_id, first + Duration::hours(1)).await.unwrap();
    assert_eq!(store.find_s3_key(&of_a.access_key_id).await.unwrap().unwrap().0.revoked_at, Some(first));
    assert!(matches!(store.revoke_s3_key("CABNONE", first).await, Err(Error::NotFound(_))));
    // What the S3 surface keeps of an object is kept per workspace and file, and replaced (all of
    // it) when set again.
    let b = workspace(store, None).await;
    let file = FileId::generate();
    let first = S3Object {
        etag: "00aa".into(),
        headers: S3Headers {
            cache_control: Some("public, max-age=60".into()),
            content_disposition: Some("attachment; filename=\"a.txt\"".into()),
            content_encoding: Some("gzip".into()),
            content_language: Some("en-GB".into()),
            expires: Some("Thu, 01 Dec 1994 16:00:00 GMT".into()),
        },
        part_sizes: vec![5 << 20, 7],
        checksum: Some(S3Checksum {
            algorithm: "SHA256".into(),
            kind: "COMPOSITE".into(),
            value: "uWBwpe1dxI4Vw8Gf0X9ynOdw/SS6VBzfWm9giiv1sf4=-2".into(),
        }),
        part_checksums: vec![
            "275VF5loJr1YYawit0XSHREhkFXYkkPKGuoK0x9VKxI=".into(),
            "mrHwOfjTL5Zwfj74F05HOQGLdUb7E5szdCbxgUSq6NM=".into(),
        ],
    };
    store.set_s3_object(&a.id, &file, &first).await.unwrap();
    assert_eq!(store.s3_object(&a.id, &file).await.unwrap(), Some(first));
    let listed = store.s3_listed(&a.id, std::slice::from_ref(&file)).await.unwrap();
    let with_checksum =
        S3Listed { etag: "00aa".into(), checksum: Some(("SHA256".into(), "COMPOSITE".into())) };
    assert_eq!(listed[&file], with_checksum);
    let second = S3Object { etag: "11bb".into(), ..Default::default() };
    store.set_s3_object(&a.id, &file, &second).await.unwrap();
    assert_eq!(store.s3_object(&a.id, &file).await.unwrap(), Some(second));
    assert_eq!(store.s3_object(&b.id, &file).await.unwrap(), None);
    let found = store.s3_listed(&a.id, &[file.clone(), FileId::generate()]).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[&file], S3Listed { etag: "11bb".into(), checksum: None });
    assert!(store.s3_listed(&b.id, std::slice::from_ref(&file)).await.unwrap().is_empty());
}

pub(crate) async fn files_page_newest_first_by_keyset(store: &dyn MetadataStore) {
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

pub(crate) async fn deleting_a_file_reclaims_its_bytes(store: &dyn MetadataStore) {
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

pub(crate) async fn every_lookup_is_scoped_to_its_workspace(store: &dyn MetadataStore) {
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

pub(crate) async fn blob_keys_in_use_are_those_of_files_and_live_uploads(store: &dyn MetadataStore) {
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
    assert_eq!(owned, [live.blob_key.clone(), file.blob_key.clone()].into_iter().collect());
    // Asked about more keys than one statement takes: owners found wherever they stand.
    let mut many: Vec<String> = (0..1_203).map(|i| format!("ws_x/none{i}")).collect();
    many.insert(499, failed.blob_key.clone());
    many.insert(500, file.blob_key.clone());
    many.push(live.blob_key.clone());
    let owned = store.blob_keys_in_use(&many).await.unwrap();
    assert_eq!(owned, [live.blob_key, file.blob_key].into_iter().collect());
}

pub(crate) async fn file_blobs_pages_through_every_file_once_in_key_order(store: &dyn MetadataStore) {
    let (a, b) = (workspace(store, None).await, workspace(store, None).await);
    let mut mine = std::collections::HashMap::new();
    for ws in [&a.id, &b.id] {
        for size in 1..=7 {
            let file = direct_file(ws, size, now());
            store.insert_file_charging(&file).await.unwrap();
            mine.insert(file.id.clone(), (ws.clone(), file.blob_key.clone(), size));
        }
    }
    let (mut after, mut seen, mut last) = (None, Vec::new(), None);
    loop {
        let page = store.file_blobs(after.as_ref(), 3).await.unwrap();
        for (ws, id, key, size) in &page {
            let place = (ws.to_string(), id.to_string());
            assert!(last.as_ref().is_none_or(|last| *last < place), "{last:?} then {place:?}");
            last = Some(place);
            if let Some(expected) = mine.get(id) {
                assert_eq!(*expected, (ws.clone(), key.clone(), *size));
                seen.push(id.clone());
            }
        }
        match page.last() {
            Some((ws, id, _, _)) if page.len() == 3 => after = Some((ws.clone(), id.clone())),
            _ => break,
        }
    }
    seen.sort();
    let mut expected: Vec<_> = mine.into_keys().collect();
    expected.sort();
    assert_eq!(seen, expected, "every file once, across both workspaces");
}

pub(crate) async fn an_external_id_is_unique_among_the_live_files_of_a_workspace(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let other = workspace(store, None).await;
    let named = |id: &str| FileChange { external_id: Some(id.into()), ..Default::default() };
    let first = direct_file(&ws.id, 1, now());
    let second = direct_file(&ws.id, 1, now());
    let elsewhere = direct_file(&other.id, 1, now());
    for f in [&first, &second, &elsewhere] {
        store.insert_file_charging(f).await.unwrap();
    }
    let hero = store.update_file(&ws.id, &first.id, &named("hero"), now()).await.unwrap();
    assert_eq!(hero.external_id.as_deref(), Some("hero"));
    assert_eq!(store.find_file_by_external_id(&ws.id, "hero").await.unwrap().id, first.id);
    // Exact, scoped: another spelling or another workspace is another id.
    assert!(matches!(store.find_file_by_external_id(&ws.id, "HERO").await, Err(Error::NotFound(_))));
    assert!(matches!(store.find_file_by_external_id(&other.id, "hero").await, Err(Error::NotFound(_))));
    store.update_file(&other.id, &elsewhere.id, &named("hero"), now()).await.unwrap();

    let clash = store.update_file(&ws.id, &second.id, &named("hero"), now()).await.unwrap_err();
    assert_eq!(clash.code(), cabinet_core::Code::ExternalIdTaken);
    let mut inserted = direct_file(&ws.id, 1, now());
    inserted.external_id = Some("hero".into());
    let clash = store.insert_file_charging(&inserted).await.unwrap_err();
    assert_eq!(clash.code(), cabinet_core::Code::ExternalIdTaken);

    // A trashed file keeps its id without holding it.
    store.trash_file(&ws.id, &first.id, now()).await.unwrap();
    assert!(matches!(store.find_file_by_external_id(&ws.id, "hero").await, Err(Error::NotFound(_))));
    assert_eq!(store.get_file(&ws.id, &first.id).await.unwrap().external_id.as_deref(), Some("hero"));
    store.update_file(&ws.id, &second.id, &named("hero"), now()).await.unwrap();
    assert_eq!(store.find_file_by_external_id(&ws.id, "hero").await.unwrap().id, second.id);
}

pub(crate) async fn tags_keep_their_spelling_and_match_whatever_the_case(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let tag = |tags: &[&str]| FileChange {
        tags: Some(tags.iter().map(|t| t.to_string()).collect()),
        ..Default::default()
    };
    let files: Vec<FileRecord> = (0..3).map(|_| direct_file(&ws.id, 1, now())).collect();
    for f in &files {
        store.insert_file_charging(f).await.unwrap();
    }
    let first = store.update_file(&ws.id, &files[0].id, &tag(&["Event", "Été"]), now()).await.unwrap();
    assert_eq!(first.tags, vec!["Event", "Été"]);
    store.update_file(&ws.id, &files[1].id, &tag(&["EVENT"]), now()).await.unwrap();
    store.update_file(&ws.id, &files[2].id, &tag(&["Event", "product"]), now()).await.unwrap();
    assert_eq!(store.get_file(&ws.id, &files[1].id).await.unwrap().tags, vec!["EVENT"]);
    // One entry per tag, counting every spelling, shown as most files spell it.
    assert_eq!(
        store.tag_counts(&ws.id).await.unwrap(),
        vec![("Event".to_owned(), 3), ("product".to_owned(), 1), ("Été".to_owned(), 1)]
    );
    for asked in [vec!["event".to_owned()], vec!["EVENT".to_owned(), "Event".to_owned()]] {
        let filter = FileFilter { tags_all: asked.clone(), ..Default::default() };
        let (_, total) =
            store.list_files(&ws.id, &filter, Sort::NEWEST_FIRST, &first_page(10)).await.unwrap();
        assert_eq!(total, 3, "{asked:?}");
    }
    let filter = FileFilter { tags_any: vec!["ÉTÉ".into(), "PRODUCT".into()], ..Default::default() };
    let (_, total) = store.list_files(&ws.id, &filter, Sort::NEWEST_FIRST, &first_page(10)).await.unwrap();
    assert_eq!(total, 2);
}

pub(crate) async fn a_workspace_is_deleted_with_everything_of_its_own_once_it_holds_nothing(
    store: &dyn MetadataStore,
) {
    use cabinet_core::s3_keys::S3Key;
    use cabinet_core::Code;
    let a = workspace(store, None).await;
    let b = workspace(store, None).await;
    let key_of = |workspaces: Vec<WorkspaceId>| ApiKey {
        id: ApiKeyId::generate(),
        name: None,
        role: Role::Write,
        workspaces,
        hint: "abcd".into(),
        created_at: now(),
        revoked_at: None,
    };
    let (only_a, both) = (key_of(vec![a.id.clone()]), key_of(vec![a.id.clone(), b.id.clone()]));
    let (only_a_hash, both_hash) = (format!("only-{}", only_a.id), format!("both-{}", both.id));
    store.create_api_key(&only_a, &only_a_hash).await.unwrap();
    store.create_api_key(&both, &both_hash).await.unwrap();
    let s3 = S3Key {
        access_key_id: format!("CABD{}", ApiKeyId::generate()),
        id: ApiKeyId::generate(),
        workspace_id: Some(a.id.clone()),
        role: Role::Write,
        name: None,
        created_at: now(),
        revoked_at: None,
    };
    store.create_s3_key(&s3, "sealed").await.unwrap();
    let docs = folder(&a.id, "docs", None);
    store.insert_folder(&docs).await.unwrap();
    let file = named_file(&a.id, "x.txt", Some(&docs.id), 10, now());
    store.insert_file_charging(&file).await.unwrap();
    let live = upload(&a.id, 5);
    store.insert_upload_reserving(&live).await.unwrap();
    let not_empty = |result: cabinet_core::Result<Vec<Upload>>| matches!(result, Err(err) if err.code() == Code::WorkspaceNotEmpty);

    assert!(store.workspace_has_live_items(&a.id).await.unwrap());
    assert!(not_empty(store.delete_workspace(&a.id, now()).await));
    // In the trash they no longer count as live, but the store deletes no file: they are purged first.
    store.trash_folder(&a.id, &docs.id, now()).await.unwrap();
    assert!(!store.workspace_has_live_items(&a.id).await.unwrap());
    assert!(not_empty(store.delete_workspace(&a.id, now()).await));
    assert_eq!(store.get_file(&a.id, &file.id).await.unwrap().id, file.id, "a refusal changes nothing");
    store.purge_folder(&a.id, &docs.id, now()).await.unwrap();

    let ended = store.delete_workspace(&a.id, now()).await.unwrap();
    assert_eq!(ended.iter().map(|upload| upload.id.clone()).collect::<Vec<_>>(), vec![live.id.clone()]);
    assert!(matches!(store.get_workspace(&a.id).await, Err(Error::NotFound(_))));
    assert!(matches!(store.get_upload(&a.id, &live.id).await, Err(Error::NotFound(_))));
    assert!(matches!(store.workspace_has_live_items(&a.id).await, Err(Error::NotFound(_))));
    assert!(matches!(store.delete_workspace(&a.id, now()).await, Err(Error::NotFound(_))));
    assert!(
        store.events_after(&a.id, 0, 100).await.unwrap_or_default().is_empty(),
        "its events went with it"
    );
    // A key of this workspace alone is revoked; a key of two keeps the other.
    assert!(store.find_api_key(&only_a_hash).await.unwrap().unwrap().revoked_at.is_some());
    let kept = store.find_api_key(&both_hash).await.unwrap().unwrap();
    assert_eq!((kept.revoked_at, kept.workspaces), (None, vec![b.id.clone()]));
    assert_eq!(store.find_s3_key(&s3.access_key_id).await.unwrap(), None);
    assert!(store.list_workspaces().await.unwrap().iter().all(|ws| ws.id != a.id));
    assert_eq!(store.get_workspace(&b.id).await.unwrap().id, b.id, "another workspace is untouched");
}

/// A name query counts its matches in the statement that reads its page: every order, every page
/// size and offset (a page past the end too) must give the page and total that the list without
/// the query, filtered by name, gives.
pub(crate) async fn a_name_query_pages_and_counts_its_matches_in_every_order(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let dir = folder(&ws.id, "dir", None);
    store.insert_folder(&dir).await.unwrap();
    let t = now();
    let mut trashed = Vec::new();
    for i in 0..14i64 {
        // Two names in three hold the query, in either case; times and sizes are shared by
        // pairs and triples, so the id breaks ties in every order.
        let name = if i % 3 == 2 {
            format!("photo {i}.jpg")
        } else {
            format!("{} {:02}.txt", ["Note", "note"][(i % 2) as usize], (i * 5) % 14)
        };
        let place = (i % 4 == 0).then_some(&dir.id);
        let mut file =
            named_file(&ws.id, &name, place, (i % 3 + 1) as u64, t + Duration::milliseconds(i / 2));
        file.updated_at = t + Duration::milliseconds((13 - i) / 3);
        store.insert_file_charging(&file).await.unwrap();
        if i % 5 == 1 {
            trashed.push(file.id.clone());
        }
    }
    for id in &trashed {
        store.trash_file(&ws.id, id, now()).await.unwrap();
    }
    let query = Some(cabinet_core::names::fold("NOTE"));
    for base in [
        FileFilter::default(),
        FileFilter { trashed: true, ..Default::default() },
        FileFilter { folder: FolderScope::In(dir.id.clone()), ..Default::default() },
    ] {
        for key in [SortKey::Name, SortKey::CreatedAt, SortKey::UpdatedAt, SortKey::Size] {
            for descending in [false, true] {
                let sort = Sort { key, descending };
                let (every, _) = store.list_files(&ws.id, &base, sort, &first_page(100)).await.unwrap();
                let expected: Vec<FileRecord> =
                    every.into_iter().filter(|f| f.name.to_lowercase().contains("note")).collect();
                assert!(!expected.is_empty(), "{base:?}: the case holds matches");
                let filter = FileFilter { name_contains: query.clone(), ..base.clone() };
                for limit in [1usize, 3, 5] {
                    for offset in (0..=expected.len() + limit).step_by(limit) {
                        let start = if offset == 0 { Start::First } else { Start::Offset(offset as u64) };
                        let paging = Paging { limit: limit as u32, start };
                        let (page, total) = store.list_files(&ws.id, &filter, sort, &paging).await.unwrap();
                        let wanted =
                            &expected[offset.min(expected.len())..(offset + limit).min(expected.len())];
                        assert_eq!(page, wanted, "{base:?} {sort:?} limit {limit} offset {offset}");
                        assert_eq!(
                            total,
                            expected.len() as u64,
                            "{base:?} {sort:?} limit {limit} offset {offset}"
                        );
                    }
                }
            }
        }
    }
}
