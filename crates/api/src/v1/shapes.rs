//! The JSON shapes of the native API, rendered from core records.

use std::collections::BTreeMap;

use crate::schemas;
use cabinet_core::files::DownloadUrl;
use cabinet_core::folders::RestoreNote;
use cabinet_core::links::FileLinks;
use cabinet_core::multipart::{PartPlan, PartUrl};
use cabinet_core::ports::{PartInfo, SearchHit};
use cabinet_core::uploads::{UploadState, UploadTicket};
use cabinet_core::{
    Cabinet, FileId, FileRecord, FileReference, Folder, FolderId, Quota, Upload, UploadId, WorkspaceId,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiResult;

/// A finished file.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileJson {
    #[schema(value_type = schemas::FileId)]
    pub id: FileId,
    #[schema(value_type = schemas::WorkspaceId)]
    pub workspace_id: WorkspaceId,
    #[schema(example = "Report.pdf")]
    pub name: String,
    /// Sniffed from the bytes.
    #[schema(example = "application/pdf")]
    pub mime_type: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
    #[schema(value_type = Option<schemas::FolderId>)]
    pub folder_id: Option<FolderId>,
    pub is_favorite: bool,
    pub tags: Vec<String>,
    pub alt_text: Option<String>,
    pub caption: Option<String>,
    pub copyright: Option<String>,
    /// The client's own JSON object.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The end user who uploaded it, when creator tracking is on.
    pub created_by: Option<String>,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub updated_at: DateTime<Utc>,
    /// Set while the file is in the trash.
    #[serde(serialize_with = "crate::timestamps::serialize_option")]
    pub trashed_at: Option<DateTime<Utc>>,
    /// For a file anyone may read (its read rule is `public`) and not in the trash: its URL at
    /// this content version, which needs no key and may be cached by anyone for a year; null
    /// otherwise. It answers 404 once the file is trashed or its rule closes.
    pub public_url: Option<String>,
    /// For JPEG, PNG, WebP and GIF files not in the trash: a signed, expiring URL of a thumbnail
    /// (longest edge 256 px) that needs no key, for `<img src>`; null otherwise. Other sizes:
    /// `GET /v1/files/{id}/thumbnail?size=`.
    pub thumbnail_url: Option<String>,
    /// What uses the file (file details only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub references: Option<Vec<ReferenceJson>>,
}

impl FileJson {
    /// Renders one file, reading whether anyone may read it.
    pub async fn of(file: FileRecord, cabinet: &Cabinet) -> ApiResult<Self> {
        let links = cabinet.links_for_one(&file).await?;
        Ok(Self::new(file, &links))
    }

    /// Renders a file with its links.
    pub fn new(file: FileRecord, links: &FileLinks) -> Self {
        Self {
            public_url: links.public_url(&file),
            thumbnail_url: links.thumbnail_url(&file),
            id: file.id,
            workspace_id: file.workspace_id,
            name: file.name,
            mime_type: file.mime_type,
            size: file.size,
            sha256: file.sha256,
            folder_id: file.folder_id,
            is_favorite: file.is_favorite,
            tags: file.tags,
            alt_text: file.alt_text,
            caption: file.caption,
            copyright: file.copyright,
            metadata: file.metadata,
            created_by: file.created_by,
            created_at: file.created_at,
            updated_at: file.updated_at,
            trashed_at: file.trashed_at,
            references: None,
        }
    }
}

/// "This file is used by (kind, id)".
#[derive(Debug, Serialize, ToSchema)]
pub struct ReferenceJson {
    #[schema(example = "conversation")]
    pub kind: String,
    #[schema(example = "conv_42")]
    pub id: String,
    pub label: Option<String>,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub created_at: DateTime<Utc>,
}

impl From<FileReference> for ReferenceJson {
    fn from(reference: FileReference) -> Self {
        Self {
            kind: reference.kind,
            id: reference.id,
            label: reference.label,
            created_at: reference.created_at,
        }
    }
}

/// A folder.
#[derive(Debug, Serialize, ToSchema)]
pub struct FolderJson {
    #[schema(value_type = schemas::FolderId)]
    pub id: FolderId,
    #[schema(value_type = schemas::WorkspaceId)]
    pub workspace_id: WorkspaceId,
    #[schema(example = "Reports")]
    pub name: String,
    /// Null at the root.
    #[schema(value_type = Option<schemas::FolderId>)]
    pub parent_id: Option<FolderId>,
    pub is_favorite: bool,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub updated_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timestamps::serialize_option")]
    pub trashed_at: Option<DateTime<Utc>>,
    /// From the root down to this folder (folder details only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Vec<BreadcrumbJson>>,
}

impl From<Folder> for FolderJson {
    fn from(folder: Folder) -> Self {
        Self {
            id: folder.id,
            workspace_id: folder.workspace_id,
            name: folder.name,
            parent_id: folder.parent_id,
            is_favorite: folder.is_favorite,
            created_at: folder.created_at,
            updated_at: folder.updated_at,
            trashed_at: folder.trashed_at,
            path: None,
        }
    }
}

/// One step of a folder's path.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreadcrumbJson {
    #[schema(value_type = schemas::FolderId)]
    pub id: FolderId,
    pub name: String,
}

/// A page of folders.
#[derive(Debug, Serialize, ToSchema)]
pub struct FolderListJson {
    pub data: Vec<FolderJson>,
    pub total: u64,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

/// What a folder holds directly: a page of folders and a page of files.
#[derive(Debug, Serialize, ToSchema)]
pub struct FolderContentsJson {
    /// Null at the root.
    pub folder: Option<FolderJson>,
    pub folders: FolderListJson,
    pub files: FileListJson,
}

/// A folder or a file, as search and the trash list them.
// Items of one page, built and rendered at once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ItemJson {
    Folder(FolderJson),
    File(FileJson),
}

impl ItemJson {
    /// Renders a search hit.
    pub fn new(hit: SearchHit, links: &FileLinks) -> Self {
        match hit {
            SearchHit::Folder(folder) => ItemJson::Folder(folder.into()),
            SearchHit::File(file) => ItemJson::File(FileJson::new(file, links)),
        }
    }
}

/// A page of search results: folders and files together.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResultsJson {
    pub data: Vec<ItemJson>,
    pub total: u64,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

/// Where a restore put things.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestoreJson {
    /// The original parent no longer exists, so it went to the root.
    pub restored_to_root: bool,
    /// Trashed ancestors that were brought back to give it a place.
    #[schema(value_type = Vec<schemas::FolderId>)]
    pub recreated_folders: Vec<FolderId>,
    /// Its name was taken meanwhile, so it was renamed.
    pub renamed_to: Option<String>,
}

impl From<RestoreNote> for RestoreJson {
    fn from(note: RestoreNote) -> Self {
        Self {
            restored_to_root: note.restored_to_root,
            recreated_folders: note.recreated_folders,
            renamed_to: note.renamed_to,
        }
    }
}

/// A restored file.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestoredFileJson {
    pub file: FileJson,
    pub restore: RestoreJson,
}

/// A restored folder.
#[derive(Debug, Serialize, ToSchema)]
pub struct RestoredFolderJson {
    pub folder: FolderJson,
    pub restore: RestoreJson,
}

/// A favorite mark after a toggle.
#[derive(Debug, Serialize, ToSchema)]
pub struct FavoriteJson {
    pub id: String,
    pub is_favorite: bool,
}

/// Where an upload is.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = "SUCCESS")]
#[serde(rename_all = "UPPERCASE")]
pub enum UploadStatusJson {
    Waiting,
    Uploading,
    Success,
    Failed,
}

/// An upload session.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadJson {
    #[schema(value_type = schemas::UploadId)]
    pub id: UploadId,
    #[schema(value_type = schemas::WorkspaceId)]
    pub workspace_id: WorkspaceId,
    pub status: UploadStatusJson,
    /// Why it failed: `expired`, `size_mismatch`, `checksum_mismatch`, `quota_exceeded`,
    /// `rejected_type`, `cancelled`, `incomplete`, `interrupted`, `storage_error`.
    pub reason: Option<String>,
    pub name: String,
    pub size: u64,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    #[schema(value_type = Option<schemas::FolderId>)]
    pub folder_id: Option<FolderId>,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub updated_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub expires_at: DateTime<Utc>,
    /// The file, once the upload succeeded (absent if it was deleted since).
    pub file: Option<FileJson>,
}

impl UploadJson {
    /// Renders an upload and its file.
    pub async fn new(state: UploadState, cabinet: &Cabinet) -> ApiResult<Self> {
        let file = match state.file {
            Some(file) => Some(FileJson::of(file, cabinet).await?),
            None => None,
        };
        Ok(Self::of(state.upload, file))
    }

    fn of(upload: Upload, file: Option<FileJson>) -> Self {
        Self {
            id: upload.id,
            workspace_id: upload.workspace_id,
            status: match upload.status {
                cabinet_core::UploadStatus::Waiting => UploadStatusJson::Waiting,
                cabinet_core::UploadStatus::Uploading => UploadStatusJson::Uploading,
                cabinet_core::UploadStatus::Success => UploadStatusJson::Success,
                cabinet_core::UploadStatus::Failed => UploadStatusJson::Failed,
            },
            reason: upload.failure_reason.map(|reason| reason.as_str().to_owned()),
            name: upload.name,
            size: upload.size,
            mime_type: upload.declared_mime,
            sha256: upload.sha256,
            folder_id: upload.folder_id,
            created_at: upload.created_at,
            updated_at: upload.updated_at,
            expires_at: upload.expires_at,
            file,
        }
    }
}

/// A started upload and where to send its bytes.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadTicketJson {
    #[schema(value_type = schemas::UploadId)]
    pub id: UploadId,
    pub status: UploadStatusJson,
    /// Send the bytes here: a raw `PUT` body, or a multipart `POST` with a `file` field. Null for
    /// a multipart upload: ask `POST /v1/uploads/{id}/parts` for each part's URL.
    pub upload_url: Option<String>,
    /// Null for a multipart upload.
    #[schema(example = "PUT")]
    pub method: Option<String>,
    /// Headers to send with the bytes, exactly as given; null for a multipart upload. On S3 an
    /// upload that declared its sha256 also carries `If-None-Match: *`: its URL writes once.
    pub headers: Option<BTreeMap<String, String>>,
    /// The same upload as a browser form, when the storage offers one (S3, for uploads without a
    /// declared sha256): `POST` it as `multipart/form-data` with these fields first, then the
    /// bytes in a field named `file`.
    pub form: Option<UploadFormJson>,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub expires_at: DateTime<Utc>,
    /// How a multipart upload is cut into parts; null for an ordinary upload.
    pub multipart: Option<PartPlanJson>,
    pub upload: UploadJson,
}

/// How a multipart upload's bytes are cut: every part is `part_size` bytes but the last, which
/// holds the rest.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartPlanJson {
    #[schema(example = 67108864)]
    pub part_size: u64,
    #[schema(example = 80)]
    pub part_count: u32,
}

impl From<PartPlan> for PartPlanJson {
    fn from(plan: PartPlan) -> Self {
        Self { part_size: plan.part_size, part_count: plan.part_count }
    }
}

/// Where to send one part.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartUrlJson {
    pub part_number: u32,
    /// The exact number of bytes this part must have.
    pub size: u64,
    pub url: String,
    #[schema(example = "PUT")]
    pub method: String,
    /// Headers to send with the part, as given.
    pub headers: BTreeMap<String, String>,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub expires_at: DateTime<Utc>,
}

impl From<PartUrl> for PartUrlJson {
    fn from(url: PartUrl) -> Self {
        Self {
            part_number: url.part_number,
            size: url.size,
            url: url.url,
            method: url.method.to_owned(),
            headers: url
                .headers
                .into_iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value))
                .collect(),
            expires_at: url.expires_at,
        }
    }
}

/// Part URLs.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartUrlsJson {
    pub parts: Vec<PartUrlJson>,
}

/// One received part.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartJson {
    pub part_number: u32,
    pub size: u64,
    /// The storage's tag for the part's bytes; changes when the part is sent again.
    pub etag: String,
}

impl From<PartInfo> for PartJson {
    fn from(part: PartInfo) -> Self {
        Self { part_number: part.part_number, size: part.size, etag: part.etag }
    }
}

/// The parts of a multipart upload received so far, ascending.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartListJson {
    pub part_size: u64,
    pub part_count: u32,
    pub parts: Vec<PartJson>,
}

/// A presigned form upload; its policy admits exactly the declared size.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadFormJson {
    pub url: String,
    /// Form fields to send, in this order, before the `file` field.
    pub fields: Vec<FormFieldJson>,
}

/// One form field.
#[derive(Debug, Serialize, ToSchema)]
pub struct FormFieldJson {
    pub name: String,
    pub value: String,
}

impl From<UploadTicket> for UploadTicketJson {
    fn from(ticket: UploadTicket) -> Self {
        let single = ticket.multipart.is_none();
        let upload = UploadJson::of(ticket.upload, None);
        Self {
            id: upload.id.clone(),
            status: UploadStatusJson::Waiting,
            upload_url: single.then_some(ticket.url),
            method: single.then(|| ticket.method.to_owned()),
            headers: single.then(|| ticket.headers.into_iter().collect()),
            multipart: ticket.multipart.map(PartPlanJson::from),
            form: ticket.form.map(|form| UploadFormJson {
                url: form.url,
                fields: form.fields.into_iter().map(|(name, value)| FormFieldJson { name, value }).collect(),
            }),
            expires_at: upload.expires_at,
            upload,
        }
    }
}

/// A page of files.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileListJson {
    pub data: Vec<FileJson>,
    /// How many files match, over all pages.
    pub total: u64,
    pub has_more: bool,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A signed download URL.
#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadUrlJson {
    pub url: String,
    /// When it stops working; null for a permalink.
    #[serde(serialize_with = "crate::timestamps::serialize_option")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<DownloadUrl> for DownloadUrlJson {
    fn from(url: DownloadUrl) -> Self {
        Self { url: url.url, expires_at: Some(url.expires_at) }
    }
}

/// The workspace's storage quota. Limits are null when unlimited.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaJson {
    pub used_bytes: u64,
    /// Held by uploads in progress.
    pub reserved_bytes: u64,
    pub limit_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
    pub max_file_size_bytes: u64,
    /// 0–100, two decimals.
    pub percent_used: Option<f64>,
}

impl From<Quota> for QuotaJson {
    fn from(quota: Quota) -> Self {
        Self {
            used_bytes: quota.used_bytes,
            reserved_bytes: quota.reserved_bytes,
            limit_bytes: quota.limit_bytes,
            available_bytes: quota.available_bytes(),
            max_file_size_bytes: quota.max_file_size_bytes,
            percent_used: quota.percent_used(),
        }
    }
}

/// The workspace's totals, and its storage over a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageJson {
    /// Bytes in files (trashed ones included, until purged).
    pub total_size: u64,
    pub file_count: u64,
    /// The metering window.
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub from: DateTime<Utc>,
    #[serde(serialize_with = "crate::timestamps::serialize")]
    pub to: DateTime<Utc>,
    /// Bytes stored × seconds, over the window.
    pub byte_seconds: u64,
    /// The same in GB-days (10^9 bytes for a day).
    pub gb_days: f64,
}
