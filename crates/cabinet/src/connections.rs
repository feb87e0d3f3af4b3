//! Accepting and serving HTTP/1 connections, with the limits that act before any request exists:
//! a client must send a request's headers within the header-read timeout (so a slow-header client
//! cannot hold a connection), one client IP address may hold at most so many connections (more
//! are closed at once), and shutdown stops accepting, then lets open connections finish their
//! requests. With TLS, the handshake is bounded by the header-read timeout too.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Limits on connections, enforced before a request is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client may take to send a request's headers, and an idle keep-alive connection
    /// may wait for the next request (`None`: no limit).
    pub header_read_timeout: Option<Duration>,
    /// Connections one client IP address may hold open (`None`: no cap).
    pub max_per_address: Option<usize>,
}

/// The default header-read timeout, in seconds.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// How long a TLS handshake may take when there is no header-read timeout.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// The default cap on connections per client address.
pub const DEFAULT_MAX_PER_ADDRESS: usize = 256;

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Some(Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECS)),
            max_per_address: Some(DEFAULT_MAX_PER_ADDRESS),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting (new connections
/// are refused) and returns once every open connection has finished its request and closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(listener, app, limits, None, shutdown).await
}

/// [`serve`], over TLS when `tls` is given.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    const READ_BUFFER: usize = 64 * 1024;
    let open = OpenConnections::default();
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    // hyper grows a connection's read buffer to about 400 KiB while a body streams in, and a
    // thousand uploads at once held that each; 64 KiB reads keep the disk fed as well. It also
    // bounds a request's head (nginx takes 32 KiB by default).
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).max_buf_size(READ_BUFFER);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    pause_after_accept_error(err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = open.admit(peer.ip(), limits.max_per_address) else {
            tracing::debug!(client = %peer.ip(), "closing a connection over the per-address cap");
            continue;
        };
        let service = app.clone().map_request(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let (http, watcher) = (http.clone(), graceful.watcher());
        let handshake_timeout = limits.header_read_timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT);
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = TowerToHyperService::new(service);
            let served = match tls {
                None => watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await,
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(err)) => return tracing::debug!(error = %err, "a TLS handshake failed"),
                        Err(_) => return tracing::debug!("a TLS handshake took too long"),
                    };
                    watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await
                }
            };
            if let Err(err) = served {
                tracing::debug!(error = %err, "a connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Errors that concern one connection are skipped; others (out of file descriptors) pause
/// accepting for a second rather than spin.
async fn pause_after_accept_error(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed; pausing for a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Open connections per client address.
#[derive(Debug, Default, Clone)]
struct OpenConnections(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl OpenConnections {
    /// Counts a new connection from `ip`, unless it already holds `cap`.
    fn admit(&self, ip: IpAddr, cap: Option<usize>) -> Option<Slot> {
        // An IPv4 client of a dual-stack listener counts as itself, not as its mapped IPv6 form.
        let ip = ip.to_canonical();
        let mut open = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(ip).or_insert(0);
        if cap.is_some_and(|cap| *count >= cap) {
            return None;
        }
        *count += 1;
        Some(Slot { open: self.clone(), ip })
    }
}

/// One counted connection; uncounted when dropped.
struct Slot {
    open: OpenConnections,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}
