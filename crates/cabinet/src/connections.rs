//! Accepting and serving HTTP/1 connections, with the limits that act before any request exists:
//! a client must send a request's headers within the header-read timeout (so a slow-header client
//! cannot hold a connection), one client IP address may hold at most so many connections, and a
//! listener at most so many in all (more are closed at once), and shutdown stops accepting, then
//! lets open connections finish their requests. With TLS, the handshake is bounded by the header-read timeout too. A plain connection
//! waiting for its next request holds no HTTP buffers once it has waited a moment ([`parking`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use cabinet_api::telemetry;
use parking::{Activity, Counted, Parking, Socket};

mod parking;

/// Limits on connections, enforced before a request is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client may take to send a request's headers once it has begun, and a connection
    /// may wait for its first or next request (`None`: no limit).
    pub header_read_timeout: Option<Duration>,
    /// Connections one client IP address may hold open (`None`: no cap).
    pub max_per_address: Option<usize>,
    /// Connections the listener may hold open in all (`None`: no cap).
    pub max_total: Option<usize>,
    /// How long an answer may wait for its client to take any of it before the connection is
    /// closed (`None`: no limit).
    pub send_timeout: Option<Duration>,
}

/// The default header-read timeout, in seconds.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// How long a TLS handshake may take when there is no header-read timeout.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// The default cap on connections per client address.
pub const DEFAULT_MAX_PER_ADDRESS: usize = 256;
/// The default cap on a listener's connections: ~16 MiB while they wait for their next request
/// (~1 KiB each, see [`parking`]), and well below the open files a server has at the hard limit it
/// raises itself to (65,536 in `packaging/cabinet.service`, 524,288 under systemd's defaults).
pub const DEFAULT_MAX_TOTAL: usize = 16_384;

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Some(Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECS)),
            max_per_address: Some(DEFAULT_MAX_PER_ADDRESS),
            max_total: Some(DEFAULT_MAX_TOTAL),
            send_timeout: Some(Duration::from_secs(cabinet_api::HttpLimits::DEFAULT_BODY_IDLE_TIMEOUT_SECS)),
        }
    }
}

impl ConnectionLimits {
    /// These limits with the total cap lowered, where it must be, to a share of `open_files`: three
    /// quarters of them go to the connections of all `listeners`, and a quarter stays for the files
    /// requests open (an upload's temporary file, a download's blob, the database's), which a
    /// server out of files would fail.
    pub fn within_open_files(self, open_files: u64, listeners: u64) -> Self {
        let for_connections = open_files - open_files / 4;
        let share = usize::try_from(for_connections / listeners.max(1)).unwrap_or(usize::MAX).max(1);
        Self { max_total: self.max_total.map(|cap| cap.min(share)), ..self }
    }
}

/// Connections the kernel may hold for the accept loop, handshaken or handshaking (Linux caps it
/// at `net.core.somaxconn`, 4096 by default). tokio's `TcpListener::bind` listens with the
/// standard library's 128, which a thousand uploads connecting at once overflowed while the
/// server was busy. The kernel then answers with SYN cookies, which keep no record of a
/// handshake: one whose last ACK and first bytes arrive while the queue is full is dropped, and
/// the bytes after them are answered with a reset, so the client, taking itself for connected,
/// had its upload reset mid-body. nginx listens with 511; Go with `somaxconn`.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Listens on `at` with [`LISTEN_BACKLOG`]; like tokio's `TcpListener::bind`, with `SO_REUSEADDR`,
/// so a restarted server can listen again on a port whose last connections are still closing.
pub fn listen(at: SocketAddr) -> io::Result<TcpListener> {
    let socket = if at.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(at)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The most open files asked for when the hard limit is unlimited: Linux's default `fs.nr_open`,
/// past which the kernel refuses any limit.
const MOST_OPEN_FILES: u64 = 1 << 20;

/// Raises this process's open-file limit to its hard limit; returns the limits before and after.
/// Each connection is a file, and each upload under way one or two more, while systemd starts a
/// service with a soft limit of 1024 (and a hard limit of 524288): at 1024 the server could hold
/// about a thousand connections, and past that every accept failed. Go's runtime raises it the
/// same way; nginx has `worker_rlimit_nofile`. A limit lowered on purpose stays below its hard
/// limit only if the hard limit is lowered too (`LimitNOFILE=`, `ulimit -Hn`).
pub fn raise_open_file_limit() -> io::Result<(u64, u64)> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current.unwrap_or(u64::MAX);
    let wanted = limit.maximum.unwrap_or(MOST_OPEN_FILES);
    if before >= wanted {
        return Ok((before, before));
    }
    setrlimit(Resource::Nofile, Rlimit { current: Some(wanted), maximum: limit.maximum })?;
    Ok((before, wanted))
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
    let (stop, _) = watch::channel(false);
    let mut http = http1::Builder::new();
    // hyper grows a connection's read buffer to about 400 KiB while a body streams in, and a
    // thousand uploads at once held that each; 64 KiB reads keep the disk fed as well. It also
    // bounds a request's head (nginx takes 32 KiB by default).
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).max_buf_size(READ_BUFFER);
    let http = Arc::new(http);
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
        let slot = match open.admit(peer.ip(), limits) {
            Ok(slot) => slot,
            Err(Refused::OverAddressCap) => {
                tracing::debug!(client = %peer.ip(), "closing a connection over the per-address cap");
                metrics::counter!(telemetry::CONNECTIONS_REFUSED, "reason" => "per_address").increment(1);
                continue;
            }
            Err(Refused::OverTotalCap { warn }) => {
                metrics::counter!(telemetry::CONNECTIONS_REFUSED, "reason" => "total").increment(1);
                if warn {
                    tracing::warn!(
                        cap = limits.max_total,
                        "closing new connections: the server holds as many as it may (--max-connections)"
                    );
                }
                continue;
            }
        };
        let service = app.clone().map_request(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let (http, stopping) = (http.clone(), stop.subscribe());
        // A connection waiting for its next request is this task alone (see `parking`), so each
        // kind of connection gets a task of its own size: the TLS handshake's state is not carried
        // by every plain connection.
        match &tls {
            None => {
                tokio::spawn(async move {
                    serve_connection(stream, &http, service, limits, stopping).await;
                    drop(slot);
                });
            }
            Some(acceptor) => {
                let handshake = acceptor.accept(stream);
                let handshake_timeout = limits.header_read_timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT);
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake_timeout, handshake).await {
                        Ok(Ok(stream)) => serve_connection(stream, &http, service, limits, stopping).await,
                        Ok(Err(err)) => tracing::debug!(error = %err, "a TLS handshake failed"),
                        Err(_) => tracing::debug!("a TLS handshake took too long"),
                    }
                    drop(slot);
                });
            }
        }
    }
    drop(listener);
    // Every connection holds a receiver until it has closed.
    let _ = stop.send(true);
    stop.closed().await;
}

/// Serves one connection: a hyper session while it has requests, the bare socket while it waits
/// between them (see [`parking`]). It closes when the client closes it or fails, once it has waited
/// the header-read timeout for a request (after connecting, or after its last answer), once its
/// client has taken none of an answer for the send timeout, and at shutdown, after the request in
/// progress.
async fn serve_connection<S, A>(
    mut stream: S,
    http: &http1::Builder,
    app: A,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
) where
    S: Socket,
    A: tower::Service<hyper::Request<Incoming>, Response = axum::response::Response, Error = Infallible>
        + Clone
        + Send
        + Unpin
        + 'static,
    A::Future: Send + Unpin + 'static,
{
    let mut unparsed = Bytes::new();
    loop {
        if S::PARKS && unparsed.is_empty() {
            let woke = tokio::select! {
                woke = wait_at_most(limits.header_read_timeout, stream.readable()) => woke,
                _ = stopping.wait_for(|stop| *stop) => return,
            };
            // Idle for the whole timeout, or the socket failed.
            if !matches!(woke, Some(Ok(()))) {
                return;
            }
        }
        let activity = Arc::new(Activity::default());
        let service = Counted::new(TowerToHyperService::new(app.clone()), activity.clone());
        let parking = Parking::new(stream, std::mem::take(&mut unparsed), activity)
            .with_send_timeout(limits.send_timeout);
        let io = TokioIo::new(parking);
        let mut session = Box::new(http.serve_connection(io, service));
        let served = {
            let mut stop = std::pin::pin!(stopping.wait_for(|stop| *stop));
            let mut stopped = false;
            std::future::poll_fn(|cx| {
                if !stopped && stop.as_mut().poll(cx).is_ready() {
                    stopped = true;
                    std::pin::Pin::new(&mut *session).graceful_shutdown();
                }
                session.poll_without_shutdown(cx)
            })
            .await
        };
        let http1::Parts { io, read_buf, .. } = session.into_parts();
        let parking = io.into_inner();
        let parked = parking.parked();
        let (socket, not_yet_read) = parking.into_inner();
        stream = socket;
        match served {
            Ok(()) if parked => {}
            // The hyper session ended in the middle of a request sent right behind the last one:
            // the next hyper session starts with the bytes of it this one had read.
            Err(err) if parked && err.is_incomplete_message() => {
                unparsed = [read_buf, not_yet_read].concat().into()
            }
            Err(err) => return tracing::debug!(error = %err, "a connection ended with an error"),
            Ok(()) => {
                // The client closed its side, or asked to close after its answer, or shutdown came.
                let _ = tokio::time::timeout(SHUTDOWN_WRITE_TIMEOUT, stream.shutdown()).await;
                drain_before_closing(&mut stream).await;
                return;
            }
        }
    }
}

/// How long closing a connection's sending side may take (a TLS session's last record).
const SHUTDOWN_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest a closing connection reads what its client still sends (`drain_before_closing`).
const DRAIN_FOR: Duration = Duration::from_secs(2);
/// How long it waits for the next of those bytes before it closes anyway.
const DRAIN_IDLE: Duration = Duration::from_millis(250);

/// Reads and drops what the client still sends before the connection is closed: after an answer
/// given before a request's body was read to its end (a refusal, a full disk), the client is
/// usually still sending it. Closed with those bytes unread, the socket would be reset, and a
/// reset can reach the client before it has read the answer, which is then lost (it sees "broken
/// pipe" instead of the 413 or 503 it was sent). A client that closes its side at once costs
/// nothing; one that neither sends nor closes is left after `DRAIN_IDLE`, and no client keeps the
/// connection past `DRAIN_FOR`. It holds no buffer of its own meanwhile ([`read_and_drop`]).
async fn drain_before_closing<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) {
    let until = tokio::time::Instant::now() + DRAIN_FOR;
    loop {
        let next = tokio::time::timeout(DRAIN_IDLE, read_and_drop(stream));
        match tokio::time::timeout_at(until, next).await {
            Ok(Ok(Ok(read))) if read > 0 => continue,
            _ => return,
        }
    }
}

thread_local! {
    /// Where the closing connections polled on this thread read the bytes they drop. Nothing read
    /// into it is kept, so they share it, and a crowd of connections draining at once (each client
    /// sending on after its refusal) costs no memory for each.
    static DROPPED: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0; 16 * 1024].into_boxed_slice());
}

/// Reads what `stream` has for it into this thread's [`DROPPED`] and forgets it; how many bytes
/// came (0: the client closed its side). The buffer is borrowed for one poll at a time only.
fn read_and_drop<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
) -> impl Future<Output = io::Result<usize>> + '_ {
    std::future::poll_fn(move |cx| {
        DROPPED.with_borrow_mut(|dropped| {
            let mut unfilled = tokio::io::ReadBuf::new(dropped);
            std::pin::Pin::new(&mut *stream).poll_read(cx, &mut unfilled).map_ok(|()| unfilled.filled().len())
        })
    })
}

/// `wait`'s outcome, or `None` once `limit` has passed (`None`: no limit).
async fn wait_at_most<T>(limit: Option<Duration>, wait: impl Future<Output = T>) -> Option<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, wait).await.ok(),
        None => Some(wait.await),
    }
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

/// A listener's open connections, in all and per client address.
#[derive(Debug, Default, Clone)]
struct OpenConnections(Arc<Mutex<Counts>>);

#[derive(Debug, Default)]
struct Counts {
    per_address: HashMap<IpAddr, usize>,
    total: usize,
    /// When a connection over the total cap was last logged: once a minute at most.
    warned_at: Option<std::time::Instant>,
}

/// Why a connection is closed as soon as it is accepted.
enum Refused {
    OverAddressCap,
    /// `warn`: the first such refusal in a minute, to log.
    OverTotalCap {
        warn: bool,
    },
}

impl OpenConnections {
    /// Counts a new connection from `ip`, unless it or the listener already holds its cap.
    fn admit(&self, ip: IpAddr, limits: ConnectionLimits) -> Result<Slot, Refused> {
        const WARN_EVERY: Duration = Duration::from_secs(60);
        // An IPv6 client counts as its /64; an IPv4 one as itself, in a dual-stack listener too.
        let ip = cabinet_api::client_address::counted_as(ip);
        let mut counts = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let counts = &mut *counts;
        if limits.max_total.is_some_and(|cap| counts.total >= cap) {
            let warn = counts.warned_at.is_none_or(|at| at.elapsed() >= WARN_EVERY);
            if warn {
                counts.warned_at = Some(std::time::Instant::now());
            }
            return Err(Refused::OverTotalCap { warn });
        }
        let count = counts.per_address.entry(ip).or_insert(0);
        if limits.max_per_address.is_some_and(|cap| *count >= cap) {
            return Err(Refused::OverAddressCap);
        }
        *count += 1;
        counts.total += 1;
        metrics::gauge!(telemetry::CONNECTIONS_OPEN).increment(1.0);
        Ok(Slot { open: self.clone(), ip })
    }
}

/// One counted connection; uncounted when dropped.
struct Slot {
    open: OpenConnections,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.open.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        counts.total -= 1;
        metrics::gauge!(telemetry::CONNECTIONS_OPEN).decrement(1.0);
        if let Some(count) = counts.per_address.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.per_address.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_address: usize, total: usize) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: None,
            max_per_address: Some(per_address),
            max_total: Some(total),
            send_timeout: None,
        }
    }

    #[tokio::test]
    async fn bytes_read_to_be_dropped_are_counted_until_the_client_closes_its_side() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        tokio::io::AsyncWriteExt::write_all(&mut client, &[7u8; 40_000]).await.unwrap();
        drop(client);
        let mut dropped = 0;
        loop {
            match read_and_drop(&mut server).await.unwrap() {
                0 => break,
                read => dropped += read,
            }
        }
        assert_eq!(dropped, 40_000);
    }

    #[test]
    fn the_addresses_of_one_ipv6_slash_64_share_its_cap() {
        let open = OpenConnections::default();
        let address = |text: &str| text.parse::<IpAddr>().unwrap();
        let first = open.admit(address("2001:db8:0:1::1"), limits(2, 10)).ok();
        let second = open.admit(address("2001:db8:0:1::ffff"), limits(2, 10)).ok();
        assert!(first.is_some() && second.is_some());
        assert!(matches!(
            open.admit(address("2001:db8:0:1:abcd::9"), limits(2, 10)),
            Err(Refused::OverAddressCap)
        ));
        let other_network = open.admit(address("2001:db8:0:2::1"), limits(2, 10));
        assert!(other_network.is_ok(), "another /64 has a cap of its own");
        drop(first);
        assert!(open.admit(address("2001:db8:0:1::2"), limits(2, 10)).is_ok(), "a closed connection's place");
    }

    #[test]
    fn the_total_cap_holds_whatever_the_addresses_and_frees_a_place_when_one_closes() {
        let open = OpenConnections::default();
        let held: Vec<Slot> =
            (1..=3).map(|n| open.admit(IpAddr::from([192, 0, 2, n]), limits(256, 3)).ok().unwrap()).collect();
        assert!(matches!(
            open.admit(IpAddr::from([198, 51, 100, 1]), limits(256, 3)),
            Err(Refused::OverTotalCap { warn: true })
        ));
        assert!(matches!(
            open.admit(IpAddr::from([198, 51, 100, 2]), limits(256, 3)),
            Err(Refused::OverTotalCap { warn: false })
        ));
        drop(held);
        assert!(open.admit(IpAddr::from([198, 51, 100, 1]), limits(256, 3)).is_ok());
    }
}
