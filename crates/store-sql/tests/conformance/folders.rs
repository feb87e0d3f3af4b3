//! Folders: names, nesting, cycles, paths, trash and purge.

use super::*;

pub(crate) async fn sibling_folders_have_distinct_names_case_insensitively(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let parent = folder(&ws.id, "Parent", None);
    store.insert_folder(&parent).await.unwrap();
    store.insert_folder(&folder(&ws.id, "Reports", Some(&parent.id))).await.unwrap();
    let err = store.insert_folder(&folder(&ws.id, "REPORTS", Some(&parent.id))).await.unwrap_err();
    assert_eq!(err.code().as_str(), "name_taken");
    // The same name elsewhere, or at the root, is fine.
    store.insert_folder(&folder(&ws.id, "Reports", None)).await.unwrap();
    let err = store.insert_folder(&folder(&ws.id, "reports", None)).await.unwrap_err();
    assert_eq!(err.code().as_str(), "name_taken");
    // Other workspaces have their own names.
    let other = workspace(store, None).await;
    store.insert_folder(&folder(&other.id, "Reports", None)).await.unwrap();
}

pub(crate) async fn a_folder_cannot_move_into_its_own_subtree(store: &dyn MetadataStore) {
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
        assert_eq!(err.code().as_str(), "folder_cycle");
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

pub(crate) async fn folders_nest_no_deeper_than_the_limit_and_cycles_are_seen_at_any_depth(
    store: &dyn MetadataStore,
) {
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
    assert_eq!(err.code().as_str(), "folder_too_deep");
    let top_under_bottom = FolderChange { parent: Some(Some(bottom.id.clone())), ..Default::default() };
    let err = store.update_folder(&ws.id, &chain[0].id, &top_under_bottom, now()).await.unwrap_err();
    assert_eq!(err.code().as_str(), "folder_cycle");
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
    assert_eq!(err.code().as_str(), "folder_too_deep");
    store.update_folder(&ws.id, &pair.id, &under(&chain[depth - 3]), now()).await.unwrap();
}

pub(crate) async fn folder_paths_run_from_the_root(store: &dyn MetadataStore) {
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

pub(crate) async fn trashing_a_folder_takes_its_subtree_and_restoring_brings_it_back(
    store: &dyn MetadataStore,
) {
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
    assert_eq!(err.code().as_str(), "name_taken");
    store.restore_folder(&ws.id, &a.id, None, "a (2)", true, now()).await.unwrap();
    assert!(store.get_folder(&ws.id, &b.id).await.unwrap().trashed_at.is_none());
    assert!(store.get_file(&ws.id, &in_b.id).await.unwrap().trashed_at.is_none());
    assert!(store.trash_entries(&ws.id, 10).await.unwrap().is_empty());
}

pub(crate) async fn purging_a_folder_reclaims_the_bytes_of_everything_below_it(store: &dyn MetadataStore) {
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

pub(crate) async fn a_folder_keeps_its_shared_mark(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    let mut shared = folder(&ws.id, "Team", None);
    shared.is_shared = true;
    store.insert_folder(&shared).await.unwrap();
    assert!(store.get_folder(&ws.id, &shared.id).await.unwrap().is_shared);
    let change = FolderChange { is_shared: Some(false), ..Default::default() };
    assert!(!store.update_folder(&ws.id, &shared.id, &change, now()).await.unwrap().is_shared);
    let renamed = FolderChange { name: Some("Team 2".into()), ..Default::default() };
    let after = store.update_folder(&ws.id, &shared.id, &renamed, now()).await.unwrap();
    assert!(!after.is_shared, "a change that does not name it leaves it");
    let private = folder(&ws.id, "Mine", None);
    store.insert_folder(&private).await.unwrap();
    assert!(!store.get_folder(&ws.id, &private.id).await.unwrap().is_shared);
}
