//! URLs that clients keep: permalinks of private files outlive the expiring-URL lifetime and end
//! on trash, on revocation and when tampered with; public URLs name the content version, are
//! cacheable by anyone and end when the rule closes; expiring URLs are the same within a window and
//! say how long a cache may keep their response.

use crate::support;

use chrono::Duration;
use reqwest::header::{CACHE_CONTROL, ETAG};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{assert_error, TestServer};

const BYTES: &[u8] = b"bytes that a page embeds and a database keeps a link to";

/// A file in the test tenant, and its id: sent to Cabinet's storage endpoint, or on S3 straight
/// to the bucket with the headers the ticket lists, then completed.
async fn file(server: &TestServer) -> String {
    if server.s3.is_none() {
        let done = server.upload(&server.tenant, "kept.txt", BYTES).await;
        return done["file"]["id"].as_str().unwrap().to_owned();
    }
    let (status, ticket) =
        server.start_upload(&server.tenant, json!({"name": "kept.txt", "size": BYTES.len()})).await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let mut put = server.http.put(ticket["upload_url"].as_str().unwrap()).body(BYTES.to_vec());
    for (name, value) in ticket["headers"].as_object().unwrap() {
        put = put.header(name.as_str(), value.as_str().unwrap());
    }
    assert!(put.send().await.unwrap().status().is_success());
    let upload = ticket["upload_id"].as_str().or(ticket["id"].as_str()).unwrap();
    let complete =
        server.request(Method::POST, &format!("/v1/uploads/{upload}/complete"), &server.tenant.key);
    let (status, done) = server.send(complete).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    done["file"]["id"].as_str().unwrap().to_owned()
}

async fn download_url(server: &TestServer, id: &str, query: &str) -> Value {
    let (status, body) = server.send(server.get(&format!("/v1/files/{id}/download-url{query}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Fetches a URL with no credentials: status, Cache-Control, body.
/// Moves the test's clock to the start of the next expiring-URL window, so that requests a second
/// apart fall in one window whenever the test starts (a clock in a window's last second would
/// otherwise cross into the next).
fn to_the_next_window(server: &TestServer) {
    let window = cabinet_core::Settings::DEFAULT_URL_WINDOW_SECS as i64;
    let into = server.cabinet.now().timestamp().rem_euclid(window);
    server.clock.advance(Duration::seconds(window - into));
}

async fn fetch(server: &TestServer, url: &str) -> (StatusCode, String, Vec<u8>) {
    let response = server.http.get(url).send().await.unwrap();
    let status = response.status();
    let cache =
        response.headers().get(CACHE_CONTROL).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, cache, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn a_permalink_outlives_the_expiring_url_lifetime_and_ends_with_the_file() {
    let server = TestServer::spawn().await;
    let id = file(&server).await;
    let expiring = download_url(&server, &id, "").await;
    let lasting = download_url(&server, &id, "?lasting=true").await;
    assert_eq!(lasting["expires_at"], Value::Null, "{lasting}");
    let permalink = lasting["url"].as_str().unwrap().to_owned();
    assert_eq!(permalink, download_url(&server, &id, "?lasting=true").await["url"], "one permalink per file");

    // Past the expiring URL's lifetime (and the longest any URL may have).
    server.clock.advance(Duration::days(8));
    let (status, _, _) = fetch(&server, expiring["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, cache, body) = fetch(&server, &permalink).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, BYTES));
    assert_eq!(cache, "private, no-cache");

    // Trashed: gone. Restored: the same file with the same bytes, so its links work again.
    let (status, _) =
        server.send(server.request(Method::DELETE, &format!("/v1/files/{id}"), &server.tenant.key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetch(&server, &permalink).await.0, StatusCode::NOT_FOUND);
    let restore = server.request(Method::POST, &format!("/v1/files/{id}/restore"), &server.tenant.key);
    assert_eq!(server.send(restore).await.0, StatusCode::OK);
    assert_eq!(fetch(&server, &permalink).await.0, StatusCode::OK);
    // Deleted for good: gone for good.
    let purge = server.request(Method::DELETE, &format!("/v1/files/{id}?permanent=true"), &server.tenant.key);
    assert_eq!(server.send(purge).await.0, StatusCode::OK);
    assert_eq!(fetch(&server, &permalink).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn revoking_a_workspaces_links_ends_its_permalinks_and_only_its_own() {
    let server = TestServer::spawn().await;
    let other = server.tenant(None, cabinet_core::Role::Admin).await;
    let id = file(&server).await;
    let theirs = server.upload(&other, "theirs.txt", BYTES).await["file"]["id"].as_str().unwrap().to_owned();
    let mine =
        download_url(&server, &id, "?lasting=true&download=true").await["url"].as_str().unwrap().to_owned();
    let (status, body) = server
        .send(server.request(
            Method::GET,
            &format!("/v1/files/{theirs}/download-url?lasting=true"),
            &other.key,
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let their_link = body["url"].as_str().unwrap().to_owned();

    // A key below admin may not revoke.
    let writer = server.key_for(&server.tenant.workspace, cabinet_core::Role::Write).await;
    let (status, body) = server.send(server.request(Method::POST, "/v1/links/revoke", &writer)).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");

    let (status, body) =
        server.send(server.request(Method::POST, "/v1/links/revoke", &server.tenant.key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["link_generation"], 1);
    assert_eq!(fetch(&server, &mine).await.0, StatusCode::NOT_FOUND);
    assert_eq!(fetch(&server, &their_link).await.0, StatusCode::OK, "another workspace's links live on");
    // A link asked for afterwards works, and is another URL.
    let fresh =
        download_url(&server, &id, "?lasting=true&download=true").await["url"].as_str().unwrap().to_owned();
    assert_ne!(fresh, mine);
    let response = server.http.get(&fresh).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let disposition = response.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.starts_with("attachment"), "{disposition}");
}

#[tokio::test]
async fn a_tampered_permalink_is_refused() {
    let server = TestServer::spawn().await;
    let id = file(&server).await;
    let other = file(&server).await;
    let link = download_url(&server, &id, "?lasting=true").await["url"].as_str().unwrap().to_owned();
    let generation_moved = link.replace("gen=0", "gen=1");
    let version_changed = {
        let (head, tail) = link.split_once("v=").unwrap();
        let flipped = if tail.starts_with('0') { "1" } else { "0" };
        format!("{head}v={flipped}{}", &tail[1..])
    };
    for bad in [
        link.replace(&id, &other),
        generation_moved,
        version_changed,
        link.replace("&sig=", "&dl=1&sig="),
        link.replace("&sig=", "&key=1&sig="),
        format!("{link}&expires=1"),
        link.split("&sig=").next().unwrap().to_owned(),
    ] {
        let (status, _, _) = fetch(&server, &bad).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{bad}");
    }
    // And the expiring form of the question is still asked right.
    let (status, body) =
        server.send(server.get(&format!("/v1/files/{id}/download-url?lasting=true&expires_in=60"))).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_expires_in");
}

#[tokio::test]
async fn a_public_file_carries_a_versioned_url_that_caches_for_a_year_and_ends_with_the_rule() {
    let server = TestServer::spawn().await;
    let id = file(&server).await;
    let (_, details) = server.send(server.get(&format!("/v1/files/{id}"))).await;
    assert_eq!(details["public_url"], Value::Null, "a private file has no public URL: {details}");

    let rules = format!("/v1/files/{id}/access-rules");
    let open = server.request(Method::PUT, &rules, &server.tenant.key).json(&json!({"read": "public"}));
    assert_eq!(server.send(open).await.0, StatusCode::OK);
    let (_, details) = server.send(server.get(&format!("/v1/files/{id}"))).await;
    let public_url = details["public_url"].as_str().expect("a public file has a public URL").to_owned();
    let sha = details["sha256"].as_str().unwrap();
    assert!(public_url.ends_with(&format!(
        "/public/v1/files/{}/{id}/{}",
        server.tenant.workspace,
        &sha[..16]
    )));
    // Every JSON that describes the file says it: lists and search too.
    let (_, list) = server.send(server.get("/v1/files")).await;
    assert_eq!(list["data"][0]["public_url"], public_url.as_str());
    let (_, found) = server.send(server.get("/v1/search?q=kept")).await;
    assert_eq!(found["data"][0]["public_url"], public_url.as_str());

    let response = server.http.get(&public_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable");
    assert_eq!(response.headers()[ETAG].to_str().unwrap(), format!("\"{sha}\""));
    assert_eq!(response.bytes().await.unwrap().as_ref(), BYTES);
    let revalidated =
        server.http.get(&public_url).header("if-none-match", format!("\"{sha}\"")).send().await.unwrap();
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    // Another version of the file is not there.
    let other_version = public_url.replace(&sha[..16], "0000000000000000");
    assert_eq!(fetch(&server, &other_version).await.0, StatusCode::NOT_FOUND);

    // The rule closes: the URL ends at once, and the JSON stops saying it.
    let close = server.request(Method::PUT, &rules, &server.tenant.key).json(&json!({"read": "admin"}));
    assert_eq!(server.send(close).await.0, StatusCode::OK);
    assert_eq!(fetch(&server, &public_url).await.0, StatusCode::NOT_FOUND);
    let (_, details) = server.send(server.get(&format!("/v1/files/{id}"))).await;
    assert_eq!(details["public_url"], Value::Null);
}

#[tokio::test]
async fn a_folder_or_workspace_rule_makes_a_files_url_public_and_trash_ends_it() {
    let server = TestServer::spawn().await;
    let (_, folder) = server
        .send(server.request(Method::POST, "/v1/folders", &server.tenant.key).json(&json!({"name": "site"})))
        .await;
    let folder = folder["id"].as_str().unwrap().to_owned();
    let (status, ticket) = server
        .start_upload(&server.tenant, json!({"name": "logo.txt", "size": BYTES.len(), "folder_id": folder}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, done) =
        server.send(server.http.put(ticket["upload_url"].as_str().unwrap()).body(BYTES.to_vec())).await;
    assert_eq!(done["file"]["public_url"], Value::Null);
    let id = done["file"]["id"].as_str().unwrap().to_owned();

    let rules = format!("/v1/folders/{folder}/access-rules");
    let open = server.request(Method::PUT, &rules, &server.tenant.key).json(&json!({"read": "public"}));
    assert_eq!(server.send(open).await.0, StatusCode::OK);
    let (_, listed) = server.send(server.get(&format!("/v1/files?folder_id={folder}"))).await;
    let public_url = listed["data"][0]["public_url"].as_str().expect("public through its folder").to_owned();
    assert_eq!(fetch(&server, &public_url).await.0, StatusCode::OK);

    let (status, _) =
        server.send(server.request(Method::DELETE, &format!("/v1/files/{id}"), &server.tenant.key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetch(&server, &public_url).await.0, StatusCode::NOT_FOUND);
    let (_, trash) = server.send(server.get("/v1/trash")).await;
    assert_eq!(trash["data"][0]["public_url"], Value::Null, "{trash}");
}

#[tokio::test]
async fn expiring_urls_are_the_same_within_a_window_and_say_how_long_to_cache() {
    let server = TestServer::spawn().await;
    let id = file(&server).await;
    to_the_next_window(&server);
    let first = download_url(&server, &id, "").await;
    server.clock.advance(Duration::seconds(1));
    let second = download_url(&server, &id, "").await;
    assert_eq!(first["url"], second["url"], "one URL within a window");
    assert_eq!(first["expires_at"], second["expires_at"]);
    // An attachment is another URL; so is a later window.
    let attachment = download_url(&server, &id, "?download=true").await;
    assert_ne!(attachment["url"], first["url"]);
    server.clock.advance(Duration::seconds(601));
    let later = download_url(&server, &id, "").await;
    assert_ne!(later["url"], first["url"]);

    // Cache-Control says how long the URL still works.
    let expires_at: chrono::DateTime<chrono::Utc> = later["expires_at"].as_str().unwrap().parse().unwrap();
    let left = (expires_at - server.cabinet.now()).num_seconds();
    let (status, cache, body) = fetch(&server, later["url"].as_str().unwrap()).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, BYTES));
    let max_age: i64 = cache.strip_prefix("private, max-age=").expect(&cache).parse().unwrap();
    assert!((left - 1..=left).contains(&max_age), "{cache} with {left}s left");
    assert!(max_age >= 3600, "never shorter than asked: {max_age}");
    // An explicit short lifetime is kept: windows never more than double it.
    let short = download_url(&server, &id, "?expires_in=5").await;
    let expires_at: chrono::DateTime<chrono::Utc> = short["expires_at"].as_str().unwrap().parse().unwrap();
    let left = (expires_at - server.cabinet.now()).num_seconds();
    assert!((5..=10).contains(&left), "{left}");
}

#[tokio::test]
async fn a_permalink_reads_through_from_s3() {
    let Some(server) = TestServer::spawn_s3("a_permalink_reads_through_from_s3").await else { return };
    let id = file(&server).await;
    let link = download_url(&server, &id, "?lasting=true").await["url"].as_str().unwrap().to_owned();
    assert!(link.starts_with(&server.url), "a permalink is served by Cabinet, not presigned: {link}");
    // Expiring URLs are presigned by S3 there, and are the same within a window too.
    to_the_next_window(&server);
    let first = download_url(&server, &id, "").await;
    server.clock.advance(Duration::seconds(1));
    let second = download_url(&server, &id, "").await;
    assert!(!first["url"].as_str().unwrap().starts_with(&server.url), "presigned by S3: {first}");
    assert_eq!(first["url"], second["url"]);
    let (status, _, body) = fetch(&server, second["url"].as_str().unwrap()).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, BYTES));
    server.clock.advance(Duration::days(8));
    let (status, _, body) = fetch(&server, &link).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, BYTES));
}

#[tokio::test]
async fn every_surface_says_a_public_files_url_and_none_for_a_private_one() {
    let server = TestServer::spawn().await;
    let id = file(&server).await;
    let key = server.tenant.key.clone();
    let ws = server.tenant.workspace.to_string();
    // What each surface's JSON for the file says its public URL is.
    let said = async |server: &TestServer| -> Vec<Value> {
        let native = server.send(server.get(&format!("/v1/files/{id}"))).await.1["public_url"].clone();
        let mavera = server
            .send(server.request(Method::GET, &format!("/compat/mavera/api/v1/files/{id}"), &key))
            .await
            .1["public_url"]
            .clone();
        let mavera_list =
            server.send(server.request(Method::GET, "/compat/mavera/api/v1/files", &key)).await.1["data"][0]
                ["public_url"]
                .clone();
        let cms = server
            .send(
                server
                    .http
                    .get(format!("{}/compat/cms/files/{id}/?organization_id={ws}", server.url))
                    .header("authorization", format!("Token {key}")),
            )
            .await
            .1["public_url"]
            .clone();
        let serenities = server
            .send(
                server
                    .request(Method::POST, "/compat/serenities/api/v1/files/get", &key)
                    .json(&json!({"fileId": id})),
            )
            .await
            .1["publicUrl"]
            .clone();
        let mavi = server
            .send(
                server
                    .http
                    .get(format!("{}/compat/mavi/serve/api/v2/{id}/metadata", server.url))
                    .header("authorization", key.as_str()),
            )
            .await
            .1["data"]["resource"][0]["public_url"]
            .clone();
        vec![native, mavera, mavera_list, cms, serenities, mavi]
    };
    assert_eq!(said(&server).await, vec![Value::Null; 6]);
    let open =
        server.request(Method::PUT, "/v1/access-rules", &server.tenant.key).json(&json!({"read": "public"}));
    assert_eq!(server.send(open).await.0, StatusCode::OK);
    let (_, details) = server.send(server.get(&format!("/v1/files/{id}"))).await;
    let public_url = details["public_url"].as_str().expect("public through the workspace rule").to_owned();
    assert_eq!(said(&server).await, vec![Value::String(public_url.clone()); 6]);
    assert_eq!(fetch(&server, &public_url).await.0, StatusCode::OK);
}
