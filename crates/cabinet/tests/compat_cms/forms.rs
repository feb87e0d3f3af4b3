//! Form data: the multipart upload's text fields, and metadata updates as Django REST framework's
//! parsers take them beside JSON (`application/x-www-form-urlencoded`, `multipart/form-data`).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{assert_detail, assert_field_error, cms, upload, FILES};
use crate::support::TestServer;

#[tokio::test]
async fn patch_takes_urlencoded_and_multipart_forms_like_drf() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let file = upload(&server, t, "stage.jpg", b"stage", json!(["Old"])).await;
    let path = format!("{FILES}{}/", file["api_id"].as_str().unwrap());
    let urlencoded = |body: &'static str| {
        cms(&server, Method::PATCH, &path, t)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };

    // Each `tags` field adds its tags; `+` and percent escapes decode.
    let (status, patched) = server
        .send(urlencoded("image_alt_text=A+stage&caption=Opening%20night&tags=Stage&tags=night,Event"))
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        (patched["image_alt_text"].as_str(), patched["caption"].as_str()),
        (Some("A stage"), Some("Opening night"))
    );
    assert_eq!(patched["tags"], json!(["Event", "night", "Stage"]));

    // Multipart: only the fields sent change; an empty one clears.
    let form = reqwest::multipart::Form::new().text("copyright", "© Preo").text("caption", "");
    let (status, patched) = server.send(cms(&server, Method::PATCH, &path, t).multipart(form)).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        (patched["copyright"].as_str(), patched["caption"].as_str(), patched["image_alt_text"].as_str()),
        (Some("© Preo"), Some(""), Some("A stage"))
    );
    assert_eq!(patched["tags"], json!(["Event", "night", "Stage"]));
    let (_, native) =
        server.send(server.get(&format!("/v1/files/{}", file["api_id"].as_str().unwrap()))).await;
    assert_eq!((native["copyright"].as_str(), native["caption"].clone()), (Some("© Preo"), Value::Null));

    // An empty `tags` clears them; an empty body changes nothing.
    let (_, patched) = server.send(urlencoded("tags=")).await;
    assert_eq!(patched["tags"], json!([]));
    let (status, unchanged) = server.send(cms(&server, Method::PATCH, &path, t)).await;
    assert_eq!((status, unchanged["copyright"].as_str()), (StatusCode::OK, Some("© Preo")));

    // Bad values are the field's 400; another media type is 415.
    let (status, body) = server.send(urlencoded("tags=%01")).await;
    assert_field_error(status, &body, "tags");
    let (status, body) = server
        .send(cms(&server, Method::PATCH, &path, t).header("content-type", "text/plain").body("caption=x"))
        .await;
    assert_detail(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn a_multipart_upload_reads_its_fields_before_the_file_and_file_name_names_it() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let form = reqwest::multipart::Form::new()
        .text("organization_id", t.workspace.to_string())
        .text("file_name", "Chosen name.png")
        .text("tags", "Before")
        .part("file", reqwest::multipart::Part::bytes(b"bytes".to_vec()).file_name("upload.png"))
        // Read after the bytes have streamed into storage: too late to apply, so ignored.
        .text("tags", "After");
    let (status, file) = server.send(cms(&server, Method::POST, FILES, t).multipart(form)).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(
        (file["file_name"].as_str(), file["tags"].clone()),
        (Some("Chosen name.png"), json!(["Before"]))
    );
}

#[tokio::test]
async fn a_multipart_patch_takes_many_tag_fields_and_no_body_changes_nothing() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let file = upload(&server, t, "wall.jpg", b"wall", json!(["Kept"])).await;
    let path = format!("{FILES}{}/", file["api_id"].as_str().unwrap());
    // A form without a file is not held to the 32 fields a form may send before its file.
    let form = (0..40).fold(reqwest::multipart::Form::new(), |form, n| form.text("tags", format!("t{n:02}")));
    let (status, patched) = server.send(cms(&server, Method::PATCH, &path, t).multipart(form)).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["tags"].as_array().unwrap().len(), 40, "{patched}");
    // DRF's PATCH with no body at all is a partial update of nothing.
    let (status, same) = server.send(cms(&server, Method::PATCH, &path, t)).await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(same["tags"], patched["tags"]);
}

#[tokio::test]
async fn a_field_name_no_multipart_header_can_carry_is_refused_in_a_urlencoded_patch_too() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let file = upload(&server, t, "sign.jpg", b"sign", json!([])).await;
    let path = format!("{FILES}{}/", file["api_id"].as_str().unwrap());
    let patch = |body: &'static str| {
        cms(&server, Method::PATCH, &path, t)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let (status, body) = server.send(patch("caption=ok&bad%01name=x")).await;
    assert_detail(status, &body, StatusCode::BAD_REQUEST);
    // Tab, CR, LF and other characters are fine (and the unknown field is ignored).
    let (status, body) = server.send(patch("caption=ok&odd%09name%C2%85=x")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["caption"], "ok");
}
