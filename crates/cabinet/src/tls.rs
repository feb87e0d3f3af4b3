//! The TLS listener (`serve --tls-cert CERT --tls-key KEY`): rustls with ring, HTTP/1.1 over
//! TLS 1.2 and 1.3. The certificate and key are read at start and again on SIGHUP, so a renewed
//! certificate is served to new connections without a restart; a pair that does not load is
//! reported and the one in use is kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{bail, Context};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Where the certificate chain and its private key are (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Both paths or neither: `None` serves plain HTTP.
    pub fn from_flags(cert: Option<&Path>, key: Option<&Path>) -> anyhow::Result<Option<Self>> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(Self { cert: cert.to_owned(), key: key.to_owned() })),
            (None, None) => Ok(None),
            _ => bail!("--tls-cert and --tls-key go together: give both or neither"),
        }
    }

    fn load(&self) -> anyhow::Result<CertifiedKey> {
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("reading the certificate chain in {}", self.cert.display()))?;
        if chain.is_empty() {
            bail!("{} holds no certificate", self.cert.display());
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("reading the private key in {}", self.key.display()))?;
        let signing_key = rustls::crypto::ring::sign::any_supported_type(&key)
            .with_context(|| format!("the private key in {} is of no supported type", self.key.display()))?;
        let certified = CertifiedKey::new(chain, signing_key);
        certified
            .keys_match()
            .with_context(|| format!("{} is not the key of {}", self.key.display(), self.cert.display()))?;
        Ok(certified)
    }
}

/// The certificate served to every new connection, replaced whole on reload.
#[derive(Debug)]
struct CurrentCertificate {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
    }
}

/// What accepts TLS connections, and reloads its certificate on demand.
#[derive(Clone)]
pub struct Tls {
    certificate: Arc<CurrentCertificate>,
    pub acceptor: TlsAcceptor,
}

impl Tls {
    /// Loads the pair; an error names the file at fault.
    pub fn load(files: TlsFiles) -> anyhow::Result<Self> {
        let first = files.load()?;
        let certificate = Arc::new(CurrentCertificate { files, current: RwLock::new(Arc::new(first)) });
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .context("TLS protocol versions")?
                .with_no_client_auth()
                .with_cert_resolver(certificate.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { certificate, acceptor: TlsAcceptor::from(Arc::new(config)) })
    }

    /// Reads the pair again; on success new connections get it, on failure the old one stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = self.certificate.files.load()?;
        *self.certificate.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(fresh);
        Ok(())
    }
}

/// Handles every SIGHUP for as long as the server runs: the TLS pair is read again when there is
/// one. Without TLS a SIGHUP is only logged: its default would end the server, and a unit's
/// `ExecReload` sends it whatever the configuration.
pub fn reload_on_sighup(tls: Option<Tls>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        // Registered before this returns, so a SIGHUP from here on never ends the server.
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: the TLS certificate will not be reloaded");
            return;
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let Some(tls) = &tls else {
                    tracing::info!("SIGHUP: nothing to reload (no TLS)");
                    continue;
                };
                match tls.reload() {
                    Ok(()) => tracing::info!("SIGHUP: the TLS certificate and key were reloaded"),
                    Err(err) => tracing::error!(
                        error = format!("{err:#}"),
                        "SIGHUP: keeping the TLS certificate in use"
                    ),
                }
            }
        });
    }
}
