//! The Serenities dialect's JSON (camelCase): File, Folder, and the small results of its
//! procedures, rendered from core records.

use cabinet_core::links::FileLinks;
use cabinet_core::{FileRecord, Folder, Quota, Usage};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// A file.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SerenitiesFile {
    #[schema(example = "file_01jq3v5k2n8x7y6z5w4v3u2t1s")]
    pub id: String,
    #[schema(example = "report.pdf")]
    pub file_name: String,
    /// Sniffed from the bytes.
    pub mime_type: String,
    pub size: u64,
    /// Null at the root.
    pub folder_id: Option<String>,
    /// The first conversation that references the file (a Cabinet reference of kind
    /// `conversation`), or null.
    pub conversation_id: Option<String>,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub uploaded_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub updated_at: DateTime<Utc>,
    /// The end user who uploaded it, when creator tracking is on.
    pub created_by: Option<String>,
    /// For a file anyone may read (its access rules' `read` is `public`): its URL at this
    /// content version, which needs no key and may be cached by anyone for a year; absent otherwise, so the seed's
    /// shape is unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

impl SerenitiesFile {
    pub fn new(file: FileRecord, conversation_id: Option<String>, links: &FileLinks) -> Self {
        Self {
            public_url: links.public_url(&file),
            id: file.id.to_string(),
            file_name: file.name,
            mime_type: file.mime_type,
            size: file.size,
            folder_id: file.folder_id.map(|f| f.to_string()),
            conversation_id,
            uploaded_at: file.created_at,
            updated_at: file.updated_at,
            created_by: file.created_by,
        }
    }
}

/// A folder.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SerenitiesFolder {
    #[schema(example = "fld_01jq3v5k2n8x7y6z5w4v3u2t1s")]
    pub id: String,
    pub name: String,
    /// Null at the root.
    pub parent_id: Option<String>,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl From<Folder> for SerenitiesFolder {
    fn from(folder: Folder) -> Self {
        Self {
            id: folder.id.to_string(),
            name: folder.name,
            parent_id: folder.parent_id.map(|p| p.to_string()),
            created_at: folder.created_at,
            updated_at: folder.updated_at,
        }
    }
}

/// A folder as `listFolders` returns it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SerenitiesFolderEntry {
    pub id: String,
    pub name: String,
    pub parent_id: Option<String>,
}

impl From<Folder> for SerenitiesFolderEntry {
    fn from(folder: Folder) -> Self {
        Self {
            id: folder.id.to_string(),
            name: folder.name,
            parent_id: folder.parent_id.map(|p| p.to_string()),
        }
    }
}

/// A page of files.
#[derive(Debug, Serialize, ToSchema)]
pub struct SerenitiesFileList {
    pub files: Vec<SerenitiesFile>,
    /// Matching files over all pages.
    pub total: u64,
}

/// A presigned download URL.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SerenitiesDownloadUrl {
    pub url: String,
    /// One hour after the call.
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub expires_at: DateTime<Utc>,
}

/// A procedure that only succeeds or fails.
#[derive(Debug, Serialize, ToSchema)]
pub struct SerenitiesSuccess {
    pub success: bool,
}

/// Storage stats of the files `list` shows: a deleted file is in the trash, and counts here no
/// more (`getQuota` still counts its bytes until the trash is purged).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SerenitiesUsage {
    pub total_size: u64,
    pub file_count: u64,
}

impl From<Usage> for SerenitiesUsage {
    fn from(usage: Usage) -> Self {
        Self { total_size: usage.live_size(), file_count: usage.live_count() }
    }
}

/// What an unlimited quota reports as its limit: JavaScript's `Number.MAX_SAFE_INTEGER`
/// (2^53 − 1), so `size <= availableBytes` checks keep working and every value stays a number.
pub const UNLIMITED_BYTES: u64 = (1 << 53) - 1;

/// Storage quota. An unlimited workspace reports `limitBytes` = 9007199254740991
/// (`Number.MAX_SAFE_INTEGER`), `availableBytes` = that minus what is used and reserved, and
/// `percentUsed` = 0.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SerenitiesQuota {
    pub used_bytes: u64,
    #[schema(example = 1073741824)]
    pub limit_bytes: u64,
    /// What a new upload may still take (uploads in progress hold their declared size).
    pub available_bytes: u64,
    pub max_file_size_bytes: u64,
    /// 0–100, two decimals.
    pub percent_used: f64,
}

impl From<Quota> for SerenitiesQuota {
    fn from(quota: Quota) -> Self {
        let limit = quota.limit_bytes.unwrap_or(UNLIMITED_BYTES);
        Self {
            used_bytes: quota.used_bytes,
            limit_bytes: limit,
            available_bytes: quota.available_bytes_or(UNLIMITED_BYTES),
            max_file_size_bytes: quota.max_file_size_bytes,
            percent_used: quota.percent_used().unwrap_or(0.0),
        }
    }
}
