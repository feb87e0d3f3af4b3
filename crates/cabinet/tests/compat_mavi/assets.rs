//! MAVI's asset id, download routes, formats and limits, and its envelope on every refusal.

use cabinet_api::HttpLimits;
use chrono::Duration;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::support::{Options, Tenant, TestServer};
use super::{assert_envelope_error, call, file_form, signed_upload, BASE};

async fn signed_url(server: &TestServer, tenant: &Tenant, name: &str) -> (StatusCode, Value) {
    server
        .send(
            call(server, Method::POST, "/upload/signed-url", &tenant.key)
                .json(&json!({"original_filename": name})),
        )
        .await
}

async fn status_of(server: &TestServer, tenant: &Tenant, asset: &str) -> Value {
    let (_, meta) = server.send(call(server, Method::GET, &format!("/{asset}/metadata"), &tenant.key)).await;
    meta["data"]["resource"][0]["upload_status"].clone()
}

/// The id `signed-url` answers names the asset while it is pending and then as the file, on
/// every surface, until it is deleted.
async fn the_asset_id_lasts(server: &TestServer) {
    let tenant = server.tenant.clone();
    let (_, ticket) = signed_url(server, &tenant, "clip.mp4").await;
    let asset = ticket["data"]["asset_id"].as_str().unwrap().to_owned();
    assert!(asset.starts_with("file_"), "{ticket}");
    assert_eq!(status_of(server, &tenant, &asset).await, "WAITING");
    let (status, body) =
        server.send(call(server, Method::GET, &format!("/{asset}/download"), &tenant.key)).await;
    assert_envelope_error(status, &body, StatusCode::BAD_REQUEST, "not ready");
    let bytes = vec![5u8; 4096];
    let (status, _) = server
        .send(
            server
                .http
                .post(ticket["data"]["signed_url"].as_str().unwrap())
                .multipart(file_form("clip.mp4", &bytes)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, meta) = server.send(call(server, Method::GET, &format!("/{asset}/metadata"), &tenant.key)).await;
    assert_eq!(meta["data"]["resource"][0]["upload_status"], "SUCCESS", "{meta}");
    assert_eq!(meta["data"]["resource"][0]["asset_id"], asset.as_str());
    let response =
        call(server, Method::GET, &format!("/{asset}/download"), &tenant.key).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().len(), 4096);
    // The same id natively and through Mavera, and after a rename.
    let (status, native) = server.send(server.get(&format!("/v1/files/{asset}"))).await;
    assert_eq!((status, &native["id"]), (StatusCode::OK, &json!(asset)), "{native}");
    let (status, _) = server
        .send(
            server
                .request(Method::PATCH, &format!("/v1/files/{asset}"), &tenant.key)
                .json(&json!({"name": "renamed.mp4"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, mavera) = server
        .send(server.request(Method::GET, &format!("/compat/mavera/api/v1/files/{asset}"), &tenant.key))
        .await;
    assert_eq!((status, &mavera["name"]), (StatusCode::OK, &json!("renamed.mp4")), "{mavera}");
    let (_, meta) = server.send(call(server, Method::GET, &format!("/{asset}/metadata"), &tenant.key)).await;
    assert_eq!(meta["data"]["resource"][0]["original_filename"], "renamed", "{meta}");
    // Deleted: gone for good.
    let (status, done) = server.send(call(server, Method::DELETE, &format!("/{asset}"), &tenant.key)).await;
    assert_eq!((status, &done["data"]), (StatusCode::OK, &Value::Null), "{done}");
    for path in [format!("/{asset}/metadata"), format!("/{asset}/download")] {
        let (status, body) = server.send(call(server, Method::GET, &path, &tenant.key)).await;
        assert_envelope_error(status, &body, StatusCode::BAD_REQUEST, "Asset not found");
    }
    let (status, body) = server.send(call(server, Method::DELETE, &format!("/{asset}"), &tenant.key)).await;
    assert_envelope_error(status, &body, StatusCode::BAD_REQUEST, "Asset not found");
}

#[tokio::test]
async fn the_signed_url_s_asset_id_names_the_asset_for_its_whole_life() {
    the_asset_id_lasts(&TestServer::spawn().await).await;
}

#[tokio::test]
async fn the_signed_url_s_asset_id_names_the_asset_for_its_whole_life_on_s3() {
    let Some(server) =
        TestServer::spawn_s3("the_signed_url_s_asset_id_names_the_asset_for_its_whole_life_on_s3").await
    else {
        return;
    };
    the_asset_id_lasts(&server).await;
}

#[tokio::test]
async fn an_asset_is_uploading_while_its_bytes_stream() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let (_, ticket) = signed_url(&server, &tenant, "slow.mp4").await;
    let asset = ticket["data"]["asset_id"].as_str().unwrap().to_owned();
    let (sender, receiver) = futures::channel::mpsc::unbounded::<Result<Vec<u8>, std::io::Error>>();
    sender.unbounded_send(Ok(vec![1u8; 1000])).unwrap();
    let put = server
        .http
        .put(ticket["data"]["signed_url"].as_str().unwrap())
        .body(reqwest::Body::wrap_stream(receiver.map(|chunk| chunk)));
    let sending = tokio::spawn(put.send());
    let mut seen = Value::Null;
    for _ in 0..100 {
        seen = status_of(&server, &tenant, &asset).await;
        if seen == "UPLOADING" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(seen, "UPLOADING");
    sender.unbounded_send(Ok(vec![2u8; 1000])).unwrap();
    drop(sender);
    assert_eq!(sending.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(status_of(&server, &tenant, &asset).await, "SUCCESS");
}

#[tokio::test]
async fn download_is_an_attachment_with_type_and_length() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let mut png = std::io::Cursor::new(Vec::new());
    image::DynamicImage::new_rgb8(8, 8).write_to(&mut png, image::ImageFormat::Png).unwrap();
    let asset = signed_upload(&server, &tenant, "pixel.png", png.get_ref()).await;
    let response =
        call(&server, Method::GET, &format!("/{asset}/download"), &tenant.key).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["content-length"].to_str().unwrap(), png.get_ref().len().to_string());
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"pixel.png\""));
    assert_eq!(&response.bytes().await.unwrap()[..], &png.get_ref()[..]);
}

#[tokio::test]
async fn download_by_bucket_and_blob_answers_with_the_documented_messages() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let asset = signed_upload(&server, &tenant, "song.mp3", b"ID3 not really").await;
    let ws = tenant.workspace.to_string();
    let get = |query: &[(&str, &str)]| call(&server, Method::GET, "/download", &tenant.key).query(query);
    let response = get(&[("bucket", &ws), ("blob", &asset)]).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"song.mp3\""));
    assert_eq!(&response.bytes().await.unwrap()[..], b"ID3 not really");
    let (status, body) = server.send(get(&[("blob", &asset)])).await;
    assert_envelope_error(status, &body, StatusCode::BAD_REQUEST, "Bucket cannot be null or empty");
    let (status, body) = server.send(get(&[("bucket", &ws), ("blob", "")])).await;
    assert_envelope_error(status, &body, StatusCode::BAD_REQUEST, "Blob cannot be null or empty");
    let other = server.tenant(None, cabinet_core::Role::Admin).await;
    let (status, body) = server.send(get(&[("bucket", other.workspace.as_str()), ("blob", &asset)])).await;
    assert_envelope_error(status, &body, StatusCode::BAD_REQUEST, "Resource does not exist");
    let (status, body) =
        server.send(get(&[("bucket", &ws), ("blob", "file_01jdq4x7m2c8v5n3k9w6r1t0ya")])).await;
    assert_envelope_error(status, &body, StatusCode::BAD_REQUEST, "Resource does not exist");
    let (status, body) =
        server.send(server.http.get(format!("{}{BASE}/download?bucket={ws}&blob={asset}", server.url))).await;
    assert_envelope_error(status, &body, StatusCode::UNAUTHORIZED, "Unauthorized");
}

#[tokio::test]
async fn only_the_documented_formats_are_taken() {
    let defaults = HttpLimits::default().mavi_formats;
    for format in [
        "mp4", "mov", "avi", "webm", "mkv", "flv", "wmv", "mpeg", "mp3", "wav", "aac", "flac", "ogg", "m4a",
        "jpeg", "png", "gif", "webp", "bmp", "tiff",
    ] {
        assert!(defaults.iter().any(|f| f == format), "{format} is documented");
    }
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let (status, body) = signed_url(&server, &tenant, "notes.txt").await;
    assert_envelope_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type");
    let (status, body) = signed_url(&server, &tenant, "no-extension").await;
    assert_envelope_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "mp4");
    let (status, _) = signed_url(&server, &tenant, "LOUD.MP3").await;
    assert_eq!(status, StatusCode::OK, "extensions match in any case");
    let (status, body) = server
        .send(call(&server, Method::POST, "/upload", &tenant.key).multipart(file_form("notes.txt", b"text")))
        .await;
    assert_envelope_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type");
    assert_eq!(server.quota(&tenant).await["used_bytes"], 0);
    // The list is the server's to set.
    let limits = HttpLimits { mavi_formats: HttpLimits::formats("txt, .PDF"), ..HttpLimits::default() };
    let server = TestServer::spawn_with(Options { http: Some(limits), ..Options::default() }).await;
    let tenant = server.tenant.clone();
    assert_eq!(signed_url(&server, &tenant, "notes.txt").await.0, StatusCode::OK);
    assert_eq!(signed_url(&server, &tenant, "paper.pdf").await.0, StatusCode::OK);
    let (status, body) = signed_url(&server, &tenant, "clip.mp4").await;
    assert_envelope_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "txt, pdf");
}

#[tokio::test]
async fn a_signed_url_takes_files_up_to_its_limit_and_expires_after_expires_in() {
    assert_eq!(HttpLimits::default().mavi_signed_upload_bytes, 5_000_000_000);
    let limits = HttpLimits { mavi_signed_upload_bytes: 1000, ..HttpLimits::default() };
    let server = TestServer::spawn_with(Options { http: Some(limits), ..Options::default() }).await;
    let tenant = server.tenant.clone();
    signed_upload(&server, &tenant, "fits.mp4", &[1u8; 1000]).await;
    let (_, ticket) = signed_url(&server, &tenant, "over.mp4").await;
    let asset = ticket["data"]["asset_id"].as_str().unwrap().to_owned();
    let (status, _) = server
        .send(
            server
                .http
                .post(ticket["data"]["signed_url"].as_str().unwrap())
                .multipart(file_form("over.mp4", &[1u8; 1001])),
        )
        .await;
    assert!(status.is_client_error(), "{status}");
    assert_eq!(status_of(&server, &tenant, &asset).await, "FAILED");
    // expires_in seconds later the URL takes nothing.
    let (_, ticket) = signed_url(&server, &tenant, "late.mp4").await;
    assert_eq!(ticket["data"]["expires_in"], 93600);
    server.clock.advance(Duration::seconds(93601));
    let (status, _) = server
        .send(
            server
                .http
                .post(ticket["data"]["signed_url"].as_str().unwrap())
                .multipart(file_form("late.mp4", b"late")),
        )
        .await;
    assert!(status.is_client_error(), "{status}");
}

#[tokio::test]
async fn refusals_outside_handlers_keep_the_envelope_with_status_equal_to_code() {
    let limits = HttpLimits { rate_limit_per_minute: 6, ..HttpLimits::default() };
    let server = TestServer::spawn_with(Options { http: Some(limits), ..Options::default() }).await;
    let tenant = server.tenant.clone();
    let (status, body) = server.send(call(&server, Method::GET, "/upload/signed-url", &tenant.key)).await;
    assert_envelope_error(status, &body, StatusCode::METHOD_NOT_ALLOWED, "");
    let (status, body) = server
        .send(
            call(&server, Method::POST, "/upload/signed-url", &tenant.key)
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    assert_envelope_error(status, &body, StatusCode::BAD_REQUEST, "Invalid request parameters");
    // A key that may only read cannot upload.
    let read = server.key_for(&tenant.workspace, cabinet_core::Role::Read).await;
    let (status, body) = server
        .send(
            call(&server, Method::POST, "/upload/signed-url", &read)
                .json(&json!({"original_filename": "a.mp4"})),
        )
        .await;
    assert_envelope_error(status, &body, StatusCode::FORBIDDEN, "");
    // MAVI's other products (video editing, transcriptions) are not a Files API: not here.
    let (status, body) = server
        .send(
            call(&server, Method::POST, "/video/edit", &tenant.key)
                .json(&json!({"asset_id": "file_01jdq4x7m2c8v5n3k9w6r1t0ya"})),
        )
        .await;
    assert!(matches!(status, StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED), "{status} {body}");
    assert_envelope_error(status, &body, status, "");
    let mut refused = None;
    for _ in 0..10 {
        let (status, body) = server
            .send(call(&server, Method::GET, "/file_01jdq4x7m2c8v5n3k9w6r1t0ya/metadata", &tenant.key))
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(body);
            break;
        }
    }
    let body = refused.expect("the rate limit refuses in the end");
    assert_envelope_error(StatusCode::TOO_MANY_REQUESTS, &body, StatusCode::TOO_MANY_REQUESTS, "");
}
