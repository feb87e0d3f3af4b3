//! Assembling Cabinet from its configuration, and running the server: recovery before serving,
//! the sweeper (which also reconciles direct S3 uploads), and a graceful shutdown that lets in-flight requests finish.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use cabinet_blob::{LocalBlobStore, S3BlobStore};
use cabinet_core::{BlobStore, Cabinet, Clock, Settings, SystemClock, UrlSigner};
use rand::RngCore;
use tokio::net::TcpListener;

use crate::config::{BlobConfig, ServeSettings, StoreConfig};
use crate::connections;
use crate::ready_file;

/// Reads the signing secret from the data folder, creating it (readable by the owner only) on
/// first use.
fn signing_secret_from(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    secret_file(data_dir, "signing.key")
}

/// The key that seals the secrets kept in the database (S3 secrets, webhook signing secrets):
/// given (the same on every node), or read from the data folder, created there (readable by the
/// owner only) on first use.
pub fn s3_sealer(
    data_dir: &Path,
    given: Option<&str>,
) -> anyhow::Result<cabinet_core::s3_keys::SecretSealer> {
    let text = match given {
        Some(given) => given.to_owned(),
        None => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("creating the data folder {}", data_dir.display()))?;
            String::from_utf8(secret_file(data_dir, S3_SECRET_KEY_FILE)?)?
        }
    };
    cabinet_core::s3_keys::SecretSealer::from_hex(&text).map_err(|err| anyhow::anyhow!("{err}"))
}

/// Where the key that seals S3 secrets is kept in the data folder.
pub const S3_SECRET_KEY_FILE: &str = "s3-secret.key";

/// Reads 32 random bytes (as hex) from a file of the data folder, creating it on first use.
fn secret_file(data_dir: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(name);
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

/// Builds the service over the configured stores; `secret_key` seals the secrets kept in the
/// database (`s3_sealer`).
pub async fn assemble(
    store: &StoreConfig,
    signing_secret: Option<&str>,
    secret_key: Option<&str>,
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
    let cabinet = Cabinet::new(
        metadata,
        blobs,
        clock,
        signer,
        settings,
        Arc::new(cabinet_blob::RecentReads::default()),
        Arc::new(cabinet_images::Thumbnailer),
        s3_sealer(&store.data_dir, secret_key)?,
    );
    cabinet.refresh_signing_keys().await.map_err(|err| anyhow::anyhow!("reading the signing keys: {err}"))?;
    Ok(cabinet)
}

/// Runs the server until SIGTERM or SIGINT.
pub async fn serve(store: StoreConfig, config: ServeSettings) -> anyhow::Result<()> {
    if let Some(path) = &config.ready_file {
        ready_file::clear(path)?;
    }
    let open_files = match connections::raise_open_file_limit() {
        Ok((before, after)) => {
            if after > before {
                tracing::info!(before, after, "raised the open-file limit to its hard limit");
            }
            after
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not raise the open-file limit");
            rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(u64::MAX)
        }
    };
    let listener =
        connections::listen(config.listen).with_context(|| format!("listening on {}", config.listen))?;
    let address = listener.local_addr()?;
    let s3_listener = match config.s3_listen {
        None => None,
        Some(at) => Some(connections::listen(at).with_context(|| format!("listening for S3 on {at}"))?),
    };
    let s3_address = s3_listener.as_ref().map(TcpListener::local_addr).transpose()?;
    let configured_limits = config.connection_limits();
    let connection_limits =
        configured_limits.within_open_files(open_files, 1 + u64::from(s3_listener.is_some()));
    if connection_limits.max_total < configured_limits.max_total {
        tracing::info!(
            max_connections = connection_limits.max_total,
            open_files,
            "lowered the cap on connections to leave open files for the requests' own"
        );
    }
    let tls = crate::tls::TlsFiles::from_flags(config.tls_cert.as_deref(), config.tls_key.as_deref())?
        .map(crate::tls::Tls::load)
        .transpose()?;
    // Before the ready file: from then on a SIGHUP is a reload, never the end of the server.
    crate::tls::reload_on_sighup(tls.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public_url = config.public_url.clone().unwrap_or_else(|| format!("{scheme}://{address}"));
    let public_url = public_url.trim_end_matches('/').to_owned();
    if !public_url.starts_with("http://") && !public_url.starts_with("https://") {
        bail!("--public-url must start with http:// or https://");
    }
    let http_limits = config.http_limits(&public_url)?;
    let cabinet = assemble(
        &store,
        config.signing_secret.as_deref(),
        config.s3_secret_key.as_deref(),
        config.core_settings(public_url.clone()),
        Arc::new(SystemClock),
    )
    .await?;
    if http_limits.metrics != cabinet_api::MetricsAccess::Off {
        // Before anything is counted: what is recorded earlier is lost.
        cabinet_api::telemetry::install();
    }
    let (recovered, rest_of_sweep) = cabinet
        .recover_before_serving(cabinet_core::maintenance::OBJECTS_SWEPT_BEFORE_SERVING)
        .await
        .map_err(|err| anyhow::anyhow!("recovery failed: {err}"))?;
    cabinet_core::telemetry::maintenance_ran(
        "recover_after_restart",
        &[
            ("temporaries_removed", recovered.temporaries_removed),
            ("interrupted_uploads_failed", recovered.interrupted_uploads_failed),
            ("interrupted_assemblies_reopened", recovered.interrupted_assemblies_reopened),
            ("orphan_blobs_removed", recovered.orphan_blobs_removed),
            ("orphan_parts_removed", recovered.orphan_parts_removed),
        ],
    );
    let sealed = cabinet
        .seal_plain_webhook_secrets()
        .await
        .map_err(|err| anyhow::anyhow!("sealing webhook secrets: {err}"))?;
    if sealed > 0 {
        tracing::info!(endpoints = sealed, "sealed webhook secrets stored unsealed by an earlier version");
    }
    let boot = cabinet.bootstrap_if_empty().await.map_err(|err| anyhow::anyhow!("{err}"))?;
    if let Some(boot) = &boot {
        println!(
            "Created workspace \"{}\" ({}) and an admin API key. The key is shown only this once:\n\n  {}\n\nTry it:\n  curl -H 'Authorization: Bearer {}' {public_url}/v1/quota\n",
            boot.workspace.name, boot.workspace.id, boot.key.secret, boot.key.secret
        );
    }
    println!(
        "Cabinet listening on {scheme}://{address} (public URL {public_url}, console at {public_url}/console, docs at {public_url}/docs)"
    );
    // Absolute: started from another folder, a relative default is another data folder, with
    // another workspace and key, and this line is where that shows.
    let data_dir = std::path::absolute(&store.data_dir).unwrap_or_else(|_| store.data_dir.clone());
    println!("Data folder: {}", data_dir.display());
    let s3_url = s3_address.map(|at| format!("{scheme}://{at}"));
    if let Some(s3_url) = &s3_url {
        println!("S3 surface listening on {s3_url} (keys: cabinet admin create-s3-key)");
    }
    if let Some(path) = &config.ready_file {
        let workspace = boot.as_ref().map(|boot| boot.workspace.id.to_string());
        let ready = ready_file::Ready {
            url: &format!("{scheme}://{address}"),
            public_url: &public_url,
            workspace: workspace.as_deref(),
            key: boot.as_ref().map(|boot| boot.key.secret.as_str()),
            s3_url: s3_url.as_deref(),
        };
        ready_file::write(path, &ready)?;
    }

    let sweeper = tokio::spawn(sweep_forever(cabinet.clone(), config.sweep_every()));
    let rest_of_sweep = rest_of_sweep.map(|rest| tokio::spawn(finish_orphan_sweep(rest)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let acceptor = tls.map(|tls| tls.acceptor);
    let s3_server = match s3_listener {
        None => None,
        Some(listener) => {
            let sealer = s3_sealer(&store.data_dir, config.s3_secret_key.as_deref())?;
            let options = cabinet_api::s3::S3Options {
                domain: config.s3_domain.clone(),
                trusted_proxies: http_limits.trusted_proxies.clone(),
                rate_limit_per_minute: http_limits.rate_limit_per_minute,
            };
            let app = cabinet_api::s3::app(cabinet.clone(), sealer, &options)
                .map_err(|err| anyhow::anyhow!(err))?;
            let mut stopped = stop_rx.clone();
            let shutdown = async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            };
            let limits = connection_limits;
            Some(tokio::spawn(connections::serve_with(listener, app, limits, acceptor.clone(), shutdown)))
        }
    };
    let key_reader = tokio::spawn(read_signing_keys_forever(cabinet.clone()));
    let webhook_sender =
        Arc::new(crate::webhook_sender::HttpWebhookSender::new(config.webhook_allow_private)?);
    let webhooks = {
        let cabinet = cabinet.clone();
        tokio::spawn(async move {
            cabinet
                .deliver_webhooks_forever(webhook_sender, Arc::new(cabinet_api::v1::events::WebhookBodies))
                .await
        })
    };
    let app = cabinet_api::app(cabinet, http_limits);
    let grace = Duration::from_secs(config.shutdown_grace);
    let server = connections::serve_with(listener, app, connection_limits, acceptor, async move {
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
    if let Some(rest_of_sweep) = rest_of_sweep {
        rest_of_sweep.abort();
    }
    key_reader.abort();
    webhooks.abort();
    if let Some(s3_server) = s3_server {
        s3_server.abort();
    }
    Ok(())
}

/// Reads the signing keys again every `signing_key_refresh`: a key rotated on another node signs
/// here too, and a retired one stops verifying.
async fn read_signing_keys_forever(cabinet: Cabinet) {
    let every = cabinet.settings().signing_key_refresh.to_std().unwrap_or(Duration::from_secs(10));
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(err) = cabinet.refresh_signing_keys().await {
            tracing::warn!(error = %err, "reading the signing keys failed");
        }
    }
}

/// Sweeps the rest of a large store for orphans, while the server serves (see
/// `OBJECTS_SWEPT_BEFORE_SERVING`).
async fn finish_orphan_sweep(rest: cabinet_core::maintenance::OrphanSweep) {
    use cabinet_core::telemetry::{maintenance_failed, maintenance_ran};
    match rest.finish().await {
        Ok(removed) => {
            tracing::info!(orphan_blobs_removed = removed, "the orphan sweep after the restart ended");
            maintenance_ran("orphan_sweep_after_restart", &[("orphan_blobs_removed", removed)]);
        }
        Err(err) => {
            maintenance_failed("orphan_sweep_after_restart");
            tracing::warn!(error = %err, "the orphan sweep after the restart failed; `cabinet admin check --repair` finds what it left");
        }
    }
}

async fn sweep_forever(cabinet: Cabinet, every: Duration) {
    use cabinet_core::telemetry::{maintenance_failed, maintenance_ran};
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        // Direct (S3) uploads whose bytes arrived are completed before expiry is judged.
        match cabinet.reconcile_uploads().await {
            Ok(report) => maintenance_ran(
                "reconcile_uploads",
                &[("completed", report.completed), ("refused", report.refused), ("expired", report.expired)],
            ),
            Err(err) => {
                maintenance_failed("reconcile_uploads");
                tracing::warn!(error = %err, "reconciling direct uploads failed");
            }
        }
        match cabinet.sweep_expired_uploads().await {
            Ok(expired) => maintenance_ran("sweep_expired_uploads", &[("expired", expired)]),
            Err(err) => {
                maintenance_failed("sweep_expired_uploads");
                tracing::warn!(error = %err, "sweeping expired uploads failed");
            }
        }
        match cabinet.purge_expired_trash().await {
            Ok(purged) => maintenance_ran("purge_expired_trash", &[("purged", purged)]),
            Err(err) => {
                maintenance_failed("purge_expired_trash");
                tracing::warn!(error = %err, "purging expired trash failed");
            }
        }
        match cabinet.prune_old_events().await {
            Ok(pruned) => maintenance_ran("prune_old_events", &[("pruned", pruned)]),
            Err(err) => {
                maintenance_failed("prune_old_events");
                tracing::warn!(error = %err, "pruning old events failed");
            }
        }
        match cabinet.prune_old_audit().await {
            Ok(pruned) => maintenance_ran("prune_old_audit", &[("pruned", pruned)]),
            Err(err) => {
                maintenance_failed("prune_old_audit");
                tracing::warn!(error = %err, "pruning the audit log past its retention failed");
            }
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
