//! The domain's records: workspaces, keys, uploads, files. Plain data; the rules that change them
//! live in the services.

use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::ids::{ApiKeyId, FileId, FolderId, UploadId, WorkspaceId};
use crate::Code;

/// What an API key may do. Ordered: each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read files and metadata.
    Read,
    /// Also upload, change and delete files.
    Write,
    /// Also manage keys and workspace settings.
    Admin,
}

impl Role {
    /// The role's name as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = Error;

    fn from_str(raw: &str) -> Result<Self, Error> {
        match raw {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            _ => Err(Error::bad_request(Code::InvalidRole, "role must be one of read, write, admin")),
        }
    }
}

/// A tenant and its quota ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    /// Total bytes the workspace may hold; `None` is unlimited.
    pub limit_bytes: Option<u64>,
    /// Largest single file; `None` is the server's limit.
    pub max_file_bytes: Option<u64>,
    /// Sum of the sizes of the workspace's files.
    pub used_bytes: u64,
    /// Sum of the declared sizes of its live uploads.
    pub reserved_bytes: u64,
    pub created_at: DateTime<Utc>,
}

/// An API key as stored: never its secret, only the secret's hash and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub name: Option<String>,
    pub role: Role,
    /// The workspaces this key may act on; never empty.
    pub workspaces: Vec<WorkspaceId>,
    /// The last characters of the secret, to tell keys apart in listings.
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Where an upload session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UploadStatus {
    /// Created; no bytes have arrived.
    Waiting,
    /// Bytes are arriving.
    Uploading,
    /// Verified; the file exists.
    Success,
    /// Ended without a file; see the reason.
    Failed,
}

impl UploadStatus {
    /// The status as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadStatus::Waiting => "WAITING",
            UploadStatus::Uploading => "UPLOADING",
            UploadStatus::Success => "SUCCESS",
            UploadStatus::Failed => "FAILED",
        }
    }

    /// Parses a stored status.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "WAITING" => UploadStatus::Waiting,
            "UPLOADING" => UploadStatus::Uploading,
            "SUCCESS" => UploadStatus::Success,
            "FAILED" => UploadStatus::Failed,
            _ => return None,
        })
    }

    /// Whether the upload still holds a reservation.
    pub fn is_live(self) -> bool {
        matches!(self, UploadStatus::Waiting | UploadStatus::Uploading)
    }
}

/// Why an upload failed; machine-readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// Its URL expired before the bytes arrived.
    Expired,
    /// More or fewer bytes than declared arrived.
    SizeMismatch,
    /// The bytes did not hash to the declared sha256.
    ChecksumMismatch,
    /// The quota could not take it.
    QuotaExceeded,
    /// Its content type is not accepted.
    RejectedType,
    /// The client cancelled it.
    Cancelled,
    /// The client stopped sending before the end.
    Incomplete,
    /// The server stopped while the bytes were arriving.
    Interrupted,
    /// The storage could not take the bytes.
    StorageError,
}

impl FailureReason {
    /// The reason as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Expired => "expired",
            FailureReason::SizeMismatch => "size_mismatch",
            FailureReason::ChecksumMismatch => "checksum_mismatch",
            FailureReason::QuotaExceeded => "quota_exceeded",
            FailureReason::RejectedType => "rejected_type",
            FailureReason::Cancelled => "cancelled",
            FailureReason::Incomplete => "incomplete",
            FailureReason::Interrupted => "interrupted",
            FailureReason::StorageError => "storage_error",
        }
    }

    /// Parses a stored reason.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "expired" => FailureReason::Expired,
            "size_mismatch" => FailureReason::SizeMismatch,
            "checksum_mismatch" => FailureReason::ChecksumMismatch,
            "quota_exceeded" => FailureReason::QuotaExceeded,
            "rejected_type" => FailureReason::RejectedType,
            "cancelled" => FailureReason::Cancelled,
            "incomplete" => FailureReason::Incomplete,
            "interrupted" => FailureReason::Interrupted,
            "storage_error" => FailureReason::StorageError,
            _ => return None,
        })
    }
}

/// An upload session: a reservation that becomes a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub workspace_id: WorkspaceId,
    pub id: UploadId,
    pub name: String,
    /// Declared size in bytes; reserved against the quota while live. When not `size_known`: 0
    /// until bytes arrive, then what is reserved for them, then the file's size once SUCCESS.
    pub size: u64,
    /// False when the client did not declare a size (the MAVI dialect's signed URLs, direct
    /// uploads): any size up to the workspace's limits is accepted; while the bytes stream, what
    /// they may use is reserved, and the file's size is charged when the file is created.
    pub size_known: bool,
    pub declared_mime: Option<String>,
    /// Declared sha256, lowercase hex.
    pub sha256: Option<String>,
    pub folder_id: Option<FolderId>,
    pub status: UploadStatus,
    pub failure_reason: Option<FailureReason>,
    /// The id the file will have; fixed at creation so the blob's key is known up front.
    pub file_id: FileId,
    /// Where the finished bytes will live in the blob store.
    pub blob_key: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The end user who started it, when creator tracking is on.
    pub created_by: Option<String>,
    /// For a multipart upload: the size of every part but the last (see `multipart::PartPlan`).
    pub part_size: Option<u64>,
    /// The blob store's own id for the parts of a multipart upload (S3's `UploadId`), if it keeps one.
    pub multipart_id: Option<String>,
    /// Verified bytes wait, WAITING, at the arrival key until a client records the upload
    /// (`complete`; Mavera's `POST /files`): until then no file exists and nothing is charged
    /// but the reservation.
    pub awaits_record: bool,
}

impl Upload {
    /// The upload as finishing it into `file` leaves it (`MetadataStore::finish_upload` records
    /// exactly this): SUCCESS, of the file's size, updated when the file was created (to the
    /// millisecond the stores keep). Spares reading back what was just written.
    pub fn finished_as(&self, file: &FileRecord) -> Upload {
        Upload {
            status: UploadStatus::Success,
            failure_reason: None,
            size: file.size,
            updated_at: crate::clock::truncate_to_millis(file.created_at),
            ..self.clone()
        }
    }
}

/// A finished, verified file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub workspace_id: WorkspaceId,
    pub id: FileId,
    pub name: String,
    /// Sniffed from the bytes.
    pub mime_type: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
    pub folder_id: Option<FolderId>,
    pub blob_key: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub is_favorite: bool,
    pub alt_text: Option<String>,
    pub caption: Option<String>,
    pub copyright: Option<String>,
    /// A JSON object of the client's own.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Trimmed, in the spelling given, sorted and unique case-insensitively (`metadata::tag_key`).
    pub tags: Vec<String>,
    /// When it went to the trash; `None` while it is live.
    pub trashed_at: Option<DateTime<Utc>>,
    /// The end user who uploaded it, when creator tracking is on.
    pub created_by: Option<String>,
    /// An id of the client's choosing (the CMS dialect's `api_id`), unique among the workspace's
    /// live files; `None` when the client chose none.
    pub external_id: Option<String>,
}

impl FileRecord {
    /// A new, live file with no metadata yet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        workspace_id: WorkspaceId,
        id: FileId,
        name: String,
        mime_type: String,
        size: u64,
        sha256: String,
        folder_id: Option<FolderId>,
        blob_key: String,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            workspace_id,
            id,
            name,
            mime_type,
            size,
            sha256,
            folder_id,
            blob_key,
            created_at: at,
            updated_at: at,
            is_favorite: false,
            alt_text: None,
            caption: None,
            copyright: None,
            metadata: serde_json::Map::new(),
            tags: Vec::new(),
            trashed_at: None,
            created_by: None,
            external_id: None,
        }
    }
}

/// A folder in a workspace's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    pub workspace_id: WorkspaceId,
    pub id: FolderId,
    /// `None` at the root.
    pub parent_id: Option<FolderId>,
    pub name: String,
    pub is_favorite: bool,
    /// Marked shared with every member of the workspace (a label: every key of a workspace
    /// already sees all of it).
    pub is_shared: bool,
    pub trashed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// "This file is used by (kind, id)".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReference {
    /// What uses it, e.g. `conversation`, `page`, `edition`.
    pub kind: String,
    pub id: String,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A workspace's quota, as shown to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub used_bytes: u64,
    pub reserved_bytes: u64,
    pub limit_bytes: Option<u64>,
    pub max_file_size_bytes: u64,
}

impl Quota {
    /// What the workspace holds: its files, and what uploads in flight have reserved.
    pub fn held_bytes(&self) -> u64 {
        self.used_bytes.saturating_add(self.reserved_bytes)
    }

    /// Bytes that a new upload may still reserve; `None` when unlimited.
    pub fn available_bytes(&self) -> Option<u64> {
        self.limit_bytes.map(|limit| limit.saturating_sub(self.held_bytes()))
    }

    /// Bytes that a new upload may still reserve, an unlimited workspace counting as limited to
    /// `unlimited_as` (for surfaces whose shape has no "unlimited").
    pub fn available_bytes_or(&self, unlimited_as: u64) -> u64 {
        self.available_bytes().unwrap_or_else(|| unlimited_as.saturating_sub(self.held_bytes()))
    }

    /// Nothing more fits, not even one byte of an upload of unknown size.
    pub fn is_full(&self) -> bool {
        self.available_bytes() == Some(0)
    }

    /// Used share of the limit, 0–100, two decimals; `None` when unlimited.
    pub fn percent_used(&self) -> Option<f64> {
        self.limit_bytes.map(|limit| {
            if limit == 0 {
                return 100.0;
            }
            (self.used_bytes as f64 * 10_000.0 / limit as f64).round() / 100.0
        })
    }
}

/// A workspace's totals: every file it stores, those in the trash included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub total_size: u64,
    pub file_count: u64,
    /// Of those, the files in the trash.
    pub trashed_size: u64,
    pub trashed_count: u64,
}

impl Usage {
    /// Files out of the trash: what the lists show.
    pub fn live_count(&self) -> u64 {
        self.file_count.saturating_sub(self.trashed_count)
    }

    /// The bytes of the files out of the trash.
    pub fn live_size(&self) -> u64 {
        self.total_size.saturating_sub(self.trashed_size)
    }
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque; pass it back to get the next page. `None` on the last page.
    pub next_cursor: Option<String>,
    /// How many items match, over all pages.
    pub total: u64,
}
