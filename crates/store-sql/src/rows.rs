//! Rows as both dialects return them, and their conversion to domain records. Times are epoch
//! milliseconds and sizes signed 64-bit in both databases.

use cabinet_core::{
    ApiKey, Code, Error, FailureReason, FileRecord, FileReference, Folder, Result, Role, Upload,
    UploadStatus, Workspace,
};
use chrono::{DateTime, TimeZone, Utc};

pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single().ok_or_else(|| corrupt("timestamp"))
}

pub(crate) fn bytes(n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::bad_request(Code::InvalidSize, "sizes must be below 2^63"))
}

fn unsigned(n: i64) -> Result<u64> {
    u64::try_from(n).map_err(|_| corrupt("size"))
}

fn corrupt(what: &str) -> Error {
    Error::internal(format!("stored {what} is not valid"))
}

/// A row that SQLite's inline point reads decode with rusqlite, as sqlx decodes it elsewhere.
pub trait InlineRow: Sized {
    /// The row as rusqlite reads it, its columns in the order of the query's `SELECT`.
    fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

#[derive(sqlx_macros::FromRow)]
pub(crate) struct WorkspaceRow {
    id: String,
    name: String,
    limit_bytes: Option<i64>,
    max_file_bytes: Option<i64>,
    used_bytes: i64,
    reserved_bytes: i64,
    created_at: i64,
}

impl InlineRow for WorkspaceRow {
    /// A row of `SELECT {WORKSPACE_COLUMNS}` as rusqlite reads it.
    fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            name: row.get(1)?,
            limit_bytes: row.get(2)?,
            max_file_bytes: row.get(3)?,
            used_bytes: row.get(4)?,
            reserved_bytes: row.get(5)?,
            created_at: row.get(6)?,
        })
    }
}

impl TryFrom<WorkspaceRow> for Workspace {
    type Error = Error;

    fn try_from(row: WorkspaceRow) -> Result<Self> {
        Ok(Workspace {
            id: row.id.parse()?,
            name: row.name,
            limit_bytes: row.limit_bytes.map(unsigned).transpose()?,
            max_file_bytes: row.max_file_bytes.map(unsigned).transpose()?,
            used_bytes: unsigned(row.used_bytes)?,
            reserved_bytes: unsigned(row.reserved_bytes)?,
            created_at: from_millis(row.created_at)?,
        })
    }
}

#[derive(sqlx_macros::FromRow)]
pub(crate) struct ApiKeyRow {
    pub id: String,
    name: Option<String>,
    role: String,
    hint: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl ApiKeyRow {
    pub(crate) fn into_key(self, workspaces: Vec<String>) -> Result<ApiKey> {
        Ok(ApiKey {
            id: self.id.parse()?,
            name: self.name,
            role: self.role.parse::<Role>().map_err(|_| corrupt("role"))?,
            workspaces: workspaces.iter().map(|ws| ws.parse()).collect::<Result<_>>()?,
            hint: self.hint,
            created_at: from_millis(self.created_at)?,
            revoked_at: self.revoked_at.map(from_millis).transpose()?,
        })
    }
}

/// A key joined with one of its workspaces (none when it has none), so a key is found with one
/// query: the lookup behind every authenticated request.
#[derive(sqlx_macros::FromRow)]
pub(crate) struct ApiKeyWorkspaceRow {
    #[sqlx(flatten)]
    pub key: ApiKeyRow,
    pub workspace_id: Option<String>,
}

impl InlineRow for ApiKeyWorkspaceRow {
    /// A row of `SELECT k.id, k.name, k.role, k.hint, k.created_at, k.revoked_at, w.workspace_id`
    /// as rusqlite reads it.
    fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            key: ApiKeyRow {
                id: row.get(0)?,
                name: row.get(1)?,
                role: row.get(2)?,
                hint: row.get(3)?,
                created_at: row.get(4)?,
                revoked_at: row.get(5)?,
            },
            workspace_id: row.get(6)?,
        })
    }
}

#[derive(sqlx_macros::FromRow)]
pub(crate) struct UploadRow {
    workspace_id: String,
    id: String,
    name: String,
    size: i64,
    declared_mime: Option<String>,
    sha256: Option<String>,
    folder_id: Option<String>,
    status: String,
    failure_reason: Option<String>,
    file_id: String,
    blob_key: String,
    created_at: i64,
    updated_at: i64,
    expires_at: i64,
    created_by: Option<String>,
    size_known: bool,
    part_size: Option<i64>,
    multipart_id: Option<String>,
    awaits_record: bool,
}

impl TryFrom<UploadRow> for Upload {
    type Error = Error;

    fn try_from(row: UploadRow) -> Result<Self> {
        Ok(Upload {
            workspace_id: row.workspace_id.parse()?,
            id: row.id.parse()?,
            name: row.name,
            size: unsigned(row.size)?,
            size_known: row.size_known,
            declared_mime: row.declared_mime,
            sha256: row.sha256,
            folder_id: row.folder_id.map(|id| id.parse()).transpose()?,
            status: UploadStatus::parse(&row.status).ok_or_else(|| corrupt("status"))?,
            failure_reason: row
                .failure_reason
                .map(|reason| FailureReason::parse(&reason).ok_or_else(|| corrupt("failure reason")))
                .transpose()?,
            file_id: row.file_id.parse()?,
            blob_key: row.blob_key,
            created_at: from_millis(row.created_at)?,
            updated_at: from_millis(row.updated_at)?,
            expires_at: from_millis(row.expires_at)?,
            created_by: row.created_by,
            part_size: row.part_size.map(unsigned).transpose()?,
            multipart_id: row.multipart_id,
            awaits_record: row.awaits_record,
        })
    }
}

#[derive(sqlx_macros::FromRow)]
pub(crate) struct FileRow {
    workspace_id: String,
    id: String,
    name: String,
    mime_type: String,
    size: i64,
    sha256: String,
    folder_id: Option<String>,
    blob_key: String,
    created_at: i64,
    updated_at: i64,
    is_favorite: bool,
    alt_text: Option<String>,
    caption: Option<String>,
    copyright: Option<String>,
    metadata: String,
    tags: String,
    trashed_at: Option<i64>,
    created_by: Option<String>,
    external_id: Option<String>,
}

impl InlineRow for FileRow {
    /// A row of `SELECT {FILE_COLUMNS}` as rusqlite reads it (SQLite's inline point reads).
    fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            workspace_id: row.get(0)?,
            id: row.get(1)?,
            name: row.get(2)?,
            mime_type: row.get(3)?,
            size: row.get(4)?,
            sha256: row.get(5)?,
            folder_id: row.get(6)?,
            blob_key: row.get(7)?,
            created_at: row.get(8)?,
            updated_at: row.get(9)?,
            is_favorite: row.get(10)?,
            alt_text: row.get(11)?,
            caption: row.get(12)?,
            copyright: row.get(13)?,
            metadata: row.get(14)?,
            tags: row.get(15)?,
            trashed_at: row.get(16)?,
            created_by: row.get(17)?,
            external_id: row.get(18)?,
        })
    }
}

impl TryFrom<FileRow> for FileRecord {
    type Error = Error;

    fn try_from(row: FileRow) -> Result<Self> {
        Ok(FileRecord {
            workspace_id: row.workspace_id.parse()?,
            id: row.id.parse()?,
            name: row.name,
            mime_type: row.mime_type,
            size: unsigned(row.size)?,
            sha256: row.sha256,
            folder_id: row.folder_id.map(|id| id.parse()).transpose()?,
            blob_key: row.blob_key,
            created_at: from_millis(row.created_at)?,
            updated_at: from_millis(row.updated_at)?,
            is_favorite: row.is_favorite,
            alt_text: row.alt_text,
            caption: row.caption,
            copyright: row.copyright,
            metadata: serde_json::from_str(&row.metadata).map_err(|_| corrupt("metadata"))?,
            tags: serde_json::from_str(&row.tags).map_err(|_| corrupt("tags"))?,
            trashed_at: row.trashed_at.map(from_millis).transpose()?,
            created_by: row.created_by,
            external_id: row.external_id,
        })
    }
}

/// A file row with one of its references (none when it has none), so a file's details are read
/// with one query.
#[derive(sqlx_macros::FromRow)]
pub(crate) struct FileReferenceRow {
    #[sqlx(flatten)]
    pub file: FileRow,
    pub kind: Option<String>,
    pub ref_id: Option<String>,
    pub label: Option<String>,
    pub ref_created_at: Option<i64>,
}

impl InlineRow for FileReferenceRow {
    /// A row of `SELECT {FILE_COLUMNS}, r.kind, r.ref_id, r.label, r.created_at` as rusqlite reads it.
    fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            file: FileRow::from_rusqlite(row)?,
            kind: row.get(19)?,
            ref_id: row.get(20)?,
            label: row.get(21)?,
            ref_created_at: row.get(22)?,
        })
    }
}

impl FileReferenceRow {
    /// The reference this row carries, if any.
    pub(crate) fn reference(&self) -> Option<Result<FileReference>> {
        let (kind, ref_id, created_at) = (self.kind.clone()?, self.ref_id.clone()?, self.ref_created_at?);
        Some(ReferenceRow { kind, ref_id, label: self.label.clone(), created_at }.try_into())
    }
}

/// A file row with the number of rows its query matched in all.
#[derive(sqlx_macros::FromRow)]
pub(crate) struct CountedFileRow {
    #[sqlx(flatten)]
    pub file: FileRow,
    pub total_matches: i64,
}

#[derive(sqlx_macros::FromRow)]
pub(crate) struct FolderRow {
    workspace_id: String,
    id: String,
    parent_id: Option<String>,
    name: String,
    is_favorite: bool,
    trashed_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    is_shared: bool,
}

impl TryFrom<FolderRow> for Folder {
    type Error = Error;

    fn try_from(row: FolderRow) -> Result<Self> {
        Ok(Folder {
            workspace_id: row.workspace_id.parse()?,
            id: row.id.parse()?,
            parent_id: row.parent_id.map(|id| id.parse()).transpose()?,
            name: row.name,
            is_favorite: row.is_favorite,
            is_shared: row.is_shared,
            trashed_at: row.trashed_at.map(from_millis).transpose()?,
            created_at: from_millis(row.created_at)?,
            updated_at: from_millis(row.updated_at)?,
        })
    }
}

/// A reference and the file it is to.
#[derive(sqlx_macros::FromRow)]
pub(crate) struct FileIdReferenceRow {
    pub file_id: String,
    #[sqlx(flatten)]
    pub reference: ReferenceRow,
}

#[derive(sqlx_macros::FromRow)]
pub(crate) struct ReferenceRow {
    kind: String,
    ref_id: String,
    label: Option<String>,
    created_at: i64,
}

impl InlineRow for (i64,) {
    fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((row.get(0)?,))
    }
}

impl InlineRow for ReferenceRow {
    /// A row of `SELECT kind, ref_id, label, created_at` as rusqlite reads it.
    fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self { kind: row.get(0)?, ref_id: row.get(1)?, label: row.get(2)?, created_at: row.get(3)? })
    }
}

impl TryFrom<ReferenceRow> for FileReference {
    type Error = Error;

    fn try_from(row: ReferenceRow) -> Result<Self> {
        Ok(FileReference {
            kind: row.kind,
            id: row.ref_id,
            label: row.label,
            created_at: from_millis(row.created_at)?,
        })
    }
}

/// The columns of `folders`, in `FolderRow`'s order.
pub(crate) const FOLDER_COLUMNS: &str =
    "workspace_id, id, parent_id, name, is_favorite, trashed_at, created_at, updated_at, is_shared";
/// The columns a new file is inserted with.
pub(crate) const FILE_INSERT_COLUMNS: &str = "workspace_id, id, name, mime_type, size, sha256, folder_id, blob_key, \
     created_at, updated_at, is_favorite, alt_text, caption, copyright, metadata, tags, trashed_at, created_by, name_folded, \
     external_id";
/// The columns of `files`, in `FileRow`'s order.
pub(crate) const FILE_COLUMNS: &str = "workspace_id, id, name, mime_type, size, sha256, folder_id, blob_key, \
     created_at, updated_at, is_favorite, alt_text, caption, copyright, metadata, tags, trashed_at, created_by, \
     external_id";
/// The columns of `uploads`, in `UploadRow`'s order.
pub(crate) const UPLOAD_COLUMNS: &str =
    "workspace_id, id, name, size, declared_mime, sha256, folder_id, status, \
     failure_reason, file_id, blob_key, created_at, updated_at, expires_at, created_by, size_known, \
     part_size, multipart_id, awaits_record";
/// The columns of `workspaces`, in `WorkspaceRow`'s order.
pub(crate) const WORKSPACE_COLUMNS: &str =
    "id, name, limit_bytes, max_file_bytes, used_bytes, reserved_bytes, created_at";
