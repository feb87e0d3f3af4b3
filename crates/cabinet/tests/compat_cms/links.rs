//! `file_url`: a link CMS clients store and embed in pages, so it lasts while the file lives.

use super::*;

#[tokio::test]
async fn the_file_url_outlives_any_signed_url_and_ends_when_the_file_is_deleted() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let file = upload(&server, t, "hero.png", b"pretend png", json!(["Site"])).await;
    let url = file["file_url"].as_str().unwrap().to_owned();
    let id = file["api_id"].as_str().unwrap().to_owned();
    // Details and the list give the same URL: one per file, so caches hit.
    let (_, details) = server.send(cms(&server, Method::GET, &format!("{FILES}{id}/"), t)).await;
    assert_eq!(details["file_url"], url.as_str());
    let (_, listed) = server.send(cms(&server, Method::GET, FILES, t)).await;
    assert_eq!(listed["results"][0]["file_url"], url.as_str());

    // Eight days on, past the longest any expiring URL may live.
    server.clock.advance(chrono::Duration::days(8));
    let response = server.http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"pretend png");

    let (status, _) = server.send(cms(&server, Method::DELETE, &format!("{FILES}{id}/"), t)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(server.http.get(&url).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}
