//! A request without valid credentials is refused before a byte of its body is read, on every
//! surface and in each surface's own error shape; and a form's fields are bounded for everyone.
//! (That unauthenticated bodies cost the server no memory is measured in `memory.rs`.)

use crate::support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use cabinet_api::HttpLimits;
use cabinet_core::{FileId, FolderId};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::raw;
use support::routes::body_operations;
use support::{Options, TestServer};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// How long a refusal may take: it must not wait for a body that never comes.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Asserts a refusal is in the shape of the surface `path` belongs to.
fn assert_refusal_shape(path: &str, body: &Value) {
    let text = |value: &Value| value.as_str().is_some_and(|s| !s.is_empty());
    if path.starts_with("/compat/cms") {
        assert!(text(&body["detail"]) && body.get("error").is_none(), "{path}: not a CMS refusal: {body}");
    } else if path.starts_with("/compat/mavera") {
        let error = &body["error"];
        assert!(
            text(&error["message"]) && text(&error["type"]) && error.get("param").is_some(),
            "{path}: {body}"
        );
    } else if path.starts_with("/compat/mavi") {
        assert!(body["code"].is_u64() && text(&body["msg"]) && body["failed"] == true, "{path}: {body}");
    } else if path.starts_with("/compat/serenities") {
        let code = body["error"]["code"].as_str().unwrap_or("");
        assert!(
            code.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !code.is_empty(),
            "{path}: {body}"
        );
    } else {
        assert!(text(&body["error"]["code"]) && text(&body["error"]["message"]), "{path}: {body}");
    }
}

#[tokio::test]
async fn every_body_route_refuses_a_request_without_credentials_before_reading_its_body() {
    let server = TestServer::spawn().await;
    let address = raw::address_of(&server.url);
    for operation in body_operations(&server.http, &server.url).await {
        let (method, template) = (&operation.method, &operation.template);
        let content_type = operation.content_type_header(raw::BOUNDARY);
        for authorization in [None, Some("Bearer cab_0123456789abcdefghijklmnopqrstuvwxyzABCD")] {
            let mut headers = vec![("Content-Type", content_type.as_str())];
            headers.extend(authorization.map(|value| ("Authorization", value)));
            // A large body is declared and none of it sent: only a server that answers without
            // reading it answers at all.
            let head = raw::head(method, &operation.path(), Some(16 << 20), &headers);
            let stream = raw::connect_from(LOCALHOST, address).await.unwrap();
            let sending = raw::send_while_unanswered(stream, head, std::iter::empty());
            let (response, _) = tokio::time::timeout(ANSWER_WITHIN, sending)
                .await
                .unwrap_or_else(|_| panic!("{method} {template} ({authorization:?}) waited for the body"))
                .unwrap();
            let expected = if operation.signed { 403 } else { 401 };
            assert_eq!(
                response.status,
                expected,
                "{method} {template} ({authorization:?}): {:?}",
                response.json()
            );
            assert_refusal_shape(template, &response.json());
        }
    }
}

#[tokio::test]
async fn an_unauthenticated_cms_form_of_thousands_of_tags_is_refused_unread_in_the_cms_shape() {
    let server = TestServer::spawn().await;
    let address = raw::address_of(&server.url);
    let content_type = format!("multipart/form-data; boundary={}", raw::BOUNDARY);
    for (authorization, detail) in [
        (None, "Authentication credentials were not provided."),
        (Some("Token cab_0123456789abcdefghijklmnopqrstuvwxyzABCD"), "Invalid token."),
    ] {
        for path in ["/compat/cms/files/", "/compat/cms/files"] {
            let mut headers = vec![("Content-Type", content_type.as_str())];
            headers.extend(authorization.map(|value| ("Authorization", value)));
            let total = 63 << 20;
            let head = raw::head("POST", path, Some(total), &headers);
            let stream = raw::connect_from(LOCALHOST, address).await.unwrap();
            let (response, sent) = tokio::time::timeout(
                ANSWER_WITHIN,
                raw::send_while_unanswered(stream, head, raw::tags_form(total)),
            )
            .await
            .expect("the server waited for the body")
            .unwrap();
            assert_eq!(response.status, 401, "{:?}", response.json());
            assert_eq!(response.json(), json!({ "detail": detail }));
            assert_eq!(response.header("www-authenticate"), Some("Token"));
            assert!(sent < total / 4, "{sent} of {total} bytes were taken before the refusal");
        }
    }
}

/// JSON bodies that do not parse, on the routes that take JSON in each dialect.
const JSON_ROUTES: [(&str, &str); 9] = [
    ("POST", "/compat/cms/files/"),
    ("PATCH", "/compat/cms/files/{file}/"),
    ("POST", "/compat/mavera/api/v1/files/upload-url"),
    ("POST", "/compat/mavera/api/v1/files"),
    ("PATCH", "/compat/mavera/api/v1/files/{file}"),
    ("POST", "/compat/mavera/api/v1/folders"),
    ("PATCH", "/compat/mavera/api/v1/folders/{folder}"),
    ("POST", "/compat/mavi/serve/api/v2/upload/signed-url"),
    ("POST", "/compat/serenities/api/v1/files/rename"),
];

#[tokio::test]
async fn invalid_json_without_a_key_is_401_not_400_in_every_dialect() {
    let server = TestServer::spawn().await;
    let file = FileId::generate().to_string();
    let folder = FolderId::generate().to_string();
    for (method, template) in JSON_ROUTES {
        let path = template.replace("{file}", &file).replace("{folder}", &folder);
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let request = || {
            server
                .http
                .request(method.clone(), format!("{}{path}", server.url))
                .header("content-type", "application/json")
                .body("{\"not json")
        };
        let (status, body) = server.send(request()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
        assert_refusal_shape(&path, &body);
        // With a key the same body is read, and refused for what it is.
        let scheme = if path.starts_with("/compat/cms") { "Token" } else { "Bearer" };
        let (status, body) =
            server.send(request().header("authorization", format!("{scheme} {}", server.tenant.key))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path} with a key: {body}");
        assert_refusal_shape(&path, &body);
    }
}

fn file_part() -> Part {
    // Named in a format MAVI takes (it refuses others), as every surface gets the same forms.
    Part::bytes(b"hello".to_vec()).file_name("hello.mp3").mime_str("text/plain").unwrap()
}

/// A form with one `field` of `len` bytes before its file.
fn form_with_field(field: &str, len: usize) -> Form {
    Form::new().text(field.to_owned(), "t".repeat(len)).part("file", file_part())
}

/// A form with `count` small fields before its file.
fn form_with_fields(count: usize) -> Form {
    (0..count).fold(Form::new(), |form, i| form.text(format!("extra{i}"), "x")).part("file", file_part())
}

/// A form with `count` small `field` fields before its file: the native API refuses a field it
/// does not know, so its bound is reached with one it does.
fn form_repeating(field: &str, count: usize) -> Form {
    (0..count).fold(Form::new(), |form, _| form.text(field.to_owned(), "x")).part("file", file_part())
}

#[tokio::test]
async fn form_fields_over_their_bounds_are_413_in_each_surface_s_shape() {
    let server = TestServer::spawn().await;
    let t = &server.tenant;
    let key = t.key.as_str();
    let ws = t.workspace.to_string();
    let (_, ticket) = server.start_upload(t, json!({"name": "signed.txt", "size": 5})).await;
    let signed = ticket["upload_url"].as_str().unwrap().to_owned();
    let over = cabinet_api::form::FIELD_BYTES + 1;
    let too_many = cabinet_api::form::MAX_FIELDS + 1;
    let native =
        |form: Form| server.http.post(format!("{}/v1/files", server.url)).bearer_auth(key).multipart(form);
    let cms = |form: Form| {
        server
            .http
            .post(format!("{}/compat/cms/files/?organization_id={ws}", server.url))
            .header("authorization", format!("Token {key}"))
            .multipart(form)
    };
    let mavi = |form: Form| {
        server
            .http
            .post(format!("{}/compat/mavi/serve/api/v2/upload", server.url))
            .header("authorization", key)
            .multipart(form)
    };
    let storage = |form: Form| server.http.post(&signed).multipart(form);
    let cases = [
        ("/v1/files", native(form_with_field("name", over)), Some("field_too_large")),
        ("/v1/files", native(form_repeating("name", too_many)), Some("form_too_large")),
        ("/compat/cms/files/", cms(form_with_field("tags", over)), None),
        ("/compat/cms/files/", cms(form_with_fields(too_many)), None),
        ("/compat/mavi/serve/api/v2/upload", mavi(form_with_field("note", over)), None),
        ("/compat/mavi/serve/api/v2/upload", mavi(form_with_fields(too_many)), None),
        ("/storage/v1/uploads", storage(form_with_field("policy", over)), Some("field_too_large")),
        ("/storage/v1/uploads", storage(form_with_fields(too_many)), Some("form_too_large")),
    ];
    for (path, request, code) in cases {
        let (status, body) = server.send(request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {body}");
        assert_refusal_shape(path, &body);
        if let Some(code) = code {
            assert_eq!(body["error"]["code"], code, "{path}: {body}");
        }
    }
    // Within the bounds, the same forms go through (a field the native API knows is bounded far
    // tighter than a form field, so MAVI, which ignores fields it does not know, shows it).
    let (status, body) = server.send(mavi(form_with_field("note", over - 1))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server.send(storage(form_with_fields(too_many - 1))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_form_whose_field_headers_never_end_is_cut_off_at_its_bound() {
    let server = TestServer::spawn().await;
    let address = raw::address_of(&server.url);
    let authorization = format!("Bearer {}", server.tenant.key);
    let content_type = format!("multipart/form-data; boundary={}", raw::BOUNDARY);
    let total = 64 << 20;
    let head = raw::head(
        "POST",
        "/v1/files",
        Some(total),
        &[("Content-Type", &content_type), ("Authorization", &authorization)],
    );
    let prefix = format!("--{}\r\nContent-Disposition: form-data; name=\"name\"; x=\"", raw::BOUNDARY);
    let body = raw::body_of(prefix.as_bytes(), b"a", b"", total);
    let stream = raw::connect_from(LOCALHOST, address).await.unwrap();
    let (response, sent) =
        tokio::time::timeout(Duration::from_secs(30), raw::send_while_unanswered(stream, head, body))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(response.status, 413, "{:?}", response.json());
    assert_eq!(response.json()["error"]["code"], "form_too_large");
    assert!(sent < 16 << 20, "{sent} bytes were read before the refusal");
}

#[tokio::test]
async fn an_over_large_mavera_body_is_413_in_mavera_s_shape() {
    let limits = HttpLimits { json_body_bytes: 1024, ..HttpLimits::default() };
    let server = TestServer::spawn_with(Options { http: Some(limits), ..Options::default() }).await;
    let body = json!({"workspace_id": server.tenant.workspace.as_str(), "name": "x".repeat(2000)});
    let (status, body) = server
        .send(server.request(Method::POST, "/compat/mavera/api/v1/folders", &server.tenant.key).json(&body))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "request_too_large", "{body}");
    assert_refusal_shape("/compat/mavera", &body);
}
