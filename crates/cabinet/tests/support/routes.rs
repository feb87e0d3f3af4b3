//! The operations of the OpenAPI document that take a request body, read at run time so that new
//! routes join the tests that walk them, with their path parameters filled by ids that name nothing.

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

/// Every operation of the server's `/openapi.json` that takes a body.
pub async fn body_operations(http: &reqwest::Client, base_url: &str) -> Vec<BodyOperation> {
    let doc: Value = http.get(format!("{base_url}/openapi.json")).send().await.unwrap().json().await.unwrap();
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
