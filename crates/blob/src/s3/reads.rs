//! The HTTP client that reads objects, with a small read buffer per connection.
//!
//! A download through Cabinet (a file's content with a key, a public file with none) is read from
//! S3 only as fast as its client takes it, so while a client reads nothing, its S3 connection holds
//! what it read last. reqwest's connections read up to ~400 KiB at a time (hyper's default
//! buffer), so 600 downloads whose clients read nothing held ~280 MiB. Here a connection reads at
//! most 64 KiB at a time, as the server's own connections do, and 16 KiB once the reads open
//! (with the local folder's downloads, `HELD_FOR_SENDING`) hold 64 MiB in all: what a read may
//! hold is counted there while the read is open.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use object_store::client::{
    HttpClient, HttpConnector as StoreConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody,
    HttpResponse, HttpResponseBody, HttpService,
};
use object_store::ClientOptions;
use rustls_platform_verifier::ConfigVerifierExt;
use tokio::time::Instant;

use crate::sending::{HELD_FOR_SENDING, MOST_HELD_FOR_SENDING};

/// The most a connection reads from S3 at a time: the server's own connections' buffer.
const READ_BUFFER: usize = 64 * 1024;
/// The same once reads for sending hold `MOST_HELD_FOR_SENDING`.
const SMALL_READ_BUFFER: usize = 16 * 1024;
/// What an open read is counted as holding, in buffers: while its client reads nothing, the
/// server's connection has queued one chunk (sharing the allocation it was read into), hyper's
/// body channel holds the next, and the connection has a buffer for the one after.
const BUFFERS_HELD_BY_A_READ: usize = 3;
/// How long connecting (TCP and TLS) may take, as object_store's default.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long S3 may take to begin its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long S3 may leave a body it is sending without a byte, once more was asked for.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept for reuse; each keeps its read buffer.
const IDLE_CONNECTIONS: usize = 32;
const IDLE_CONNECTION_LIFETIME: Duration = Duration::from_secs(90);

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Makes object_store's clients for reads: hyper's, over rustls with the platform's roots.
#[derive(Debug)]
pub(super) struct BoundedReads {
    allow_http: bool,
}

impl BoundedReads {
    pub(super) fn new(allow_http: bool) -> Self {
        Self { allow_http }
    }
}

impl StoreConnector for BoundedReads {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let generic =
            |source: Box<dyn StdError + Send + Sync>| object_store::Error::Generic { store: "S3", source };
        let tls = rustls::ClientConfig::with_platform_verifier().map_err(|err| generic(Box::new(err)))?;
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
        let connector = if self.allow_http {
            builder.https_or_http().enable_http1().wrap_connector(tcp)
        } else {
            builder.https_only().enable_http1().wrap_connector(tcp)
        };
        let client = |read_buffer: usize| {
            Client::builder(TokioExecutor::new())
                .http1_max_buf_size(read_buffer)
                .pool_max_idle_per_host(IDLE_CONNECTIONS)
                .pool_idle_timeout(IDLE_CONNECTION_LIFETIME)
                .pool_timer(TokioTimer::new())
                .build(connector.clone())
        };
        Ok(HttpClient::new(ReadClient { large: client(READ_BUFFER), small: client(SMALL_READ_BUFFER) }))
    }
}

#[derive(Debug)]
struct ReadClient {
    large: Client<Connector, HttpRequestBody>,
    small: Client<Connector, HttpRequestBody>,
}

#[async_trait]
impl HttpService for ReadClient {
    async fn call(&self, mut request: HttpRequest) -> Result<HttpResponse, HttpError> {
        // As object_store's own client names itself to S3 (its access logs, gateways that want one).
        request.headers_mut().entry(hyper::header::USER_AGENT).or_insert(
            hyper::header::HeaderValue::from_static(concat!("cabinet/", env!("CARGO_PKG_VERSION"))),
        );
        let (client, read_buffer) = if HELD_FOR_SENDING.load(Ordering::Relaxed) < MOST_HELD_FOR_SENDING {
            (&self.large, READ_BUFFER)
        } else {
            (&self.small, SMALL_READ_BUFFER)
        };
        let held = HeldWhileOpen::count(BUFFERS_HELD_BY_A_READ * read_buffer);
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, client.request(request))
            .await
            .map_err(|elapsed| HttpError::new(HttpErrorKind::Timeout, elapsed))?
            .map_err(|err| {
                let kind = kind_of(&err);
                HttpError::new(kind, err)
            })?;
        let (parts, body) = answer.into_parts();
        let body = HttpResponseBody::new(IdleBounded::new(body, held));
        Ok(HttpResponse::from_parts(parts, body))
    }
}

/// What a read may hold, counted in `HELD_FOR_SENDING` until its answer is dropped.
struct HeldWhileOpen(usize);

impl HeldWhileOpen {
    fn count(bytes: usize) -> Self {
        HELD_FOR_SENDING.fetch_add(bytes, Ordering::Relaxed);
        Self(bytes)
    }
}

impl Drop for HeldWhileOpen {
    fn drop(&mut self) {
        HELD_FOR_SENDING.fetch_sub(self.0, Ordering::Relaxed);
    }
}

/// What object_store should make of a failed request: whether to retry it, and how.
fn kind_of(err: &hyper_util::client::legacy::Error) -> HttpErrorKind {
    if err.is_connect() {
        return HttpErrorKind::Connect;
    }
    err.source().map_or(HttpErrorKind::Unknown, kind_of_chain)
}

/// The kind of the first error in `err`'s chain of causes that tells one, as reqwest's errors are
/// read for object_store.
fn kind_of_chain(err: &(dyn StdError + 'static)) -> HttpErrorKind {
    std::iter::successors(Some(err), |&cause| cause.source())
        .find_map(kind_of_cause)
        .unwrap_or(HttpErrorKind::Unknown)
}

fn kind_of_cause(cause: &(dyn StdError + 'static)) -> Option<HttpErrorKind> {
    if let Some(err) = cause.downcast_ref::<hyper::Error>() {
        if err.is_closed() || err.is_incomplete_message() || err.is_body_write_aborted() {
            return Some(HttpErrorKind::Request);
        }
        if err.is_timeout() {
            return Some(HttpErrorKind::Timeout);
        }
    }
    let err = cause.downcast_ref::<std::io::Error>()?;
    match err.kind() {
        std::io::ErrorKind::TimedOut => Some(HttpErrorKind::Timeout),
        std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::BrokenPipe
        | std::io::ErrorKind::UnexpectedEof => Some(HttpErrorKind::Interrupted),
        _ => None,
    }
}

/// An answer's body that fails when S3 sends nothing for `BODY_IDLE_TIMEOUT` while it is waited
/// on. Time the reader spends not asking is not counted: a download is read as its client takes it.
/// The timer is made once and moved only when it fires, not armed at each wait for a chunk.
struct IdleBounded {
    body: hyper::body::Incoming,
    /// When the wait for the next frame began, while there is one.
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    _held: HeldWhileOpen,
}

impl IdleBounded {
    fn new(body: hyper::body::Incoming, held: HeldWhileOpen) -> Self {
        Self { body, waiting_since: None, timer: None, _held: held }
    }

    /// Whether the wait that began at `since` has lasted `BODY_IDLE_TIMEOUT`; if not, `cx` is
    /// woken when it would have.
    fn waited_too_long(&mut self, since: Instant, cx: &mut Context<'_>) -> bool {
        let deadline = since + BODY_IDLE_TIMEOUT;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        if timer.deadline() >= deadline {
            return true;
        }
        // It fired for an earlier wait: set it for this one.
        timer.as_mut().reset(deadline);
        timer.as_mut().poll(cx).is_ready()
    }
}

impl Body for IdleBounded {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.waiting_since = None;
                Poll::Ready(frame.map(|frame| {
                    frame.map_err(|err| {
                        let kind = kind_of_chain(&err);
                        HttpError::new(kind, err)
                    })
                }))
            }
            Poll::Pending => {
                let since = *self.waiting_since.get_or_insert_with(Instant::now);
                if self.waited_too_long(since, cx) {
                    let stalled = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("S3 sent nothing for {} s", BODY_IDLE_TIMEOUT.as_secs()),
                    );
                    return Poll::Ready(Some(Err(HttpError::new(HttpErrorKind::Timeout, stalled))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// S3 that answers with the first 3 bytes of 10 and then sends nothing, holding the
    /// connection; and the head of the request it was sent.
    async fn stalling_s3() -> (std::net::SocketAddr, tokio::sync::oneshot::Receiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (head, asked) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0; 4096];
            let read = socket.read(&mut request).await.unwrap();
            let _ = head.send(String::from_utf8_lossy(&request[..read]).into_owned());
            socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").await.unwrap();
            std::future::pending::<()>().await;
        });
        (address, asked)
    }

    fn get(address: std::net::SocketAddr) -> HttpRequest {
        hyper::Request::builder()
            .uri(format!("http://{address}/bucket/key"))
            .body(HttpRequestBody::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn a_body_s3_stops_sending_fails_once_it_was_waited_on_for_the_idle_timeout() {
        let (address, asked) = stalling_s3().await;
        let client = BoundedReads::new(true).connect(&ClientOptions::new()).unwrap();
        let mut body = client.execute(get(address)).await.unwrap().into_body().bytes_stream();
        assert_eq!(body.next().await.unwrap().unwrap(), Bytes::from_static(b"abc"));
        let head = asked.await.unwrap().to_ascii_lowercase();
        assert!(head.contains("\r\nuser-agent: cabinet/"), "{head}");

        tokio::time::pause();
        // A reader that asks for nothing for longer than the timeout is not cut off for it.
        tokio::time::sleep(BODY_IDLE_TIMEOUT * 2).await;
        let asked = Instant::now();
        let err = body.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), HttpErrorKind::Timeout, "{err}");
        let waited = asked.elapsed();
        assert!(
            (BODY_IDLE_TIMEOUT..BODY_IDLE_TIMEOUT + Duration::from_secs(1)).contains(&waited),
            "timed out {waited:?} after it was asked"
        );
    }

    #[tokio::test]
    async fn an_https_endpoint_is_never_read_over_plain_http() {
        let (address, _) = stalling_s3().await;
        let client = BoundedReads::new(false).connect(&ClientOptions::new()).unwrap();
        let err = client.execute(get(address)).await.unwrap_err();
        assert_eq!(err.kind(), HttpErrorKind::Connect, "{err}");
    }

    #[tokio::test]
    async fn a_connection_reset_mid_body_is_an_interruption_object_store_may_retry() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let _ = socket.read(&mut [0; 4096]).await.unwrap();
            socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            // Closing with a zero linger sends a reset.
            socket.set_zero_linger().unwrap();
        });
        let client = BoundedReads::new(true).connect(&ClientOptions::new()).unwrap();
        let mut body = client.execute(get(address)).await.unwrap().into_body().bytes_stream();
        assert_eq!(body.next().await.unwrap().unwrap(), Bytes::from_static(b"abc"));
        let err = body.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), HttpErrorKind::Interrupted, "{err:?}");
    }
}
