//! Settings: flags, then `CABINET_*` environment variables, then a TOML file, then defaults.
//! Every setting has one field here and one line in `cabinet serve --help`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use cabinet_blob::S3Config;
use clap::Args;
use serde::Deserialize;

use crate::connections;

/// Where the data lives; shared by `serve` and `admin`.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// A TOML file with any of the settings below (as snake_case keys).
    #[arg(long, env = "CABINET_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// The data folder: the SQLite database, blobs and the signing key live here by default.
    #[arg(long, env = "CABINET_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Metadata database URL (default: sqlite://<data-dir>/cabinet.db).
    #[arg(long, env = "CABINET_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Blob storage: `local` (under <data-dir>/blobs), `local:/some/folder`, or
    /// `s3://bucket?endpoint=http://host:port&region=us-east-1` (credentials from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; path-style with an endpoint).
    #[arg(long, env = "CABINET_STORAGE", global = true)]
    pub storage: Option<String>,
}

/// Settings only the server needs.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "CABINET_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Base URL clients reach this server at, used in signed URLs (default: http://<listen>).
    #[arg(long, env = "CABINET_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Secret for signing URLs, at least 32 bytes; the same on every node
    /// (default: generated once into <data-dir>/signing.key).
    #[arg(long, env = "CABINET_SIGNING_SECRET", hide_env_values = true)]
    pub signing_secret: Option<String>,
    /// Lifetime of upload URLs, in seconds.
    #[arg(long, env = "CABINET_UPLOAD_URL_TTL")]
    pub upload_url_ttl: Option<u64>,
    /// Default lifetime of download URLs, in seconds.
    #[arg(long, env = "CABINET_DOWNLOAD_URL_TTL")]
    pub download_url_ttl: Option<u64>,
    /// Largest file any workspace may hold, in bytes.
    #[arg(long, env = "CABINET_MAX_FILE_BYTES")]
    pub max_file_bytes: Option<u64>,
    /// Largest direct (`POST /v1/files`) upload, in bytes.
    #[arg(long, env = "CABINET_DIRECT_UPLOAD_MAX_BYTES")]
    pub direct_upload_max_bytes: Option<u64>,
    /// Largest direct upload through the MAVI dialect (`POST /upload`), in bytes; larger files are
    /// told to use its signed URL.
    #[arg(long, env = "CABINET_MAVI_DIRECT_UPLOAD_MAX_BYTES")]
    pub mavi_direct_upload_max_bytes: Option<u64>,
    /// Largest JSON (base64) upload request body, in bytes.
    #[arg(long, env = "CABINET_JSON_UPLOAD_MAX_BYTES")]
    pub json_upload_max_bytes: Option<usize>,
    /// How often the sweeper fails expired uploads, in seconds.
    #[arg(long, env = "CABINET_SWEEP_INTERVAL")]
    pub sweep_interval: Option<u64>,
    /// How long in-flight requests may take to finish after SIGTERM, in seconds.
    #[arg(long, env = "CABINET_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<u64>,
    /// Days deleted files and folders stay in the trash before they are purged.
    #[arg(long, env = "CABINET_TRASH_RETENTION_DAYS")]
    pub trash_retention_days: Option<u64>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "CABINET_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Largest body of a JSON API request (not uploads), in bytes.
    #[arg(long, env = "CABINET_JSON_BODY_MAX_BYTES")]
    pub json_body_max_bytes: Option<usize>,
    /// Longest request URL (path and query), in bytes; longer is refused with 414.
    #[arg(long, env = "CABINET_MAX_URL_BYTES")]
    pub max_url_bytes: Option<usize>,
    /// Largest request header section, in bytes; larger is refused with 431.
    #[arg(long, env = "CABINET_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Seconds a request body may send nothing before the request is cut off (0: never).
    #[arg(long, env = "CABINET_BODY_IDLE_TIMEOUT")]
    pub body_idle_timeout: Option<u64>,
    /// Least bytes per second a request body must send, averaged over the rate window; a slower
    /// body is cut off (0: no minimum).
    #[arg(long, env = "CABINET_BODY_MIN_RATE")]
    pub body_min_rate: Option<u64>,
    /// Seconds of waiting over which the body's minimum rate is averaged.
    #[arg(long, env = "CABINET_BODY_RATE_WINDOW")]
    pub body_rate_window: Option<u64>,
    /// Most uploads a workspace may be sending at once; more are refused with 429 (0: no cap).
    #[arg(long, env = "CABINET_MAX_UPLOADS_PER_WORKSPACE")]
    pub max_uploads_per_workspace: Option<u32>,
    /// Most direct uploads one API key may be sending at once; more are refused with 429 (0: no cap).
    #[arg(long, env = "CABINET_MAX_UPLOADS_PER_KEY")]
    pub max_uploads_per_key: Option<u32>,
    /// Requests per minute per API key (per client IP without a key); 0 turns limiting off.
    #[arg(long, env = "CABINET_RATE_LIMIT_PER_MINUTE")]
    pub rate_limit_per_minute: Option<u32>,
    /// Seconds a client may take to send a request's headers (and an idle keep-alive connection
    /// may wait for the next request) before the connection is closed (0: never).
    #[arg(long, env = "CABINET_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<u64>,
    /// Open connections allowed from one client IP address; more are closed at once (0: no cap).
    #[arg(long, env = "CABINET_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<usize>,
    /// Once listening (and the first key exists), write `{"url", "public_url", "workspace", "key"}`
    /// to this file as JSON, atomically; `workspace` and `key` are null unless this start created
    /// them. For scripts and tests that wait for the server.
    #[arg(long, env = "CABINET_READY_FILE")]
    pub ready_file: Option<PathBuf>,
}

/// The TOML file: every setting, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    storage: Option<String>,
    listen: Option<SocketAddr>,
    public_url: Option<String>,
    signing_secret: Option<String>,
    upload_url_ttl: Option<u64>,
    download_url_ttl: Option<u64>,
    max_file_bytes: Option<u64>,
    direct_upload_max_bytes: Option<u64>,
    mavi_direct_upload_max_bytes: Option<u64>,
    json_upload_max_bytes: Option<usize>,
    sweep_interval: Option<u64>,
    shutdown_grace: Option<u64>,
    trash_retention_days: Option<u64>,
    log_format: Option<String>,
    json_body_max_bytes: Option<usize>,
    max_url_bytes: Option<usize>,
    max_header_bytes: Option<usize>,
    body_idle_timeout: Option<u64>,
    body_min_rate: Option<u64>,
    body_rate_window: Option<u64>,
    max_uploads_per_workspace: Option<u32>,
    max_uploads_per_key: Option<u32>,
    rate_limit_per_minute: Option<u32>,
    header_read_timeout: Option<u64>,
    max_connections_per_address: Option<usize>,
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

/// Everything `serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub store: StoreConfig,
    pub listen: SocketAddr,
    pub public_url: Option<String>,
    pub signing_secret: Option<String>,
    pub upload_url_ttl: u64,
    pub download_url_ttl: u64,
    pub max_file_bytes: u64,
    pub direct_upload_max_bytes: u64,
    pub mavi_direct_upload_max_bytes: u64,
    pub json_upload_max_bytes: usize,
    pub sweep_interval: u64,
    pub shutdown_grace: u64,
    pub trash_retention_days: u64,
    pub json_logs: bool,
    pub json_body_max_bytes: usize,
    pub max_url_bytes: usize,
    pub max_header_bytes: usize,
    pub body_idle_timeout: u64,
    pub body_min_rate: u64,
    pub body_rate_window: u64,
    pub max_uploads_per_workspace: u32,
    pub max_uploads_per_key: u32,
    pub rate_limit_per_minute: u32,
    pub header_read_timeout: u64,
    pub max_connections_per_address: usize,
    pub ready_file: Option<PathBuf>,
}

fn load_file(path: Option<&Path>) -> anyhow::Result<FileSettings> {
    let Some(path) = path else { return Ok(FileSettings::default()) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn resolve_store(args: &StoreArgs, file: &FileSettings) -> anyhow::Result<StoreConfig> {
    let data_dir =
        args.data_dir.clone().or(file.data_dir.clone()).unwrap_or_else(|| PathBuf::from("cabinet-data"));
    let database_url = args
        .database_url
        .clone()
        .or(file.database_url.clone())
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("cabinet.db").display()));
    let storage = args.storage.clone().or(file.storage.clone()).unwrap_or_else(|| "local".to_owned());
    let blobs = match storage.as_str() {
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

/// Resolves the store settings alone (for `admin`).
pub fn store_config(args: &StoreArgs) -> anyhow::Result<StoreConfig> {
    let file = load_file(args.config.as_deref())?;
    resolve_store(args, &file)
}

/// Resolves everything `serve` needs.
pub fn serve_config(store: &StoreArgs, args: &ServeArgs) -> anyhow::Result<ServeConfig> {
    let file = load_file(store.config.as_deref())?;
    let log_format = args.log_format.clone().or(file.log_format.clone()).unwrap_or_else(|| "text".to_owned());
    let json_logs = match log_format.as_str() {
        "text" => false,
        "json" => true,
        other => bail!("--log-format must be text or json, not {other:?}"),
    };
    Ok(ServeConfig {
        store: resolve_store(store, &file)?,
        listen: args.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        public_url: args.public_url.clone().or(file.public_url),
        signing_secret: args.signing_secret.clone().or(file.signing_secret),
        upload_url_ttl: args.upload_url_ttl.or(file.upload_url_ttl).unwrap_or(3600),
        download_url_ttl: args.download_url_ttl.or(file.download_url_ttl).unwrap_or(3600),
        max_file_bytes: args.max_file_bytes.or(file.max_file_bytes).unwrap_or(50 << 30),
        direct_upload_max_bytes: args
            .direct_upload_max_bytes
            .or(file.direct_upload_max_bytes)
            .unwrap_or(512 << 20),
        mavi_direct_upload_max_bytes: args
            .mavi_direct_upload_max_bytes
            .or(file.mavi_direct_upload_max_bytes)
            .unwrap_or(500_000_000),
        json_upload_max_bytes: args.json_upload_max_bytes.or(file.json_upload_max_bytes).unwrap_or(16 << 20),
        sweep_interval: args.sweep_interval.or(file.sweep_interval).unwrap_or(30).max(1),
        shutdown_grace: args.shutdown_grace.or(file.shutdown_grace).unwrap_or(30),
        trash_retention_days: args
            .trash_retention_days
            .or(file.trash_retention_days)
            .unwrap_or(30)
            .min(36_500),
        json_logs,
        json_body_max_bytes: args.json_body_max_bytes.or(file.json_body_max_bytes).unwrap_or(2 << 20),
        max_url_bytes: args.max_url_bytes.or(file.max_url_bytes).unwrap_or(8 << 10),
        max_header_bytes: args.max_header_bytes.or(file.max_header_bytes).unwrap_or(32 << 10),
        body_idle_timeout: args.body_idle_timeout.or(file.body_idle_timeout).unwrap_or(30),
        body_min_rate: args.body_min_rate.or(file.body_min_rate).unwrap_or(1024),
        body_rate_window: args.body_rate_window.or(file.body_rate_window).unwrap_or(60),
        max_uploads_per_workspace: args
            .max_uploads_per_workspace
            .or(file.max_uploads_per_workspace)
            .unwrap_or(64),
        max_uploads_per_key: args.max_uploads_per_key.or(file.max_uploads_per_key).unwrap_or(32),
        rate_limit_per_minute: args.rate_limit_per_minute.or(file.rate_limit_per_minute).unwrap_or(6000),
        header_read_timeout: args
            .header_read_timeout
            .or(file.header_read_timeout)
            .unwrap_or(connections::DEFAULT_HEADER_READ_TIMEOUT_SECS),
        max_connections_per_address: args
            .max_connections_per_address
            .or(file.max_connections_per_address)
            .unwrap_or(connections::DEFAULT_MAX_PER_ADDRESS),
        ready_file: args.ready_file.clone(),
    })
}
