//! The links Mavera clients keep: `public_url` from upload-url, and a file's `url`. Both last
//! while the file lives.

use super::*;

#[tokio::test]
async fn the_public_url_serves_the_file_once_it_is_recorded_and_the_url_lasts_until_delete() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let bytes = b"a brand asset that a page embeds";
    let request = json!({
        "file_name": "logo.txt", "file_type": "text/plain", "file_size": bytes.len(),
        "workspace_id": tenant.workspace.as_str(),
    });
    let (status, ticket) =
        server.send(call(&server, Method::POST, "/files/upload-url", &tenant.key).json(&request)).await;
    assert_eq!(status, StatusCode::OK, "{ticket}");
    let public_url = ticket["public_url"].as_str().unwrap().to_owned();
    // Before the bytes arrive and before the record is made, there is no file to serve.
    assert_eq!(server.http.get(&public_url).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let mut put = server.http.put(ticket["upload_url"].as_str().unwrap()).body(bytes.to_vec());
    for (name, value) in ticket["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    assert_eq!(server.send(put).await.0, StatusCode::OK);
    assert_eq!(server.http.get(&public_url).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let record = json!({
        "name": "logo.txt", "type": "text/plain", "url": public_url, "workspace_id": tenant.workspace.as_str(),
        "file_size": bytes.len(),
    });
    let (status, file) = server.send(call(&server, Method::POST, "/files", &tenant.key).json(&record)).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let url = file["url"].as_str().unwrap().to_owned();
    let id = file["id"].as_str().unwrap().to_owned();
    // The file's url is one URL, in the record, its details and the list.
    let (_, details) = server.send(call(&server, Method::GET, &format!("/files/{id}"), &tenant.key)).await;
    assert_eq!(details["url"], url.as_str());
    let (_, listed) = server.send(call(&server, Method::GET, "/files", &tenant.key)).await;
    assert_eq!(listed["data"][0]["url"], url.as_str(), "{listed}");

    // Eight days on — past the longest any expiring URL may live — both still serve the bytes.
    server.clock.advance(chrono::Duration::days(8));
    for link in [&public_url, &url] {
        let response = server.http.get(link).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{link}");
        assert_eq!(response.bytes().await.unwrap().as_ref(), bytes);
    }
    // Deleted (Mavera reclaims the storage at once): both end.
    let (status, _) = server.send(call(&server, Method::DELETE, &format!("/files/{id}"), &tenant.key)).await;
    assert_eq!(status, StatusCode::OK);
    for link in [&public_url, &url] {
        assert_eq!(server.http.get(link).send().await.unwrap().status(), StatusCode::NOT_FOUND, "{link}");
    }
}
