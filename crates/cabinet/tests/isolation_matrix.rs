//! Tenant isolation, exhaustively: every operation in `/openapi.json` is called with every kind of
//! credential that must not reach workspace A — and none may succeed, fail with a 5xx, or show
//! anything of A's. The routes come from the document, so a new route joins the matrix by being
//! mounted; one the table cannot classify fails the test until it is classified.

mod support;

use cabinet_core::{FolderId, Role};
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
    /// B's admin key acting on its own workspace, with A's ids in the path.
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
}

const CREDENTIALS: [Credential; 7] = [
    Credential::OtherTenantsEndUser,
    Credential::EndUserOfA,
    Credential::OtherTenantNamingA,
    Credential::OtherTenantWithAsIds,
    Credential::Revoked,
    Credential::Garbage,
    Credential::Anonymous,
];

/// Everything of A's that must never show up in a response to someone else.
struct Secrets {
    a: Tenant,
    workspace_name: String,
    file_id: String,
    file_name: String,
    live_upload_id: String,
    live_upload_name: String,
}

impl Secrets {
    fn leaked_in(&self, text: &str) -> Option<&str> {
        [
            self.a.workspace.as_str(),
            &self.workspace_name,
            &self.file_id,
            &self.file_name,
            &self.live_upload_id,
            &self.live_upload_name,
        ]
        .into_iter()
        .find(|secret| text.contains(*secret))
    }
}

/// The path with its parameters filled: A's real ids where A has such a thing, else a
/// well-formed id that names nothing.
fn fill_path(template: &str, secrets: &Secrets) -> String {
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
            "workspace" => secrets.a.workspace.to_string(),
            // The CMS dialect's `{api_id}` is a file id.
            "file" | "api" | "asset" => secrets.file_id.clone(),
            "upload" => secrets.live_upload_id.clone(),
            "folder" => FolderId::generate().to_string(),
            // A multipart upload's part: the number is only meaningful with a signature.
            "part_number" => "1".to_owned(),
            // A thumbnail's size.
            "size" => "256".to_owned(),
            other => panic!("{template}: no id for a parameter of kind {other:?}; add one to fill_path"),
        };
        filled.push(value);
    }
    filled.join("/")
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
    if let Some(example) = schema.get("example") {
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

/// A request for an operation: required query parameters filled, a plausible body attached.
fn build(
    server: &TestServer,
    method: &Method,
    path: &str,
    operation: &Value,
    doc: &Value,
    secrets: &Secrets,
    workspace: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut request = server.http.request(method.clone(), format!("{}{path}", server.url));
    let mut query: Vec<(String, String)> = operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query" && p["required"] == true)
        .map(|p| {
            let value = sample(&p["schema"], doc, 0);
            let text = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
            (p["name"].as_str().unwrap().to_owned(), text)
        })
        .collect();
    // A dialect that names the workspace in the request itself names A's.
    if let Some(workspace) = workspace {
        query.retain(|(name, _)| name != "workspace_id");
        query.push(("workspace_id".into(), workspace.to_owned()));
    }
    if !query.is_empty() {
        request = request.query(&query);
    }
    let content = &operation["requestBody"]["content"];
    if let Some(schema) = content.get("application/json").map(|c| &c["schema"]) {
        let mut body = with_ids_of_a(sample(schema, doc, 0), secrets);
        if let (Some(workspace), Some(object)) = (workspace, body.as_object_mut()) {
            object.insert("workspace_id".into(), json!(workspace));
        }
        request = request.json(&body);
    } else if content.get("multipart/form-data").is_some() {
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(b"matrix".to_vec()).file_name("matrix.txt"));
        request = request.multipart(form);
    } else if content.get("application/octet-stream").is_some() {
        request = request.body("matrix");
    }
    request
}

/// A sampled JSON body with A's ids where it names a file or a workspace (RPC-style dialects
/// carry their ids in the body, not the path).
fn with_ids_of_a(mut body: Value, secrets: &Secrets) -> Value {
    if let Some(object) = body.as_object_mut() {
        for (name, value) in object.iter_mut() {
            match name.as_str() {
                "fileId" | "file_id" => *value = json!(secrets.file_id),
                "organization_id" | "workspace_id" => *value = json!(secrets.a.workspace.as_str()),
                _ => {}
            }
        }
    }
    body
}

/// Whether a request carries A's ids: in its path, or in its JSON body.
fn names_ids_of_a(template: &str, operation: &Value, doc: &Value, secrets: &Secrets) -> bool {
    if template.contains('{') {
        return true;
    }
    let content = &operation["requestBody"]["content"];
    let Some(schema) = content.get("application/json").map(|c| &c["schema"]) else { return false };
    with_ids_of_a(sample(schema, doc, 0), secrets).to_string().contains(&secrets.file_id)
}

async fn secrets_of_a(server: &TestServer) -> Secrets {
    let a = server.tenant.clone();
    let workspace_name = server.cabinet.workspace(&a.workspace).await.unwrap().name;
    let file_name = format!("alpha-private-{}.txt", ulid::Ulid::new());
    let done = server.upload(&a, &file_name, b"A's private bytes").await;
    let live_upload_name = format!("alpha-pending-{}.bin", ulid::Ulid::new());
    let (status, live) = server.start_upload(&a, json!({"name": live_upload_name, "size": 5})).await;
    assert_eq!(status, StatusCode::CREATED, "{live}");
    Secrets {
        a,
        workspace_name,
        file_id: done["file"]["id"].as_str().unwrap().to_owned(),
        file_name,
        live_upload_id: live["id"].as_str().unwrap().to_owned(),
        live_upload_name,
    }
}

#[tokio::test]
async fn no_foreign_revoked_garbage_or_missing_credential_reaches_workspace_a() {
    let server = TestServer::spawn().await;
    let secrets = secrets_of_a(&server).await;
    let b = server.tenant(None, Role::Admin).await;
    let revoked =
        server.cabinet.create_api_key(vec![secrets.a.workspace.clone()], Role::Admin, None).await.unwrap();
    server.cabinet.revoke_api_key(&revoked.key.id).await.unwrap();
    let garbage = format!("cab_{}", "0".repeat(43));
    let mint = |tenant: &Tenant| {
        let cabinet = server.cabinet.clone();
        let key = tenant.key.clone();
        async move {
            let caller = cabinet.authenticate(&key, None).await.expect("admin key");
            cabinet.mint_end_user_token(&caller, "mallory", Some(600)).expect("token").0
        }
    };
    let b_user = mint(&b).await;
    let a_user = mint(&secrets.a).await;

    let (status, doc) = server.send(server.http.get(format!("{}/openapi.json", server.url))).await;
    assert_eq!(status, StatusCode::OK);
    let mut unclassified = Vec::new();
    let mut failures = Vec::new();
    let mut calls = 0;
    for (template, item) in doc["paths"].as_object().expect("paths") {
        let Some(guard) = classify(template) else {
            unclassified.push(template.clone());
            continue;
        };
        for (method_name, operation) in item.as_object().unwrap() {
            let Ok(method) = method_name.to_ascii_uppercase().parse::<Method>() else { continue };
            if !operation.is_object() || operation.get("responses").is_none() {
                continue;
            }
            let path = fill_path(template, &secrets);
            let has_ids = names_ids_of_a(template, operation, &doc, &secrets);
            for credential in CREDENTIALS {
                let names_a = credential == Credential::OtherTenantNamingA;
                let workspace = (guard == Guard::Mavera && names_a).then_some(secrets.a.workspace.as_str());
                let mut request = build(&server, &method, &path, operation, &doc, &secrets, workspace);
                let raw_key =
                    |request: reqwest::RequestBuilder, key: &str| request.header("authorization", key);
                request = match credential {
                    _ if guard == Guard::Mavi => match credential {
                        Credential::OtherTenantNamingA => raw_key(request, &b.key)
                            .header("x-cabinet-workspace", secrets.a.workspace.as_str()),
                        Credential::OtherTenantWithAsIds => raw_key(request, &b.key),
                        Credential::Revoked => raw_key(request, &revoked.secret),
                        Credential::Garbage => raw_key(request, &garbage),
                        Credential::Anonymous => request,
                        Credential::OtherTenantsEndUser => raw_key(request, &b_user),
                        Credential::EndUserOfA => raw_key(request, &a_user),
                    },
                    Credential::OtherTenantNamingA if guard == Guard::Mavera => request.bearer_auth(&b.key),
                    Credential::OtherTenantNamingA => request
                        .bearer_auth(&b.key)
                        .header("x-cabinet-workspace", secrets.a.workspace.as_str()),
                    Credential::OtherTenantWithAsIds => request.bearer_auth(&b.key),
                    Credential::Revoked => request.bearer_auth(&revoked.secret),
                    Credential::Garbage => request.bearer_auth(&garbage),
                    Credential::Anonymous => request,
                    Credential::OtherTenantsEndUser => request.bearer_auth(&b_user),
                    Credential::EndUserOfA => request.bearer_auth(&a_user),
                };
                let response = request.send().await.expect("request");
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                calls += 1;
                eprintln!("{method} {path} as {credential:?}: {status}");
                let case = format!("{method} {template} as {credential:?}: {status} {text}");
                if status.is_server_error() {
                    failures.push(format!("5xx — {case}"));
                }
                if let Some(secret) = secrets.leaked_in(&text) {
                    failures.push(format!("leaked {secret:?} — {case}"));
                }
                let expected: &[StatusCode] = match guard {
                    Guard::Public => continue,
                    Guard::PublicRule => &[StatusCode::NOT_FOUND],
                    // The signature is the credential; keys neither help nor matter.
                    Guard::SignedUrl => &[StatusCode::FORBIDDEN],
                    // B acting on its own workspace, or an end user listing their own (empty)
                    // files, may succeed; the leak check above is what holds there.
                    Guard::ApiKey(_) | Guard::Mavera | Guard::Mavi
                        if !has_ids
                            && matches!(
                                credential,
                                Credential::OtherTenantWithAsIds
                                    | Credential::OtherTenantsEndUser
                                    | Credential::EndUserOfA
                            ) =>
                    {
                        continue
                    }
                    Guard::ApiKey(_) | Guard::Mavera => {
                        &[StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN, StatusCode::NOT_FOUND]
                    }
                    // MAVI answers an asset that is not the caller's with 400 "Asset not found".
                    Guard::Mavi => &[
                        StatusCode::BAD_REQUEST,
                        StatusCode::UNAUTHORIZED,
                        StatusCode::FORBIDDEN,
                        StatusCode::NOT_FOUND,
                    ],
                };
                if !expected.contains(&status) {
                    failures.push(format!("expected one of {expected:?} — {case}"));
                }
                if let Guard::ApiKey(shape) = guard {
                    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if !shape.fits(&body) {
                        failures.push(format!("not in the {shape:?} error shape — {case}"));
                    }
                }
            }
        }
    }
    assert!(unclassified.is_empty(), "routes the isolation matrix cannot classify: {unclassified:?}");
    assert!(
        failures.is_empty(),
        "{} of {calls} calls broke isolation:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(calls >= 7 * 13, "only {calls} calls: did the document lose routes?");

    // A's things are untouched.
    let (status, file) = server.send(server.get(&format!("/v1/files/{}", secrets.file_id))).await;
    assert_eq!(status, StatusCode::OK, "{file}");
    assert_eq!(file["name"], secrets.file_name.as_str());
    let (_, live) = server.send(server.get(&format!("/v1/uploads/{}", secrets.live_upload_id))).await;
    assert_eq!(live["status"], "WAITING", "{live}");
    assert_eq!(server.quota(&secrets.a).await["reserved_bytes"], 5);
}

#[test]
fn the_classification_table_covers_the_known_surfaces() {
    assert_eq!(classify("/v1/anything/{id}"), Some(Guard::ApiKey(Shape::Native)));
    assert_eq!(classify("/compat/cms/files/{api_id}/"), Some(Guard::ApiKey(Shape::Drf)));
    assert_eq!(classify("/compat/serenities/api/v1/files/get"), Some(Guard::ApiKey(Shape::Serenities)));
    assert_eq!(classify("/storage/v1/files/{workspace_id}/{file_id}"), Some(Guard::SignedUrl));
    assert_eq!(classify("/healthz"), Some(Guard::Public));
    assert_eq!(classify("/compat/mavera/api/v1/files"), Some(Guard::Mavera));
    assert_eq!(classify("/compat/mavi/serve/api/v2/{asset_id}/metadata"), Some(Guard::Mavi));
    assert_eq!(classify("/compat/elsewhere/files"), None);
}
