//! Tenant isolation, exhaustively: every operation of every surface's OpenAPI document (native
//! and the four dialects') is called with every kind of credential that must not reach workspace
//! A — and none may succeed, fail with a 5xx, or show anything of A's. The routes come from the
//! documents, so a new route joins the matrix by being mounted; one the table cannot classify
//! fails the test until it is classified.
//!
//! Every id a request can carry — in its path, its query or its body (`folder_id`, `parent_id`,
//! `fileId`, an upload's id, a reference) — is one of A's real ids, made fresh for each operation.
//! Beside the refusals, the very same request with A's own credential is sent as a control, last
//! (so a destructive one spoils nothing), and must succeed: a request malformed enough to be
//! refused for any caller cannot pass as "isolated". Between the refusals and the control, A's
//! things are read back and must be exactly as they were.
//!
//! It runs on SQLite and the local folder, on PostgreSQL (`CABINET_TEST_METADATA=postgres`), and
//! with blobs on S3.

use crate::support;

mod run;

use std::io::Cursor;

use cabinet_core::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use support::{Tenant, TestServer};

/// The error envelope a surface refuses with; a dialect never answers in another's.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    /// `{"error": {"code": "not_found", "message"}}`.
    Native,
    /// Django REST framework: `{"detail": "..."}`.
    Drf,
    /// `{"error": {"code": "NOT_FOUND", "message"}}`, upper-case codes.
    Serenities,
}

impl Shape {
    /// Whether a refusal's body has this shape.
    fn fits(self, body: &Value) -> bool {
        let code = body["error"]["code"].as_str().unwrap_or("");
        let message = body["error"]["message"].as_str().is_some_and(|m| !m.is_empty());
        match self {
            Shape::Native => message && !code.is_empty() && code == code.to_ascii_lowercase(),
            Shape::Serenities => message && !code.is_empty() && code == code.to_ascii_uppercase(),
            Shape::Drf => {
                body["detail"].as_str().is_some_and(|d| !d.is_empty()) && body.get("error").is_none()
            }
        }
    }
}

/// How a route is protected, by design.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Guard {
    /// Needs an API key scoped to the workspace; refuses in this shape.
    ApiKey(Shape),
    /// Needs a valid signature in its query; any key is irrelevant.
    SignedUrl,
    /// Open to anyone: health probes, the document itself.
    Public,
    /// Open to anyone for files whose read rule is `public`; A's files are not, so 404.
    PublicRule,
    /// The Mavera dialect: a bearer key; the workspace named by `workspace_id` (query or body).
    Mavera,
    /// The MAVI dialect: the raw key in `Authorization`; an unknown asset is its 400.
    Mavi,
}

fn classify(path: &str) -> Option<Guard> {
    match path {
        "/healthz" | "/readyz" | "/openapi.json" => Some(Guard::Public),
        _ if path.starts_with("/docs") => Some(Guard::Public),
        _ if path.starts_with("/storage/v1/") => Some(Guard::SignedUrl),
        _ if path.starts_with("/public/v1/") => Some(Guard::PublicRule),
        _ if path.starts_with("/v1/") => Some(Guard::ApiKey(Shape::Native)),
        _ if path.starts_with("/compat/cms/") => Some(Guard::ApiKey(Shape::Drf)),
        _ if path.starts_with("/compat/serenities/") => Some(Guard::ApiKey(Shape::Serenities)),
        _ if path.starts_with("/compat/mavera/api/v1/") => Some(Guard::Mavera),
        _ if path.starts_with("/compat/mavi/serve/api/v2/") => Some(Guard::Mavi),
        _ => None,
    }
}

/// The credentials in the matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Credential {
    /// B's admin key, naming A's workspace explicitly.
    OtherTenantNamingA,
    /// B's admin key acting on its own workspace, with A's ids in the request.
    OtherTenantWithAsIds,
    /// A key of A's workspace that has been revoked.
    Revoked,
    /// A well-formed key that matches nothing.
    Garbage,
    /// No `Authorization` header at all.
    Anonymous,
    /// An end-user token minted by B's backend.
    OtherTenantsEndUser,
    /// An end-user token of A's own workspace, for a user who created nothing (A's rules are
    /// the closed default).
    EndUserOfA,
    /// A's own admin key: the control, which must succeed.
    OwnerOfA,
}

const REFUSED_CREDENTIALS: [Credential; 7] = [
    Credential::OtherTenantsEndUser,
    Credential::EndUserOfA,
    Credential::OtherTenantNamingA,
    Credential::OtherTenantWithAsIds,
    Credential::Revoked,
    Credential::Garbage,
    Credential::Anonymous,
];

/// The secrets each credential sends, and the workspaces they act on.
struct Keys {
    a: String,
    b: String,
    a_workspace: String,
    b_workspace: String,
    revoked: String,
    garbage: String,
    b_user: String,
    a_user: String,
}

/// Everything of A's that must never show up in a response to someone else: A's workspace, and
/// the ids and names of every fixture made so far.
struct Secrets {
    a: Tenant,
    known: Vec<String>,
}

impl Secrets {
    fn leaked_in(&self, text: &str) -> Option<&str> {
        std::iter::once(self.a.workspace.as_str())
            .chain(self.known.iter().map(String::as_str))
            .find(|secret| text.contains(*secret))
    }
}

/// Bytes of the fixture's upload, and of every body a request sends: as many as the upload
/// declares, so its signed URL takes them.
const UPLOAD_BYTES: &[u8] = b"matrix";

/// A's things for one operation, made fresh so that a destructive control spoils no other row.
struct Fixture {
    folder_id: String,
    /// A second folder, empty: a parent to move into, or one a dialect can delete without
    /// a `recursive` flag.
    empty_folder_id: String,
    /// An image (so it has thumbnails) in the folder, with a reference for the references routes
    /// (only: a referenced file cannot be deleted without `force`, which some dialects lack).
    file_id: String,
    /// The file's content version, as its public URL names it.
    file_version: String,
    reference: (String, String),
    /// A waiting upload into the folder (a multipart one for the parts routes).
    upload_id: String,
    upload_url: String,
    upload_headers: Vec<(String, String)>,
    /// A webhook endpoint (its receiver never reached: the matrix's server runs no deliveries).
    webhook_id: String,
}

/// Where A's webhooks point: a public address, so the server accepts it without
/// `--webhook-allow-private`, and written as an address, so nothing is looked up.
const WEBHOOK_URL: &str = "https://1.1.1.1/matrix-hook";

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_ascii_lowercase())
}

fn tiny_png() -> Vec<u8> {
    let image = image::RgbImage::from_pixel(4, 4, image::Rgb([200, 40, 40]));
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).expect("encode a PNG");
    out.into_inner()
}

/// Sends a request as A that must succeed, and returns its JSON.
async fn as_a(server: &TestServer, a: &Tenant, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut request = server.request(method.clone(), path, &a.key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let (status, value) = server.send(request).await;
    assert!(status.is_success(), "{method} {path} as A: {status} {value}");
    value
}

/// Puts bytes to a signed upload URL (Cabinet's, or the bucket's with its headers).
async fn put_bytes(server: &TestServer, url: &str, headers: &[(String, String)], bytes: &[u8]) -> StatusCode {
    let mut request = server.http.put(url).body(bytes.to_vec());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send().await.expect("upload bytes").status()
}

async fn fixture(server: &TestServer, secrets: &mut Secrets, setup: Setup) -> Fixture {
    let a = secrets.a.clone();
    let folder_name = unique("alpha-folder");
    let folder = as_a(server, &a, Method::POST, "/v1/folders", Some(json!({"name": folder_name}))).await;
    let folder_id = folder["id"].as_str().unwrap().to_owned();
    let empty_folder_name = unique("alpha-empty");
    let empty = as_a(server, &a, Method::POST, "/v1/folders", Some(json!({"name": empty_folder_name}))).await;
    let empty_folder_id = empty["id"].as_str().unwrap().to_owned();

    let file_name = unique("alpha-private") + ".png";
    let png = tiny_png();
    let ticket = as_a(
        server,
        &a,
        Method::POST,
        "/v1/uploads",
        Some(json!({"name": file_name, "size": png.len(), "folder_id": folder_id})),
    )
    .await;
    let headers = ticket_headers(&ticket);
    let status = put_bytes(server, ticket["upload_url"].as_str().unwrap(), &headers, &png).await;
    assert!(status.is_success(), "uploading A's file: {status}");
    let upload_id = ticket["id"].as_str().unwrap();
    let done = as_a(server, &a, Method::POST, &format!("/v1/uploads/{upload_id}/complete"), None).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    let file_id = done["file"]["id"].as_str().unwrap().to_owned();
    let file_version = done["file"]["sha256"].as_str().unwrap()[..16].to_owned();
    let reference = (unique("alpha-kind"), unique("alpha-ref"));
    if setup == Setup::Referenced {
        let body = json!({"kind": reference.0, "id": reference.1});
        as_a(server, &a, Method::POST, &format!("/v1/files/{file_id}/references"), Some(body)).await;
    }

    let upload_name = unique("alpha-pending") + ".bin";
    let mut request = json!({"name": upload_name, "size": UPLOAD_BYTES.len(), "folder_id": folder_id});
    if setup == Setup::MultipartUpload {
        request["multipart"] = json!(true);
    }
    let live = as_a(server, &a, Method::POST, "/v1/uploads", Some(request)).await;
    assert_eq!(live["status"], "WAITING", "{live}");

    // One webhook at a time (a workspace may have 20): the last fixture's goes first.
    let earlier = as_a(server, &a, Method::GET, "/v1/webhooks", None).await;
    for hook in earlier["data"].as_array().unwrap() {
        let path = format!("/v1/webhooks/{}", hook["id"].as_str().unwrap());
        let status = server.request(Method::DELETE, &path, &a.key).send().await.expect("delete").status();
        assert_eq!(status, reqwest::StatusCode::NO_CONTENT, "DELETE {path}");
    }
    let webhook = as_a(server, &a, Method::POST, "/v1/webhooks", Some(json!({"url": WEBHOOK_URL}))).await;
    let fixture = Fixture {
        webhook_id: webhook["id"].as_str().unwrap().to_owned(),
        folder_id,
        empty_folder_id,
        file_id,
        file_version,
        reference,
        upload_id: live["id"].as_str().unwrap().to_owned(),
        upload_url: live["upload_url"].as_str().unwrap_or_default().to_owned(),
        upload_headers: ticket_headers(&live),
    };
    secrets.known.extend([
        folder_name,
        fixture.folder_id.clone(),
        empty_folder_name,
        fixture.empty_folder_id.clone(),
        file_name,
        fixture.file_id.clone(),
        fixture.reference.0.clone(),
        fixture.reference.1.clone(),
        upload_name,
        fixture.upload_id.clone(),
        fixture.webhook_id.clone(),
    ]);
    fixture
}

fn ticket_headers(ticket: &Value) -> Vec<(String, String)> {
    let headers = ticket["headers"].as_object().into_iter().flatten();
    headers.map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_owned())).collect()
}

/// What A can read of the fixture, to compare before and after the refused requests.
async fn snapshot(server: &TestServer, a: &Tenant, fixture: &Fixture) -> Vec<(String, StatusCode, Value)> {
    let paths = [
        format!("/v1/files/{}", fixture.file_id),
        format!("/v1/files/{}/references", fixture.file_id),
        format!("/v1/files/{}/access-rules", fixture.file_id),
        format!("/v1/folders/{}", fixture.folder_id),
        format!("/v1/folders/{}/access-rules", fixture.folder_id),
        format!("/v1/folders/{}/children", fixture.folder_id),
        format!("/v1/folders/{}", fixture.empty_folder_id),
        format!("/v1/uploads/{}", fixture.upload_id),
        "/v1/access-rules".to_owned(),
        "/v1/quota".to_owned(),
        "/v1/trash".to_owned(),
    ];
    let mut snapshot = Vec::new();
    for path in paths {
        let (status, body) = server.send(server.request(Method::GET, &path, &a.key)).await;
        snapshot.push((path, status, body));
    }
    snapshot
}

/// The path with its parameters filled with the fixture's ids.
fn fill_path(template: &str, workspace: &str, fixture: &Fixture) -> String {
    let segments: Vec<&str> = template.split('/').collect();
    let mut filled = Vec::with_capacity(segments.len());
    for (i, segment) in segments.iter().enumerate() {
        let Some(param) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            filled.push(segment.to_string());
            continue;
        };
        // `{id}` takes its kind from the collection before it.
        let kind =
            if param == "id" { segments[i - 1].trim_end_matches('s') } else { param.trim_end_matches("_id") };
        let value = match kind {
            "workspace" => workspace.to_owned(),
            // The CMS dialect's `{api_id}` and MAVI's `{asset_id}` are file ids.
            "file" | "api" | "asset" => fixture.file_id.clone(),
            "upload" => fixture.upload_id.clone(),
            "folder" => fixture.folder_id.clone(),
            "webhook" => fixture.webhook_id.clone(),
            // A multipart upload's part: the number is only meaningful with a signature.
            "part_number" => "1".to_owned(),
            // A thumbnail's size.
            "size" => "256".to_owned(),
            // A public URL's content version.
            "version" => fixture.file_version.clone(),
            other => panic!("{template}: no id for a parameter of kind {other:?}; add one to fill_path"),
        };
        filled.push(value);
    }
    filled.join("/")
}

/// Stands for the workspace a credential acts on (A's, or B's own), in the fields that name
/// one; replaced as each request is sent.
const WORKSPACE: &str = "{workspace}";

/// The value of a field that names one of A's things, by the field's name (every surface's
/// spelling); `None` for a field that names nothing.
fn id_of_a(template: &str, field: &str, fixture: &Fixture) -> Option<String> {
    match field {
        // Serenities deletes only an empty folder (it has no `recursive`).
        "folderId" if template.ends_with("/deleteFolder") => Some(fixture.empty_folder_id.clone()),
        "folder_id" | "folderId" => Some(fixture.folder_id.clone()),
        // A folder is moved, or made, under the other folder (never under itself).
        "parent_id" | "parentId" => Some(fixture.empty_folder_id.clone()),
        // MAVI's download by bucket and blob: the blob is the asset (file) id.
        "file_id" | "fileId" | "blob" => Some(fixture.file_id.clone()),
        "upload_id" | "uploadId" => Some(fixture.upload_id.clone()),
        _ => None,
    }
}

fn is_workspace_field(field: &str) -> bool {
    // MAVI's `bucket` is the workspace.
    matches!(field, "workspace_id" | "organization_id" | "bucket")
}

/// A value for a schema: its example, else the smallest value of its type (required fields only).
fn sample(schema: &Value, doc: &Value, depth: usize) -> Value {
    if depth > 8 {
        return Value::Null;
    }
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return sample(&doc["components"]["schemas"][name], doc, depth + 1);
    }
    // OpenAPI 3.1 schemas give `examples` (JSON Schema's list); `example` is the older spelling.
    if let Some(example) = schema.get("example").or_else(|| schema["examples"].get(0)) {
        return example.clone();
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(first) = schema[combinator]
            .as_array()
            .and_then(|options| options.iter().find(|option| option["type"] != "null").or(options.first()))
        {
            return sample(first, doc, depth + 1);
        }
    }
    let kind = match &schema["type"] {
        Value::Array(kinds) => kinds.iter().find(|k| *k != "null").cloned().unwrap_or(Value::Null),
        other => other.clone(),
    };
    match kind.as_str() {
        Some("object") => {
            let mut object = Map::new();
            for name in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                object.insert(name.to_owned(), sample(&schema["properties"][name], doc, depth + 1));
            }
            Value::Object(object)
        }
        Some("array") => json!([]),
        Some("integer") | Some("number") => json!(1),
        Some("boolean") => json!(false),
        Some("string") => schema["enum"].get(0).cloned().unwrap_or(json!("x")),
        _ => Value::Null,
    }
}

/// The properties of an object schema (following a `$ref`).
fn properties<'a>(schema: &'a Value, doc: &'a Value) -> Vec<&'a str> {
    let schema = match schema["$ref"].as_str() {
        Some(reference) => &doc["components"]["schemas"][reference.rsplit('/').next().unwrap()],
        None => schema,
    };
    schema["properties"].as_object().into_iter().flatten().map(|(name, _)| name.as_str()).collect()
}

/// One operation's request, built once and sent with each credential.
#[derive(Debug, Clone)]
struct Call {
    method: Method,
    /// Path and query, for Cabinet's own URL; or the full URL of a signed one.
    url: String,
    query: Vec<(String, String)>,
    body: Body,
    /// Whether it carries one of A's ids (a request that does not is free to succeed for B on B).
    names_a: bool,
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    /// A `file` part and text fields.
    Multipart(Vec<(String, String)>),
    Bytes,
}

/// The request for an operation, every id in it one of A's real ones.
// Each argument is one independent input of the request; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
fn call_for(
    method: &Method,
    template: &str,
    operation: &Value,
    doc: &Value,
    workspace: &str,
    fixture: &Fixture,
    mavera_url: Option<&str>,
    guard: Guard,
) -> Call {
    let mut names_a = template.contains('{');
    let mut query = Vec::new();
    for parameter in operation["parameters"].as_array().into_iter().flatten().filter(|p| p["in"] == "query") {
        // A signed URL's query is its signature, which the URL the API minted carries whole.
        if guard == Guard::SignedUrl {
            break;
        }
        let name = parameter["name"].as_str().unwrap();
        let value = if let Some(id) = id_of_a(template, name, fixture) {
            names_a = true;
            id
        } else if is_workspace_field(name) {
            WORKSPACE.to_owned()
        } else if name == "q" {
            // A search for A's names.
            "alpha".to_owned()
        } else if template.ends_with("/references") && name == "kind" {
            fixture.reference.0.clone()
        } else if template.ends_with("/references") && name == "id" {
            fixture.reference.1.clone()
        } else if matches!(name, "force" | "recursive") {
            // A's control deletes a folder with things in it, or a file with a reference.
            "true".to_owned()
        } else if parameter["required"] == true {
            let value = sample(&parameter["schema"], doc, 0);
            value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string())
        } else {
            continue;
        };
        query.push((name.to_owned(), value));
    }
    let content = &operation["requestBody"]["content"];
    let body = if let Some(schema) = content.get("application/json").map(|c| &c["schema"]) {
        let mut body = sample(schema, doc, 0);
        let object = body.as_object_mut().expect("a JSON body is an object");
        for field in properties(schema, doc) {
            if let Some(id) = id_of_a(template, field, fixture) {
                names_a = true;
                object.insert(field.to_owned(), json!(id));
                continue;
            }
            if is_workspace_field(field) {
                object.insert(field.to_owned(), json!(WORKSPACE));
                continue;
            }
            if field == "force" {
                object.insert(field.to_owned(), json!(true));
                continue;
            }
            if !object.contains_key(field) {
                continue;
            }
            let value = match field {
                // Names must be new, or a second create answers 409.
                "name" | "newName" | "file_name" | "fileName" => json!(unique("matrix") + ".txt"),
                // MAVI takes only the media formats it documents.
                "original_filename" => json!(unique("matrix") + ".mp4"),
                "content_base64" | "file_base64" | "content" => json!("bWF0cml4"),
                "file_size" => json!(UPLOAD_BYTES.len()),
                "part_numbers" => json!([1]),
                "url" if template.starts_with("/v1/webhooks") => json!(WEBHOOK_URL),
                "url" => json!(mavera_url.expect("the Mavera create-file call has an uploaded URL")),
                _ => continue,
            };
            object.insert(field.to_owned(), value);
        }
        // Mavera names the workspace in every request; its document leaves it out of some bodies.
        if guard == Guard::Mavera {
            object.insert("workspace_id".into(), json!(WORKSPACE));
        }
        Body::Json(body)
    } else if let Some(schema) = content.get("multipart/form-data").map(|c| &c["schema"]) {
        let mut fields = Vec::new();
        for field in properties(schema, doc) {
            if let Some(id) = id_of_a(template, field, fixture) {
                names_a = true;
                fields.push((field.to_owned(), id));
            } else if is_workspace_field(field) {
                fields.push((field.to_owned(), WORKSPACE.to_owned()));
            }
        }
        Body::Multipart(fields)
    } else if content.get("application/octet-stream").is_some() {
        Body::Bytes
    } else {
        Body::None
    };
    if guard == Guard::Mavera
        && !query.iter().any(|(name, _)| name == "workspace_id")
        && matches!(body, Body::None)
    {
        query.push(("workspace_id".into(), WORKSPACE.to_owned()));
    }
    let url = fill_path(template, workspace, fixture);
    Call { method: method.clone(), url, query, body, names_a }
}

/// Sends a call as a credential.
async fn send(
    server: &TestServer,
    call: &Call,
    guard: Guard,
    credential: Credential,
    keys: &Keys,
    workspace: &str,
) -> (StatusCode, String) {
    let url =
        if call.url.starts_with("http") { call.url.clone() } else { format!("{}{}", server.url, call.url) };
    let mut request = server.http.request(call.method.clone(), url);
    let acting_on = match credential {
        Credential::OtherTenantWithAsIds | Credential::OtherTenantsEndUser => &keys.b_workspace,
        _ => &keys.a_workspace,
    };
    let with_workspace = |text: &str| text.replace(WORKSPACE, acting_on);
    if !call.query.is_empty() {
        let query: Vec<(&String, String)> =
            call.query.iter().map(|(name, value)| (name, with_workspace(value))).collect();
        request = request.query(&query);
    }
    request = match &call.body {
        Body::None => request,
        Body::Json(body) => {
            request.header("content-type", "application/json").body(with_workspace(&body.to_string()))
        }
        Body::Bytes => request.body(UPLOAD_BYTES),
        Body::Multipart(fields) => {
            // MAVI takes only the media formats it documents.
            let extension = if guard == Guard::Mavi { ".mp4" } else { ".txt" };
            let file = reqwest::multipart::Part::bytes(UPLOAD_BYTES).file_name(unique("matrix") + extension);
            let mut form = reqwest::multipart::Form::new().part("file", file);
            for (name, value) in fields {
                form = form.text(name.clone(), with_workspace(value));
            }
            request.multipart(form)
        }
    };
    let secret: Option<&String> = match credential {
        Credential::OtherTenantNamingA | Credential::OtherTenantWithAsIds => Some(&keys.b),
        Credential::Revoked => Some(&keys.revoked),
        Credential::Garbage => Some(&keys.garbage),
        Credential::Anonymous => None,
        Credential::OtherTenantsEndUser => Some(&keys.b_user),
        Credential::EndUserOfA => Some(&keys.a_user),
        Credential::OwnerOfA => Some(&keys.a),
    };
    if let Some(secret) = secret {
        // MAVI takes the raw key in `Authorization`; every other surface a bearer.
        request = match guard {
            Guard::Mavi => request.header("authorization", secret),
            _ => request.bearer_auth(secret),
        };
    }
    if matches!(credential, Credential::OtherTenantNamingA | Credential::OwnerOfA) {
        request = request.header("x-cabinet-workspace", workspace);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

/// How an operation's control is made to succeed where the request alone cannot: what A does
/// first, and which URL the control uses.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Setup {
    Plain,
    /// A restore: the thing is trashed first.
    TrashFile,
    TrashFolder,
    /// `complete`: the bytes are sent first.
    SendBytes,
    /// The parts routes: the fixture's upload is a multipart one.
    MultipartUpload,
    /// Mavera's create-file takes the URL its upload-url call handed out, with the bytes there.
    MaveraUploadedUrl,
    /// The references routes: the file has a reference (whose kind and id the query names).
    Referenced,
}

fn setup_for(method: &Method, template: &str) -> Setup {
    match template {
        "/v1/files/{id}/restore" => Setup::TrashFile,
        "/v1/folders/{id}/restore" => Setup::TrashFolder,
        "/v1/uploads/{id}/complete" => Setup::SendBytes,
        _ if template.contains("/parts") => Setup::MultipartUpload,
        "/compat/mavera/api/v1/files" if method == Method::POST => Setup::MaveraUploadedUrl,
        _ if template.ends_with("/references") => Setup::Referenced,
        _ => Setup::Plain,
    }
}

/// The signed URL A's own client would use for a storage route, minted by the API.
async fn signed_url_for(server: &TestServer, a: &Tenant, template: &str, fixture: &Fixture) -> String {
    if template.starts_with("/storage/v1/files/") {
        let path = format!("/v1/files/{}/download-url", fixture.file_id);
        let minted = as_a(server, a, Method::GET, &path, None).await;
        return minted["url"].as_str().expect("a download URL").to_owned();
    }
    if template.starts_with("/storage/v1/thumbnails/") {
        let file = as_a(server, a, Method::GET, &format!("/v1/files/{}", fixture.file_id), None).await;
        return file["thumbnail_url"]
            .as_str()
            .unwrap_or_else(|| panic!("a thumbnail_url in {file}"))
            .to_owned();
    }
    if template.contains("/parts/") {
        let path = format!("/v1/uploads/{}/parts", fixture.upload_id);
        let minted = as_a(server, a, Method::POST, &path, Some(json!({"part_numbers": [1]}))).await;
        return minted["parts"][0]["url"]
            .as_str()
            .unwrap_or_else(|| panic!("a part URL in {minted}"))
            .to_owned();
    }
    fixture.upload_url.clone()
}
