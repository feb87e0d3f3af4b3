//! The test harness: a real Cabinet on a loopback port with a fresh SQLite database and blob
//! folder, a manual clock, and helpers that speak HTTP to it like any client would.
#![allow(dead_code)]

pub mod raw;
pub mod receiver;
pub mod routes;

use std::sync::Arc;

use cabinet::config::{BlobConfig, StoreConfig};
use cabinet::connections::{serve, ConnectionLimits};
use cabinet::server::assemble;
use cabinet_api::HttpLimits;
use cabinet_blob::S3Config;
use cabinet_core::admin::NewWorkspace;
use cabinet_core::{Cabinet, ManualClock, Role, Settings, WorkspaceId};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// Knobs for a test server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub direct_upload_max_bytes: Option<u64>,
    pub json_upload_max_bytes: Option<usize>,
    pub max_file_bytes: Option<u64>,
    /// The HTTP layer's limits (the JSON upload limit above wins when set).
    pub http: Option<HttpLimits>,
    /// Blobs in this S3 bucket instead of the temporary folder (see `s3_or_skip`).
    pub s3: Option<S3Config>,
    /// Caps on uploads in progress at once (the defaults when `None`).
    pub max_uploads_per_workspace: Option<u32>,
    pub max_uploads_per_key: Option<u32>,
    /// The header-read timeout and per-address cap (default: the server's defaults).
    pub connections: Option<ConnectionLimits>,
    /// Run the webhook delivery worker, with private receivers (the test's, on loopback) allowed
    /// and this retry period (the default when `None`).
    pub webhooks: bool,
    pub webhook_retry_period: Option<chrono::Duration>,
}

/// The S3 server `dev/s3-server` started (`CABINET_TEST_S3_URL` and the AWS variables), under a
/// fresh key prefix so tests sharing the bucket never see each other's objects. `None`, with a
/// notice, when there is none, unless `CABINET_REQUIRE_S3=1`: then the test fails.
pub fn s3_or_skip(test: &str) -> Option<S3Config> {
    let Some(url) = std::env::var("CABINET_TEST_S3_URL").ok().filter(|url| !url.is_empty()) else {
        if std::env::var("CABINET_REQUIRE_S3").as_deref() == Ok("1") {
            panic!("{test}: CABINET_REQUIRE_S3=1 but CABINET_TEST_S3_URL is not set (run dev/test)");
        }
        eprintln!("skipping {test}: no S3 server (CABINET_TEST_S3_URL is not set; dev/test starts one)");
        return None;
    };
    let mut config = S3Config::from_url(&url).expect("CABINET_TEST_S3_URL");
    let run = format!("run-{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    config.prefix = if config.prefix.is_empty() { run } else { format!("{}/{run}", config.prefix) };
    Some(config)
}

/// A workspace and a key for it.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub workspace: WorkspaceId,
    pub key: String,
}

/// A running server.
pub struct TestServer {
    pub url: String,
    pub http: reqwest::Client,
    pub cabinet: Cabinet,
    pub clock: Arc<ManualClock>,
    /// A workspace with no quota limit and an admin key.
    pub tenant: Tenant,
    pub dir: TempDir,
    /// The bucket (and key prefix) blobs live in, when on S3.
    pub s3: Option<S3Config>,
    /// The metadata database, for tests that must set up what the API never allows.
    pub database_url: String,
    server: tokio::task::JoinHandle<()>,
    webhooks: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(webhooks) = &self.webhooks {
            webhooks.abort();
        }
    }
}

/// SQLite in the test's folder, or — with `CABINET_TEST_METADATA=postgres` — a fresh database on
/// the PostgreSQL server that `CABINET_TEST_DATABASE_URL` names.
async fn database_url(dir: &std::path::Path) -> String {
    if std::env::var("CABINET_TEST_METADATA").as_deref() != Ok("postgres") {
        return format!("sqlite://{}", dir.join("cabinet.db").display());
    }
    let admin_url = std::env::var("CABINET_TEST_DATABASE_URL")
        .expect("CABINET_TEST_METADATA=postgres needs CABINET_TEST_DATABASE_URL (dev/test starts a server)");
    let name = format!("http_{}", ulid::Ulid::new().to_string().to_lowercase());
    let admin = sqlx::PgPool::connect(&admin_url).await.expect("connect to the test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.expect("create database");
    admin.close().await;
    let (base, _) = admin_url.rsplit_once('/').expect("a database URL");
    format!("{base}/{name}")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl TestServer {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    /// A server whose blobs live in S3, or `None` (see `s3_or_skip`).
    pub async fn spawn_s3(test: &str) -> Option<Self> {
        let s3 = s3_or_skip(test)?;
        Some(Self::spawn_with(Options { s3: Some(s3), ..Options::default() }).await)
    }

    pub async fn spawn_with(options: Options) -> Self {
        let s3 = options.s3.clone();
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let defaults = Settings::default();
        let settings = Settings {
            public_url: url.clone(),
            direct_upload_max_bytes: options
                .direct_upload_max_bytes
                .unwrap_or(defaults.direct_upload_max_bytes),
            max_file_bytes: options.max_file_bytes.unwrap_or(defaults.max_file_bytes),
            max_uploads_per_workspace: options
                .max_uploads_per_workspace
                .unwrap_or(defaults.max_uploads_per_workspace),
            max_uploads_per_key: options.max_uploads_per_key.unwrap_or(defaults.max_uploads_per_key),
            webhook_allow_private: options.webhooks,
            webhook_retry_period: options.webhook_retry_period.unwrap_or(defaults.webhook_retry_period),
            ..defaults
        };
        let database_url = database_url(dir.path()).await;
        let store = StoreConfig {
            data_dir: dir.path().to_owned(),
            database_url: database_url.clone(),
            blobs: match options.s3 {
                Some(config) => BlobConfig::S3(config),
                None => BlobConfig::Local(dir.path().join("blobs")),
            },
        };
        let clock = Arc::new(ManualClock::starting_now());
        let cabinet = assemble(&store, None, None, settings, clock.clone()).await.expect("assemble");
        let mut limits = options.http.clone().unwrap_or_default();
        limits.json_upload_bytes = options.json_upload_max_bytes.unwrap_or(16 << 20);
        let app = cabinet_api::app(cabinet.clone(), limits);
        let connections = options.connections.unwrap_or_default();
        let server = tokio::spawn(serve(listener, app, connections, std::future::pending()));
        let webhooks = options.webhooks.then(|| {
            let sender =
                Arc::new(cabinet::webhook_sender::HttpWebhookSender::new(true).expect("webhook sender"));
            let cabinet = cabinet.clone();
            tokio::spawn(async move {
                cabinet
                    .deliver_webhooks_forever(sender, Arc::new(cabinet_api::v1::events::WebhookBodies))
                    .await
            })
        });
        let http = reqwest::Client::builder().build().unwrap();
        let mut this = Self {
            url,
            http,
            cabinet,
            clock,
            tenant: Tenant { workspace: WorkspaceId::generate(), key: String::new() },
            dir,
            s3,
            database_url,
            server,
            webhooks,
        };
        this.tenant = this.tenant(None, Role::Admin).await;
        this
    }

    /// Runs one SQL statement straight on the metadata database (SQLite or PostgreSQL): for state
    /// that only an older version or a bug could leave, never for what the API can do.
    pub async fn raw_sql(&self, statement: &str) {
        if self.database_url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.database_url).await.expect("open SQLite");
            sqlx::query(statement).execute(&pool).await.expect("raw SQL");
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(&self.database_url).await.expect("connect to PostgreSQL");
            sqlx::query(statement).execute(&pool).await.expect("raw SQL");
            pool.close().await;
        }
    }

    /// A new workspace (with an optional quota) and a key of the given role for it.
    pub async fn tenant(&self, limit_bytes: Option<u64>, role: Role) -> Tenant {
        let ws = self
            .cabinet
            .create_workspace(NewWorkspace {
                name: format!("ws-{}", ulid::Ulid::new()),
                limit_bytes,
                max_file_bytes: None,
            })
            .await
            .expect("workspace");
        let key = self.key_for(&ws.id, role).await;
        Tenant { workspace: ws.id, key }
    }

    pub async fn key_for(&self, ws: &WorkspaceId, role: Role) -> String {
        self.cabinet.create_api_key(vec![ws.clone()], role, None).await.expect("key").secret
    }

    /// A request with a key.
    pub fn request(&self, method: Method, path: &str, key: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url)).bearer_auth(key)
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path, &self.tenant.key)
    }

    /// Sends a request and returns its status and JSON body (Null when there is none).
    pub async fn send(&self, request: RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    /// Starts an upload for `tenant`.
    pub async fn start_upload(&self, tenant: &Tenant, body: Value) -> (StatusCode, Value) {
        self.send(self.request(Method::POST, "/v1/uploads", &tenant.key).json(&body)).await
    }

    /// Uploads bytes through the signed URL and returns the finished upload JSON.
    pub async fn upload(&self, tenant: &Tenant, name: &str, bytes: &[u8]) -> Value {
        let (status, ticket) = self.start_upload(tenant, json!({"name": name, "size": bytes.len()})).await;
        assert_eq!(status, StatusCode::CREATED, "{ticket}");
        let (status, done) =
            self.send(self.http.put(ticket["upload_url"].as_str().unwrap()).body(bytes.to_vec())).await;
        assert_eq!(status, StatusCode::OK, "{done}");
        assert_eq!(done["status"], "SUCCESS");
        done
    }

    /// The workspace's quota JSON.
    pub async fn quota(&self, tenant: &Tenant) -> Value {
        let (status, quota) = self.send(self.request(Method::GET, "/v1/quota", &tenant.key)).await;
        assert_eq!(status, StatusCode::OK);
        quota
    }

    /// Files under the blob folder's temporary area.
    pub fn temporary_files(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("blobs/tmp")).map(|dir| dir.count()).unwrap_or(0)
    }

    /// Bytes in the blob folder's temporary area.
    pub fn temporary_bytes(&self) -> u64 {
        std::fs::read_dir(self.dir.path().join("blobs/tmp"))
            .map(|dir| dir.flatten().filter_map(|entry| entry.metadata().ok()).map(|meta| meta.len()).sum())
            .unwrap_or(0)
    }

    /// Committed blobs of files (thumbnails, under `thumbnails/`, are not counted).
    pub fn stored_blobs(&self) -> usize {
        let objects = self.dir.path().join("blobs/objects");
        std::fs::read_dir(objects)
            .map(|dirs| {
                dirs.flatten()
                    .filter(|d| d.file_name() != "thumbnails")
                    .map(|d| std::fs::read_dir(d.path()).map(|f| f.count()).unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// Asserts an error response has the documented shape and code.
pub fn assert_error(status: StatusCode, body: &Value, expected_status: StatusCode, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}
