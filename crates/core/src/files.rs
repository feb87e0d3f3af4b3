//! Files: direct uploads, listing, details, deletion and reading, all scoped to the caller's
//! workspace. Deleting removes the record and returns its bytes to the quota in one step; the
//! blob goes after, and the orphan sweep removes it should that step not happen.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};

use crate::content_type;
use crate::error::{Error, Result};
use crate::ids::{FileId, FolderId, WorkspaceId};
use crate::model::{FileRecord, Page, Role};
use crate::names::validate_name;
use crate::ports::{ByteRange, ByteStream, FileCursor, FileListQuery, PresignedDownload, StageError};
use crate::signing::{expiry_instant, expiry_timestamp, SignedOperation, SignedParams};
use crate::{Cabinet, Caller, STORAGE_FILE_PREFIX};

/// The most items one page may hold.
pub const MAX_PAGE: u32 = 100;
/// Items per page when the client does not say.
pub const DEFAULT_PAGE: u32 = 50;

/// What a client declares with a direct upload.
#[derive(Debug, Clone, Default)]
pub struct DirectUpload {
    pub name: String,
    pub mime_type: Option<String>,
    pub folder_id: Option<FolderId>,
}

/// A signed, expiring download URL.
#[derive(Debug, Clone)]
pub struct DownloadUrl {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

impl Cabinet {
    /// Stores a file whose bytes come with the request. The size is known only at the end, so the
    /// quota is charged when the file is created, in the same transaction.
    pub async fn upload_direct(
        &self,
        caller: &Caller,
        meta: DirectUpload,
        body: ByteStream<'_>,
    ) -> Result<FileRecord> {
        caller.require(Role::Write)?;
        let ws = &caller.workspace_id;
        let name = validate_name(&meta.name)?;
        let declared_mime = meta.mime_type.as_deref().map(content_type::parse_declared).transpose()?;
        if let Some(folder) = &meta.folder_id {
            self.check_folder(ws, folder).await?;
        }
        let workspace = self.store.get_workspace(ws).await?;
        let file_cap =
            self.max_file_bytes(workspace.max_file_bytes).min(self.settings.direct_upload_max_bytes);
        let quota_cap = workspace
            .limit_bytes
            .map(|limit| limit.saturating_sub(workspace.used_bytes + workspace.reserved_bytes));
        let limit = quota_cap.map_or(file_cap, |cap| cap.min(file_cap));
        let staged = match self.blobs.stage(body, limit).await {
            Ok(staged) => staged,
            Err(StageError::TooLarge { .. }) if quota_cap.is_some_and(|cap| cap < file_cap) => {
                return Err(Error::QuotaExceeded { requested: limit + 1, available: limit });
            }
            Err(StageError::TooLarge { .. }) => {
                return Err(Error::TooLarge {
                    code: "file_too_large",
                    message: format!(
                        "the most a direct upload may hold is {file_cap} bytes; use POST /v1/uploads"
                    ),
                })
            }
            Err(StageError::Body(cause)) => {
                return Err(Error::bad_request(
                    "incomplete_body",
                    format!("the request body ended early: {cause}"),
                ))
            }
            Err(StageError::Storage(cause)) => return Err(Error::internal(cause)),
        };
        let now = self.clock.now();
        let id = FileId::generate();
        let file = FileRecord {
            workspace_id: ws.clone(),
            blob_key: format!("{ws}/{id}"),
            id,
            mime_type: content_type::sniff(&staged.head, declared_mime.as_deref(), &name),
            name,
            size: staged.size,
            sha256: staged.sha256.clone(),
            folder_id: meta.folder_id,
            created_at: now,
            updated_at: now,
        };
        if let Err(err) = self.blobs.commit(&staged, &file.blob_key).await {
            self.blobs.discard(&staged.temp_key).await;
            return Err(err);
        }
        if let Err(err) = self.store.insert_file_charging(&file).await {
            self.delete_blob_quietly(&file.blob_key).await;
            return Err(err);
        }
        tracing::info!(workspace = %ws, file = %file.id, size = file.size, "direct upload stored");
        Ok(file)
    }

    /// One file of the caller's workspace.
    pub async fn get_file(&self, caller: &Caller, id: &FileId) -> Result<FileRecord> {
        caller.require(Role::Read)?;
        self.store.get_file(&caller.workspace_id, id).await
    }

    /// A page of files, newest first.
    pub async fn list_files(
        &self,
        caller: &Caller,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<FileRecord>> {
        caller.require(Role::Read)?;
        let limit = page_limit(limit)?;
        let after = cursor.map(decode_cursor).transpose()?;
        let mut items =
            self.store.list_files(&caller.workspace_id, &FileListQuery { limit: limit + 1, after }).await?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(encode_cursor)
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Deletes a file and gives its bytes back to the quota.
    pub async fn delete_file(&self, caller: &Caller, id: &FileId) -> Result<FileRecord> {
        caller.require(Role::Write)?;
        let file = self.store.delete_file(&caller.workspace_id, id).await?;
        self.delete_blob_quietly(&file.blob_key).await;
        tracing::info!(workspace = %file.workspace_id, file = %file.id, "file deleted");
        Ok(file)
    }

    /// A signed GET URL for a file: presigned by the blob store when it serves files itself (S3),
    /// else Cabinet's own storage endpoint.
    pub async fn download_url(
        &self,
        caller: &Caller,
        id: &FileId,
        expires_in: Option<u64>,
        attachment: bool,
    ) -> Result<DownloadUrl> {
        caller.require(Role::Read)?;
        let ws = &caller.workspace_id;
        let file = self.store.get_file(ws, id).await?;
        let ttl = self.url_ttl(expires_in, self.settings.download_url_ttl)?;
        let now = self.clock.now();
        let expires = expiry_timestamp(now + ttl);
        // Types a browser would run are always attachments, wherever they are served from.
        let attachment = attachment || content_type::is_active_content(&file.mime_type);
        let direct = PresignedDownload {
            content_type: file.mime_type.clone(),
            disposition: content_type::disposition(&file.name, attachment),
            signed_at: now,
            expires_at: expiry_instant(expires),
        };
        if let Some(url) = self.blobs.presign_download(&file.blob_key, &direct) {
            return Ok(DownloadUrl { url, expires_at: direct.expires_at });
        }
        let params = SignedParams { expires, max_bytes: 0, attachment };
        let query = self.signer.sign(SignedOperation::Download, ws.as_str(), file.id.as_str(), &params);
        let url = format!("{}{STORAGE_FILE_PREFIX}/{ws}/{}?{query}", self.settings.public_url, file.id);
        Ok(DownloadUrl { url, expires_at: expiry_instant(expires) })
    }

    /// Checks a signed download URL and returns the file and whether to serve it as attachment.
    pub async fn verify_download_url(
        &self,
        ws: &str,
        file: &str,
        query: Option<&str>,
    ) -> Result<(FileRecord, bool)> {
        let params = self.signer.verify(SignedOperation::Download, ws, file, query, self.clock.now())?;
        let ws = WorkspaceId::parse(ws)?;
        let file = self.store.get_file(&ws, &FileId::parse(file)?).await?;
        Ok((file, params.attachment))
    }

    /// Streams a file's bytes, or a range of them. The caller has already been authorised for it.
    pub async fn read_file(
        &self,
        file: &FileRecord,
        range: Option<ByteRange>,
    ) -> Result<ByteStream<'static>> {
        self.blobs.open(&file.blob_key, range).await
    }
}

/// Validates a page size.
pub fn page_limit(limit: Option<u32>) -> Result<u32> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n @ 1..=MAX_PAGE) => Ok(n),
        Some(_) => {
            Err(Error::bad_request("invalid_limit", format!("limit must be between 1 and {MAX_PAGE}")))
        }
    }
}

fn encode_cursor(file: &FileRecord) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", file.created_at.timestamp_millis(), file.id))
}

fn decode_cursor(raw: &str) -> Result<FileCursor> {
    let invalid = || Error::bad_request("invalid_cursor", "the cursor is not one this API returned");
    let text = URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid)?;
    let (millis, id) = text.split_once('.').ok_or_else(invalid)?;
    let millis: i64 = millis.parse().map_err(|_| invalid())?;
    let created_at = Utc.timestamp_millis_opt(millis).single().ok_or_else(invalid)?;
    let id = FileId::parse(id).map_err(|_| invalid())?;
    Ok(FileCursor { created_at, id })
}
