//! Cabinet's core: the rules of uploads, files, quota and access, over two ports (metadata and
//! blobs) and a clock. Knows nothing of HTTP, SQL or S3.

pub mod access;
pub mod admin;
pub mod audit;
pub mod clock;
pub mod codes;
pub mod content_type;
pub mod cors;
pub mod error;
pub mod events;
pub mod files;
pub mod folders;
mod group_commit;
pub mod ids;
pub mod intake;
pub mod links;
pub mod listing;
pub mod maintenance;
pub mod metadata;
pub mod model;
pub mod multipart;
pub mod names;
pub mod paths;
pub mod patterns;
pub mod ports;
pub mod quota;
mod reservations;
pub mod resumable;
pub mod rules;
pub mod s3_keys;
pub mod s3_objects;
pub mod signing;
pub mod staged_parts;
pub mod telemetry;
pub mod thumbnails;
pub mod transfers;
pub mod trash;
pub mod uploads;
pub mod webhooks;

use std::sync::Arc;

use chrono::Duration;

pub use access::{Caller, Credential};
pub use clock::{Clock, ManualClock, SystemClock};
pub use codes::Code;
pub use error::{Error, ErrorKind, Result};
pub use ids::{ApiKeyId, DeliveryId, FileId, FolderId, UploadId, WebhookId, WorkspaceId};
pub use model::*;
pub use ports::{
    AccessRuleStore, AuditStore, BlobStore, ByteRange, ByteStream, EventRecord, EventStore, FileStore,
    FolderStore, ImageCodec, KeyStore, LedgerStore, LinkStore, MetadataStore, ReadCache, S3KeyStore,
    SearchStore, TrashStore, UploadStore, WebhookStore, WorkspaceStore,
};
pub use signing::UrlSigner;

/// Where Cabinet's own storage endpoint takes the bytes of an upload: `{prefix}/{ws}/{upload}`.
pub const STORAGE_UPLOAD_PREFIX: &str = "/storage/v1/uploads";
/// Where Cabinet's own storage endpoint serves a file: `{prefix}/{ws}/{file}`.
pub const STORAGE_FILE_PREFIX: &str = "/storage/v1/files";

/// The limits and windows a deployment sets.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The base URL clients reach this service at, without a trailing slash.
    pub public_url: String,
    /// How long an upload URL lives unless the client asks for less.
    pub upload_url_ttl: Duration,
    /// How long a download URL lives unless the client asks otherwise.
    pub download_url_ttl: Duration,
    /// The longest any signed URL may live.
    pub max_url_ttl: Duration,
    /// Expiring download URLs end at the end of a window this long (at most their lifetime), so
    /// every request within one window gets the same URL and caches keyed by URL can hit.
    pub url_window: Duration,
    /// How often each node reads the signing keys again (to sign with a new key, and stop
    /// accepting retired ones).
    pub signing_key_refresh: Duration,
    /// The largest file, whatever the workspace says.
    pub max_file_bytes: u64,
    /// The largest direct (`POST /v1/files`) upload.
    pub direct_upload_max_bytes: u64,
    /// How long past its URL's expiry an upload whose bytes are arriving may keep receiving.
    pub receive_grace: Duration,
    /// How long deleted things stay in the trash before they are purged.
    pub trash_retention: Duration,
    /// How long the event feed keeps an event.
    pub event_retention: Duration,
    /// How long the audit log keeps a record.
    pub audit_retention: Duration,
    /// How long a webhook endpoint's deliveries are retried before it is disabled.
    pub webhook_retry_period: Duration,
    /// Whether webhook receivers may be on loopback, private and other non-public addresses.
    pub webhook_allow_private: bool,
    /// Most uploads a workspace may be receiving at once (0: no cap).
    pub max_uploads_per_workspace: u32,
    /// Most uploads one API key may be sending at once (0: no cap).
    pub max_uploads_per_key: u32,
}

impl Settings {
    /// Seconds an upload URL lives by default.
    pub const DEFAULT_UPLOAD_URL_TTL_SECS: u64 = 3600;
    /// Seconds a download URL lives by default.
    pub const DEFAULT_DOWNLOAD_URL_TTL_SECS: u64 = 3600;
    /// Seconds in a download URL's expiry window by default.
    pub const DEFAULT_URL_WINDOW_SECS: u64 = 600;
    /// Seconds between two reads of the signing keys by default.
    pub const DEFAULT_SIGNING_KEY_REFRESH_SECS: u64 = 10;
    /// The largest file by default: 50 GiB.
    pub const DEFAULT_MAX_FILE_BYTES: u64 = 50 * 1024 * 1024 * 1024;
    /// Days the event feed keeps an event, by default.
    pub const DEFAULT_EVENT_RETENTION_DAYS: i64 = 7;
    /// Hours a failing webhook endpoint is retried before it is disabled, by default.
    pub const DEFAULT_WEBHOOK_RETRY_HOURS: i64 = 24;
    /// The largest direct upload by default: 512 MiB.
    pub const DEFAULT_DIRECT_UPLOAD_MAX_BYTES: u64 = 512 * 1024 * 1024;
    /// Uploads a workspace may be receiving at once, by default.
    pub const DEFAULT_MAX_UPLOADS_PER_WORKSPACE: u32 = 64;
    /// Uploads one API key may be sending at once, by default.
    pub const DEFAULT_MAX_UPLOADS_PER_KEY: u32 = 32;
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".to_owned(),
            upload_url_ttl: Duration::seconds(Self::DEFAULT_UPLOAD_URL_TTL_SECS as i64),
            download_url_ttl: Duration::seconds(Self::DEFAULT_DOWNLOAD_URL_TTL_SECS as i64),
            max_url_ttl: Duration::days(7),
            url_window: Duration::seconds(Self::DEFAULT_URL_WINDOW_SECS as i64),
            signing_key_refresh: Duration::seconds(Self::DEFAULT_SIGNING_KEY_REFRESH_SECS as i64),
            max_file_bytes: Self::DEFAULT_MAX_FILE_BYTES,
            direct_upload_max_bytes: Self::DEFAULT_DIRECT_UPLOAD_MAX_BYTES,
            receive_grace: Duration::hours(1),
            trash_retention: trash::default_retention(),
            event_retention: Duration::days(Self::DEFAULT_EVENT_RETENTION_DAYS),
            audit_retention: Duration::days(audit::DEFAULT_AUDIT_RETENTION_DAYS),
            webhook_retry_period: Duration::hours(Self::DEFAULT_WEBHOOK_RETRY_HOURS),
            webhook_allow_private: false,
            max_uploads_per_workspace: Self::DEFAULT_MAX_UPLOADS_PER_WORKSPACE,
            max_uploads_per_key: Self::DEFAULT_MAX_UPLOADS_PER_KEY,
        }
    }
}

/// The service: every HTTP surface calls these methods and nothing else. A clone is one reference
/// count: the HTTP layer clones it several times per request.
#[derive(Clone)]
pub struct Cabinet(Arc<Parts>);

/// What a `Cabinet` is made of (only the core reaches inside).
pub struct Parts {
    store: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    signer: UrlSigner,
    settings: Settings,
    hot: Arc<dyn ReadCache>,
    renderer: thumbnails::Renderer,
    images: Arc<dyn ImageCodec>,
    transfers: Arc<transfers::TransferSlots>,
    key_reads: links::KeyReads,
    sessions: resumable::Sessions,
    audit_writer: audit::AuditWriter,
    reservations: group_commit::GroupCommit<ports::Reservation, ()>,
    begins: group_commit::GroupCommit<ports::Begin, Option<u64>>,
    direct_begins: group_commit::GroupCommit<(model::Upload, u64), u64>,
    finishes: group_commit::GroupCommit<ports::Finish, bool>,
    sealer: s3_keys::SecretSealer,
    /// Counts the changes answered here that may have written events: the webhook worker and
    /// the endpoints it is sending to wait on it.
    webhook_wake: tokio::sync::watch::Sender<u64>,
    /// How far the sweeper has looked for bytes that landed after their upload failed: the
    /// (URL expiry, upload id) of the last upload it judged (see `remove_late_arrivals`).
    late_arrivals_swept: std::sync::Mutex<(chrono::DateTime<chrono::Utc>, Option<ids::UploadId>)>,
}

impl std::ops::Deref for Cabinet {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

tokio::task_local! {
    /// The public URL of the request being served, when it is not `Settings::public_url`.
    static REQUEST_URL_BASE: Arc<str>;
}

impl Cabinet {
    /// Assembles the service from its ports.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
        signer: UrlSigner,
        settings: Settings,
        reads: Arc<dyn ReadCache>,
        images: Arc<dyn ImageCodec>,
        sealer: s3_keys::SecretSealer,
    ) -> Self {
        // What landed before this process started, the orphan sweep after the restart finds.
        let started = clock.now();
        Self(Arc::new(Parts {
            store,
            blobs,
            clock,
            signer,
            settings,
            hot: reads,
            renderer: Default::default(),
            images,
            transfers: Default::default(),
            key_reads: Default::default(),
            sessions: Default::default(),
            audit_writer: Default::default(),
            reservations: Default::default(),
            begins: Default::default(),
            direct_begins: Default::default(),
            finishes: Default::default(),
            sealer,
            webhook_wake: tokio::sync::watch::Sender::new(0),
            late_arrivals_swept: std::sync::Mutex::new((started, None)),
        }))
    }

    /// The deployment's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The current time by the injected clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// The origin browsers reach the blob store at directly (S3), when it is not this service.
    pub fn storage_origin(&self) -> Option<String> {
        self.blobs.browser_origin()
    }

    /// The base every URL handed out now starts with: the public URL the request arrived at when
    /// the HTTP layer knows it (`with_url_base`), else `Settings::public_url`.
    pub fn url_base(&self) -> String {
        REQUEST_URL_BASE
            .try_with(|base| base.to_string())
            .unwrap_or_else(|_| self.settings.public_url.clone())
    }

    /// Runs `work` handing out URLs that start with `base` (`https://files.example.com`, no
    /// trailing `/`): the address a client used, as a proxy the operator trusts reports it.
    pub fn with_url_base<F: std::future::Future>(
        &self,
        base: String,
        work: F,
    ) -> impl std::future::Future<Output = F::Output> {
        // Not an `async fn`: one would hold `work` twice, as its argument and inside the scope.
        REQUEST_URL_BASE.scope(Arc::from(base), work)
    }

    /// Runs the work of one HTTP request, letting its store lookups share what the store can
    /// share between them (see `MetadataStore::in_request_scope`).
    pub async fn in_request_scope<T: Send>(&self, request: impl std::future::Future<Output = T> + Send) -> T {
        let mut output = None;
        self.store.in_request_scope(Box::pin(async { output = Some(request.await) })).await;
        output.expect("a store runs a request's work to its end")
    }

    /// Checks both stores answer.
    pub async fn ready(&self) -> Result<()> {
        self.store.ping().await?;
        self.blobs.ping().await
    }

    /// Clamps a requested URL lifetime to 1 s ..= the maximum, or the default when absent.
    fn url_ttl(&self, requested_secs: Option<u64>, default: Duration) -> Result<Duration> {
        match requested_secs {
            None => Ok(default),
            // Compared as u64: a huge request must not wrap to a negative lifetime.
            Some(secs) if secs >= 1 && secs <= self.settings.max_url_ttl.num_seconds().max(0) as u64 => {
                Ok(Duration::seconds(secs as i64))
            }
            Some(_) => Err(Error::bad_request(
                Code::InvalidExpiresIn,
                format!(
                    "expires_in must be between 1 and {} seconds",
                    self.settings.max_url_ttl.num_seconds()
                ),
            )),
        }
    }
}
