//! Search: scoped by workspace, by folded substring.

use super::*;

/// The search index is scoped by workspace inside (both dialects): what it holds for one
/// workspace is never found by another, and it follows renames and deletes.
pub(crate) async fn search_sees_only_its_workspace_and_follows_renames_and_deletes(
    store: &dyn MetadataStore,
) {
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

pub(crate) async fn search_finds_files_and_folders_by_folded_substring(store: &dyn MetadataStore) {
    let ws = workspace(store, None).await;
    store.insert_folder(&folder(&ws.id, "Quarterly Reports", None)).await.unwrap();
    // U+FDFA folds to 18 characters: 255 of them make the longest folded name (8,415 bytes).
    let longest = "\u{FDFA}".repeat(255);
    for name in [
        "Report.PDF",
        "RÉSUMÉ.docx",
        "holiday.jpg",
        "say \"cheese\" 📷.png",
        "abcxbcd.txt",
        "abc",
        "wxyz",
        "日本語.txt",
        &longest,
    ] {
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
    // Quotes, four-byte characters and FTS5's own operators are only text.
    assert_eq!(search("\"cheese\" 📷").await, vec!["file:say \"cheese\" 📷.png"]);
    assert_eq!(search("📷.p").await, vec!["file:say \"cheese\" 📷.png"]);
    assert!(search("cheese NEAR(say)").await.is_empty());
    assert!(search("ches*").await.is_empty());
    // Every trigram of `abcd` is in `abcxbcd`, but not one after another.
    assert!(search("abcd").await.is_empty());
    assert_eq!(search("cxb").await, vec!["file:abcxbcd.txt"]);
    // Three bytes and four, at a name's start, middle and end, and names of just that many.
    assert_eq!(search("abc").await, vec!["file:abc", "file:abcxbcd.txt"]);
    assert_eq!(search("bcd").await, vec!["file:abcxbcd.txt"]);
    assert_eq!(search("wxy").await, vec!["file:wxyz"]);
    assert_eq!(search("xyz").await, vec!["file:wxyz"]);
    assert_eq!(search("wxyz").await, vec!["file:wxyz"]);
    assert!(search("wxyza").await.is_empty());
    assert_eq!(search("pdf").await, vec!["file:Report.PDF"]);
    assert_eq!(search(".pdf").await, vec!["file:Report.PDF"]);
    assert_eq!(search("txt").await, vec!["file:abcxbcd.txt", "file:日本語.txt"]);
    assert_eq!(search("語.t").await, vec!["file:日本語.txt"]);
    // Characters of several bytes, fewer than three of them.
    assert_eq!(search("日本").await, vec!["file:日本語.txt"]);
    assert_eq!(search("語").await, vec!["file:日本語.txt"]);
    // The longest folded name is found by a part of it and by all of it, not by what it lacks.
    let longest_file = format!("file:{longest}");
    assert_eq!(search(&format!("{}.", "\u{FDFA}".repeat(3))).await, Vec::<String>::new());
    assert_eq!(search(&"\u{FDFA}".repeat(2)).await, vec![longest_file.clone()]);
    assert_eq!(search(&longest).await, vec![longest_file]);
}
