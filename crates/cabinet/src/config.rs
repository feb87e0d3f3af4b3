//! Settings: flags, then `CABINET_*` environment variables, then a TOML file, then defaults.
//! Every setting is one field of [`StoreSettings`] or [`ServeSettings`], where its flag, its
//! variable, its key in the file (the field's name) and its default are written once; a default
//! is a constant of the crate whose rule it is (core for uploads and the trash, api for HTTP
//! limits), and `cabinet serve --help` shows it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use cabinet_api::{CorsOrigins, HttpLimits, MetricsAccess, TrustedProxies};
use cabinet_blob::S3Config;
use cabinet_core::Settings;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, ValueEnum};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::connections::{self, ConnectionLimits};

/// The data folder when none is given.
pub const DEFAULT_DATA_DIR: &str = "cabinet-data";
/// The blob storage when none is given: a folder under the data folder.
pub const DEFAULT_STORAGE: &str = "local";
/// The address to listen on when none is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Seconds between the sweeper's rounds by default.
pub const DEFAULT_SWEEP_INTERVAL_SECS: u64 = 30;
/// Seconds in-flight requests get after SIGTERM by default.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;
/// The longest trash retention accepted (a larger one is lowered to it): 100 years.
const MAX_TRASH_RETENTION_DAYS: u64 = 36_500;

/// Sizes (`1GiB`, `10MB`, or bytes) and durations (`1h`, `90s`, or seconds; the trash's
/// retention in days, or `4w`) in flags, variables and the settings file alike.
pub(crate) mod human {
    use serde::{Deserialize, Deserializer};

    use crate::units::{parse_duration, parse_size};

    /// A number as it is, or text read as people write it.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }

    fn fit<T: TryFrom<u64>>(value: u64) -> Result<T, String> {
        T::try_from(value).map_err(|_| format!("{value} is too large"))
    }

    fn days_of(raw: &str) -> Result<u64, String> {
        match raw.trim().parse::<u64>() {
            Ok(days) => Ok(days),
            Err(_) => {
                let seconds = parse_duration(raw).map_err(|err| err.message)?;
                if seconds % 86_400 != 0 {
                    return Err(format!("{raw:?} is not a whole number of days"));
                }
                Ok(seconds / 86_400)
            }
        }
    }

    pub fn bytes_arg<T: TryFrom<u64>>(raw: &str) -> Result<T, String> {
        fit(parse_size(raw).map_err(|err| err.message)?)
    }

    pub fn seconds_arg<T: TryFrom<u64>>(raw: &str) -> Result<T, String> {
        fit(parse_duration(raw).map_err(|err| err.message)?)
    }

    pub fn days_arg<T: TryFrom<u64>>(raw: &str) -> Result<T, String> {
        fit(days_of(raw)?)
    }

    fn read<'de, D: Deserializer<'de>, T: TryFrom<u64>>(
        deserializer: D,
        text: fn(&str) -> Result<u64, String>,
    ) -> Result<T, D::Error> {
        let value = match Raw::deserialize(deserializer)? {
            Raw::Number(n) => n,
            Raw::Text(raw) => text(&raw).map_err(serde::de::Error::custom)?,
        };
        fit(value).map_err(serde::de::Error::custom)
    }

    pub fn bytes<'de, D: Deserializer<'de>, T: TryFrom<u64>>(deserializer: D) -> Result<T, D::Error> {
        read(deserializer, |raw| parse_size(raw).map_err(|err| err.message))
    }

    pub fn seconds<'de, D: Deserializer<'de>, T: TryFrom<u64>>(deserializer: D) -> Result<T, D::Error> {
        read(deserializer, |raw| parse_duration(raw).map_err(|err| err.message))
    }

    pub fn days<'de, D: Deserializer<'de>, T: TryFrom<u64>>(deserializer: D) -> Result<T, D::Error> {
        read(deserializer, days_of)
    }
}

/// Where the data lives; shared by `serve` and `admin`.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct StoreSettings {
    /// A TOML file with any of the settings below (as snake_case keys).
    #[arg(long, env = "CABINET_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// The data folder: the SQLite database, blobs and the signing key live here by default.
    #[arg(long, env = "CABINET_DATA_DIR", global = true, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Metadata database URL (default: sqlite://<data-dir>/cabinet.db).
    #[arg(long, env = "CABINET_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Blob storage: `local` (under <data-dir>/blobs), `local:/some/folder`, or
    /// `s3://bucket?endpoint=http://host:port&region=us-east-1` (credentials from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; path-style with an endpoint).
    #[arg(long, env = "CABINET_STORAGE", global = true, default_value = DEFAULT_STORAGE)]
    pub storage: String,
}

/// The log's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for a person to read.
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

/// Settings only the server needs.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct ServeSettings {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "CABINET_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Base URL clients reach this server at, used in signed URLs (default: the address a
    /// `--trusted-proxies` proxy reports the client used (`X-Forwarded-Host`/`-Proto`,
    /// `Forwarded`), else http(s)://<listen>).
    #[arg(long, env = "CABINET_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Secret for signing URLs, at least 32 bytes; the same on every node
    /// (default: generated once into <data-dir>/signing.key).
    #[arg(long, env = "CABINET_SIGNING_SECRET", hide_env_values = true)]
    pub signing_secret: Option<String>,
    /// Lifetime of upload URLs, in seconds (or `90s`, `15m`, `1h`).
    #[arg(
        long,
        env = "CABINET_UPLOAD_URL_TTL",
        default_value_t = Settings::DEFAULT_UPLOAD_URL_TTL_SECS,
        value_parser = human::seconds_arg::<u64>
    )]
    #[serde(deserialize_with = "human::seconds")]
    pub upload_url_ttl: u64,
    /// Default lifetime of download URLs, in seconds (or `90s`, `15m`, `1h`).
    #[arg(
        long,
        env = "CABINET_DOWNLOAD_URL_TTL",
        default_value_t = Settings::DEFAULT_DOWNLOAD_URL_TTL_SECS,
        value_parser = human::seconds_arg::<u64>
    )]
    #[serde(deserialize_with = "human::seconds")]
    pub download_url_ttl: u64,
    /// Download URLs expire at the end of a window this long, in seconds (at most their
    /// lifetime): every request for the same file within one window gets the same URL, so
    /// browser and CDN caches keyed by URL hit.
    #[arg(
        long,
        env = "CABINET_URL_WINDOW",
        default_value_t = Settings::DEFAULT_URL_WINDOW_SECS,
        value_parser = human::seconds_arg::<u64>
    )]
    #[serde(deserialize_with = "human::seconds")]
    pub url_window: u64,
    /// How often this server reads the signing keys again, in seconds (or `90s`, `15m`, `1h`):
    /// after `cabinet admin rotate-signing-key`, it signs with the new key (and stops accepting
    /// retired ones) within this time.
    #[arg(
        long,
        env = "CABINET_SIGNING_KEY_REFRESH",
        default_value_t = Settings::DEFAULT_SIGNING_KEY_REFRESH_SECS,
        value_parser = human::seconds_arg::<u64>
    )]
    #[serde(deserialize_with = "human::seconds")]
    pub signing_key_refresh: u64,
    /// Largest file any workspace may hold, in bytes (or `10MiB`, `1GiB`).
    #[arg(
        long,
        env = "CABINET_MAX_FILE_BYTES",
        default_value_t = Settings::DEFAULT_MAX_FILE_BYTES,
        value_parser = human::bytes_arg::<u64>
    )]
    #[serde(deserialize_with = "human::bytes")]
    pub max_file_bytes: u64,
    /// Largest direct (`POST /v1/files`) upload, in bytes (or `10MiB`, `1GiB`).
    #[arg(
        long,
        env = "CABINET_DIRECT_UPLOAD_MAX_BYTES",
        default_value_t = Settings::DEFAULT_DIRECT_UPLOAD_MAX_BYTES,
        value_parser = human::bytes_arg::<u64>
    )]
    #[serde(deserialize_with = "human::bytes")]
    pub direct_upload_max_bytes: u64,
    /// Largest direct upload through the MAVI dialect (`POST /upload`), in bytes (or `10MiB`,
    /// `1GiB`); larger files are told to use its signed URL.
    #[arg(
        long,
        env = "CABINET_MAVI_DIRECT_UPLOAD_MAX_BYTES",
        default_value_t = HttpLimits::DEFAULT_MAVI_DIRECT_UPLOAD_BYTES,
        value_parser = human::bytes_arg::<u64>
    )]
    #[serde(deserialize_with = "human::bytes")]
    pub mavi_direct_upload_max_bytes: u64,
    /// Largest file a MAVI signed URL (`POST /upload/signed-url`) takes, in bytes or `10MiB`,
    /// `1GiB` (its docs: 5 GB).
    #[arg(
        long,
        env = "CABINET_MAVI_SIGNED_UPLOAD_MAX_BYTES",
        default_value_t = HttpLimits::DEFAULT_MAVI_SIGNED_UPLOAD_BYTES,
        value_parser = human::bytes_arg::<u64>
    )]
    #[serde(deserialize_with = "human::bytes")]
    pub mavi_signed_upload_max_bytes: u64,
    /// The file extensions the MAVI dialect accepts, comma-separated (its documented formats by
    /// default); other files get 415.
    #[arg(long, env = "CABINET_MAVI_FORMATS", default_value = HttpLimits::DEFAULT_MAVI_FORMATS)]
    pub mavi_formats: String,
    /// Largest file the Mavera dialect takes that is not a video, in bytes or `10MiB`, `1GiB`
    /// (its docs: 10 MB).
    #[arg(
        long,
        env = "CABINET_MAVERA_FILE_MAX_BYTES",
        default_value_t = HttpLimits::DEFAULT_MAVERA_FILE_BYTES,
        value_parser = human::bytes_arg::<u64>
    )]
    #[serde(deserialize_with = "human::bytes")]
    pub mavera_file_max_bytes: u64,
    /// Largest video (`video/*`) the Mavera dialect takes, in bytes or `10MiB`, `1GiB` (its docs: 2 GB).
    #[arg(
        long,
        env = "CABINET_MAVERA_VIDEO_MAX_BYTES",
        default_value_t = HttpLimits::DEFAULT_MAVERA_VIDEO_BYTES,
        value_parser = human::bytes_arg::<u64>
    )]
    #[serde(deserialize_with = "human::bytes")]
    pub mavera_video_max_bytes: u64,
    /// Largest JSON (base64) upload request body, in bytes (or `10MiB`, `1GiB`).
    #[arg(
        long,
        env = "CABINET_JSON_UPLOAD_MAX_BYTES",
        default_value_t = HttpLimits::DEFAULT_JSON_UPLOAD_BYTES,
        value_parser = human::bytes_arg::<usize>
    )]
    #[serde(deserialize_with = "human::bytes")]
    pub json_upload_max_bytes: usize,
    /// How often the sweeper fails expired uploads, in seconds (at least 1).
    #[arg(
        long,
        env = "CABINET_SWEEP_INTERVAL",
        default_value_t = DEFAULT_SWEEP_INTERVAL_SECS,
        value_parser = human::seconds_arg::<u64>
    )]
    #[serde(deserialize_with = "human::seconds")]
    pub sweep_interval: u64,
    /// How long in-flight requests may take to finish after SIGTERM, in seconds (or `90s`, `15m`, `1h`).
    #[arg(
        long,
        env = "CABINET_SHUTDOWN_GRACE",
        default_value_t = DEFAULT_SHUTDOWN_GRACE_SECS,
        value_parser = human::seconds_arg::<u64>
    )]
    #[serde(deserialize_with = "human::seconds")]
    pub shutdown_grace: u64,
    /// Days deleted files and folders stay in the trash before they are purged (at most 36500).
    #[arg(
        long,
        env = "CABINET_TRASH_RETENTION_DAYS",
        default_value_t = cabinet_core::trash::DEFAULT_RETENTION_DAYS,
        value_parser = human::days_arg::<u64>
    )]
    #[serde(deserialize_with = "human::days")]
    pub trash_retention_days: u64,
    /// Days the event feed (`GET /v1/events`) keeps an event (at most 36500).
    #[arg(
        long,
        env = "CABINET_EVENT_RETENTION_DAYS",
        default_value_t = Settings::DEFAULT_EVENT_RETENTION_DAYS as u64,
        value_parser = human::days_arg::<u64>
    )]
    #[serde(deserialize_with = "human::days")]
    pub event_retention_days: u64,
    /// Days the audit log (`GET /v1/audit`, `cabinet admin audit`) keeps a record (at most 36500).
    #[arg(
        long,
        env = "CABINET_AUDIT_RETENTION_DAYS",
        default_value_t = cabinet_core::audit::DEFAULT_AUDIT_RETENTION_DAYS as u64,
        value_parser = human::days_arg::<u64>
    )]
    #[serde(deserialize_with = "human::days")]
    pub audit_retention_days: u64,
    /// Hours a failing webhook receiver is retried (exponential backoff with jitter) before its
    /// endpoint is disabled and `webhook.disabled` recorded; fractions allowed (`0.01` is 36 s).
    #[arg(
        long,
        env = "CABINET_WEBHOOK_RETRY_HOURS",
        default_value_t = Settings::DEFAULT_WEBHOOK_RETRY_HOURS as f64,
        value_parser = webhook_retry_hours
    )]
    pub webhook_retry_hours: f64,
    /// Let webhooks deliver to loopback, private, link-local and other non-public addresses
    /// (refused by default: a receiver URL must not reach into the server's own network).
    #[arg(long, env = "CABINET_WEBHOOK_ALLOW_PRIVATE")]
    #[serde(default)]
    pub webhook_allow_private: bool,
    /// Log format.
    #[arg(long, env = "CABINET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Largest body of a JSON API request (not uploads), in bytes (or `10MiB`, `1GiB`).
    #[arg(
        long,
        env = "CABINET_JSON_BODY_MAX_BYTES",
        default_value_t = HttpLimits::DEFAULT_JSON_BODY_BYTES,
        value_parser = human::bytes_arg::<usize>
    )]
    #[serde(deserialize_with = "human::bytes")]
    pub json_body_max_bytes: usize,
    /// Longest request URL (path and query), in bytes (or `10MiB`, `1GiB`); longer is refused with 414.
    #[arg(
        long,
        env = "CABINET_MAX_URL_BYTES",
        default_value_t = HttpLimits::DEFAULT_MAX_URL_BYTES,
        value_parser = human::bytes_arg::<usize>
    )]
    #[serde(deserialize_with = "human::bytes")]
    pub max_url_bytes: usize,
    /// Largest request header section, in bytes (or `10MiB`, `1GiB`); larger is refused with 431.
    #[arg(
        long,
        env = "CABINET_MAX_HEADER_BYTES",
        default_value_t = HttpLimits::DEFAULT_MAX_HEADER_BYTES,
        value_parser = human::bytes_arg::<usize>
    )]
    #[serde(deserialize_with = "human::bytes")]
    pub max_header_bytes: usize,
    /// Seconds a request body may send nothing before the request is cut off, and a client may take
    /// none of an answer before its connection is closed (0: never).
    #[arg(
        long,
        env = "CABINET_BODY_IDLE_TIMEOUT",
        default_value_t = HttpLimits::DEFAULT_BODY_IDLE_TIMEOUT_SECS,
        value_parser = human::seconds_arg::<u64>
    )]
    #[serde(deserialize_with = "human::seconds")]
    pub body_idle_timeout: u64,
    /// Least bytes per second a request body must send, averaged over the rate window; a slower
    /// body is cut off (0: no minimum).
    #[arg(
        long,
        env = "CABINET_BODY_MIN_RATE",
        default_value_t = HttpLimits::DEFAULT_BODY_MIN_RATE,
        value_parser = human::bytes_arg::<u64>
    )]
    #[serde(deserialize_with = "human::bytes")]
    pub body_min_rate: u64,
    /// Seconds of waiting over which the body's minimum rate is averaged.
    #[arg(
        long,
        env = "CABINET_BODY_RATE_WINDOW",
        default_value_t = HttpLimits::DEFAULT_BODY_RATE_WINDOW_SECS,
        value_parser = human::seconds_arg::<u64>
    )]
    #[serde(deserialize_with = "human::seconds")]
    pub body_rate_window: u64,
    /// Most uploads a workspace may be sending at once; more are refused with 429 (0: no cap).
    #[arg(
        long,
        env = "CABINET_MAX_UPLOADS_PER_WORKSPACE",
        default_value_t = Settings::DEFAULT_MAX_UPLOADS_PER_WORKSPACE
    )]
    pub max_uploads_per_workspace: u32,
    /// Most direct uploads one API key may be sending at once; more are refused with 429 (0: no cap).
    #[arg(long, env = "CABINET_MAX_UPLOADS_PER_KEY", default_value_t = Settings::DEFAULT_MAX_UPLOADS_PER_KEY)]
    pub max_uploads_per_key: u32,
    /// Requests per minute per credential (an API key however it is spelled, an end user), per
    /// client IP without one; 0 turns limiting off.
    #[arg(
        long,
        env = "CABINET_RATE_LIMIT_PER_MINUTE",
        default_value_t = HttpLimits::DEFAULT_RATE_LIMIT_PER_MINUTE
    )]
    pub rate_limit_per_minute: u32,
    /// Proxies (addresses or networks, comma-separated: `10.0.0.0/8,127.0.0.1`) whose
    /// `X-Forwarded-For` names the client, for the per-IP rate limit of requests without a
    /// credential; without it, the TCP peer is the client.
    #[arg(long, env = "CABINET_TRUSTED_PROXIES", default_value = "")]
    #[serde(default)]
    pub trusted_proxies: String,
    /// The web origins browsers may call this server from (CORS), comma-separated
    /// (`https://app.example.com,http://localhost:3000`); `*` for any (the default, for a laptop:
    /// set a list in production), `none` (or empty) for no CORS at all. A workspace's own list
    /// (`cabinet admin set-cors`) replaces it on that workspace's signed and public URLs.
    #[arg(long, env = "CABINET_CORS_ORIGINS", default_value = "*")]
    #[serde(default)]
    pub cors_origins: String,
    /// Serve HTTPS with this certificate chain (PEM); needs `--tls-key`. Reloaded on SIGHUP.
    #[arg(long, env = "CABINET_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `--tls-cert`; reloaded with it on SIGHUP.
    #[arg(long, env = "CABINET_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Serve the S3-compatible surface on this address (off by default): a workspace is a bucket,
    /// signed with keys from `cabinet admin create-s3-key`. Path-style requests; see --s3-domain.
    #[arg(long, env = "CABINET_S3_LISTEN")]
    pub s3_listen: Option<SocketAddr>,
    /// Also accept virtual-host-style S3 requests (`BUCKET.DOMAIN`) for this domain: as clients
    /// send it in Host, with the port when they send one (`s3.example.com:9000`).
    #[arg(long, env = "CABINET_S3_DOMAIN", requires = "s3_listen")]
    pub s3_domain: Option<String>,
    /// The key (64 hex characters) that seals S3 secrets and webhook signing secrets at rest;
    /// the same on every node and for `cabinet admin` (default: generated once into
    /// <data-dir>/s3-secret.key).
    #[arg(long, env = "CABINET_S3_SECRET_KEY", hide_env_values = true)]
    pub s3_secret_key: Option<String>,
    /// Serve `/metrics` (Prometheus text format): `on` or `off`.
    #[arg(long, env = "CABINET_METRICS", default_value = "on", value_parser = ["on", "off"])]
    pub metrics: String,
    /// When set, `/metrics` answers only requests with `Authorization: Bearer <this token>`.
    #[arg(long, env = "CABINET_METRICS_TOKEN", default_value = "", hide_env_values = true)]
    pub metrics_token: String,
    /// Seconds a client may take to send a request's headers once it has begun (and a connection
    /// may wait for its first or next request) before the connection is closed (0: never).
    #[arg(
        long,
        env = "CABINET_HEADER_READ_TIMEOUT",
        default_value_t = connections::DEFAULT_HEADER_READ_TIMEOUT_SECS,
        value_parser = human::seconds_arg::<u64>
    )]
    #[serde(deserialize_with = "human::seconds")]
    pub header_read_timeout: u64,
    /// Open connections allowed from one client IP address; more are closed at once (0: no cap).
    #[arg(
        long,
        env = "CABINET_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = connections::DEFAULT_MAX_PER_ADDRESS
    )]
    pub max_connections_per_address: usize,
    /// Open connections allowed in all, on each listener; more are closed at once (0: no cap).
    /// Lowered at start to three quarters of the open files the server may have (shared with
    /// `--s3-listen`).
    #[arg(long, env = "CABINET_MAX_CONNECTIONS", default_value_t = connections::DEFAULT_MAX_TOTAL)]
    pub max_connections: usize,
    /// Once listening (and the first key exists), write `{"url", "public_url", "workspace", "key"}`
    /// to this file as JSON, atomically; `workspace` and `key` are null unless this start created
    /// them. For scripts and tests that wait for the server.
    #[arg(long, env = "CABINET_READY_FILE")]
    pub ready_file: Option<PathBuf>,
}

impl ServeSettings {
    /// The core settings these imply, for a server reached at `public_url`.
    pub fn core_settings(&self, public_url: String) -> Settings {
        Settings {
            public_url,
            upload_url_ttl: chrono::Duration::seconds(self.upload_url_ttl as i64),
            download_url_ttl: chrono::Duration::seconds(self.download_url_ttl as i64),
            url_window: chrono::Duration::seconds(self.url_window.max(1) as i64),
            signing_key_refresh: chrono::Duration::seconds(self.signing_key_refresh.max(1) as i64),
            max_file_bytes: self.max_file_bytes,
            direct_upload_max_bytes: self.direct_upload_max_bytes,
            trash_retention: chrono::Duration::days(
                self.trash_retention_days.min(MAX_TRASH_RETENTION_DAYS) as i64
            ),
            event_retention: chrono::Duration::days(
                self.event_retention_days.min(MAX_TRASH_RETENTION_DAYS) as i64
            ),
            audit_retention: chrono::Duration::days(
                self.audit_retention_days.min(MAX_TRASH_RETENTION_DAYS) as i64
            ),
            // A settings file's value skips the flag's parser: bounded here as well.
            webhook_retry_period: chrono::Duration::milliseconds(
                (self.webhook_retry_hours.clamp(0.0001, 8760.0) * 3_600_000.0) as i64,
            ),
            webhook_allow_private: self.webhook_allow_private,
            max_uploads_per_workspace: self.max_uploads_per_workspace,
            max_uploads_per_key: self.max_uploads_per_key,
            ..Settings::default()
        }
    }

    /// The HTTP layer's limits these imply, for a server reached at `public_url`.
    pub fn http_limits(&self, public_url: &str) -> anyhow::Result<HttpLimits> {
        let trusted_proxies = TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|err| anyhow::anyhow!("--trusted-proxies: {err}"))?;
        let cors_origins =
            CorsOrigins::parse(&self.cors_origins).map_err(|err| anyhow::anyhow!("--cors-origins: {err}"))?;
        Ok(HttpLimits {
            json_upload_bytes: self.json_upload_max_bytes,
            json_body_bytes: self.json_body_max_bytes,
            max_url_bytes: self.max_url_bytes,
            max_header_bytes: self.max_header_bytes,
            body_idle_timeout: Duration::from_secs(self.body_idle_timeout),
            body_min_rate: self.body_min_rate,
            body_rate_window: Duration::from_secs(self.body_rate_window),
            rate_limit_per_minute: self.rate_limit_per_minute,
            // Only without a configured public URL: one the operator set is the address to hand out.
            url_base_from_proxies: (self.public_url.is_none() && trusted_proxies != TrustedProxies::none())
                .then(|| if public_url.starts_with("https://") { "https" } else { "http" }),
            trusted_proxies,
            mavi_direct_upload_bytes: self.mavi_direct_upload_max_bytes,
            mavi_signed_upload_bytes: self.mavi_signed_upload_max_bytes,
            mavi_formats: HttpLimits::formats(&self.mavi_formats),
            mavera_file_bytes: self.mavera_file_max_bytes,
            mavera_video_bytes: self.mavera_video_max_bytes,
            strict_transport_security: public_url.starts_with("https://"),
            metrics: match (self.metrics.as_str(), self.metrics_token.as_str()) {
                ("off", _) => MetricsAccess::Off,
                ("on", "") => MetricsAccess::Open,
                ("on", token) => MetricsAccess::Token(token.to_owned()),
                (other, _) => anyhow::bail!("--metrics: {other:?} is neither `on` nor `off`"),
            },
            cors_origins,
        })
    }

    /// The connection limits these imply (0 turns each off).
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: (self.header_read_timeout > 0)
                .then(|| Duration::from_secs(self.header_read_timeout)),
            max_per_address: (self.max_connections_per_address > 0)
                .then_some(self.max_connections_per_address),
            max_total: (self.max_connections > 0).then_some(self.max_connections),
            send_timeout: (self.body_idle_timeout > 0).then(|| Duration::from_secs(self.body_idle_timeout)),
        }
    }

    /// How often the sweeper runs (never more than once a second).
    pub fn sweep_every(&self) -> Duration {
        Duration::from_secs(self.sweep_interval.max(1))
    }
}

/// Where the stores are.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub blobs: BlobConfig,
}

/// Where the blobs are.
#[derive(Debug, Clone)]
pub enum BlobConfig {
    /// A local folder.
    Local(PathBuf),
    /// An S3 bucket.
    S3(S3Config),
}

impl StoreSettings {
    /// Where the stores these name are.
    pub fn stores(&self) -> anyhow::Result<StoreConfig> {
        let data_dir = self.data_dir.clone();
        let database_url = self
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("cabinet.db").display()));
        let blobs = match self.storage.as_str() {
            "local" => BlobConfig::Local(data_dir.join("blobs")),
            other if other.starts_with("s3://") => {
                BlobConfig::S3(S3Config::from_url(other).map_err(|err| anyhow::anyhow!("--storage: {err}"))?)
            }
            other => match other.strip_prefix("local:") {
                Some(path) if !path.is_empty() => BlobConfig::Local(PathBuf::from(path)),
                _ => bail!("--storage must be `local`, `local:/path` or `s3://bucket?...`, not {other:?}"),
            },
        };
        Ok(StoreConfig { data_dir, database_url, blobs })
    }
}

/// The settings file named by `--config`, if any: its keys, checked against every setting.
struct SettingsFile {
    path: PathBuf,
    table: toml::Table,
}

impl SettingsFile {
    fn load(path: Option<&Path>) -> anyhow::Result<Option<Self>> {
        let Some(path) = path else { return Ok(None) };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let known = [setting_names::<StoreSettings>(), setting_names::<ServeSettings>()].concat();
        if let Some(unknown) = table.keys().find(|key| !known.contains(key)) {
            bail!("{}: unknown setting `{unknown}`", path.display());
        }
        Ok(Some(Self { path: path.to_owned(), table }))
    }

    /// `parsed` (from the command line and the defaults) with each setting the file holds and the
    /// command line (flag or environment) did not give taken from the file.
    fn under<T: Serialize + DeserializeOwned>(&self, parsed: &T, matches: &ArgMatches) -> anyhow::Result<T> {
        let serde_json::Value::Object(mut fields) = serde_json::to_value(parsed)? else {
            bail!("settings serialize as a map");
        };
        for (key, value) in &self.table {
            if !fields.contains_key(key) || given(matches, key) {
                continue;
            }
            fields.insert(key.clone(), serde_json::to_value(value)?);
            // One key at a time, so an error names the key.
            serde_json::from_value::<T>(serde_json::Value::Object(fields.clone()))
                .with_context(|| format!("{}: `{key}`", self.path.display()))?;
        }
        Ok(serde_json::from_value(serde_json::Value::Object(fields))?)
    }
}

/// The file keys of a group of settings: its flags' names, as snake_case.
fn setting_names<T: Args>() -> Vec<String> {
    T::augment_args(clap::Command::new("settings"))
        .get_arguments()
        .map(|arg| arg.get_id().as_str().to_owned())
        .filter(|name| name != "config")
        .collect()
}

/// Whether the command line gave a setting (a flag or its environment variable), rather than its
/// default.
fn given(matches: &ArgMatches, name: &str) -> bool {
    matches!(matches.value_source(name), Some(ValueSource::CommandLine | ValueSource::EnvVariable))
}

/// The store settings, with the file's under the command line's (`matches`: where they were
/// parsed).
pub fn store_settings(parsed: &StoreSettings, matches: &ArgMatches) -> anyhow::Result<StoreSettings> {
    match SettingsFile::load(parsed.config.as_deref())? {
        None => Ok(parsed.clone()),
        Some(file) => {
            let mut layered: StoreSettings = file.under(parsed, matches)?;
            layered.config = parsed.config.clone();
            Ok(layered)
        }
    }
}

/// The serve settings, with the file's (named by the store settings) under the command line's.
pub fn serve_settings(
    store: &StoreSettings,
    parsed: &ServeSettings,
    matches: &ArgMatches,
) -> anyhow::Result<ServeSettings> {
    match SettingsFile::load(store.config.as_deref())? {
        None => Ok(parsed.clone()),
        Some(file) => file.under(parsed, matches),
    }
}

/// `--webhook-retry-hours`: more than 0, at most a year.
fn webhook_retry_hours(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(hours) if hours > 0.0 && hours <= 8760.0 => Ok(hours),
        _ => Err("hours between 0 and 8760, such as 24 or 0.5".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        store: StoreSettings,
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Debug, Subcommand)]
    enum Command {
        Serve(Box<ServeSettings>),
    }

    /// Parses `cabinet ARGS…` (no environment: these tests set none) and layers the file under it.
    fn settings(args: &[&str]) -> anyhow::Result<(StoreSettings, ServeSettings)> {
        let matches =
            Cli::command().try_get_matches_from(std::iter::once("cabinet").chain(args.iter().copied()))?;
        let cli = Cli::from_arg_matches(&matches)?;
        let Command::Serve(serve) = cli.command;
        let store = store_settings(&cli.store, &matches)?;
        let serve_matches = matches.subcommand_matches("serve").expect("serve");
        let serve = serve_settings(&store, &serve, serve_matches)?;
        Ok((store, serve))
    }

    fn file_with(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn every_setting_has_its_default_without_a_flag_or_a_file() {
        let (store, serve) = settings(&["serve"]).unwrap();
        assert_eq!(store.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(store.storage, DEFAULT_STORAGE);
        assert_eq!(serve.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(serve.log_format, LogFormat::Text);
        let defaults = Settings::default();
        let core = serve.core_settings(defaults.public_url.clone());
        assert_eq!(
            (core.upload_url_ttl, core.download_url_ttl, core.max_file_bytes, core.direct_upload_max_bytes),
            (
                defaults.upload_url_ttl,
                defaults.download_url_ttl,
                defaults.max_file_bytes,
                defaults.direct_upload_max_bytes
            )
        );
        assert_eq!(core.trash_retention, defaults.trash_retention);
        assert_eq!(
            (core.max_uploads_per_workspace, core.max_uploads_per_key),
            (defaults.max_uploads_per_workspace, defaults.max_uploads_per_key)
        );
        let limits = serve.http_limits("http://127.0.0.1:8080").unwrap();
        let default_limits = HttpLimits::default();
        assert_eq!(format!("{limits:?}"), format!("{default_limits:?}"));
        assert_eq!(serve.connection_limits(), ConnectionLimits::default());
    }

    #[test]
    fn the_file_fills_what_no_flag_gives_and_a_flag_wins_over_it() {
        let file = file_with(
            "data_dir = \"/srv/cabinet\"\nupload_url_ttl = 60\nmax_url_bytes = 2048\nlog_format = \"json\"\n",
        );
        let config = file.path().to_str().unwrap();
        let (store, serve) = settings(&["--config", config, "serve", "--max-url-bytes", "4096"]).unwrap();
        assert_eq!(store.data_dir, PathBuf::from("/srv/cabinet"));
        assert_eq!(serve.upload_url_ttl, 60);
        assert_eq!(serve.log_format, LogFormat::Json);
        assert_eq!(serve.max_url_bytes, 4096, "the flag wins over the file");
        assert_eq!(serve.download_url_ttl, Settings::DEFAULT_DOWNLOAD_URL_TTL_SECS);

        let (store, _) = settings(&["--config", config, "serve", "--data-dir", "/elsewhere"]).unwrap();
        assert_eq!(
            store.data_dir,
            PathBuf::from("/elsewhere"),
            "a global flag after the subcommand wins too"
        );
    }

    #[test]
    fn the_dialects_limits_come_from_flags_and_the_file() {
        let file = file_with("mavera_file_max_bytes = 1000\nmavi_formats = \"mp4, .WAV\"\n");
        let config = file.path().to_str().unwrap();
        let args = [
            "--config",
            config,
            "serve",
            "--mavera-video-max-bytes",
            "5000",
            "--mavi-signed-upload-max-bytes",
            "7",
        ];
        let (_, serve) = settings(&args).unwrap();
        let limits = serve.http_limits("http://127.0.0.1:8080").unwrap();
        assert_eq!((limits.mavera_file_bytes, limits.mavera_video_bytes), (1000, 5000));
        assert_eq!(limits.mavi_signed_upload_bytes, 7);
        assert_eq!(limits.mavi_formats, vec!["mp4".to_owned(), "wav".to_owned()]);
    }

    #[test]
    fn trusted_proxies_come_from_the_flag_or_the_file_and_a_bad_one_is_refused_by_name() {
        let (_, serve) = settings(&["serve", "--trusted-proxies", "10.0.0.0/8, ::1"]).unwrap();
        let limits = serve.http_limits("http://127.0.0.1:8080").unwrap();
        assert_eq!(limits.trusted_proxies, TrustedProxies::parse("10.0.0.0/8,::1").unwrap());
        let file = file_with("trusted_proxies = \"127.0.0.1\"\n");
        let (_, serve) = settings(&["--config", file.path().to_str().unwrap(), "serve"]).unwrap();
        let limits = serve.http_limits("http://127.0.0.1:8080").unwrap();
        assert_eq!(limits.trusted_proxies, TrustedProxies::parse("127.0.0.1").unwrap());
        let (_, serve) = settings(&["serve", "--trusted-proxies", "lb.internal"]).unwrap();
        let refused = serve.http_limits("http://127.0.0.1:8080").unwrap_err().to_string();
        assert!(refused.contains("--trusted-proxies") && refused.contains("lb.internal"), "{refused}");
    }

    #[test]
    fn behind_trusted_proxies_urls_follow_the_proxy_unless_a_public_url_is_set() {
        let (_, serve) = settings(&["serve"]).unwrap();
        assert_eq!(serve.http_limits("http://127.0.0.1:8080").unwrap().url_base_from_proxies, None);
        let (_, serve) = settings(&["serve", "--trusted-proxies", "127.0.0.1"]).unwrap();
        assert_eq!(serve.http_limits("https://127.0.0.1:8443").unwrap().url_base_from_proxies, Some("https"));
        let (_, serve) = settings(&[
            "serve",
            "--trusted-proxies",
            "127.0.0.1",
            "--public-url",
            "https://files.example.com",
        ])
        .unwrap();
        assert_eq!(serve.http_limits("https://files.example.com").unwrap().url_base_from_proxies, None);
    }

    #[test]
    fn cors_origins_come_from_the_flag_or_the_file_and_a_bad_one_is_refused_by_name() {
        let (_, serve) = settings(&["serve"]).unwrap();
        assert_eq!(serve.http_limits("http://127.0.0.1:8080").unwrap().cors_origins, CorsOrigins::Any);
        let (_, serve) =
            settings(&["serve", "--cors-origins", "https://app.example.com, http://localhost:3000"]).unwrap();
        let limits = serve.http_limits("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            limits.cors_origins,
            CorsOrigins::List(vec!["https://app.example.com".into(), "http://localhost:3000".into()])
        );
        let file = file_with("cors_origins = \"none\"\n");
        let (_, serve) = settings(&["--config", file.path().to_str().unwrap(), "serve"]).unwrap();
        assert_eq!(serve.http_limits("http://127.0.0.1:8080").unwrap().cors_origins, CorsOrigins::None);
        let (_, serve) = settings(&["serve", "--cors-origins", "https://app.example.com/"]).unwrap();
        let refused = serve.http_limits("http://127.0.0.1:8080").unwrap_err().to_string();
        assert!(refused.contains("--cors-origins") && refused.contains("no path"), "{refused}");
    }

    #[test]
    fn sizes_and_durations_read_as_people_write_them_in_flags_and_the_file() {
        let (_, serve) = settings(&["serve", "--upload-url-ttl", "1h", "--max-file-bytes", "1GiB"]).unwrap();
        assert_eq!((serve.upload_url_ttl, serve.max_file_bytes), (3600, 1 << 30));
        let (_, serve) =
            settings(&["serve", "--upload-url-ttl", "600", "--json-body-max-bytes", "10MB"]).unwrap();
        assert_eq!((serve.upload_url_ttl, serve.json_body_max_bytes), (600, 10 << 20), "plain numbers too");
        let file = file_with(
            "max_file_bytes = \"1GiB\"\nsweep_interval = \"90s\"\n\
             trash_retention_days = \"4w\"\nmax_url_bytes = 4096\n",
        );
        let (_, serve) = settings(&["--config", file.path().to_str().unwrap(), "serve"]).unwrap();
        assert_eq!(serve.max_file_bytes, 1 << 30);
        assert_eq!(serve.sweep_interval, 90);
        assert_eq!(serve.trash_retention_days, 28);
        assert_eq!(serve.max_url_bytes, 4096);
        assert!(settings(&["serve", "--url-window", "soon"]).is_err());
        assert!(settings(&["serve", "--trash-retention-days", "36h"]).is_err(), "whole days only");
    }

    #[test]
    fn an_unknown_or_mistyped_key_in_the_file_is_refused_by_name() {
        let file = file_with("upload_url_tll = 60\n");
        let err = settings(&["--config", file.path().to_str().unwrap(), "serve"]).unwrap_err();
        assert!(format!("{err:#}").contains("unknown setting `upload_url_tll`"), "{err:#}");

        let file = file_with("upload_url_ttl = \"an hour\"\n");
        let err = settings(&["--config", file.path().to_str().unwrap(), "serve"]).unwrap_err();
        assert!(format!("{err:#}").contains("`upload_url_ttl`"), "{err:#}");

        let file = file_with("config = \"another.toml\"\n");
        let err = settings(&["--config", file.path().to_str().unwrap(), "serve"]).unwrap_err();
        assert!(format!("{err:#}").contains("unknown setting `config`"), "{err:#}");
    }
}
