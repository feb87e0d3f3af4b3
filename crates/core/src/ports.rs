//! The ports: what the core needs from a metadata store and a blob store. Each has one
//! conformance suite and several implementations (SQLite, PostgreSQL; local folder, S3).

use std::collections::{HashMap, HashSet};
use std::io;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::TryStreamExt;

use crate::error::Result;
use crate::ids::{ApiKeyId, FileId, FolderId, UploadId, WorkspaceId};
use crate::listing::{FileFilter, FolderFilter, Paging, Sort};
use crate::model::{ApiKey, FailureReason, FileRecord, FileReference, Folder, Upload, Usage, Workspace};
use crate::signing::SigningKeyRecord;

/// A stream of bytes with I/O errors; the one shape in which file contents move.
pub type ByteStream<'a> = BoxStream<'a, io::Result<Bytes>>;

/// The most keys in a page of `BlobStore::key_pages`.
pub const KEY_PAGE: usize = 500;

/// What to change on a file; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct FileChange {
    pub name: Option<String>,
    /// `Some(None)` moves the file to the root.
    pub folder: Option<Option<FolderId>>,
    pub is_favorite: Option<bool>,
    /// `Some(None)` clears the field.
    pub alt_text: Option<Option<String>>,
    pub caption: Option<Option<String>>,
    pub copyright: Option<Option<String>>,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Normalised; replaces the file's tags.
    pub tags: Option<Vec<String>>,
    /// Gives the file a client-chosen id; `Conflict` (`external_id_taken`) when another live file
    /// of the workspace has it.
    pub external_id: Option<String>,
}

/// What to change on a folder; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct FolderChange {
    pub name: Option<String>,
    /// `Some(None)` moves the folder to the root.
    pub parent: Option<Option<FolderId>>,
    pub is_favorite: Option<bool>,
    pub is_shared: Option<bool>,
}

/// A workspace's ledger as recorded and as its files and uploads add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerCheck {
    pub recorded_used: u64,
    pub recorded_reserved: u64,
    pub actual_used: u64,
    pub actual_reserved: u64,
}

impl LedgerCheck {
    /// Whether the recorded ledger differs from the sums.
    pub fn drifted(&self) -> bool {
        self.recorded_used != self.actual_used || self.recorded_reserved != self.actual_reserved
    }
}

/// A folder or a file, as search returns them.
// Items of one page, built and rendered at once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum SearchHit {
    Folder(Folder),
    File(FileRecord),
}

/// Something at the top of the trash: trashed on its own, not along with a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrashEntry {
    File(FileId),
    Folder(FolderId),
}

/// The metadata port: every aggregate's store, and what a whole store does. Every call that
/// touches tenant data takes the workspace first and is scoped by it; calls that change the quota
/// ledger do so in the same transaction as the change.
#[async_trait]
pub trait MetadataStore:
    WorkspaceStore
    + KeyStore
    + UploadStore
    + FileStore
    + FolderStore
    + TrashStore
    + AccessRuleStore
    + SearchStore
    + LedgerStore
    + LinkStore
    + EventStore
    + AuditStore
    + S3KeyStore
    + WebhookStore
{
    /// Runs the work of one HTTP request, to its end. A store may let the request's point lookups
    /// share one read transaction inside it, ending it before any other call; the default runs
    /// `request` as it is.
    fn in_request_scope<'a>(&'a self, request: BoxFuture<'a, ()>) -> BoxFuture<'a, ()> {
        request
    }

    /// Whether each statement is handed to a thread of the store's own and its answer waited for
    /// (SQLite's connections, through sqlx), rather than sent and read by the runtime's own I/O.
    /// The group commits then run on threads of their own: on the runtime's workers, each of a
    /// transaction's statements waits to be sent behind every request queued there.
    fn hands_statements_to_a_thread(&self) -> bool {
        false
    }

    /// Checks the store answers.
    async fn ping(&self) -> Result<()>;

    /// How its connection pools are used now, for `/metrics`; none by default.
    fn pools(&self) -> Vec<PoolUsage> {
        Vec::new()
    }
}

/// One change, as the outbox recorded it: numbered per workspace in the order the changes
/// committed. `object_id` is the file, folder, upload or key it is about (for `tokens.revoked`
/// and `quota.crossed`, the workspace); `detail` is an upload's failure reason, a reference's
/// `kind/id`, the end user whose tokens were revoked, or the percentage of the quota crossed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub workspace_id: WorkspaceId,
    pub seq: u64,
    pub kind: String,
    pub object_id: String,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// One connection pool's use at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Which pool: `read` or `write`.
    pub name: &'static str,
    /// Connections open, busy or idle.
    pub open: u32,
    pub idle: u32,
    /// The most it opens: while `open - idle` is this, requests wait for a connection.
    pub max: u32,
}

/// Workspaces: the tenants.
#[async_trait]
pub trait WorkspaceStore: Send + Sync + 'static {
    /// Creates a workspace; `Conflict` when the name is taken.
    async fn create_workspace(&self, workspace: &Workspace) -> Result<()>;
    /// One workspace, or `NotFound`.
    async fn get_workspace(&self, id: &WorkspaceId) -> Result<Workspace>;
    /// Every workspace, oldest first.
    async fn list_workspaces(&self) -> Result<Vec<Workspace>>;
    /// The workspace's own CORS list as stored (`None`: it goes by the server's), or `NotFound`.
    async fn workspace_cors_origins(&self, id: &WorkspaceId) -> Result<Option<String>>;
    /// Stores the workspace's own CORS list (`None`: back to the server's), or `NotFound`.
    async fn set_workspace_cors_origins(&self, id: &WorkspaceId, origins: Option<&str>) -> Result<()>;
    /// Whether the workspace holds a file or folder that is not in the trash, or `NotFound`.
    async fn workspace_has_live_items(&self, id: &WorkspaceId) -> Result<bool>;
    /// Deletes a workspace that holds no file and no folder (its trash purged), with everything
    /// else of its own, in one transaction: uploads, key grants (a key of no other workspace is
    /// revoked), S3 keys, webhooks and their deliveries, events, access rules, token revocations,
    /// the metering ledger. The audit log keeps its records. Returns the uploads that were live,
    /// whose bytes the caller removes. `Conflict` (`workspace_not_empty`) while a file or folder
    /// is there, or `NotFound`.
    async fn delete_workspace(&self, id: &WorkspaceId, at: DateTime<Utc>) -> Result<Vec<Upload>>;
}

/// What lasting URLs are checked against: the keys that sign URLs, and each workspace's link
/// generation.
#[async_trait]
pub trait LinkStore: Send + Sync + 'static {
    /// Every signing key, retired or not, by id.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    /// Adds a key after the newest with this salt and returns its id; `Conflict` when another
    /// took that id at the same moment.
    async fn add_signing_key(&self, salt: &str, at: DateTime<Utc>) -> Result<u32>;
    /// Retires every key older than `id` not yet retired; returns how many.
    async fn retire_signing_keys_before(&self, id: u32, at: DateTime<Utc>) -> Result<u64>;
    /// The workspace's link generation, or `NotFound`.
    async fn link_generation(&self, workspace: &WorkspaceId) -> Result<u64>;
    /// Moves the workspace's link generation on and returns the new one, or `NotFound`.
    async fn advance_link_generation(&self, workspace: &WorkspaceId) -> Result<u64>;
}

/// The outbox: the events every change writes in its own transaction (see `EventRecord`).
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// The workspace's events numbered after `after`, oldest first, at most `limit`.
    async fn events_after(&self, workspace: &WorkspaceId, after: u64, limit: u32)
        -> Result<Vec<EventRecord>>;
    /// The number of the workspace's newest event (0 before the first), or `NotFound`.
    async fn newest_event(&self, workspace: &WorkspaceId) -> Result<u64>;
    /// Removes events recorded before `before`; returns how many.
    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// The audit log: append, read, and the retention prune; nothing else (the database refuses
/// changes and other deletes).
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends records, numbered in order.
    async fn append_audit(&self, records: &[crate::audit::NewAuditRecord]) -> Result<()>;
    /// The workspace's records matching `query`, newest first.
    async fn audit_records(
        &self,
        workspace: &WorkspaceId,
        query: &crate::audit::AuditQuery,
    ) -> Result<Vec<crate::audit::AuditRecord>>;
    /// Removes records appended before `before`; returns how many.
    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// Webhook endpoints, their cursors in the outbox, their leases and their delivery logs (see
/// `crate::webhooks`).
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Stores a new endpoint, its cursor at the workspace's newest event (it receives what
    /// happens from now on); `NotFound` when the workspace is gone.
    async fn create_webhook(&self, hook: &crate::webhooks::NewWebhook) -> Result<crate::webhooks::Webhook>;
    /// The workspace's endpoints, oldest first.
    async fn list_webhooks(&self, workspace: &WorkspaceId) -> Result<Vec<crate::webhooks::Webhook>>;
    /// One endpoint of the workspace, or `NotFound`.
    async fn get_webhook(
        &self,
        workspace: &WorkspaceId,
        id: &crate::WebhookId,
    ) -> Result<crate::webhooks::Webhook>;
    /// Changes what `change` names and ends the lease (see `rewind_webhook`); enabling clears
    /// the failure record and makes it due now.
    async fn update_webhook(
        &self,
        workspace: &WorkspaceId,
        id: &crate::WebhookId,
        change: &crate::webhooks::WebhookChange,
        at: DateTime<Utc>,
    ) -> Result<crate::webhooks::Webhook>;
    /// Removes an endpoint and its delivery log, or `NotFound`.
    async fn delete_webhook(&self, workspace: &WorkspaceId, id: &crate::WebhookId) -> Result<()>;
    /// Puts `secret` in place; the one it replaces signs alongside it until `previous_until`.
    async fn rotate_webhook_secret(
        &self,
        workspace: &WorkspaceId,
        id: &crate::WebhookId,
        secret: &str,
        previous_until: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<crate::webhooks::Webhook>;
    /// Moves the endpoint's cursor back to `after` (never forward), due now, and ends the lease:
    /// the node that held it stores nothing more, and no other node takes the endpoint until
    /// that node gives the lease back (`release_webhook`) or its time runs out, so two nodes
    /// never send at once.
    async fn rewind_webhook(
        &self,
        workspace: &WorkspaceId,
        id: &crate::WebhookId,
        after: u64,
        at: DateTime<Utc>,
    ) -> Result<crate::webhooks::Webhook>;
    /// The endpoint's delivery attempts, newest first, older than `before` when given.
    async fn webhook_deliveries(
        &self,
        workspace: &WorkspaceId,
        id: &crate::WebhookId,
        before: Option<&crate::DeliveryId>,
        limit: u32,
    ) -> Result<Vec<crate::webhooks::Delivery>>;
    /// Enabled endpoints, of any workspace, that are due, not leased, and behind their
    /// workspace's newest event: at most `limit`, by one indexed read.
    async fn due_webhooks(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<crate::WebhookId>>;
    /// Leases the endpoint to `node` until `until` when it is still due and unleased (one
    /// conditional UPDATE); the endpoint as leased, or `None` when another node has it.
    async fn claim_webhook(
        &self,
        id: &crate::WebhookId,
        node: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<crate::webhooks::Webhook>>;
    /// Moves the leased endpoint's cursor from `from` to `to` and renews the lease to
    /// `lease_until`, logging `deliveries` with it; `false` (the cursor unchanged) when `node` no
    /// longer holds the lease, the cursor moved (a replay) or the endpoint was disabled.
    #[allow(clippy::too_many_arguments)]
    async fn advance_webhook(
        &self,
        id: &crate::WebhookId,
        node: &str,
        from: u64,
        to: u64,
        lease_until: DateTime<Utc>,
        deliveries: &[crate::webhooks::Delivery],
    ) -> Result<bool>;
    /// Logs a failed attempt, counts it, sets when to try again and gives up the lease; with
    /// `disable`, disables the endpoint for that reason (which records `webhook.disabled`).
    async fn webhook_failed(
        &self,
        id: &crate::WebhookId,
        node: &str,
        delivery: &crate::webhooks::Delivery,
        next_attempt_at: DateTime<Utc>,
        disable: Option<&str>,
    ) -> Result<()>;
    /// Gives up `node`'s lease on the endpoint, also one that a change or replay ended.
    async fn release_webhook(&self, id: &crate::WebhookId, node: &str) -> Result<()>;
    /// Extends `node`'s lease on the endpoint to `until`; `false` when `node` no longer holds it.
    async fn renew_webhook(&self, id: &crate::WebhookId, node: &str, until: DateTime<Utc>) -> Result<bool>;
    /// Endpoints, of any workspace, whose secret or previous secret is stored as shown
    /// (`whsec_…`, written before secrets were sealed): at most `limit`.
    async fn webhooks_with_plain_secrets(&self, limit: u32) -> Result<Vec<crate::webhooks::Webhook>>;
    /// Replaces the endpoint's secret and previous secret with `to` if they are still `from`;
    /// whether it did.
    async fn replace_webhook_secrets(
        &self,
        id: &crate::WebhookId,
        from: (&str, Option<&str>),
        to: (&str, Option<&str>),
    ) -> Result<bool>;
}

/// The S3 surface's access keys (their secrets sealed) and what it keeps of the files it stored.
#[async_trait]
pub trait S3KeyStore: Send + Sync + 'static {
    /// Stores a key with its sealed secret.
    async fn create_s3_key(&self, key: &crate::s3_keys::S3Key, sealed_secret: &str) -> Result<()>;
    /// The key with this access key id and its sealed secret, revoked or not.
    async fn find_s3_key(&self, access_key_id: &str) -> Result<Option<(crate::s3_keys::S3Key, String)>>;
    /// The keys of a workspace, or the operator keys when `None`.
    async fn list_s3_keys(&self, workspace: Option<&WorkspaceId>) -> Result<Vec<crate::s3_keys::S3Key>>;
    /// Marks a key revoked; `NotFound` when there is no such key.
    async fn revoke_s3_key(&self, access_key_id: &str, at: DateTime<Utc>) -> Result<()>;
    /// Records what the S3 surface keeps of a file it stored (replacing what it kept before).
    async fn set_s3_object(
        &self,
        workspace: &WorkspaceId,
        file: &FileId,
        object: &crate::s3_objects::S3Object,
    ) -> Result<()>;
    /// What the S3 surface kept of a file, if it stored it.
    async fn s3_object(
        &self,
        workspace: &WorkspaceId,
        file: &FileId,
    ) -> Result<Option<crate::s3_objects::S3Object>>;
    /// What a listing names of these files (those the S3 surface stored): their ETags and
    /// checksums' algorithms.
    async fn s3_listed(
        &self,
        workspace: &WorkspaceId,
        files: &[FileId],
    ) -> Result<HashMap<FileId, crate::s3_objects::S3Listed>>;
}

/// API keys and the revocation of end-user tokens.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Stores a key under the hash of its secret.
    async fn create_api_key(&self, key: &ApiKey, secret_hash: &str) -> Result<()>;
    /// The key whose secret hashes to this, revoked or not.
    async fn find_api_key(&self, secret_hash: &str) -> Result<Option<ApiKey>>;
    /// The keys that may act on a workspace.
    async fn list_api_keys(&self, workspace: &WorkspaceId) -> Result<Vec<ApiKey>>;
    /// Ends the workspace's end-user tokens of `sub` (every sub when empty) minted up to `at`.
    async fn revoke_tokens(&self, workspace: &WorkspaceId, sub: &str, at: DateTime<Utc>) -> Result<()>;
    /// Whether a token minted by `key_id` for `sub` may still stand: the key is live, and the
    /// latest revocation covering `sub`.
    async fn token_standing(
        &self,
        workspace: &WorkspaceId,
        key_id: &str,
        sub: &str,
    ) -> Result<crate::rules::TokenStanding>;
    /// Marks a key revoked; `NotFound` when there is no such key.
    async fn revoke_api_key(&self, id: &ApiKeyId, at: DateTime<Utc>) -> Result<()>;
}

/// A WAITING upload beginning to receive its bytes (`UploadStore::begin_receiving_all`).
#[derive(Debug, Clone)]
pub struct Begin {
    pub workspace: WorkspaceId,
    pub upload: UploadId,
    pub at: DateTime<Utc>,
    /// For an upload of unknown size: the most bytes to reserve as it begins, as
    /// `begin_receiving_reserving` does; `None` for one whose size is reserved already.
    pub reserving: Option<u64>,
}

/// A live upload finished into its file (`UploadStore::finish_uploads`).
#[derive(Debug, Clone)]
pub struct Finish {
    pub upload: UploadId,
    /// The file it becomes, in the upload's workspace.
    pub file: FileRecord,
    /// The audit record of the request this finish answers, appended in the same transaction
    /// when the upload finishes (and only then).
    pub record: Option<crate::audit::NewAuditRecord>,
}

/// A live upload to insert with its reservation (`UploadStore::insert_uploads_reserving`).
#[derive(Debug, Clone)]
pub struct Reservation {
    pub upload: Upload,
    /// The audit record of the request this reservation answers, appended in the same transaction
    /// when the reservation is granted (and only then).
    pub record: Option<crate::audit::NewAuditRecord>,
}

/// Uploads and the reservations they hold on the quota.
#[async_trait]
pub trait UploadStore: Send + Sync + 'static {
    /// Inserts a live upload and reserves its size, atomically: `QuotaExceeded` (and nothing
    /// written) when `used + reserved + size` would pass the limit.
    async fn insert_upload_reserving(&self, upload: &Upload) -> Result<()>;
    /// Inserts several uploads, each as `insert_upload_reserving` would and judged by the quota
    /// on its own, in one transaction with the records of those granted: one outcome per upload,
    /// in their order. `Err` when the transaction itself failed, and then none was inserted.
    async fn insert_uploads_reserving(&self, uploads: &[Reservation]) -> Result<Vec<Result<()>>>;
    /// One upload, or `NotFound`.
    async fn get_upload(&self, workspace: &WorkspaceId, id: &UploadId) -> Result<Upload>;
    /// The upload whose file has (or will have) this id, or `NotFound`.
    async fn upload_of_file(&self, workspace: &WorkspaceId, file: &FileId) -> Result<Upload>;
    /// WAITING → UPLOADING; false when the upload was not WAITING.
    async fn begin_receiving(
        &self,
        workspace: &WorkspaceId,
        id: &UploadId,
        at: DateTime<Utc>,
    ) -> Result<bool>;
    /// Adds `more` bytes to the reservation of a WAITING upload of unknown size (recorded as its
    /// size), in one transaction: `QuotaExceeded` (and nothing changed) when they do not fit;
    /// false when the upload is not WAITING.
    async fn reserve_more(&self, workspace: &WorkspaceId, id: &UploadId, more: u64) -> Result<bool>;
    /// Sets the reservation of a WAITING upload of unknown size (recorded as its size) to `size`,
    /// growing or shrinking it, in one transaction: `QuotaExceeded` (and nothing changed) when a
    /// growth does not fit; false when the upload is not WAITING.
    async fn reserve_exactly(&self, workspace: &WorkspaceId, id: &UploadId, size: u64) -> Result<bool>;
    /// WAITING → UPLOADING for an upload of unknown size, reserving in the same transaction as
    /// much of `most` bytes as the quota holds (never more; what the upload already holds counts
    /// towards it), recorded as the upload's size; returns
    /// the reservation (possibly 0), or `None` (and nothing changed) when the upload was not WAITING.
    async fn begin_receiving_reserving(
        &self,
        workspace: &WorkspaceId,
        id: &UploadId,
        at: DateTime<Utc>,
        most: u64,
    ) -> Result<Option<u64>>;
    /// Several uploads begun, each as `begin_receiving` (or `begin_receiving_reserving`, when it
    /// reserves) would and judged by the quota on its own, in one transaction: for each, in their
    /// order, what it now holds reserved (0 when it does not reserve), or `None` when it was not
    /// WAITING. `Err` when the transaction itself failed, and then none was begun.
    async fn begin_receiving_all(&self, begins: &[Begin]) -> Result<Vec<Result<Option<u64>>>>;
    /// Inserts uploads of unknown size already UPLOADING (a direct upload, received by the request
    /// that creates it), each reserving as much of its `most` bytes as the quota holds (recorded as
    /// its size), judged by the quota on its own, in one transaction: for each, in their order,
    /// what it reserved (possibly 0). `Err` when the transaction itself failed, and then none was
    /// inserted.
    async fn insert_uploads_receiving(&self, uploads: &[(Upload, u64)]) -> Result<Vec<Result<u64>>>;
    /// In one transaction: the live upload becomes SUCCESS with the file's size, the file is
    /// created and the reservation becomes usage (the part the file does not use is released). False (and nothing written) when the upload was not live.
    async fn finish_upload(&self, workspace: &WorkspaceId, id: &UploadId, file: &FileRecord) -> Result<bool>;
    /// Several uploads finished, each as `finish_upload` would and judged by the quota on its own,
    /// in one transaction with the records of those finished: one outcome per upload, in their
    /// order. `Err` when the transaction itself
    /// failed, and then none was finished.
    async fn finish_uploads(&self, finishes: &[Finish]) -> Result<Vec<Result<bool>>>;
    /// In one transaction: the live upload becomes FAILED and its reservation is released.
    /// False when it was not live.
    async fn fail_upload(
        &self,
        workspace: &WorkspaceId,
        id: &UploadId,
        reason: FailureReason,
        at: DateTime<Utc>,
    ) -> Result<bool>;
    /// Live uploads that should be failed as expired: WAITING ones whose URL expired before
    /// `waiting_before`, UPLOADING ones that expired before `uploading_before`.
    async fn expired_uploads(
        &self,
        waiting_before: DateTime<Utc>,
        uploading_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(WorkspaceId, UploadId)>>;
    /// Uploads that failed before their URL expired, whose URL expired after
    /// `(after, after_id)` and before `by`, in the order of (expiry, id), at most `limit`: bytes
    /// sent straight to the blob store can land for one of them until its URL expires.
    async fn uploads_failed_before_expiry(
        &self,
        after: DateTime<Utc>,
        after_id: Option<&UploadId>,
        by: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Upload>>;
    /// UPLOADING → WAITING, reservation kept: for a multipart upload whose assembly a stop cut
    /// short, found at start-up. False when it was not UPLOADING.
    async fn reopen_upload(&self, workspace: &WorkspaceId, id: &UploadId, at: DateTime<Utc>) -> Result<bool>;
    /// Every upload whose bytes were arriving; used at start-up when those bytes are gone.
    async fn receiving_uploads(&self, limit: u32) -> Result<Vec<(WorkspaceId, UploadId)>>;
    /// WAITING uploads of every workspace, in id order, strictly after `after`; for the
    /// reconciler that completes uploads whose bytes went straight to the blob store.
    async fn waiting_uploads(&self, after: Option<&UploadId>, limit: u32) -> Result<Vec<Upload>>;
    /// One workspace's WAITING uploads of unknown size that take parts of any size (not a
    /// planned multipart upload, not one that awaits a record), by id after `after`.
    async fn waiting_open_uploads(
        &self,
        workspace: &WorkspaceId,
        after: Option<&UploadId>,
        limit: u32,
    ) -> Result<Vec<Upload>>;
}

/// Files, their tags and what uses them.
#[async_trait]
pub trait FileStore: Send + Sync + 'static {
    /// Creates a file that skipped the reservation (a direct upload), charging its size to the
    /// quota in the same transaction: `QuotaExceeded` (and nothing written) when it does not fit.
    async fn insert_file_charging(&self, file: &FileRecord) -> Result<()>;
    /// One file, or `NotFound`.
    async fn get_file(&self, workspace: &WorkspaceId, id: &FileId) -> Result<FileRecord>;
    /// The live file with this client-chosen id, or `NotFound`.
    async fn find_file_by_external_id(
        &self,
        workspace: &WorkspaceId,
        external_id: &str,
    ) -> Result<FileRecord>;
    /// Up to `paging.limit` files matching the filter, in order, and how many match in all.
    async fn list_files(
        &self,
        workspace: &WorkspaceId,
        filter: &FileFilter,
        sort: Sort,
        paging: &Paging,
    ) -> Result<(Vec<FileRecord>, u64)>;
    /// Changes a file's name, place, favorite mark or metadata; `updated_at` moves to `at`.
    async fn update_file(
        &self,
        workspace: &WorkspaceId,
        id: &FileId,
        change: &FileChange,
        at: DateTime<Utc>,
    ) -> Result<FileRecord>;
    /// Deletes the file's record (with its tags and references) and returns its bytes to the
    /// quota, in one transaction.
    async fn delete_file(
        &self,
        workspace: &WorkspaceId,
        id: &FileId,
        at: DateTime<Utc>,
    ) -> Result<FileRecord>;
    /// Every tag in use by live files, one per `metadata::tag_key`, with how many files carry it,
    /// by key. A tag spelt several ways shows the spelling most of its files carry (the
    /// bytewise-first of those equally common).
    async fn tag_counts(&self, workspace: &WorkspaceId) -> Result<Vec<(String, u64)>>;
    /// Records that a file is used by something; adding the same (kind, id) again updates the label.
    async fn add_reference(
        &self,
        workspace: &WorkspaceId,
        file: &FileId,
        reference: &FileReference,
    ) -> Result<()>;
    /// What uses a file, oldest first.
    async fn list_references(&self, workspace: &WorkspaceId, file: &FileId) -> Result<Vec<FileReference>>;
    /// What uses each of `files` (oldest first), read at once; files nothing uses are absent.
    async fn references_of(
        &self,
        workspace: &WorkspaceId,
        files: &[FileId],
    ) -> Result<HashMap<FileId, Vec<FileReference>>>;
    /// One file with what uses it (oldest first), read at once; or `NotFound`.
    async fn get_file_with_references(
        &self,
        workspace: &WorkspaceId,
        id: &FileId,
    ) -> Result<(FileRecord, Vec<FileReference>)>;
    /// Forgets a use; `NotFound` when there was none.
    async fn remove_reference(
        &self,
        workspace: &WorkspaceId,
        file: &FileId,
        kind: &str,
        id: &str,
    ) -> Result<()>;
    /// References held by live files in a folder's subtree.
    async fn references_in_folder(
        &self,
        workspace: &WorkspaceId,
        folder: &FolderId,
    ) -> Result<Vec<FileReference>>;
}

/// The folder tree.
#[async_trait]
pub trait FolderStore: Send + Sync + 'static {
    /// Creates a folder; `Conflict` (`name_taken`) when a live sibling has the same folded name,
    /// `Conflict` (`folder_too_deep`) when it would sit below `MAX_FOLDER_DEPTH`.
    async fn insert_folder(&self, folder: &Folder) -> Result<()>;
    /// One folder (live or trashed), or `NotFound`.
    async fn get_folder(&self, workspace: &WorkspaceId, id: &FolderId) -> Result<Folder>;
    /// The folder and its ancestors, root first; `Conflict` (`folder_too_deep`) when the chain runs
    /// past `MAX_FOLDER_DEPTH` (never a path cut short).
    async fn folder_path(&self, workspace: &WorkspaceId, id: &FolderId) -> Result<Vec<Folder>>;
    /// Renames, moves or marks a live folder. A move into the folder's own subtree, at any depth,
    /// is refused with `Conflict` (`folder_cycle`), one that would nest its subtree below
    /// `MAX_FOLDER_DEPTH` with `Conflict` (`folder_too_deep`); both checked in the transaction of
    /// the move. `restore_folder` checks the same under its new parent.
    async fn update_folder(
        &self,
        workspace: &WorkspaceId,
        id: &FolderId,
        change: &FolderChange,
        at: DateTime<Utc>,
    ) -> Result<Folder>;
    /// Up to `paging.limit` folders matching the filter, in order, and how many match in all.
    async fn list_folders(
        &self,
        workspace: &WorkspaceId,
        filter: &FolderFilter,
        sort: Sort,
        paging: &Paging,
    ) -> Result<(Vec<Folder>, u64)>;
    /// Whether a folder holds no live files or folders.
    async fn folder_is_empty(&self, workspace: &WorkspaceId, id: &FolderId) -> Result<bool>;
}

/// The trash: what goes in, comes back out, and is purged.
#[async_trait]
pub trait TrashStore: Send + Sync + 'static {
    /// Moves a live file to the trash (it keeps counting against the quota).
    async fn trash_file(&self, workspace: &WorkspaceId, id: &FileId, at: DateTime<Utc>)
        -> Result<FileRecord>;
    /// Takes a file out of the trash into `folder` (its original one, or the root).
    async fn restore_file(
        &self,
        workspace: &WorkspaceId,
        id: &FileId,
        folder: Option<&FolderId>,
        at: DateTime<Utc>,
    ) -> Result<FileRecord>;
    /// Moves a live folder and everything live below it to the trash, as one operation.
    async fn trash_folder(&self, workspace: &WorkspaceId, id: &FolderId, at: DateTime<Utc>)
        -> Result<Folder>;
    /// Takes a trashed folder out of the trash, under `parent` with `name`; with `with_contents`,
    /// also what was trashed along with it.
    async fn restore_folder(
        &self,
        workspace: &WorkspaceId,
        id: &FolderId,
        parent: Option<&FolderId>,
        name: &str,
        with_contents: bool,
        at: DateTime<Utc>,
    ) -> Result<Folder>;
    /// Deletes a folder and everything below it, returning the files' bytes to the quota in one
    /// transaction; returns the deleted files (whose blobs the caller removes).
    async fn purge_folder(
        &self,
        workspace: &WorkspaceId,
        id: &FolderId,
        at: DateTime<Utc>,
    ) -> Result<Vec<FileRecord>>;
    /// Top-level trash entries (of any workspace) trashed before `before`.
    async fn expired_trash(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(WorkspaceId, TrashEntry)>>;
    /// Top-level trash entries of a workspace, newest first.
    async fn trash_entries(&self, workspace: &WorkspaceId, limit: u32) -> Result<Vec<TrashEntry>>;
}

/// The access rules set on a workspace, a folder or a file.
#[async_trait]
pub trait AccessRuleStore: Send + Sync + 'static {
    /// The rules set on each target that has any.
    async fn access_rules(
        &self,
        workspace: &WorkspaceId,
        targets: &[crate::rules::RuleTarget],
    ) -> Result<std::collections::HashMap<crate::rules::RuleTarget, crate::rules::AccessRules>>;
    /// Whether any rule of the workspace (on itself, a folder or a file) opens reading to `public`.
    async fn any_public_read(&self, workspace: &WorkspaceId) -> Result<bool>;
    /// Sets (replaces) the rules of a target.
    async fn put_access_rules(
        &self,
        workspace: &WorkspaceId,
        target: &crate::rules::RuleTarget,
        rules: &crate::rules::AccessRules,
        at: DateTime<Utc>,
    ) -> Result<()>;
}

/// Search across folders and files.
#[async_trait]
pub trait SearchStore: Send + Sync + 'static {
    /// Folders and files together, matching their filters, in one order and one paging.
    async fn search(
        &self,
        workspace: &WorkspaceId,
        files: &FileFilter,
        folders: &FolderFilter,
        sort: Sort,
        paging: &Paging,
    ) -> Result<(Vec<SearchHit>, u64)>;
}

/// The quota ledger, its history, and the blobs it accounts for.
#[async_trait]
pub trait LedgerStore: Send + Sync + 'static {
    /// File count and total size.
    async fn usage(&self, workspace: &WorkspaceId) -> Result<Usage>;
    /// Recomputes a workspace's ledger from its files and live uploads, in one statement, and
    /// returns (used_bytes, reserved_bytes) as they were before and as they are now.
    async fn reconcile_ledger(
        &self,
        workspace: &WorkspaceId,
        repair: bool,
        at: DateTime<Utc>,
    ) -> Result<LedgerCheck>;
    /// The workspace's `used_bytes` at `from`, and every value it took in `[from, to)` with when.
    /// Every change of `used_bytes` is recorded, in the same transaction, for metering.
    async fn usage_history(
        &self,
        workspace: &WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<(u64, Vec<(DateTime<Utc>, u64)>)>;
    /// Every file's (workspace, id, blob key, size), in pages by workspace and id after `after`
    /// (a workspace and a file id): each page is a range of the files' primary key.
    async fn file_blobs(
        &self,
        after: Option<&(WorkspaceId, FileId)>,
        limit: u32,
    ) -> Result<Vec<(WorkspaceId, FileId, String, u64)>>;
    /// Which of these blob keys a file or a live upload owns.
    async fn blob_keys_in_use(&self, keys: &[String]) -> Result<HashSet<String>>;
}

/// Bytes that have landed in a temporary object and been measured, not yet a file.
#[derive(Debug)]
pub struct StagedBlob {
    /// The blob store's handle on the temporary object.
    pub temp_key: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
    /// The first bytes, for sniffing the content type.
    pub head: Bytes,
}

/// Why staging stopped.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// More bytes arrived than the limit allows; the rest were not read.
    #[error("more than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The client's stream broke.
    #[error("the request body ended early: {0}")]
    Body(#[source] io::Error),
    /// The storage failed.
    #[error("storage failed: {0}")]
    Storage(#[source] io::Error),
    /// A remote storage service could not take the bytes (unreachable, refusing, failing): the
    /// client may retry once it is back.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] io::Error),
}

/// A byte range, inclusive on both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

impl ByteRange {
    /// How many bytes the range covers.
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Never true: a range covers at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A URL a client can send bytes to directly, bypassing Cabinet.
#[derive(Debug, Clone)]
pub struct PresignedUpload {
    pub url: String,
    pub method: &'static str,
    /// Headers the request must carry exactly as given (they are signed).
    pub headers: Vec<(String, String)>,
    /// The same upload as a browser form, when the store offers one.
    pub form: Option<PresignedPost>,
}

/// A browser form upload: `POST url` as `multipart/form-data` with `fields` in this order, then
/// the bytes in a last field named `file`. The store refuses any other size than the declared one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedPost {
    pub url: String,
    pub fields: Vec<(String, String)>,
}

/// What a signed GET of a file's bytes must say about them.
#[derive(Debug, Clone)]
pub struct PresignedDownload {
    /// The `Content-Type` to serve.
    pub content_type: String,
    /// The `Content-Disposition` to serve (built by `content_type::disposition`).
    pub disposition: String,
    /// When the URL is signed and when it stops working.
    pub signed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What the blob store knows of an object without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub size: u64,
    /// Lowercase hex, when the store verified one as the bytes arrived.
    pub sha256: Option<String>,
}

/// One part of a multipart upload that the blob store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    /// 1-based.
    pub part_number: u32,
    pub size: u64,
    /// The store's tag for these bytes; changes when the part is replaced.
    pub etag: String,
}

/// What assembling a multipart upload's parts produced.
#[derive(Debug)]
pub enum Assembled {
    /// The bytes in a temporary object, measured and hashed; committed like any staged object.
    Staged(StagedBlob),
    /// The bytes already under the file's key (no reader sees them before the file exists), not
    /// yet hashed.
    InPlace { size: u64 },
}

/// The blob port.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Checks the store can be written.
    async fn ping(&self) -> Result<()>;

    /// Streams bytes into a temporary object while hashing them, stopping with `TooLarge` as soon
    /// as more than `limit` bytes arrive. On error nothing is left behind.
    async fn stage(&self, body: ByteStream<'_>, limit: u64) -> Result<StagedBlob, StageError>;
    /// Makes a staged object durable under `key`.
    async fn commit(&self, staged: &StagedBlob, key: &str) -> Result<()>;
    /// Removes a staged object (by its `temp_key`); absent objects are not an error.
    async fn discard(&self, temp_key: &str);

    /// Reads an object, or a range of it.
    async fn open(&self, key: &str, range: Option<ByteRange>) -> Result<ByteStream<'static>>;
    /// Removes an object; absent objects are not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Every committed key, in pages of at most `KEY_PAGE`, in no set order; for the orphan
    /// sweep. The listing is read as the pages are taken, so however many objects the store
    /// holds, memory holds a page or two of their keys.
    fn key_pages(&self) -> BoxStream<'static, Result<Vec<String>>>;
    /// Every committed key, all at once: for tests and tools on small stores.
    async fn list_keys(&self) -> Result<Vec<String>> {
        let pages: Vec<Vec<String>> = self.key_pages().try_collect().await?;
        Ok(pages.into_iter().flatten().collect())
    }
    /// The objects directly in `folder` (a key with no trailing `/`): their names within it and
    /// sizes; empty when there are none.
    async fn list_folder(&self, folder: &str) -> Result<Vec<(String, u64)>>;
    /// Removes every temporary object; returns how many. Only safe when nothing is staging.
    async fn remove_temporaries(&self) -> Result<u64>;
    /// An object's size (and verified sha256, if the store has one), or `None` when absent.
    async fn head(&self, key: &str) -> Result<Option<BlobInfo>>;
    /// Moves an object to another key (replacing what is there) without it ever being partial
    /// under the new key; used to make verified bytes that arrived directly a file's blob.
    async fn promote(&self, from: &str, to: &str) -> Result<()>;

    /// Whether bytes reach this store only through Cabinet (so uploads left UPLOADING by a stopped
    /// server can never finish).
    fn receives_through_cabinet(&self) -> bool;
    /// A URL a client can upload `upload`'s bytes to directly, writing the object `key`, or `None`
    /// to use Cabinet's own storage endpoint. Valid from `upload.created_at` to `upload.expires_at`.
    /// When `key` is the file's own (`upload.blob_key`), the URL may only create the object, never
    /// replace one (S3: a signed `If-None-Match: *`), and no form is offered.
    fn presign_upload(&self, _key: &str, _upload: &Upload) -> Option<PresignedUpload> {
        None
    }
    /// Prepares to hold the parts of a multipart upload (whose file key is `upload.blob_key`) and
    /// returns the store's own id for them (S3's `UploadId`), if it keeps one.
    async fn begin_parts(&self, upload: &Upload) -> Result<Option<String>>;
    /// A URL a client can send one part to directly, or `None` to use Cabinet's own storage
    /// endpoint (then parts arrive through `stage` and `commit_part`). Binds exactly `size` bytes.
    fn presign_part(
        &self,
        _upload: &Upload,
        _part_number: u32,
        _size: u64,
        _signed_at: DateTime<Utc>,
        _expires_at: DateTime<Utc>,
    ) -> Option<PresignedUpload> {
        None
    }
    /// Makes a staged object the upload's part `part_number`, durably, replacing a previous one.
    async fn commit_part(&self, staged: &StagedBlob, upload: &Upload, part_number: u32) -> Result<PartInfo>;
    /// Whether the store joins the parts of its own multipart uploads where the file will be, with
    /// no copy (S3's CompleteMultipartUpload): then bytes that arrive through Cabinet in pieces
    /// (resumable uploads) are sent to it as parts (`put_part`) rather than kept as objects and
    /// joined by reading them back.
    fn joins_parts_in_place(&self) -> bool {
        false
    }
    /// Sends `bytes` (in the pieces they arrived in, never copied into one buffer) as part
    /// `part_number` of the store's multipart upload `upload.multipart_id` (begun by
    /// `begin_parts`), durably, replacing a previous one. Only for stores that
    /// `joins_parts_in_place`.
    async fn put_part(
        &self,
        _upload: &Upload,
        _part_number: u32,
        _bytes: Vec<bytes::Bytes>,
    ) -> Result<PartInfo> {
        Err(crate::Error::internal("this store keeps no multipart uploads of its own"))
    }
    /// Sends `body`, exactly `size` bytes, as part `part_number` as it arrives (like `put_part`,
    /// with no part held in memory). A body that fails or ends short fails the part's request,
    /// so the store keeps no short part. Only for stores that `joins_parts_in_place`.
    async fn put_part_stream(
        &self,
        _upload: &Upload,
        _part_number: u32,
        _size: u64,
        _body: ByteStream<'static>,
    ) -> Result<PartInfo> {
        Err(crate::Error::internal("this store keeps no multipart uploads of its own"))
    }
    /// The parts received so far, by part number.
    async fn list_parts(&self, upload: &Upload) -> Result<Vec<PartInfo>>;
    /// Joins `parts` (every part, in order, as `list_parts` gave them) into one object, streaming
    /// with bounded memory. The parts are consumed.
    async fn assemble_parts(&self, upload: &Upload, parts: &[PartInfo]) -> Result<Assembled>;
    /// Removes every part of an upload (aborts S3's multipart upload); absent parts are not an error.
    async fn remove_parts(&self, upload: &Upload) -> Result<()>;
    /// The (workspace, upload) of every set of parts the store can enumerate; for the orphan sweep.
    async fn part_sets(&self) -> Result<Vec<(String, String)>>;

    /// The origin (`scheme://host[:port]`) browsers talk to when they use this store's presigned
    /// URLs, or `None` when every URL is Cabinet's own.
    fn browser_origin(&self) -> Option<String> {
        None
    }
    /// A URL that serves `key` directly from the store, or `None` to use Cabinet's own signed
    /// download endpoint.
    fn presign_download(&self, _key: &str, _download: &PresignedDownload) -> Option<String> {
        None
    }
}

/// Files up to this size are read whole when served, so a read cache may keep their bytes.
pub const SMALL_OBJECT_BYTES: u64 = 64 * 1024;

/// A short memory of what signed downloads read: a popular file's URL (an avatar, a thumbnail) is
/// fetched thousands of times a second, and without it each fetch is a metadata lookup and a blob
/// read. A record may be trusted only briefly (a change made on another node shows within that
/// window) and is forgotten at once when this process changes its workspace's files; an object's
/// bytes never change under its key. [`NoReadCache`] keeps nothing.
pub trait ReadCache: Send + Sync + 'static {
    /// A live file's record, if it was looked up recently enough to be trusted.
    fn record(&self, workspace: &WorkspaceId, id: &FileId) -> Option<FileRecord>;
    /// Remembers a live file's record.
    fn keep_record(&self, file: &FileRecord);
    /// Forgets every record of a workspace whose files changed.
    fn forget_workspace(&self, workspace: &WorkspaceId);
    /// A small object's bytes, if kept.
    fn object(&self, blob_key: &str) -> Option<Bytes>;
    /// Keeps a small object's bytes (at most [`SMALL_OBJECT_BYTES`] of them).
    fn keep_object(&self, blob_key: &str, bytes: Bytes);
    /// Forgets an object whose blob is deleted.
    fn forget_object(&self, blob_key: &str);
}

/// A read cache that keeps nothing: every read goes to the stores.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoReadCache;

impl ReadCache for NoReadCache {
    fn record(&self, _: &WorkspaceId, _: &FileId) -> Option<FileRecord> {
        None
    }
    fn keep_record(&self, _: &FileRecord) {}
    fn forget_workspace(&self, _: &WorkspaceId) {}
    fn object(&self, _: &str) -> Option<Bytes> {
        None
    }
    fn keep_object(&self, _: &str, _: Bytes) {}
    fn forget_object(&self, _: &str) {}
}

/// Decodes images and makes their thumbnails. CPU-heavy: the core calls it off the async runtime,
/// one render at a time (see `thumbnails`), with the source read whole (at most
/// `thumbnails::MAX_SOURCE_BYTES`).
pub trait ImageCodec: Send + Sync + 'static {
    /// The image's (first frame's) thumbnail, its longest edge at most `size` and never enlarged,
    /// encoded, with its content type; refused as `thumbnail_unsupported`, `image_too_large` or
    /// `image_undecodable` when the codec will not or cannot decode it within its budget.
    fn thumbnail(&self, source: &[u8], size: u32) -> Result<(Bytes, &'static str)>;
}
