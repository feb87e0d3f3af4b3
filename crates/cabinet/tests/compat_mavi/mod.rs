//! The MAVI dialect over HTTP: signed URLs of unknown size that complete by themselves, direct
//! upload with its limit, metadata, download, delete, the envelope and its errors.

use crate::support;

use cabinet_api::HttpLimits;
use cabinet_core::Role;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{Options, Tenant, TestServer};

const BASE: &str = "/compat/mavi/serve/api/v2";

/// A request as MAVI clients send it: the raw key, no `Bearer`.
fn call(server: &TestServer, method: Method, path: &str, key: &str) -> reqwest::RequestBuilder {
    server.http.request(method, format!("{}{BASE}{path}", server.url)).header("Authorization", key)
}

pub(crate) fn assert_envelope_error(status: StatusCode, body: &Value, expected: StatusCode, msg: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["code"], expected.as_u16(), "{body}");
    assert!(body["msg"].as_str().unwrap().contains(msg), "{body}");
    assert_eq!(body["data"], Value::Null);
    assert_eq!(body["success"], false);
    assert_eq!(body["failed"], true);
}

fn file_form(name: &str, bytes: &[u8]) -> Form {
    Form::new().part("file", Part::bytes(bytes.to_vec()).file_name(name.to_owned()))
}

async fn signed_upload(server: &TestServer, tenant: &Tenant, name: &str, bytes: &[u8]) -> String {
    let (status, body) = server
        .send(
            call(server, Method::POST, "/upload/signed-url", &tenant.key)
                .json(&json!({"original_filename": name})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, done) = server
        .send(
            server.http.post(body["data"]["signed_url"].as_str().unwrap()).multipart(file_form(name, bytes)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    body["data"]["asset_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_signed_url_takes_any_size_and_the_asset_completes_by_itself() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let (status, body) = server
        .send(
            call(&server, Method::POST, "/upload/signed-url", &tenant.key)
                .json(&json!({"original_filename": "video.mp4"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["code"].clone(), body["msg"].clone(), body["success"].clone(), body["failed"].clone()),
        (json!(200), json!("success"), json!(true), json!(false))
    );
    let asset = body["data"]["asset_id"].as_str().unwrap().to_owned();
    assert_eq!(body["data"]["expires_in"], 93600);
    // Nothing is reserved for it, and it is WAITING.
    assert_eq!(server.quota(&tenant).await["reserved_bytes"], 0);
    let (_, meta) = server.send(call(&server, Method::GET, &format!("/{asset}/metadata"), &tenant.key)).await;
    assert_eq!(meta["data"]["resource"][0]["upload_status"], "WAITING", "{meta}");
    let bytes = vec![7u8; 300_000];
    let (status, done) = server
        .send(
            server
                .http
                .post(body["data"]["signed_url"].as_str().unwrap())
                .multipart(file_form("video.mp4", &bytes)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let (status, meta) =
        server.send(call(&server, Method::GET, &format!("/{asset}/metadata"), &tenant.key)).await;
    assert_eq!(status, StatusCode::OK, "{meta}");
    let resource = &meta["data"]["resource"][0];
    assert_eq!(meta["data"]["total"], 1);
    assert_eq!(resource["upload_status"], "SUCCESS");
    assert_eq!(resource["file_size"], "300000");
    assert_eq!(resource["original_filename"], "video");
    assert_eq!(resource["extension"], "mp4");
    assert_eq!(resource["asset_id"], asset.as_str());
    assert!(resource["create_time"].as_str().unwrap().parse::<i64>().unwrap() > 1_600_000_000_000);
    assert_eq!(server.quota(&tenant).await["used_bytes"], 300_000);
    // The file is Cabinet's: the native API lists it.
    let (_, files) = server.send(server.get("/v1/files")).await;
    assert_eq!(files["data"][0]["name"], "video.mp4", "{files}");
    // Download by the asset id, as an attachment.
    let response =
        call(&server, Method::GET, &format!("/{asset}/download"), &tenant.key).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"video.mp4\""));
    assert_eq!(response.bytes().await.unwrap().len(), 300_000);
    // A raw PUT works too, and Bearer is accepted.
    let (_, ticket) = server
        .send(
            server
                .request(Method::POST, &format!("{BASE}/upload/signed-url"), &tenant.key)
                .json(&json!({"original_filename": "a.mp4"})),
        )
        .await;
    let (status, _) =
        server.send(server.http.put(ticket["data"]["signed_url"].as_str().unwrap()).body("hello")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_size_upload_is_held_to_the_quota_when_its_bytes_arrive() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant(Some(1000), Role::Write).await;
    let (_, ticket) = server
        .send(
            call(&server, Method::POST, "/upload/signed-url", &tenant.key)
                .json(&json!({"original_filename": "big.mp4"})),
        )
        .await;
    let asset = ticket["data"]["asset_id"].as_str().unwrap().to_owned();
    let (status, refused) = server
        .send(
            server
                .http
                .post(ticket["data"]["signed_url"].as_str().unwrap())
                .multipart(file_form("big.mp4", &[1u8; 1001])),
        )
        .await;
    assert!(status.is_client_error() || status == StatusCode::INSUFFICIENT_STORAGE, "{status} {refused}");
    let (_, meta) = server.send(call(&server, Method::GET, &format!("/{asset}/metadata"), &tenant.key)).await;
    assert_eq!(meta["data"]["resource"][0]["upload_status"], "FAILED", "{meta}");
    let quota = server.quota(&tenant).await;
    assert_eq!(
        (quota["used_bytes"].as_u64(), quota["reserved_bytes"].as_u64()),
        (Some(0), Some(0)),
        "{quota}"
    );
    // Two uploads racing for the same space: the ledger never passes the limit.
    let a = signed_upload(&server, &tenant, "a.mp4", &[1u8; 600]).await;
    let (_, ticket) = server
        .send(
            call(&server, Method::POST, "/upload/signed-url", &tenant.key)
                .json(&json!({"original_filename": "b.mp4"})),
        )
        .await;
    let (status, _) = server
        .send(
            server
                .http
                .post(ticket["data"]["signed_url"].as_str().unwrap())
                .multipart(file_form("b.mp4", &[1u8; 600])),
        )
        .await;
    assert!(!status.is_success());
    assert_eq!(server.quota(&tenant).await["used_bytes"], 600);
    // Fill it up: then even a signed URL is refused with 402.
    signed_upload(&server, &tenant, "c.mp4", &[1u8; 400]).await;
    let (status, body) = server
        .send(
            call(&server, Method::POST, "/upload/signed-url", &tenant.key)
                .json(&json!({"original_filename": "d.mp4"})),
        )
        .await;
    assert_envelope_error(status, &body, StatusCode::PAYMENT_REQUIRED, "storage");
    let (status, body) = server
        .send(call(&server, Method::POST, "/upload", &tenant.key).multipart(file_form("e.mp4", b"x")))
        .await;
    assert_envelope_error(status, &body, StatusCode::PAYMENT_REQUIRED, "storage");
    // Delete is permanent: the space comes back at once.
    let (status, body) = server.send(call(&server, Method::DELETE, &format!("/{a}"), &tenant.key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], Value::Null);
    assert_eq!(server.quota(&tenant).await["used_bytes"], 400);
    let (status, body) =
        server.send(call(&server, Method::GET, &format!("/{a}/metadata"), &tenant.key)).await;
    assert_envelope_error(status, &body, StatusCode::BAD_REQUEST, "Asset not found");
}

#[tokio::test]
async fn direct_upload_has_a_limit_that_points_to_the_signed_url() {
    let limits = HttpLimits { mavi_direct_upload_bytes: 1000, ..HttpLimits::default() };
    let server = TestServer::spawn_with(Options { http: Some(limits), ..Options::default() }).await;
    let key = server.tenant.key.clone();
    let (status, body) = server
        .send(call(&server, Method::POST, "/upload", &key).multipart(file_form("clip.mov", &[3u8; 1000])))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let asset = body["data"]["asset_id"].as_str().unwrap();
    let (_, meta) = server.send(call(&server, Method::GET, &format!("/{asset}/metadata"), &key)).await;
    assert_eq!(meta["data"]["resource"][0]["upload_status"], "SUCCESS");
    assert_eq!(meta["data"]["resource"][0]["extension"], "mov");
    let (status, body) = server
        .send(call(&server, Method::POST, "/upload", &key).multipart(file_form("clip.mov", &[3u8; 1001])))
        .await;
    assert_envelope_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "/upload/signed-url");
    let (status, body) = server
        .send(call(&server, Method::POST, "/upload", &key).multipart(Form::new().text("other", "x")))
        .await;
    assert_envelope_error(status, &body, StatusCode::BAD_REQUEST, "file");
    let (status, body) = server.send(call(&server, Method::POST, "/upload", &key).body("raw")).await;
    assert_envelope_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE, "multipart");
}

#[tokio::test]
async fn keys_tenants_and_references_are_enforced_in_mavi_s_envelope() {
    let server = TestServer::spawn().await;
    let tenant = server.tenant.clone();
    let asset = signed_upload(&server, &tenant, "mine.mp4", b"mine").await;
    // Bad, missing or revoked keys: 401 Unauthorized.
    for key in ["", "sk-mavi-nope"] {
        let (status, body) =
            server.send(call(&server, Method::GET, &format!("/{asset}/metadata"), key)).await;
        assert_envelope_error(status, &body, StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    // Another tenant's asset, or an unknown one: 400 Asset not found.
    let other = server.tenant(None, Role::Admin).await;
    for path in [
        format!("/{asset}/metadata"),
        format!("/{asset}/download"),
        "/file_01jdq4x7m2c8v5n3k9w6r1t0ya/metadata".into(),
    ] {
        let (status, body) = server.send(call(&server, Method::GET, &path, &other.key)).await;
        assert_envelope_error(status, &body, StatusCode::BAD_REQUEST, "Asset not found");
    }
    let (status, body) = server.send(call(&server, Method::DELETE, &format!("/{asset}"), &other.key)).await;
    assert_envelope_error(status, &body, StatusCode::BAD_REQUEST, "Asset not found");
    // Missing field.
    let (status, body) =
        server.send(call(&server, Method::POST, "/upload/signed-url", &tenant.key).json(&json!({}))).await;
    assert_envelope_error(status, &body, StatusCode::BAD_REQUEST, "original_filename");
    // A file in use is not deleted.
    let (_, meta) = server.send(server.get("/v1/files")).await;
    let id = meta["data"][0]["id"].as_str().unwrap();
    server
        .send(
            server
                .request(Method::POST, &format!("/v1/files/{id}/references"), &tenant.key)
                .json(&json!({"kind": "video", "id": "v1"})),
        )
        .await;
    let (status, body) = server.send(call(&server, Method::DELETE, &format!("/{id}"), &tenant.key)).await;
    assert_envelope_error(status, &body, StatusCode::CONFLICT, "in use");
    // A pending upload is cancelled by delete.
    let (_, ticket) = server
        .send(
            call(&server, Method::POST, "/upload/signed-url", &tenant.key)
                .json(&json!({"original_filename": "later.mp4"})),
        )
        .await;
    let pending = ticket["data"]["asset_id"].as_str().unwrap();
    let (status, _) = server.send(call(&server, Method::DELETE, &format!("/{pending}"), &tenant.key)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, meta) =
        server.send(call(&server, Method::GET, &format!("/{pending}/metadata"), &tenant.key)).await;
    assert_eq!(meta["data"]["resource"][0]["upload_status"], "FAILED");
}

mod assets;
