//! Assembling Cabinet from its configuration, and running the server: recovery before serving,
//! the sweeper (which also reconciles direct S3 uploads), and a graceful shutdown that lets in-flight requests finish.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use cabinet_api::HttpLimits;
use cabinet_blob::{LocalBlobStore, S3BlobStore};
use cabinet_core::{BlobStore, Cabinet, Clock, Settings, SystemClock, UrlSigner};
use rand::RngCore;
use tokio::net::TcpListener;

use crate::config::{BlobConfig, ServeConfig, StoreConfig};
use crate::connections::{self, ConnectionLimits};
use crate::ready_file;

/// Reads the signing secret from the data folder, creating it (readable by the owner only) on
/// first use.
fn signing_secret_from(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join("signing.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => return Ok(text.trim().as_bytes().to_vec()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    }
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let text = hex::encode(secret);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            std::io::Write::write_all(&mut file, text.as_bytes())?;
            file.sync_all()?;
            Ok(text.into_bytes())
        }
        // Another process created it first: use theirs.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(&path)?.trim().as_bytes().to_vec())
        }
        Err(err) => Err(err).with_context(|| format!("creating {}", path.display())),
    }
}

/// Builds the service over the configured stores.
pub async fn assemble(
    store: &StoreConfig,
    signing_secret: Option<&str>,
    settings: Settings,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Cabinet> {
    std::fs::create_dir_all(&store.data_dir)
        .with_context(|| format!("creating the data folder {}", store.data_dir.display()))?;
    let secret = match signing_secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => signing_secret_from(&store.data_dir)?,
    };
    let signer = UrlSigner::new(secret).map_err(|err| anyhow::anyhow!("{err}"))?;
    let metadata = cabinet_store_sql::connect(&store.database_url).await.map_err(|err| {
        anyhow::anyhow!("opening the database: {err} ({:?})", std::error::Error::source(&err))
    })?;
    let blobs: Arc<dyn BlobStore> = match &store.blobs {
        BlobConfig::Local(root) => Arc::new(
            LocalBlobStore::open(root)
                .with_context(|| format!("opening blob storage at {}", root.display()))?,
        ),
        BlobConfig::S3(config) => {
            Arc::new(S3BlobStore::new(config).map_err(|err| anyhow::anyhow!("opening S3 storage: {err:?}"))?)
        }
    };
    Ok(Cabinet::new(metadata, blobs, clock, signer, settings))
}

/// The core settings a serve configuration implies.
pub fn settings_of(config: &ServeConfig, public_url: String) -> Settings {
    Settings {
        public_url,
        upload_url_ttl: chrono::Duration::seconds(config.upload_url_ttl as i64),
        download_url_ttl: chrono::Duration::seconds(config.download_url_ttl as i64),
        max_file_bytes: config.max_file_bytes,
        direct_upload_max_bytes: config.direct_upload_max_bytes,
        trash_retention: chrono::Duration::days(config.trash_retention_days as i64),
        max_uploads_per_workspace: config.max_uploads_per_workspace,
        max_uploads_per_key: config.max_uploads_per_key,
        ..Settings::default()
    }
}

/// The HTTP layer's limits a serve configuration implies.
pub fn http_limits_of(config: &ServeConfig, public_url: &str) -> HttpLimits {
    HttpLimits {
        json_upload_bytes: config.json_upload_max_bytes,
        json_body_bytes: config.json_body_max_bytes,
        max_url_bytes: config.max_url_bytes,
        max_header_bytes: config.max_header_bytes,
        body_idle_timeout: Duration::from_secs(config.body_idle_timeout),
        body_min_rate: config.body_min_rate,
        body_rate_window: Duration::from_secs(config.body_rate_window),
        rate_limit_per_minute: config.rate_limit_per_minute,
        mavi_direct_upload_bytes: config.mavi_direct_upload_max_bytes,
        strict_transport_security: public_url.starts_with("https://"),
    }
}

/// The connection limits a serve configuration implies (0 turns each off).
pub fn connection_limits_of(config: &ServeConfig) -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: (config.header_read_timeout > 0)
            .then(|| Duration::from_secs(config.header_read_timeout)),
        max_per_address: (config.max_connections_per_address > 0)
            .then_some(config.max_connections_per_address),
    }
}

/// Runs the server until SIGTERM or SIGINT.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    if let Some(path) = &config.ready_file {
        ready_file::clear(path)?;
    }
    let listener =
        TcpListener::bind(config.listen).await.with_context(|| format!("listening on {}", config.listen))?;
    let address = listener.local_addr()?;
    let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{address}"));
    let public_url = public_url.trim_end_matches('/').to_owned();
    if !public_url.starts_with("http://") && !public_url.starts_with("https://") {
        bail!("--public-url must start with http:// or https://");
    }
    let cabinet = assemble(
        &config.store,
        config.signing_secret.as_deref(),
        settings_of(&config, public_url.clone()),
        Arc::new(SystemClock),
    )
    .await?;
    cabinet.recover_after_restart().await.map_err(|err| anyhow::anyhow!("recovery failed: {err}"))?;
    let boot = cabinet.bootstrap_if_empty().await.map_err(|err| anyhow::anyhow!("{err}"))?;
    if let Some(boot) = &boot {
        println!(
            "Created workspace \"{}\" ({}) and an admin API key. The key is shown only this once:\n\n  {}\n\nTry it:\n  curl -H 'Authorization: Bearer {}' {public_url}/v1/quota\n",
            boot.workspace.name, boot.workspace.id, boot.key.secret, boot.key.secret
        );
    }
    println!("Cabinet listening on http://{address} (public URL {public_url}, docs at {public_url}/docs)");
    if let Some(path) = &config.ready_file {
        let workspace = boot.as_ref().map(|boot| boot.workspace.id.to_string());
        let ready = ready_file::Ready {
            url: &format!("http://{address}"),
            public_url: &public_url,
            workspace: workspace.as_deref(),
            key: boot.as_ref().map(|boot| boot.key.secret.as_str()),
        };
        ready_file::write(path, &ready)?;
    }

    let sweeper = tokio::spawn(sweep_forever(cabinet.clone(), Duration::from_secs(config.sweep_interval)));
    let app = cabinet_api::app(cabinet, http_limits_of(&config, &public_url));
    let grace = Duration::from_secs(config.shutdown_grace);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = connections::serve(listener, app, connection_limits_of(&config), async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
        tracing::info!("shutting down: no new connections; finishing in-flight requests");
    });
    let mut stop_rx = stop_rx;
    tokio::select! {
        () = server => {},
        _ = async {
            let _ = stop_rx.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!("the shutdown grace period ended with requests still running"),
    }
    sweeper.abort();
    Ok(())
}

async fn sweep_forever(cabinet: Cabinet, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        // Direct (S3) uploads whose bytes arrived are completed before expiry is judged.
        if let Err(err) = cabinet.reconcile_uploads().await {
            tracing::warn!(error = %err, "reconciling direct uploads failed");
        }
        if let Err(err) = cabinet.sweep_expired_uploads().await {
            tracing::warn!(error = %err, "sweeping expired uploads failed");
        }
        if let Err(err) = cabinet.purge_expired_trash().await {
            tracing::warn!(error = %err, "purging expired trash failed");
        }
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
