//! The upload rows on S3 storage: multipart and base64 uploads, `api_id`, and `file_url`, with
//! blobs in an S3 bucket instead of the local folder.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{b64, cms, FILES};
use crate::support::TestServer;

#[tokio::test]
async fn uploads_work_the_same_with_blobs_on_s3() {
    let Some(server) = TestServer::spawn_s3("compat_cms::uploads_work_the_same_with_blobs_on_s3").await
    else {
        return;
    };
    let t = &server.tenant;
    let form = reqwest::multipart::Form::new()
        .text("organization_id", t.workspace.to_string())
        .text("api_id", "s3-poster")
        .text("tags", "Product")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"\x89PNG\r\n\x1a\ns3".to_vec()).file_name("poster.png"),
        );
    let (status, poster) = server.send(cms(&server, Method::POST, FILES, t).multipart(form)).await;
    assert_eq!(status, StatusCode::CREATED, "{poster}");
    assert_eq!((poster["api_id"].as_str(), poster["tags"].clone()), (Some("s3-poster"), json!(["Product"])));
    let bytes =
        server.http.get(poster["file_url"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"\x89PNG\r\n\x1a\ns3");

    let body = json!({"organization_id": t.workspace.as_str(), "file_base64": b64(b"base64 on s3"),
                      "file_name": "notes.txt", "api_id": "s3-notes"});
    let (status, notes) = server.send(cms(&server, Method::POST, FILES, t).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{notes}");
    let (status, details) = server.send(cms(&server, Method::GET, &format!("{FILES}s3-notes/"), t)).await;
    assert_eq!(status, StatusCode::OK, "{details}");
    let bytes =
        server.http.get(details["file_url"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"base64 on s3");

    // A clash is refused and charges nothing.
    let (status, _) = server.send(cms(&server, Method::POST, FILES, t).json(&body)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(server.quota(t).await["used_bytes"], 10 + 12);
}
