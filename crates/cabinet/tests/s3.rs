//! Uploads and downloads on S3, against a real S3 server (s3s-fs, started by `dev/test`): bytes
//! go straight to the bucket at presigned URLs, S3 itself refuses tampered, oversized or
//! mis-hashed uploads and replays over a finished file, and Cabinet turns only verified objects
//! into files. Skipped (with a notice) when no S3 server is configured, unless
//! `CABINET_REQUIRE_S3=1`.

use crate::support;

use cabinet_blob::S3BlobStore;
use cabinet_core::ports::ByteStream;
use cabinet_core::BlobStore;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{assert_error, sha256_hex, TestServer};

/// A file's worth of bytes with a PNG signature, so sniffing has something to find.
fn png(len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.extend((0..len - bytes.len()).map(|i| (i % 251) as u8));
    bytes
}

async fn start(server: &TestServer, body: Value) -> Value {
    let (status, ticket) = server.start_upload(&server.tenant, body).await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    ticket
}

/// Sends the bytes to the presigned PUT with exactly the headers the ticket lists.
async fn put(server: &TestServer, ticket: &Value, bytes: &[u8]) -> reqwest::Response {
    let mut request = server.http.put(ticket["upload_url"].as_str().unwrap()).body(bytes.to_vec());
    for (name, value) in ticket["headers"].as_object().unwrap() {
        request = request.header(name, value.as_str().unwrap());
    }
    request.send().await.expect("PUT to S3")
}

/// Sends the bytes as the browser form the ticket describes.
async fn post_form(server: &TestServer, ticket: &Value, bytes: &[u8]) -> reqwest::Result<reqwest::Response> {
    let form = &ticket["form"];
    let mut multipart = reqwest::multipart::Form::new();
    for field in form["fields"].as_array().unwrap() {
        multipart = multipart
            .text(field["name"].as_str().unwrap().to_owned(), field["value"].as_str().unwrap().to_owned());
    }
    multipart = multipart.part("file", reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("upload"));
    server.http.post(form["url"].as_str().unwrap()).multipart(multipart).send().await
}

/// Posts a form S3 must refuse: it answers a client error, or closes the connection before it has
/// read the whole body (which can reach the client as a reset before the answer does). Either way
/// nothing is stored, which the caller checks after.
async fn post_refused_form(server: &TestServer, ticket: &Value, bytes: &[u8], what: &str) {
    match post_form(server, ticket, bytes).await {
        Ok(refused) => {
            assert!(refused.status().is_client_error(), "S3 must refuse {what}: {}", refused.status())
        }
        Err(err) => {
            // S3 may also refuse by ending the connection before it answers: reset, or closed
            // while the form was still being sent or before the answer began (hyper's
            // "incomplete message"). Either way the caller then checks that nothing landed.
            let cut = std::error::Error::source(&err)
                .into_iter()
                .flat_map(|source| std::iter::successors(Some(source), |inner| inner.source()))
                .any(|source| {
                    let reset = source.downcast_ref::<std::io::Error>().is_some_and(|io| {
                        matches!(
                            io.kind(),
                            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                        )
                    });
                    let closed = source
                        .downcast_ref::<hyper::Error>()
                        .is_some_and(hyper::Error::is_incomplete_message);
                    reset || closed
                });
            assert!(cut, "S3 must refuse {what}, not fail otherwise: {err:?}");
        }
    }
}

async fn complete(server: &TestServer, id: &str) -> (StatusCode, Value) {
    server.send(server.request(Method::POST, &format!("/v1/uploads/{id}/complete"), &server.tenant.key)).await
}

fn s3_endpoint(server: &TestServer) -> String {
    server.s3.as_ref().unwrap().endpoint.clone().unwrap()
}

/// The store the server uses, to look at (or plant) objects behind its back.
fn bucket(server: &TestServer) -> S3BlobStore {
    S3BlobStore::new(server.s3.as_ref().unwrap()).unwrap()
}

fn incoming(server: &TestServer, upload_id: &str) -> String {
    format!("incoming/{}/{upload_id}", server.tenant.workspace)
}

/// The key (as Cabinet names it, under the test's prefix) a presigned URL writes.
fn key_of(server: &TestServer, url: &str) -> String {
    let s3 = server.s3.as_ref().unwrap();
    let path = url.split('?').next().unwrap();
    let path = path.strip_prefix(&s3_endpoint(server)).unwrap_or(path);
    let path = path.strip_prefix(&format!("/{}/", s3.bucket)).unwrap_or(path);
    if s3.prefix.is_empty() {
        return path.to_owned();
    }
    path.strip_prefix(&format!("{}/", s3.prefix)).unwrap_or(path).to_owned()
}

/// Puts bytes at a key directly, as a client that got past S3's checks would have.
async fn plant(server: &TestServer, key: &str, bytes: &[u8]) {
    let store = bucket(server);
    let body: ByteStream<'static> =
        futures::stream::iter(vec![Ok(bytes::Bytes::copy_from_slice(bytes))]).boxed();
    let staged = store.stage(body, u64::MAX).await.unwrap();
    store.commit(&staged, key).await.unwrap();
}

#[tokio::test]
async fn a_presigned_put_then_complete_makes_a_file_served_from_s3() {
    let Some(server) =
        TestServer::spawn_s3("a_presigned_put_then_complete_makes_a_file_served_from_s3").await
    else {
        return;
    };
    let bytes = png(20_000);
    let ticket =
        start(&server, json!({"name": "cat.png", "size": bytes.len(), "mime_type": "image/png"})).await;
    let url = ticket["upload_url"].as_str().unwrap();
    assert!(url.starts_with(&s3_endpoint(&server)), "the bytes go to S3, not Cabinet: {url}");
    assert_eq!(ticket["headers"]["Content-Type"], "image/png");
    let response = put(&server, &ticket, &bytes).await;
    assert!(response.status().is_success(), "{:?}", response.text().await);

    let (status, done) = complete(&server, ticket["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "SUCCESS");
    let file = &done["file"];
    assert_eq!(file["size"], bytes.len());
    assert_eq!(file["sha256"], sha256_hex(&bytes));
    assert_eq!(file["mime_type"], "image/png");
    // Idempotent.
    let (status, again) = complete(&server, ticket["id"].as_str().unwrap()).await;
    assert_eq!((status, &again["status"]), (StatusCode::OK, &json!("SUCCESS")));

    let file_id = file["id"].as_str().unwrap();
    let content = server.get(&format!("/v1/files/{file_id}/content")).send().await.unwrap();
    assert_eq!(content.status(), StatusCode::OK);
    assert_eq!(content.bytes().await.unwrap(), bytes);

    let (status, link) =
        server.send(server.get(&format!("/v1/files/{file_id}/download-url?download=true"))).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let link = link["url"].as_str().unwrap();
    assert!(link.starts_with(&s3_endpoint(&server)), "downloads come from S3: {link}");
    let download = server.http.get(link).send().await.unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.headers()["content-type"], "image/png");
    let disposition = download.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.starts_with("attachment; filename=\"cat.png\""), "{disposition}");
    assert_eq!(download.bytes().await.unwrap(), bytes);
    // The upload's landing place is empty once the file exists.
    assert_eq!(bucket(&server).head(&incoming(&server, ticket["id"].as_str().unwrap())).await.unwrap(), None);
}

#[tokio::test]
async fn the_post_policy_admits_exactly_the_declared_size() {
    let Some(server) = TestServer::spawn_s3("the_post_policy_admits_exactly_the_declared_size").await else {
        return;
    };
    let bytes = png(5_000);
    let ticket = start(&server, json!({"name": "form.png", "size": bytes.len()})).await;
    let id = ticket["id"].as_str().unwrap();

    let mut larger = bytes.clone();
    larger.push(0);
    post_refused_form(&server, &ticket, &larger, "one byte more").await;
    post_refused_form(&server, &ticket, &bytes[..bytes.len() - 1], "one byte less").await;
    // Neither was stored.
    let (status, body) = complete(&server, id).await;
    assert_error(status, &body, StatusCode::CONFLICT, "upload_incomplete");

    let accepted = post_form(&server, &ticket, &bytes).await.expect("POST to S3");
    assert!(accepted.status().is_success(), "{:?}", accepted.text().await);
    let (status, done) = complete(&server, id).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["file"]["sha256"], sha256_hex(&bytes));
}

#[tokio::test]
async fn s3_refuses_a_tampered_url_and_a_body_of_another_size() {
    let Some(server) = TestServer::spawn_s3("s3_refuses_a_tampered_url_and_a_body_of_another_size").await
    else {
        return;
    };
    let bytes = png(1_000);
    let ticket = start(&server, json!({"name": "x.png", "size": bytes.len()})).await;
    let url = ticket["upload_url"].as_str().unwrap();
    let id = ticket["id"].as_str().unwrap();

    let longer = url.replace("X-Amz-Expires=", "X-Amz-Expires=9");
    let other_key = url.replace(id, &format!("{id}x"));
    for tampered in [longer, other_key] {
        let mut request = server.http.put(&tampered).body(bytes.clone());
        for (name, value) in ticket["headers"].as_object().unwrap() {
            request = request.header(name, value.as_str().unwrap());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{tampered}");
    }
    let other_type =
        server.http.put(url).header("Content-Type", "text/html").body(bytes.clone()).send().await.unwrap();
    assert_eq!(other_type.status(), StatusCode::FORBIDDEN, "the content type is bound");
    let more = put(&server, &ticket, &png(1_001)).await;
    assert!(more.status().is_client_error(), "the size is bound: {}", more.status());

    let (status, body) = complete(&server, id).await;
    assert_error(status, &body, StatusCode::CONFLICT, "upload_incomplete");
}

#[tokio::test]
async fn bytes_of_another_size_fail_the_upload_and_are_deleted() {
    let Some(server) = TestServer::spawn_s3("bytes_of_another_size_fail_the_upload_and_are_deleted").await
    else {
        return;
    };
    let ticket = start(&server, json!({"name": "lie.bin", "size": 100})).await;
    let id = ticket["id"].as_str().unwrap();
    plant(&server, &incoming(&server, id), &[7u8; 150]).await;

    let (status, body) = complete(&server, id).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "size_mismatch");
    let (_, upload) = server.send(server.get(&format!("/v1/uploads/{id}"))).await;
    assert_eq!(upload["status"], "FAILED");
    assert_eq!(bucket(&server).head(&incoming(&server, id)).await.unwrap(), None, "the object is deleted");
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 0);
}

#[tokio::test]
async fn a_declared_sha256_is_enforced_by_s3_and_by_complete() {
    let Some(server) = TestServer::spawn_s3("a_declared_sha256_is_enforced_by_s3_and_by_complete").await
    else {
        return;
    };
    let bytes = png(3_000);
    let ticket =
        start(&server, json!({"name": "x.png", "size": bytes.len(), "sha256": sha256_hex(b"other bytes")}))
            .await;
    let id = ticket["id"].as_str().unwrap();
    assert!(ticket["headers"]["x-amz-checksum-sha256"].is_string(), "{ticket}");
    // A declared sha256 sends the bytes to the file's own key.
    let key = key_of(&server, ticket["upload_url"].as_str().unwrap());
    assert!(key.starts_with(&format!("{}/file_", server.tenant.workspace)), "{key}");
    let refused = put(&server, &ticket, &bytes).await;
    assert!(refused.status().is_client_error(), "S3 checks the checksum: {}", refused.status());

    // Bytes that reached the bucket without S3 checking a checksum are not trusted (s3s-fs even
    // leaves the refused PUT's bytes there; AWS S3 would have stored nothing).
    plant(&server, &key, &bytes).await;
    let (status, body) = complete(&server, id).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "checksum_mismatch");
    let (_, upload) = server.send(server.get(&format!("/v1/uploads/{id}"))).await;
    assert_eq!((&upload["status"], &upload["reason"]), (&json!("FAILED"), &json!("checksum_mismatch")));
    assert_eq!(bucket(&server).head(&key).await.unwrap(), None, "nothing is left at the file's key");
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 0);
    let (_, files) = server.send(server.get("/v1/files")).await;
    assert_eq!(files["data"].as_array().map(Vec::len), Some(0), "{files}");

    // With the right checksum, S3 verifies the bytes and the file records it.
    let ticket =
        start(&server, json!({"name": "y.png", "size": bytes.len(), "sha256": sha256_hex(&bytes)})).await;
    assert!(put(&server, &ticket, &bytes).await.status().is_success());
    let (status, done) = complete(&server, ticket["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["file"]["sha256"], sha256_hex(&bytes));
}

#[tokio::test]
async fn the_reconciler_completes_uploads_nobody_completed_and_fails_expired_ones() {
    let Some(server) =
        TestServer::spawn_s3("the_reconciler_completes_uploads_nobody_completed_and_fails_expired_ones")
            .await
    else {
        return;
    };
    let bytes = png(2_000);
    let arrived = start(&server, json!({"name": "a.png", "size": bytes.len()})).await;
    assert!(put(&server, &arrived, &bytes).await.status().is_success());
    let abandoned = start(&server, json!({"name": "b.png", "size": 10, "expires_in": 60})).await;

    let report = server.cabinet.reconcile_uploads().await.unwrap();
    assert_eq!((report.completed, report.expired), (1, 0), "{report:?}");
    let (_, upload) =
        server.send(server.get(&format!("/v1/uploads/{}", arrived["id"].as_str().unwrap()))).await;
    assert_eq!(upload["status"], "SUCCESS", "{upload}");
    assert_eq!(upload["file"]["size"], bytes.len());

    // Cabinet's clock only: S3 URLs are checked against real time, and none is used from here.
    server.clock.advance(chrono::Duration::seconds(61));
    let report = server.cabinet.reconcile_uploads().await.unwrap();
    assert_eq!((report.completed, report.expired), (0, 1), "{report:?}");
    let (_, upload) =
        server.send(server.get(&format!("/v1/uploads/{}", abandoned["id"].as_str().unwrap()))).await;
    assert_eq!(upload["status"], "FAILED");
    assert_eq!(upload["reason"], "expired", "{upload}");
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 0);
}

#[tokio::test]
async fn direct_uploads_through_cabinet_land_in_s3() {
    let Some(server) = TestServer::spawn_s3("direct_uploads_through_cabinet_land_in_s3").await else {
        return;
    };
    // Not an image: an image would start a thumbnail in the background, whose staging object
    // the temporaries check below would race.
    let bytes = vec![7u8; 50_000];
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(bytes.clone()).file_name("direct.bin"));
    let (status, file) =
        server.send(server.request(Method::POST, "/v1/files", &server.tenant.key).multipart(form)).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["sha256"], sha256_hex(&bytes));
    let key = format!("{}/{}", server.tenant.workspace, file["id"].as_str().unwrap());
    assert_eq!(bucket(&server).head(&key).await.unwrap().map(|info| info.size), Some(bytes.len() as u64));
    assert_eq!(bucket(&server).remove_temporaries().await.unwrap(), 0);
}

// An upload with a declared sha256 lands at the file's own key and is adopted there, with no
// copy. The URL stays valid after completion, so it may only create the object: its signed
// `If-None-Match: *` makes S3 refuse (412) any replay before writing a byte. That is what guards
// the file on s3s-fs (0.14.1), which moves a PUT's bytes into place before it compares the
// checksum; on AWS S3 a replay of other bytes fails both checks.
#[tokio::test]
async fn a_declared_sha256_lands_at_the_files_key_and_a_replay_never_touches_it() {
    let Some(server) =
        TestServer::spawn_s3("a_declared_sha256_lands_at_the_files_key_and_a_replay_never_touches_it").await
    else {
        return;
    };
    let bytes = png(40_000);
    let ticket =
        start(&server, json!({"name": "bound.png", "size": bytes.len(), "sha256": sha256_hex(&bytes)})).await;
    let id = ticket["id"].as_str().unwrap();
    let url = ticket["upload_url"].as_str().unwrap();
    let key = key_of(&server, url);
    assert!(key.starts_with(&format!("{}/file_", server.tenant.workspace)), "the file's key: {key}");
    assert!(!url.contains("/incoming/"), "{url}");
    assert_eq!(ticket["headers"]["If-None-Match"], "*", "{ticket}");
    assert!(ticket["form"].is_null(), "a form cannot carry If-None-Match: {ticket}");
    assert!(put(&server, &ticket, &bytes).await.status().is_success());
    // Arrived, not verified: no file yet, and the object belongs to its live upload.
    let (_, files) = server.send(server.get("/v1/files")).await;
    assert_eq!(files["data"].as_array().map(Vec::len), Some(0), "{files}");
    assert_eq!(server.cabinet.remove_orphan_blobs().await.unwrap(), 0);

    let (status, done) = complete(&server, id).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let file_id = done["file"]["id"].as_str().unwrap();
    assert_eq!(key, format!("{}/{file_id}", server.tenant.workspace), "adopted where it landed");
    assert_eq!(done["file"]["sha256"], sha256_hex(&bytes));
    assert_eq!(bucket(&server).head(&incoming(&server, id)).await.unwrap(), None, "nothing at incoming/");

    // The URL is still valid: the same bytes again, or other bytes of the same size, are refused.
    let same = put(&server, &ticket, &bytes).await;
    assert_eq!(same.status(), StatusCode::PRECONDITION_FAILED, "{:?}", same.text().await);
    let mut other = bytes.clone();
    *other.last_mut().unwrap() ^= 1;
    let refused = put(&server, &ticket, &other).await;
    assert_eq!(refused.status(), StatusCode::PRECONDITION_FAILED, "{:?}", refused.text().await);
    let content = server.get(&format!("/v1/files/{file_id}/content")).send().await.unwrap();
    assert!(content.bytes().await.unwrap() == bytes, "the file's bytes changed");
    let (_, file) = server.send(server.get(&format!("/v1/files/{file_id}"))).await;
    assert_eq!(file["sha256"], sha256_hex(&bytes), "{file}");
    assert_eq!(server.cabinet.remove_orphan_blobs().await.unwrap(), 0, "nothing was left behind");
}

#[tokio::test]
async fn an_arrived_declared_upload_survives_the_orphan_sweep_and_is_reconciled_or_expired() {
    let Some(server) = TestServer::spawn_s3(
        "an_arrived_declared_upload_survives_the_orphan_sweep_and_is_reconciled_or_expired",
    )
    .await
    else {
        return;
    };
    let bytes = png(6_000);
    let body = json!({"name": "late.png", "size": bytes.len(), "sha256": sha256_hex(&bytes)});
    let arrived = start(&server, body.clone()).await;
    let arrived_key = key_of(&server, arrived["upload_url"].as_str().unwrap());
    assert!(put(&server, &arrived, &bytes).await.status().is_success());
    let mut body = body;
    body["expires_in"] = json!(60);
    let expiring = start(&server, body).await;
    let expiring_key = key_of(&server, expiring["upload_url"].as_str().unwrap());
    assert!(put(&server, &expiring, &bytes).await.status().is_success());

    // In flight (bytes there, nobody completed): owned by their live uploads, at the file's key.
    let recovered = server.cabinet.recover_after_restart().await.unwrap();
    assert_eq!(recovered.orphan_blobs_removed, 0, "{recovered:?}");
    let check = server.cabinet.check_consistency(false).await.unwrap();
    assert!(check.orphan_objects.is_empty(), "{check:?}");
    for key in [&arrived_key, &expiring_key] {
        assert!(bucket(&server).head(key).await.unwrap().is_some(), "{key} was kept");
    }

    // The sweeper: an expired upload is failed and its object removed from the file's key ...
    server.clock.advance(chrono::Duration::seconds(61));
    assert_eq!(server.cabinet.sweep_expired_uploads().await.unwrap(), 1);
    let (_, upload) =
        server.send(server.get(&format!("/v1/uploads/{}", expiring["id"].as_str().unwrap()))).await;
    assert_eq!((&upload["status"], &upload["reason"]), (&json!("FAILED"), &json!("expired")), "{upload}");
    assert_eq!(bucket(&server).head(&expiring_key).await.unwrap(), None, "the expired upload's object");

    // ... and the reconciler completes the live one where its bytes are.
    let report = server.cabinet.reconcile_uploads().await.unwrap();
    assert_eq!((report.completed, report.expired), (1, 0), "{report:?}");
    let (_, upload) =
        server.send(server.get(&format!("/v1/uploads/{}", arrived["id"].as_str().unwrap()))).await;
    assert_eq!(upload["status"], "SUCCESS", "{upload}");
    let file_id = upload["file"]["id"].as_str().unwrap();
    assert_eq!(arrived_key, format!("{}/{file_id}", server.tenant.workspace));
    let content = server.get(&format!("/v1/files/{file_id}/content")).send().await.unwrap();
    assert!(content.bytes().await.unwrap() == bytes);
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 0);
}

#[tokio::test]
async fn an_upload_without_a_sha256_lands_at_its_incoming_key_until_verified() {
    let Some(server) =
        TestServer::spawn_s3("an_upload_without_a_sha256_lands_at_its_incoming_key_until_verified").await
    else {
        return;
    };
    let bytes = png(10_000);
    let ticket = start(&server, json!({"name": "free.png", "size": bytes.len()})).await;
    let id = ticket["id"].as_str().unwrap();
    assert_eq!(key_of(&server, ticket["upload_url"].as_str().unwrap()), incoming(&server, id), "{ticket}");
    assert!(ticket["headers"].get("If-None-Match").is_none(), "{ticket}");
    assert!(ticket["form"].is_object(), "{ticket}");
    assert!(put(&server, &ticket, &bytes).await.status().is_success());
    assert!(bucket(&server).head(&incoming(&server, id)).await.unwrap().is_some());
    // Arrived, not verified: no file yet, and the object belongs to its live upload.
    let (_, files) = server.send(server.get("/v1/files")).await;
    assert_eq!(files["data"].as_array().map(Vec::len), Some(0), "{files}");
    assert_eq!(server.cabinet.remove_orphan_blobs().await.unwrap(), 0);

    let (status, done) = complete(&server, id).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let key = format!("{}/{}", server.tenant.workspace, done["file"]["id"].as_str().unwrap());
    assert_eq!(bucket(&server).head(&key).await.unwrap().map(|info| info.size), Some(bytes.len() as u64));
    assert_eq!(
        bucket(&server).head(&incoming(&server, id)).await.unwrap(),
        None,
        "promoted, not left behind"
    );
}

/// A presigned PUT stays usable until its URL expires, whatever became of its upload: bytes sent
/// to the URL of a cancelled upload land in the bucket, where no file and no live upload owns
/// them. Once the URL has expired (and the store's clock with it), the sweeper removes them,
/// at the file's key or the upload's incoming key alike; a file finished in the same moments
/// keeps its object.
#[tokio::test]
async fn what_lands_after_an_upload_was_cancelled_is_removed_once_its_url_expires() {
    let Some(server) =
        TestServer::spawn_s3("what_lands_after_an_upload_was_cancelled_is_removed_once_its_url_expires")
            .await
    else {
        return;
    };
    let bytes = png(2_000);
    let mut landed = Vec::new();
    let mut expires = Vec::new();
    for declared in [false, true] {
        let mut body = json!({"name": format!("late-{declared}.png"), "size": bytes.len()});
        if declared {
            body["sha256"] = json!(sha256_hex(&bytes));
        }
        let ticket = start(&server, body).await;
        let id = ticket["id"].as_str().unwrap();
        let (status, cancelled) = server
            .send(server.request(Method::DELETE, &format!("/v1/uploads/{id}"), &server.tenant.key))
            .await;
        assert_eq!((status, &cancelled["status"]), (StatusCode::OK, &json!("FAILED")), "{cancelled}");
        // S3 cannot know the upload ended: the URL still writes.
        assert!(put(&server, &ticket, &bytes).await.status().is_success());
        let arrival = key_of(&server, ticket["upload_url"].as_str().unwrap());
        assert!(bucket(&server).head(&arrival).await.unwrap().is_some(), "{arrival}");
        landed.push(arrival);
        expires
            .push(ticket["expires_at"].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().unwrap());
    }
    let kept =
        start(&server, json!({"name": "kept.png", "size": bytes.len(), "sha256": sha256_hex(&bytes)})).await;
    assert!(put(&server, &kept, &bytes).await.status().is_success());
    let (status, done) = complete(&server, kept["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let kept_key = key_of(&server, kept["upload_url"].as_str().unwrap());

    // Until the URLs expire more could still land: the sweeper leaves them for then.
    server.cabinet.sweep_expired_uploads().await.unwrap();
    for key in &landed {
        assert!(bucket(&server).head(key).await.unwrap().is_some(), "{key}");
    }
    let last_expiry = expires.iter().max().unwrap();
    server.clock.advance(*last_expiry - server.cabinet.now() + chrono::Duration::minutes(2));
    server.cabinet.sweep_expired_uploads().await.unwrap();
    for key in &landed {
        assert_eq!(bucket(&server).head(key).await.unwrap(), None, "{key} is left");
    }
    assert_eq!(
        bucket(&server).head(&kept_key).await.unwrap().map(|info| info.size),
        Some(bytes.len() as u64)
    );
    let (status, _) =
        server.send(server.get(&format!("/v1/files/{}", done["file"]["id"].as_str().unwrap()))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 0);
}

/// An HTTP client built on hyper (reqwest) sends no Content-Length with an empty body, while the
/// presigned PUT signs it: the ticket of an empty upload lists it, and a client that sends exactly
/// the ticket's headers stores an empty file, with or without a declared sha256.
#[tokio::test]
async fn an_empty_file_uploads_through_its_presigned_put() {
    let Some(server) = TestServer::spawn_s3("an_empty_file_uploads_through_its_presigned_put").await else {
        return;
    };
    for sha256 in [None, Some(sha256_hex(b""))] {
        let mut request = json!({"name": "empty.txt", "size": 0});
        if let Some(sha256) = &sha256 {
            request["sha256"] = json!(sha256);
        }
        let ticket = start(&server, request).await;
        assert_eq!(ticket["headers"]["Content-Length"], "0", "{ticket}");
        let response = put(&server, &ticket, b"").await;
        assert!(response.status().is_success(), "sha256 {sha256:?}: {:?}", response.text().await);
        let (status, done) = complete(&server, ticket["id"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{done}");
        assert_eq!((&done["file"]["size"], &done["file"]["sha256"]), (&json!(0), &json!(sha256_hex(b""))));
    }
}

/// A cancelled upload whose bytes had already landed in the bucket (sent to its presigned URL,
/// never completed) leaves nothing there, with or without a declared sha256 (the file's key or the
/// upload's incoming key), as an expired one does.
#[tokio::test]
async fn a_cancelled_upload_whose_bytes_landed_leaves_nothing_in_the_bucket() {
    let Some(server) =
        TestServer::spawn_s3("a_cancelled_upload_whose_bytes_landed_leaves_nothing_in_the_bucket").await
    else {
        return;
    };
    let bytes = png(3_000);
    for declared in [false, true] {
        let mut body = json!({"name": format!("cancelled-{declared}.png"), "size": bytes.len()});
        if declared {
            body["sha256"] = json!(sha256_hex(&bytes));
        }
        let ticket = start(&server, body).await;
        assert!(put(&server, &ticket, &bytes).await.status().is_success());
        let arrival = key_of(&server, ticket["upload_url"].as_str().unwrap());
        assert!(bucket(&server).head(&arrival).await.unwrap().is_some(), "{arrival}");
        let id = ticket["id"].as_str().unwrap();
        let (status, cancelled) = server
            .send(server.request(Method::DELETE, &format!("/v1/uploads/{id}"), &server.tenant.key))
            .await;
        assert_eq!(status, StatusCode::OK, "{cancelled}");
        assert_eq!(cancelled["status"], "FAILED", "{cancelled}");
        assert_eq!(
            bucket(&server).head(&arrival).await.unwrap(),
            None,
            "declared {declared}: {arrival} is left"
        );
    }
    assert_eq!(server.quota(&server.tenant).await["reserved_bytes"], 0);
}
