//! Files: direct uploads, listing, details, deletion and reading, all scoped to the caller's
//! workspace. Deleting removes the record and returns its bytes to the quota in one step; the
//! blob goes after, and the orphan sweep removes it should that step not happen.

use chrono::{DateTime, Utc};

use crate::content_type;
use crate::error::{Error, Result};
use crate::folders::RestoreNote;
use crate::ids::{FileId, FolderId, UploadId, WorkspaceId};
use crate::listing::{
    check_name_filter, into_page, name_query, FileFilter, FolderFilter, FolderScope, Paging, Sort,
};
use crate::metadata;
use crate::model::{FailureReason, FileRecord, FileReference, Page, Role, Upload, UploadStatus};
use crate::names::validate_name;
use crate::ports::{ByteRange, ByteStream, FileChange, PresignedDownload, SearchHit};
use crate::rules::Operation;
use crate::signing::{expiry_instant, url_window, SignedOperation, SignedParams};
use crate::{Cabinet, Caller, Code};

/// What a client declares with a direct upload.
#[derive(Debug, Clone, Default)]
pub struct DirectUpload {
    pub name: String,
    pub mime_type: Option<String>,
    pub folder_id: Option<FolderId>,
    /// The most this call may bring, below the workspace's and the server's caps (a surface's own
    /// limit on uploads in the request); over it the upload is refused as too large.
    pub max_bytes: Option<u64>,
}

/// A signed, expiring download URL.
#[derive(Debug, Clone)]
pub struct DownloadUrl {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

impl Cabinet {
    /// Stores a file whose bytes come with the request. The size is known only at the end: what it
    /// may bring is reserved while it streams, and the file's size is charged when it is created.
    pub async fn upload_direct(
        &self,
        caller: &Caller,
        meta: DirectUpload,
        body: ByteStream<'_>,
    ) -> Result<FileRecord> {
        self.upload_direct_as(caller, meta, None, body).await
    }

    /// `upload_direct`, the file taking an id of the client's choosing (`external_id`), unique
    /// among the workspace's live files: `Conflict` (`external_id_taken`) when one has it.
    pub async fn upload_direct_as(
        &self,
        caller: &Caller,
        meta: DirectUpload,
        external_id: Option<String>,
        body: ByteStream<'_>,
    ) -> Result<FileRecord> {
        self.upload_direct_declared(caller, meta, external_id, None, body).await
    }

    /// `upload_direct` of a body whose length the request declares (an S3 PUT): that length is
    /// what is reserved against the quota before a byte is read (refused at once when it cannot
    /// fit), rather than all the upload may bring. The direct-upload cap does not apply: the body
    /// is bounded by the workspace's and the server's file size limits and `meta.max_bytes`.
    pub async fn upload_direct_of_length(
        &self,
        caller: &Caller,
        meta: DirectUpload,
        content_length: Option<u64>,
        body: ByteStream<'_>,
    ) -> Result<FileRecord> {
        self.upload_direct_declared(caller, meta, None, Some(content_length), body).await
    }

    async fn upload_direct_declared(
        &self,
        caller: &Caller,
        meta: DirectUpload,
        external_id: Option<String>,
        // The declared length of a body that is not held to the direct-upload cap.
        sized: Option<Option<u64>>,
        body: ByteStream<'_>,
    ) -> Result<FileRecord> {
        let content_length = sized.flatten();
        let direct_cap = if sized.is_some() { u64::MAX } else { self.settings.direct_upload_max_bytes };
        let created_by = self.authorize_create(caller, meta.folder_id.as_ref()).await?;
        let ws = &caller.workspace_id;
        let name = validate_name(&meta.name)?;
        let declared_mime = meta.mime_type.as_deref().map(content_type::parse_declared).transpose()?;
        if let Some(folder) = &meta.folder_id {
            self.check_folder(ws, folder).await?;
        }
        let external_id = external_id.as_deref().map(metadata::validate_external_id).transpose()?;
        if let Some(external_id) = &external_id {
            // Refused before a byte is read; a race with another upload is caught when it is set.
            self.check_external_id_free(ws, external_id).await?;
        }
        // Before a byte of the body is read: a workspace's (and a key's) slow uploads fill their
        // own slots only.
        let _slot = self.transfer_slot(ws, Some(caller))?;
        let workspace = self.store.get_workspace(ws).await?;
        let file_cap = self
            .max_file_bytes(workspace.max_file_bytes)
            .min(direct_cap)
            .min(meta.max_bytes.unwrap_or(u64::MAX));
        let now = self.clock.now();
        let file_id = FileId::generate();
        // The same intake as a signed URL of unknown size: an upload that reserves what it may
        // bring while it streams, so the quota bounds the bytes in flight.
        let upload = Upload {
            workspace_id: ws.clone(),
            id: UploadId::generate(),
            name,
            size: 0,
            size_known: false,
            declared_mime,
            sha256: None,
            folder_id: meta.folder_id,
            status: UploadStatus::Waiting,
            failure_reason: None,
            blob_key: format!("{ws}/{file_id}"),
            file_id,
            created_at: now,
            updated_at: now,
            expires_at: now + self.settings.upload_url_ttl,
            created_by,
            part_size: None,
            multipart_id: None,
            awaits_record: false,
        };
        let room = self.quota_of(&workspace).available_bytes();
        let received = self.receive_direct(&upload, body, content_length, file_cap, room).await;
        if let Err(Error::Unavailable(_)) = &received {
            // The store went away mid-request: a step whose answer was lost may still have
            // committed (the upload begun, its reservation taken). Nobody else can finish a direct
            // upload, so it is failed once the store answers, releasing what it holds.
            self.fail_once_reachable(upload.clone(), FailureReason::Interrupted);
        }
        let file = received.map_err(|err| match err {
            Error::TooLarge { code: Code::FileTooLarge, .. } if sized.is_some() => Error::TooLarge {
                code: Code::FileTooLarge,
                message: format!("the most one upload may hold here is {file_cap} bytes"),
            },
            Error::TooLarge { code: Code::FileTooLarge, .. } => Error::TooLarge {
                code: Code::FileTooLarge,
                message: format!(
                    "the most a direct upload may hold is {file_cap} bytes; use POST /v1/uploads"
                ),
            },
            other => other,
        })?;
        tracing::info!(workspace = %ws, file = %file.id, size = file.size, "direct upload stored");
        match external_id {
            None => Ok(file),
            Some(external_id) => self.name_new_file(file, external_id).await,
        }
    }

    /// Gives a file just stored its client-chosen id; should another file have taken it
    /// meanwhile, the new file is purged and the upload refused, as if the id had been taken
    /// before it began.
    async fn name_new_file(&self, file: FileRecord, external_id: String) -> Result<FileRecord> {
        let ws = &file.workspace_id;
        let change = FileChange { external_id: Some(external_id), ..FileChange::default() };
        match self.store.update_file(ws, &file.id, &change, file.updated_at).await {
            Ok(named) => {
                self.hot.forget_workspace(ws);
                Ok(named)
            }
            Err(err) => {
                self.purge_file(ws, &file.id).await?;
                Err(err)
            }
        }
    }

    /// Refuses a client-chosen id that a live file of the workspace already has.
    async fn check_external_id_free(&self, ws: &WorkspaceId, external_id: &str) -> Result<()> {
        match self.store.find_file_by_external_id(ws, external_id).await {
            Ok(holder) => Err(external_id_taken(external_id, &holder.id)),
            Err(Error::NotFound(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// The live file with this client-chosen id, once the caller may read it.
    pub async fn file_by_external_id(&self, caller: &Caller, external_id: &str) -> Result<FileRecord> {
        let file = self.store.find_file_by_external_id(&caller.workspace_id, external_id).await?;
        self.authorize_file(caller, &file, Operation::Read).await?;
        Ok(file)
    }

    /// One file of the caller's workspace.
    pub async fn get_file(&self, caller: &Caller, id: &FileId) -> Result<FileRecord> {
        let file = self.store.get_file(&caller.workspace_id, id).await?;
        self.authorize_file(caller, &file, Operation::Read).await?;
        Ok(file)
    }

    /// Files, filtered, sorted and paged.
    pub async fn list_files(
        &self,
        caller: &Caller,
        filter: FileFilter,
        sort: Sort,
        paging: Paging,
    ) -> Result<Page<FileRecord>> {
        let mut filter = filter;
        self.check_scope(&caller.workspace_id, &filter.folder).await?;
        match caller.end_user() {
            // An end user lists the files they uploaded; others are reachable by id when the
            // rules allow.
            Some(sub) => filter.created_by = Some(sub.to_owned()),
            None => caller.require(Role::Read)?,
        }
        check_name_filter(filter.name_contains.as_deref())?;
        let mut fetch = paging.clone();
        fetch.limit += 1;
        let (items, total) = self.store.list_files(&caller.workspace_id, &filter, sort, &fetch).await?;
        Ok(into_page(items, &paging, sort, total))
    }

    /// Renames, moves, marks or describes a file.
    pub async fn update_file(
        &self,
        caller: &Caller,
        id: &FileId,
        mut change: FileChange,
    ) -> Result<FileRecord> {
        caller.require(Role::Write)?;
        let ws = &caller.workspace_id;
        self.live_file(ws, id).await?;
        if let Some(name) = &change.name {
            change.name = Some(validate_name(name)?);
        }
        if let Some(Some(folder)) = &change.folder {
            self.check_folder(ws, folder).await?;
        }
        for text in [&mut change.alt_text, &mut change.caption, &mut change.copyright].into_iter().flatten() {
            *text = text.take().map(|t| metadata::validate_text(&t)).transpose()?;
        }
        if let Some(tags) = change.tags.take() {
            change.tags = Some(metadata::normalize_tags(tags)?);
        }
        if let Some(custom) = &change.metadata {
            metadata::validate_custom(custom)?;
        }
        if let Some(external_id) = change.external_id.take() {
            change.external_id = Some(metadata::validate_external_id(&external_id)?);
        }
        let file = self.store.update_file(ws, id, &change, self.clock.now()).await?;
        self.hot.forget_workspace(ws);
        Ok(file)
    }

    /// Flips a file's favorite mark; returns the file.
    pub async fn toggle_file_favorite(&self, caller: &Caller, id: &FileId) -> Result<FileRecord> {
        caller.require(Role::Write)?;
        let current = self.live_file(&caller.workspace_id, id).await?;
        let change = FileChange { is_favorite: Some(!current.is_favorite), ..Default::default() };
        let file = self.store.update_file(&caller.workspace_id, id, &change, self.clock.now()).await?;
        self.hot.forget_workspace(&caller.workspace_id);
        Ok(file)
    }

    /// Deletes a file: to the trash, or purged at once with `permanent`. A file in use is refused
    /// (409 naming its references) unless `force`.
    pub async fn delete_file(
        &self,
        caller: &Caller,
        id: &FileId,
        force: bool,
        permanent: bool,
    ) -> Result<FileRecord> {
        let ws = &caller.workspace_id;
        let file = self.store.get_file(ws, id).await?;
        self.authorize_file(caller, &file, Operation::Delete).await?;
        if caller.end_user().is_some() && (permanent || force) {
            return Err(Error::Forbidden("end users can move files to the trash, not purge them".to_owned()));
        }
        if file.trashed_at.is_some() && !permanent {
            return Err(Error::NotFound("file"));
        }
        if !force {
            let used = self.store.list_references(ws, id).await?;
            if !used.is_empty() {
                let names: Vec<String> = used.iter().map(|r| format!("{}:{}", r.kind, r.id)).collect();
                return Err(Error::conflict(
                    Code::FileInUse,
                    format!(
                        "the file is in use by {}; pass force=true to delete it anyway",
                        names.join(", ")
                    ),
                ));
            }
        }
        if permanent {
            return self.purge_file(ws, id).await;
        }
        let trashed = self.store.trash_file(ws, id, self.clock.now()).await?;
        self.hot.forget_workspace(ws);
        tracing::info!(workspace = %ws, file = %id, "file trashed");
        Ok(trashed)
    }

    /// Removes a file for good: record and quota in one transaction, then the blob.
    pub(crate) async fn purge_file(&self, ws: &WorkspaceId, id: &FileId) -> Result<FileRecord> {
        let file = self.store.delete_file(ws, id, self.clock.now()).await?;
        self.hot.forget_workspace(ws);
        self.delete_blob_quietly(&file.blob_key).await;
        self.delete_thumbnails(&file).await;
        tracing::info!(workspace = %file.workspace_id, file = %file.id, "file purged");
        Ok(file)
    }

    /// Takes a file out of the trash, back into its folder (rebuilding a trashed parent chain),
    /// or to the root when that folder is gone.
    pub async fn restore_file(&self, caller: &Caller, id: &FileId) -> Result<(FileRecord, RestoreNote)> {
        caller.require(Role::Write)?;
        let ws = &caller.workspace_id;
        let file = self.store.get_file(ws, id).await?;
        if file.trashed_at.is_none() {
            return Err(Error::conflict(Code::NotInTrash, "the file is not in the trash"));
        }
        if let Some(external_id) = &file.external_id {
            // Another file took its client-chosen id while it was in the trash.
            self.check_external_id_free(ws, external_id).await?;
        }
        let mut note = RestoreNote::default();
        let folder = self.make_place(ws, file.folder_id.as_ref(), &mut note).await?;
        let restored = self.store.restore_file(ws, id, folder.as_ref(), self.clock.now()).await?;
        Ok((restored, note))
    }

    /// Records that something uses a file.
    pub async fn add_reference(
        &self,
        caller: &Caller,
        id: &FileId,
        kind: &str,
        ref_id: &str,
        label: Option<String>,
    ) -> Result<FileReference> {
        caller.require(Role::Write)?;
        let ws = &caller.workspace_id;
        self.live_file(ws, id).await?;
        let reference = FileReference {
            kind: metadata::validate_reference_part("kind", kind)?,
            id: metadata::validate_reference_part("id", ref_id)?,
            label: label.map(|l| metadata::validate_text(&l)).transpose()?,
            created_at: self.clock.now(),
        };
        self.store.add_reference(ws, id, &reference).await?;
        Ok(reference)
    }

    /// What uses a file, once the file's rules allow the caller to read it.
    pub async fn list_references(&self, caller: &Caller, id: &FileId) -> Result<Vec<FileReference>> {
        Ok(self.get_file_with_references(caller, id).await?.1)
    }

    /// What uses each of `files`, which the caller has just listed or read: one read for a whole
    /// page. A file nothing uses maps to nothing.
    pub async fn references_of(
        &self,
        caller: &Caller,
        files: &[FileRecord],
    ) -> Result<std::collections::HashMap<FileId, Vec<FileReference>>> {
        for file in files {
            if file.workspace_id != caller.workspace_id {
                return Err(Error::NotFound("file"));
            }
            self.authorize_file(caller, file, Operation::Read).await?;
        }
        let ids: Vec<FileId> = files.iter().map(|file| file.id.clone()).collect();
        self.store.references_of(&caller.workspace_id, &ids).await
    }

    /// A file and what uses it, as its details show them. Both are read at once; the references
    /// are returned only once the file's rules allow the caller to read it.
    pub async fn get_file_with_references(
        &self,
        caller: &Caller,
        id: &FileId,
    ) -> Result<(FileRecord, Vec<FileReference>)> {
        let (file, references) = self.store.get_file_with_references(&caller.workspace_id, id).await?;
        self.authorize_file(caller, &file, Operation::Read).await?;
        Ok((file, references))
    }

    /// Forgets that something uses a file.
    pub async fn remove_reference(
        &self,
        caller: &Caller,
        id: &FileId,
        kind: &str,
        ref_id: &str,
    ) -> Result<()> {
        caller.require(Role::Write)?;
        self.store.get_file(&caller.workspace_id, id).await?;
        self.store.remove_reference(&caller.workspace_id, id, kind, ref_id).await
    }

    /// Every tag of live files with its count.
    pub async fn tags(&self, caller: &Caller) -> Result<Vec<(String, u64)>> {
        caller.require(Role::Read)?;
        self.store.tag_counts(&caller.workspace_id).await
    }

    /// Folders and files whose names contain `query`, case-insensitively.
    pub async fn search(
        &self,
        caller: &Caller,
        mut files: FileFilter,
        mut folders: FolderFilter,
        sort: Sort,
        paging: Paging,
    ) -> Result<Page<SearchHit>> {
        caller.require(Role::Read)?;
        let Some(folded) = name_query(files.name_contains.as_deref()) else {
            return Err(Error::bad_request(Code::MissingQuery, "q must not be empty"));
        };
        check_name_filter(Some(&folded))?;
        self.check_scope(&caller.workspace_id, &files.folder).await?;
        self.check_scope(&caller.workspace_id, &folders.parent).await?;
        files.name_contains = Some(folded.clone());
        folders.name_contains = Some(folded);
        let mut fetch = paging.clone();
        fetch.limit += 1;
        let (items, total) = self.store.search(&caller.workspace_id, &files, &folders, sort, &fetch).await?;
        Ok(into_page(items, &paging, sort, total))
    }

    /// A list filtered by a folder names a folder of the caller's workspace (trashed or not), or
    /// is refused like a path naming one would be: another workspace's folder is not found, not
    /// an empty list.
    pub(crate) async fn check_scope(&self, ws: &crate::WorkspaceId, scope: &FolderScope) -> Result<()> {
        match scope {
            FolderScope::In(folder) | FolderScope::Subtree(folder) => {
                self.store.get_folder(ws, folder).await.map(|_| ())
            }
            FolderScope::Anywhere | FolderScope::Root => Ok(()),
        }
    }

    /// A file that exists and is not in the trash.
    pub(crate) async fn live_file(&self, ws: &WorkspaceId, id: &FileId) -> Result<FileRecord> {
        let file = self.store.get_file(ws, id).await?;
        if file.trashed_at.is_some() {
            return Err(Error::NotFound("file"));
        }
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
        let file = self.live_file(&caller.workspace_id, id).await?;
        self.download_url_of(caller, &file, expires_in, attachment).await
    }

    /// A signed GET URL for a file the caller already holds (just listed or read), without reading
    /// it again: for lists that give each file its URL.
    pub async fn download_url_of(
        &self,
        caller: &Caller,
        file: &FileRecord,
        expires_in: Option<u64>,
        attachment: bool,
    ) -> Result<DownloadUrl> {
        let ws = &caller.workspace_id;
        if file.workspace_id != *ws || file.trashed_at.is_some() {
            return Err(Error::NotFound("file"));
        }
        self.authorize_file(caller, file, Operation::Read).await?;
        let ttl = self.url_ttl(expires_in, self.settings.download_url_ttl)?.num_seconds();
        let now = self.clock.now();
        // The same URL for the whole window (so caches keyed by URL hit), never past the longest
        // lifetime a URL may have.
        let (signed_at, expires) = url_window(
            now,
            ttl,
            self.settings.url_window.num_seconds(),
            self.settings.max_url_ttl.num_seconds(),
        );
        // Types a browser would run are always attachments, wherever they are served from.
        let attachment = attachment || content_type::is_active_content(&file.mime_type);
        let direct = PresignedDownload {
            content_type: file.mime_type.clone(),
            disposition: content_type::disposition(&file.name, attachment),
            signed_at,
            expires_at: expiry_instant(expires),
        };
        if let Some(url) = self.blobs.presign_download(&file.blob_key, &direct) {
            return Ok(DownloadUrl { url, expires_at: direct.expires_at });
        }
        let params = SignedParams { expires, max_bytes: 0, attachment };
        let query = self.signer.sign(SignedOperation::Download, ws.as_str(), file.id.as_str(), &params);
        let url = self.storage_file_url(ws, file.id.as_str(), &query);
        Ok(DownloadUrl { url, expires_at: expiry_instant(expires) })
    }

    /// A live file the caller may read the bytes of.
    pub async fn readable_file(&self, caller: &Caller, id: &FileId) -> Result<FileRecord> {
        let file = self.live_file(&caller.workspace_id, id).await?;
        self.authorize_file(caller, &file, Operation::Read).await?;
        Ok(file)
    }

    /// Streams a file's bytes, or a range of them. The caller has already been authorised for it.
    pub async fn read_file(
        &self,
        file: &FileRecord,
        range: Option<ByteRange>,
    ) -> Result<ByteStream<'static>> {
        if file.size > crate::ports::SMALL_OBJECT_BYTES {
            let in_flight = crate::telemetry::TransferInFlight::download();
            let stream = self.blobs.open(&file.blob_key, range).await?;
            // In flight until the stream is dropped: sent whole, or the client went away.
            return Ok(futures::StreamExt::boxed(futures::StreamExt::map(stream, move |chunk| {
                let _ = &in_flight;
                chunk
            })));
        }
        let whole = match self.hot.object(&file.blob_key) {
            Some(whole) => whole,
            None => {
                let mut stream = self.blobs.open(&file.blob_key, None).await?;
                let mut whole = bytes::BytesMut::with_capacity(file.size as usize);
                while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
                    whole.extend_from_slice(&chunk?);
                }
                let whole = whole.freeze();
                // Bytes that are not the file's size are not the file: never keep them.
                if whole.len() as u64 != file.size {
                    return Err(Error::internal(format!(
                        "the object of {} holds {} bytes, not {}",
                        file.id,
                        whole.len(),
                        file.size
                    )));
                }
                self.hot.keep_object(&file.blob_key, whole.clone());
                whole
            }
        };
        let part = match range {
            Some(range) => {
                let end = (range.last + 1).min(file.size);
                whole.slice(range.first.min(end) as usize..end as usize)
            }
            None => whole,
        };
        Ok(Box::pin(futures::stream::once(async move { Ok(part) })))
    }
}

/// The conflict of a client-chosen id that a live file already has.
pub(crate) fn external_id_taken(external_id: &str, holder: &FileId) -> Error {
    Error::conflict(
        Code::ExternalIdTaken,
        format!("the id {external_id:?} is already used by file {holder} in this workspace"),
    )
}
