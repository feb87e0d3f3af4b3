//! Organising files over HTTP: the folder tree, favorites, tags and metadata, references, trash
//! and search — each test named for the rule it holds.

use crate::support;

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{assert_error, TestServer};

async fn folder(server: &TestServer, name: &str, parent: Option<&str>) -> String {
    let (status, body) = server
        .send(
            server
                .request(Method::POST, "/v1/folders", &server.tenant.key)
                .json(&json!({"name": name, "parent_id": parent})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn file_in(server: &TestServer, name: &str, folder: Option<&str>) -> String {
    let body = json!({"name": name, "size": 3, "folder_id": folder});
    let (status, ticket) = server.start_upload(&server.tenant, body).await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let (status, done) =
        server.send(server.http.put(ticket["upload_url"].as_str().unwrap()).body("abc")).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    done["file"]["id"].as_str().unwrap().to_owned()
}

async fn call(server: &TestServer, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = server.request(method, path, &server.tenant.key);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    server.send(request).await
}

fn names(list: &Value) -> Vec<String> {
    list["data"].as_array().unwrap().iter().map(|item| item["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn folders_nest_and_show_their_path() {
    let server = TestServer::spawn().await;
    let a = folder(&server, "Projects", None).await;
    let b = folder(&server, "2026", Some(&a)).await;
    let c = folder(&server, "Launch", Some(&b)).await;
    let (status, details) = call(&server, Method::GET, &format!("/v1/folders/{c}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let path: Vec<&str> =
        details["path"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(path, vec!["Projects", "2026", "Launch"]);
    file_in(&server, "plan.txt", Some(&b)).await;
    let (_, children) =
        call(&server, Method::GET, &format!("/v1/folders/{b}/children?sort=name"), None).await;
    assert_eq!(names(&children["folders"]), vec!["Launch"]);
    assert_eq!(names(&children["files"]), vec!["plan.txt"]);
    let (_, root) = call(&server, Method::GET, "/v1/folders/root/children", None).await;
    assert_eq!(names(&root["folders"]), vec!["Projects"]);
    assert_eq!(root["files"]["total"], 0);
}

#[tokio::test]
async fn sibling_names_are_unique_case_insensitively_unless_renaming_is_asked_for() {
    let server = TestServer::spawn().await;
    folder(&server, "Reports", None).await;
    let (status, body) = call(&server, Method::POST, "/v1/folders", Some(json!({"name": "REPORTS"}))).await;
    assert_error(status, &body, StatusCode::CONFLICT, "name_taken");
    let (status, body) =
        call(&server, Method::POST, "/v1/folders?on_conflict=rename", Some(json!({"name": "reports"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["name"], "reports (2)");
    let (_, body) =
        call(&server, Method::POST, "/v1/folders?on_conflict=rename", Some(json!({"name": "Reports"}))).await;
    assert_eq!(body["name"], "Reports (3)");
}

#[tokio::test]
async fn a_folder_cannot_move_into_its_own_subtree() {
    let server = TestServer::spawn().await;
    let a = folder(&server, "a", None).await;
    let b = folder(&server, "b", Some(&a)).await;
    let c = folder(&server, "c", Some(&b)).await;
    for target in [&a, &b, &c] {
        let (status, body) =
            call(&server, Method::PATCH, &format!("/v1/folders/{a}"), Some(json!({"parent_id": target})))
                .await;
        assert_error(status, &body, StatusCode::CONFLICT, "folder_cycle");
    }
    let (status, moved) = call(
        &server,
        Method::PATCH,
        &format!("/v1/folders/{c}"),
        Some(json!({"parent_id": null, "name": "c2"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!((moved["parent_id"].clone(), moved["name"].clone()), (Value::Null, json!("c2")));
}

/// The folder depth limit (`MAX_FOLDER_DEPTH`), as a user meets it.
const MAX_DEPTH: usize = 100;

/// A chain of `depth` nested folders from the root; returns their ids, top first.
async fn chain(server: &TestServer, depth: usize) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for level in 1..=depth {
        let id = folder(server, &format!("level {level}"), ids.last().map(String::as_str)).await;
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn folders_nest_at_most_a_hundred_deep_and_a_move_into_the_subtree_is_refused_at_any_depth() {
    let server = TestServer::spawn().await;
    let ids = chain(&server, MAX_DEPTH).await;
    let (status, body) = call(
        &server,
        Method::POST,
        "/v1/folders",
        Some(json!({"name": "one too deep", "parent_id": ids.last()})),
    )
    .await;
    assert_error(status, &body, StatusCode::CONFLICT, "folder_too_deep");
    // The top under the bottom: the cycle is seen however far down the bottom is.
    let (status, body) = call(
        &server,
        Method::PATCH,
        &format!("/v1/folders/{}", ids[0]),
        Some(json!({"parent_id": ids.last()})),
    )
    .await;
    assert_error(status, &body, StatusCode::CONFLICT, "folder_cycle");
    // A folder with one level below it fits under level 98, not under level 99.
    let outside = folder(&server, "outside", None).await;
    folder(&server, "inner", Some(&outside)).await;
    let (status, body) = call(
        &server,
        Method::PATCH,
        &format!("/v1/folders/{outside}"),
        Some(json!({"parent_id": ids[MAX_DEPTH - 2]})),
    )
    .await;
    assert_error(status, &body, StatusCode::CONFLICT, "folder_too_deep");
    let (status, body) = call(
        &server,
        Method::PATCH,
        &format!("/v1/folders/{outside}"),
        Some(json!({"parent_id": ids[MAX_DEPTH - 3]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, details) = call(&server, Method::GET, &format!("/v1/folders/{outside}"), None).await;
    assert_eq!(details["path"].as_array().map(Vec::len), Some(MAX_DEPTH - 1), "{details}");
    // A trashed folder whose old parent went deeper meanwhile comes back at the root.
    let (status, _) =
        call(&server, Method::DELETE, &format!("/v1/folders/{outside}?recursive=true"), None).await;
    assert_eq!(status, StatusCode::OK);
    // Cut the chain below level 98, then hang it one level lower: level 98 is now at depth 99,
    // where `outside` (with `inner` below it) no longer fits.
    let (status, _) = call(
        &server,
        Method::DELETE,
        &format!("/v1/folders/{}?recursive=true&permanent=true", ids[MAX_DEPTH - 2]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let spare = folder(&server, "spare", None).await;
    let (status, body) =
        call(&server, Method::PATCH, &format!("/v1/folders/{}", ids[0]), Some(json!({"parent_id": spare})))
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, restored) =
        call(&server, Method::POST, &format!("/v1/folders/{outside}/restore"), None).await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(restored["restore"]["restored_to_root"], true, "{restored}");
    assert_eq!(restored["folder"]["parent_id"], Value::Null, "{restored}");
}

#[tokio::test]
async fn a_cycle_left_in_the_database_stops_nothing_and_no_other_workspace() {
    let server = TestServer::spawn().await;
    let a = folder(&server, "a", None).await;
    let b = folder(&server, "b", Some(&a)).await;
    file_in(&server, "inside.txt", Some(&b)).await;
    // Only an older version (or a bug) could make this: a is now b's child and b is a's.
    server.raw_sql(&format!("UPDATE folders SET parent_id = '{b}' WHERE id = '{a}'")).await;
    let timed = |request: reqwest::RequestBuilder| request.timeout(std::time::Duration::from_secs(20));
    // Every walk of the tree ends: paths, subtree lists and searches, the recursive delete.
    let (status, body) = server.send(timed(server.get(&format!("/v1/folders/{a}")))).await;
    assert_error(status, &body, StatusCode::CONFLICT, "folder_too_deep");
    let (status, listed) =
        server.send(timed(server.get(&format!("/v1/files?folder_id={a}&recursive=true")))).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(names(&listed), vec!["inside.txt"]);
    let (status, found) =
        server.send(timed(server.get(&format!("/v1/search?q=inside&folder_id={b}&recursive=true")))).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    // No move can make it worse, and none into it is allowed.
    let c = folder(&server, "c", None).await;
    let (status, body) =
        call(&server, Method::PATCH, &format!("/v1/folders/{c}"), Some(json!({"parent_id": a}))).await;
    assert!(status.is_client_error(), "{status} {body}");
    // Another workspace keeps writing while this one deletes the cycle, and afterwards.
    let other = server.tenant(None, cabinet_core::Role::Admin).await;
    let (status, body) = server
        .send(timed(server.request(
            Method::DELETE,
            &format!("/v1/folders/{a}?recursive=true"),
            &server.tenant.key,
        )))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.upload(&other, "unaffected.txt", b"still writing").await;
    let (status, body) = server
        .send(timed(server.request(
            Method::DELETE,
            &format!("/v1/folders/{a}?permanent=true"),
            &server.tenant.key,
        )))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(server.quota(&server.tenant).await["used_bytes"], 0);
}

#[tokio::test]
async fn concurrent_moves_never_make_a_cycle_or_duplicate_names() {
    let server = TestServer::spawn().await;
    let a = folder(&server, "a", None).await;
    let b = folder(&server, "b", None).await;
    let target = folder(&server, "target", None).await;
    let server = &server;
    let swaps = [(a.clone(), b.clone()), (b.clone(), a.clone())];
    let results = futures::future::join_all(swaps.into_iter().map(|(from, into)| async move {
        call(server, Method::PATCH, &format!("/v1/folders/{from}"), Some(json!({"parent_id": into}))).await
    }))
    .await;
    let moved = results.iter().filter(|(status, _)| *status == StatusCode::OK).count();
    assert_eq!(moved, 1, "exactly one of two crossing moves may win: {results:?}");
    let attempts = (0..8).map(|i| {
        let id = if i % 2 == 0 { a.clone() } else { b.clone() };
        let target = target.clone();
        async move {
            call(
                server,
                Method::PATCH,
                &format!("/v1/folders/{id}"),
                Some(json!({"name": "Same", "parent_id": target})),
            )
            .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    assert!(
        results.iter().all(|(status, _)| *status == StatusCode::OK || *status == StatusCode::CONFLICT),
        "{results:?}"
    );
    let (_, inside) = call(server, Method::GET, &format!("/v1/folders?parent_id={target}"), None).await;
    let mut seen = names(&inside);
    seen.sort();
    seen.dedup_by(|x, y| x.to_lowercase() == y.to_lowercase());
    assert_eq!(seen.len(), inside["total"].as_u64().unwrap() as usize);
}

#[tokio::test]
async fn files_are_renamed_moved_described_and_tagged() {
    let server = TestServer::spawn().await;
    let dir = folder(&server, "dir", None).await;
    let id = file_in(&server, "draft.txt", None).await;
    let (_, before) = call(&server, Method::GET, &format!("/v1/files/{id}"), None).await;
    server.clock.advance(Duration::seconds(5));
    let patch = json!({
        "name": "Final.txt", "folder_id": dir, "alt_text": "alt", "caption": "cap", "copyright": "© me",
        "metadata": {"project": "x", "n": 1}, "tags": ["Launch", " product ", "launch"], "is_favorite": true
    });
    let (status, after) = call(&server, Method::PATCH, &format!("/v1/files/{id}"), Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["name"], "Final.txt");
    assert_eq!(after["folder_id"], dir.as_str());
    // Tags keep the first spelling given; `launch` is the same tag as `Launch`.
    assert_eq!(after["tags"], json!(["Launch", "product"]));
    assert_eq!(after["metadata"], json!({"project": "x", "n": 1}));
    assert_eq!(after["is_favorite"], true);
    assert_ne!(after["updated_at"], before["updated_at"]);
    let (status, cleared) = call(
        &server,
        Method::PATCH,
        &format!("/v1/files/{id}"),
        Some(json!({"alt_text": null, "folder_id": null})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (cleared["alt_text"].clone(), cleared["folder_id"].clone(), cleared["caption"].clone()),
        (Value::Null, Value::Null, json!("cap"))
    );
    let (_, tags) = call(&server, Method::GET, "/v1/tags", None).await;
    assert_eq!(tags, json!([{"tag": "Launch", "count": 1}, {"tag": "product", "count": 1}]));
    let big = json!({"metadata": {"blob": "x".repeat(20_000)}});
    let (status, body) = call(&server, Method::PATCH, &format!("/v1/files/{id}"), Some(big)).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "metadata_too_large");
    let (status, body) =
        call(&server, Method::PATCH, &format!("/v1/files/{id}"), Some(json!({"tags": ["a,b"]}))).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_tag");
    let (status, body) = call(
        &server,
        Method::PATCH,
        &format!("/v1/files/{id}"),
        Some(json!({"folder_id": "fld_01jdq4x7m2c8v5n3k9w6r1t0ya"})),
    )
    .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn favorites_toggle_and_filter_every_list() {
    let server = TestServer::spawn().await;
    let f = file_in(&server, "a.txt", None).await;
    file_in(&server, "b.txt", None).await;
    let d = folder(&server, "d", None).await;
    let (_, toggled) = call(&server, Method::POST, &format!("/v1/files/{f}/favorite"), None).await;
    assert_eq!(toggled["is_favorite"], true);
    let (_, toggled) = call(&server, Method::POST, &format!("/v1/folders/{d}/favorite"), None).await;
    assert_eq!(toggled["is_favorite"], true);
    let (_, files) = call(&server, Method::GET, "/v1/files?favorite=true", None).await;
    assert_eq!(names(&files), vec!["a.txt"]);
    let (_, folders) = call(&server, Method::GET, "/v1/folders?favorite=true", None).await;
    assert_eq!(names(&folders), vec!["d"]);
    let (_, toggled) = call(&server, Method::POST, &format!("/v1/files/{f}/favorite"), None).await;
    assert_eq!(toggled["is_favorite"], false);
    let (_, files) = call(&server, Method::GET, "/v1/files?favorite=true", None).await;
    assert_eq!(files["total"], 0);
}

#[tokio::test]
async fn a_referenced_file_is_not_deleted_without_force() {
    let server = TestServer::spawn().await;
    let id = file_in(&server, "logo.png", None).await;
    let (status, _) = call(
        &server,
        Method::POST,
        &format!("/v1/files/{id}/references"),
        Some(json!({"kind": "page", "id": "home", "label": "Home page"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, details) = call(&server, Method::GET, &format!("/v1/files/{id}"), None).await;
    assert_eq!(details["references"][0]["label"], "Home page");
    let (_, referenced) = call(&server, Method::GET, "/v1/files?referenced_by=page:home", None).await;
    assert_eq!(names(&referenced), vec!["logo.png"]);
    let (status, body) = call(&server, Method::DELETE, &format!("/v1/files/{id}"), None).await;
    assert_error(status, &body, StatusCode::CONFLICT, "file_in_use");
    assert!(body["error"]["message"].as_str().unwrap().contains("page:home"));
    let (status, _) = call(&server, Method::DELETE, &format!("/v1/files/{id}?force=true"), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_non_empty_folder_needs_recursive_and_a_three_level_tree_trashes_and_restores_whole() {
    let server = TestServer::spawn().await;
    let a = folder(&server, "a", None).await;
    let b = folder(&server, "b", Some(&a)).await;
    let c = folder(&server, "c", Some(&b)).await;
    let deep = file_in(&server, "deep.txt", Some(&c)).await;
    let (status, body) = call(&server, Method::DELETE, &format!("/v1/folders/{a}"), None).await;
    assert_error(status, &body, StatusCode::CONFLICT, "folder_not_empty");
    let (status, _) = call(&server, Method::DELETE, &format!("/v1/folders/{a}?recursive=true"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, trash) = call(&server, Method::GET, "/v1/trash", None).await;
    assert_eq!(trash["data"].as_array().unwrap().len(), 1, "{trash}");
    assert_eq!(trash["data"][0]["type"], "folder");
    let (_, files) = call(&server, Method::GET, "/v1/files", None).await;
    assert_eq!(files["total"], 0);
    assert_eq!(server.quota(&server.tenant).await["used_bytes"], 3);
    let (status, restored) = call(&server, Method::POST, &format!("/v1/folders/{a}/restore"), None).await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    let (_, file) = call(&server, Method::GET, &format!("/v1/files/{deep}"), None).await;
    assert_eq!(file["trashed_at"], Value::Null);
    assert_eq!(file["folder_id"], c.as_str());
    let (_, path) = call(&server, Method::GET, &format!("/v1/folders/{c}"), None).await;
    assert_eq!(path["path"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn restoring_a_file_rebuilds_its_trashed_parents_or_says_it_went_to_the_root() {
    let server = TestServer::spawn().await;
    let a = folder(&server, "a", None).await;
    let b = folder(&server, "b", Some(&a)).await;
    let file = file_in(&server, "x.txt", Some(&b)).await;
    call(&server, Method::DELETE, &format!("/v1/folders/{a}?recursive=true"), None).await;
    let (status, restored) = call(&server, Method::POST, &format!("/v1/files/{file}/restore"), None).await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(restored["restore"]["recreated_folders"], json!([a, b]));
    assert_eq!(restored["file"]["folder_id"], b.as_str());

    let other = file_in(&server, "y.txt", Some(&b)).await;
    call(&server, Method::DELETE, &format!("/v1/files/{other}"), None).await;
    call(&server, Method::DELETE, &format!("/v1/folders/{a}?recursive=true&permanent=true&force=true"), None)
        .await;
    let (status, restored) = call(&server, Method::POST, &format!("/v1/files/{other}/restore"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "purging the folder purged what was in it: {restored}");
    let lone = folder(&server, "lone", None).await;
    let orphan = file_in(&server, "z.txt", Some(&lone)).await;
    call(&server, Method::DELETE, &format!("/v1/files/{orphan}"), None).await;
    call(&server, Method::DELETE, &format!("/v1/folders/{lone}?permanent=true"), None).await;
    // Purging a folder purges everything filed under it, the trashed file too.
    let (status, restored) = call(&server, Method::POST, &format!("/v1/files/{orphan}/restore"), None).await;
    assert_error(status, &restored, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(server.quota(&server.tenant).await["used_bytes"], 0, "every file went with its folder");
}

#[tokio::test]
async fn the_trash_is_purged_after_the_retention_period_and_its_quota_reclaimed() {
    let server = TestServer::spawn().await;
    let old = file_in(&server, "old.txt", None).await;
    call(&server, Method::DELETE, &format!("/v1/files/{old}"), None).await;
    server.clock.advance(Duration::days(29));
    let recent = file_in(&server, "recent.txt", None).await;
    call(&server, Method::DELETE, &format!("/v1/files/{recent}"), None).await;
    assert_eq!(server.cabinet.purge_expired_trash().await.unwrap(), 0);
    server.clock.advance(Duration::days(2));
    assert_eq!(server.cabinet.purge_expired_trash().await.unwrap(), 1);
    assert_eq!(server.quota(&server.tenant).await["used_bytes"], 3);
    let (status, _) = call(&server, Method::GET, &format!("/v1/files/{old}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, emptied) = call(&server, Method::DELETE, "/v1/trash", None).await;
    assert_eq!(emptied["purged"], 1);
    assert_eq!(server.quota(&server.tenant).await["used_bytes"], 0);
    assert_eq!(server.stored_blobs(), 0);
}

#[tokio::test]
async fn search_folds_case_and_accents_alike_across_files_and_folders() {
    let server = TestServer::spawn().await;
    let dir = folder(&server, "Annual REPORTS", None).await;
    file_in(&server, "Report.PDF", None).await;
    file_in(&server, "RÉSUMÉ.docx", Some(&dir)).await;
    file_in(&server, "holiday.jpg", None).await;
    let (_, hits) = call(&server, Method::GET, "/v1/search?q=report&sort=name", None).await;
    let found: Vec<(String, String)> = hits["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["type"].as_str().unwrap().to_owned(), h["name"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        found,
        vec![
            ("folder".to_owned(), "Annual REPORTS".to_owned()),
            ("file".to_owned(), "Report.PDF".to_owned())
        ]
    );
    let (_, hits) = call(&server, Method::GET, "/v1/search?q=r%C3%A9sum%C3%A9", None).await;
    assert_eq!(hits["total"], 1);
    assert_eq!(hits["data"][0]["name"], "RÉSUMÉ.docx");
    let (_, hits) =
        call(&server, Method::GET, &format!("/v1/search?q=sum&folder_id={dir}&recursive=true"), None).await;
    assert_eq!(hits["total"], 1);
    let (status, body) = call(&server, Method::GET, "/v1/search?q=", None).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "missing_query");
    let (_, files) = call(&server, Method::GET, "/v1/files?q=HOLI", None).await;
    assert_eq!(names(&files), vec!["holiday.jpg"]);
}

#[tokio::test]
async fn paging_visits_every_file_exactly_once_while_files_are_added() {
    let server = TestServer::spawn().await;
    for i in 0..12 {
        file_in(&server, &format!("f{i:02}.txt"), None).await;
        server.clock.advance(Duration::milliseconds(1));
    }
    for sort in ["name", "created_at", "size"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut added = 0;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/files?sort={sort}&order=asc&limit=5&cursor={c}"),
                None => format!("/v1/files?sort={sort}&order=asc&limit=5"),
            };
            let (status, page) = call(&server, Method::GET, &path, None).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            seen.extend(names(&page));
            // New files land before the cursor for name ("a…") and never inside a visited range.
            file_in(&server, &format!("a-new-{sort}-{added}.txt"), None).await;
            added += 1;
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let originals: Vec<&String> = seen.iter().filter(|n| n.starts_with('f')).collect();
        assert_eq!(originals.len(), 12, "{sort}: {seen:?}");
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "{sort}: a file was visited twice: {seen:?}");
    }
    let (_, by_offset) = call(&server, Method::GET, "/v1/files?sort=name&limit=3&offset=3", None).await;
    assert_eq!(by_offset["data"].as_array().unwrap().len(), 3);
    let (status, body) = call(&server, Method::GET, "/v1/files?sort=name&cursor=x&offset=1", None).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_paging");
    let (status, body) = call(&server, Method::GET, "/v1/files?sort=bogus", None).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_sort");
}

#[tokio::test]
async fn lists_filter_by_type_tags_size_and_trash() {
    let server = TestServer::spawn().await;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    server.upload(&server.tenant, "pic.png", png).await;
    let txt = file_in(&server, "note.txt", None).await;
    call(&server, Method::PATCH, &format!("/v1/files/{txt}"), Some(json!({"tags": ["a", "b"]}))).await;
    let (_, images) = call(&server, Method::GET, "/v1/files?mime=image", None).await;
    assert_eq!(names(&images), vec!["pic.png"]);
    let (_, tagged) = call(&server, Method::GET, "/v1/files?tags=a,b", None).await;
    assert_eq!(names(&tagged), vec!["note.txt"]);
    let (_, any) = call(&server, Method::GET, "/v1/files?tags=b,zzz&tags_match=any", None).await;
    assert_eq!(names(&any), vec!["note.txt"]);
    let (_, all) = call(&server, Method::GET, "/v1/files?tags=b,zzz", None).await;
    assert_eq!(all["total"], 0);
    let (_, small) = call(&server, Method::GET, "/v1/files?max_size=3", None).await;
    assert_eq!(names(&small), vec!["note.txt"]);
    call(&server, Method::DELETE, &format!("/v1/files/{txt}"), None).await;
    let (_, trashed) = call(&server, Method::GET, "/v1/files?trashed=true", None).await;
    assert_eq!(names(&trashed), vec!["note.txt"]);
    let (_, tags) = call(&server, Method::GET, "/v1/tags", None).await;
    assert_eq!(tags, json!([]));
}

#[tokio::test]
async fn usage_meters_byte_seconds_and_gb_days_from_the_ledger_of_size_changes() {
    let server = TestServer::spawn().await;
    let start = server.cabinet.now();
    let done = server.upload(&server.tenant, "big.bin", &vec![7u8; 1000]).await;
    let id = done["file"]["id"].as_str().unwrap().to_owned();
    server.clock.advance(Duration::days(1));
    server.upload(&server.tenant, "small.bin", &[1u8; 10]).await;
    server.clock.advance(Duration::days(1));
    call(&server, Method::DELETE, &format!("/v1/files/{id}?permanent=true"), None).await;
    server.clock.advance(Duration::days(1));
    let from = start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let to = (start + Duration::days(3)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let path = format!("/v1/usage?from={}&to={}", from.replace('+', "%2B"), to.replace('+', "%2B"));
    let (status, usage) = call(&server, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    // 1000 B for two days, 10 B for the last two.
    let expected = 1000 * 2 * 86_400 + 10 * 2 * 86_400;
    assert_eq!(usage["byte_seconds"], expected, "{usage}");
    assert!((usage["gb_days"].as_f64().unwrap() - expected as f64 / 86_400e9).abs() < 1e-12);
    assert_eq!(usage["total_size"], 10);
    // A `to` in the future bills only what was stored until now.
    let future = (start + Duration::days(400)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let path = format!("/v1/usage?from={}&to={}", from.replace('+', "%2B"), future.replace('+', "%2B"));
    let (status, later) = call(&server, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{later}");
    assert_eq!(later["byte_seconds"], expected, "{later}");
    assert_eq!(later["to"], usage["to"], "the range ends now: {later}");
    let (status, body) = call(
        &server,
        Method::GET,
        &format!("/v1/usage?from={}&to={}", to.replace('+', "%2B"), from.replace('+', "%2B")),
        None,
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_range");
}
