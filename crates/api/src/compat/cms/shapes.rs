//! The CMS dialect's JSON: the File object (`api_id`, `file_name`, `organization_id`, `file_url`,
//! `usage`, alt text, caption, copyright, tags) and the DRF page around a list.

use cabinet_core::links::FileLinks;
use cabinet_core::{FileRecord, FileReference};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// A file, as the CMS media library shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CmsFile {
    /// The `api_id` the client chose at upload, else Cabinet's file id; either names the file in
    /// the path.
    #[schema(example = "file_01jq3v5k2n8x7y6z5w4v3u2t1s")]
    pub api_id: String,
    #[schema(example = "poster.png")]
    pub file_name: String,
    /// The workspace id.
    pub organization_id: String,
    /// A lasting URL of the bytes (a permalink: no expiry, one per file), for pages that embed
    /// it; it ends when the file is deleted or the organization's links are revoked.
    pub file_url: String,
    /// For a file anyone may read (its read rule is `public`): its URL at this content version,
    /// which needs no key and may be cached by anyone for a year; absent otherwise, so the seed's
    /// shape is unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub updated_at: DateTime<Utc>,
    /// Models and instances using this file (Cabinet references).
    pub usage: Vec<CmsUsage>,
    /// Empty when unset.
    pub image_alt_text: String,
    pub caption: String,
    pub copyright: String,
    pub tags: Vec<String>,
}

/// Something that uses a file: a Cabinet reference (kind → model, id → instance_id,
/// label → instance_name).
#[derive(Debug, Serialize, ToSchema)]
pub struct CmsUsage {
    #[schema(example = "edition")]
    pub model: String,
    #[schema(example = "42")]
    pub instance_id: String,
    #[schema(example = "Summer Festival 2025")]
    pub instance_name: Option<String>,
}

impl From<FileReference> for CmsUsage {
    fn from(reference: FileReference) -> Self {
        Self { model: reference.kind, instance_id: reference.id, instance_name: reference.label }
    }
}

impl CmsFile {
    /// Renders a file with its references and a download URL.
    pub fn new(file: FileRecord, usage: Vec<FileReference>, file_url: String, links: &FileLinks) -> Self {
        Self {
            public_url: links.public_url(&file),
            api_id: file.external_id.clone().unwrap_or_else(|| file.id.to_string()),
            file_name: file.name,
            organization_id: file.workspace_id.to_string(),
            file_url,
            created_at: file.created_at,
            updated_at: file.updated_at,
            usage: usage.into_iter().map(CmsUsage::from).collect(),
            image_alt_text: file.alt_text.unwrap_or_default(),
            caption: file.caption.unwrap_or_default(),
            copyright: file.copyright.unwrap_or_default(),
            tags: file.tags,
        }
    }
}

/// A DRF page of files.
#[derive(Debug, Serialize, ToSchema)]
pub struct CmsFilePage {
    /// Matching files over all pages.
    pub count: u64,
    /// Absolute URL of the next page, or null.
    pub next: Option<String>,
    /// Absolute URL of the previous page, or null.
    pub previous: Option<String>,
    pub results: Vec<CmsFile>,
    /// Every tag of the organization's live files.
    pub available_tags: Vec<String>,
}

/// The 409 of a delete refused because the file is in use.
#[derive(Debug, Serialize, ToSchema)]
pub struct CmsInUse {
    #[schema(example = "File is in use by 2 objects")]
    pub detail: String,
    pub usage: Vec<CmsUsage>,
}

/// A JSON (base64) upload.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub struct CmsBase64Upload {
    /// The file's id of the client's choosing, unique among the organization's files (409 when
    /// taken); Cabinet's own id when absent, null or empty.
    #[schema(schema_with = crate::input_schema::external_id_or_empty_or_null)]
    pub api_id: Option<String>,
    /// The workspace id; or in the query, or the `X-Cabinet-Workspace` header.
    #[schema(schema_with = crate::input_schema::non_empty)]
    pub organization_id: Option<String>,
    /// Standard base64, or a `data:<mime>;base64,` URI.
    #[schema(schema_with = crate::input_schema::dialect_base64)]
    pub file_base64: String,
    #[schema(schema_with = crate::input_schema::name)]
    pub file_name: String,
    /// A list, or one comma-separated string.
    #[schema(schema_with = crate::input_schema::tags_list_or_text_or_null)]
    pub tags: Option<Vec<String>>,
}

/// A multipart upload: `api_id`, `organization_id`, `file_name` and `tags` fields before `file`;
/// other fields are ignored.
pub struct CmsMultipartUpload;

impl utoipa::PartialSchema for CmsMultipartUpload {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use crate::input_schema::{
            external_id_or_empty, form_with_file, name_or_empty, non_empty, tag_list_fields,
        };
        form_with_file(vec![
            ("api_id", external_id_or_empty().into(), false),
            // Or in the query, or the `X-Cabinet-Workspace` header.
            ("organization_id", non_empty().into(), false),
            ("file_name", name_or_empty().into(), false),
            ("tags", tag_list_fields(2).into(), false),
        ])
    }
}

impl ToSchema for CmsMultipartUpload {}

/// What a PATCH may change; fields left out stay, `null` or `""` clears a text.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub struct CmsFilePatch {
    #[schema(schema_with = crate::input_schema::text_or_null)]
    pub image_alt_text: Option<String>,
    #[schema(schema_with = crate::input_schema::text_or_null)]
    pub caption: Option<String>,
    #[schema(schema_with = crate::input_schema::text_or_null)]
    pub copyright: Option<String>,
    /// Replaces the tags: a list, or one comma-separated string.
    #[schema(schema_with = crate::input_schema::tags_list_or_text_or_null)]
    pub tags: Option<Vec<String>>,
}

/// A PATCH as a form (`multipart/form-data` or `application/x-www-form-urlencoded`): each field
/// as text, an empty one clearing it; `tags` repeated, each a comma-separated list.
pub struct CmsFormPatch;

impl utoipa::PartialSchema for CmsFormPatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use crate::input_schema::{form_field_name, tag_list, text};
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
        // A form without a file takes up to `form::MAX_FIELDS_WITHOUT_FILE` fields: the three
        // texts and any others the client adds (ignored, with names a form can send) leave 1,000
        // for `tags`.
        let tags = ArrayBuilder::new().items(tag_list()).max_items(Some(1000));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("image_alt_text", text())
            .property("caption", text())
            .property("copyright", text())
            .property("tags", tags)
            .property_names(Some(form_field_name()))
            .into()
    }
}

impl ToSchema for CmsFormPatch {}
