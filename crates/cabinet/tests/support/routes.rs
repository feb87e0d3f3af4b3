//! The operations of the OpenAPI documents (every surface's, merged by `all_documents`) that take a
//! request body, read at run time so that new routes join the tests that walk them, with their path
//! parameters filled by ids that name nothing.

use cabinet_core::{FileId, FolderId, UploadId, WorkspaceId};
use serde_json::Value;

/// One operation that takes a body.
#[derive(Debug, Clone)]
pub struct BodyOperation {
    /// The path template, `{…}` parameters and all.
    pub template: String,
    pub method: String,
    /// A form where it takes one, else JSON, else raw bytes.
    pub content_type: &'static str,
    /// Its credential is a signed URL, not a key.
    pub signed: bool,
}

impl BodyOperation {
    /// The path with well-formed ids that name nothing.
    pub fn path(&self) -> String {
        let segments: Vec<&str> = self.template.split('/').collect();
        let filled: Vec<String> = segments
            .iter()
            .enumerate()
            .map(|(i, segment)| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                None => segment.to_string(),
                Some("workspace_id") => WorkspaceId::generate().to_string(),
                Some("part_number") => "1".into(),
                Some("upload_id") => UploadId::generate().to_string(),
                Some("id") if segments[i - 1] == "uploads" => UploadId::generate().to_string(),
                Some("id") if segments[i - 1] == "folders" => FolderId::generate().to_string(),
                Some(_) => FileId::generate().to_string(),
            })
            .collect();
        filled.join("/")
    }

    /// The `Content-Type` to send (a form's with `boundary`).
    pub fn content_type_header(&self, boundary: &str) -> String {
        match self.content_type {
            "multipart/form-data" => format!("multipart/form-data; boundary={boundary}"),
            other => other.to_owned(),
        }
    }
}

/// Every surface's document (the native `/openapi.json` and each dialect's
/// `<mount>/openapi.json`) merged into one, its paths whole (each prefixed with its document's
/// `servers` entry), so a test that walks every operation walks every surface's.
pub async fn all_documents(http: &reqwest::Client, base_url: &str) -> Value {
    let mut merged = serde_json::json!({"paths": {}, "components": {"schemas": {}}});
    for surface in cabinet_api::surface::Surface::ALL {
        let url = format!("{base_url}{}", surface.document_path());
        let response = http.get(&url).send().await.unwrap();
        assert!(response.status().is_success(), "{url}: {}", response.status());
        let doc: Value = response.json().await.unwrap();
        let server = doc["servers"][0]["url"].as_str().unwrap_or_else(|| panic!("{url}: no servers entry"));
        let mount = server.trim_end_matches('/');
        assert_eq!(mount, surface.mount(), "{url}: its servers entry is not its mount");
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let whole = format!("{mount}{path}");
            let previous = merged["paths"].as_object_mut().unwrap().insert(whole.clone(), item.clone());
            assert!(previous.is_none(), "{whole} is in two documents");
        }
        for (name, schema) in doc["components"]["schemas"].as_object().into_iter().flatten() {
            merged["components"]["schemas"][name] = schema.clone();
        }
    }
    merged
}

/// Every operation of the server's documents (every surface's) that takes a body.
pub async fn body_operations(http: &reqwest::Client, base_url: &str) -> Vec<BodyOperation> {
    let doc = all_documents(http, base_url).await;
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            let Some(content) = operation["requestBody"]["content"].as_object() else { continue };
            let content_type = ["multipart/form-data", "application/json", "application/octet-stream"]
                .into_iter()
                .find(|kind| content.contains_key(*kind))
                .unwrap_or_else(|| panic!("{method} {path}: a body of a type the tests do not know"));
            operations.push(BodyOperation {
                template: path.clone(),
                method: method.to_ascii_uppercase(),
                content_type,
                signed: operation["security"].as_array().is_none_or(|s| s.is_empty()),
            });
        }
    }
    assert!(operations.len() >= 30, "only {} operations with a body in the document", operations.len());
    operations
}
