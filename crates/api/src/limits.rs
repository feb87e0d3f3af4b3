//! Limits every request passes before a handler sees it — URL length, header size, and an idle
//! timeout and a minimum transfer rate on the request body — and the security headers every response leaves with. A refusal
//! here has the same `{"error":{"code","message"}}` shape as any other.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, BodyDataStream, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use cabinet_core::Code;
use futures::Stream;
use tokio::time::Sleep;

use crate::body_read::BodyRead;
use crate::error::{ErrorBody, ErrorDetail};
use crate::surface::Surface;
use crate::HttpLimits;

/// The policy on JSON API responses: they load nothing and may not be framed.
const API_CSP: HeaderValue = HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'");
const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000; includeSubDomains");

/// A response in the shared error shape, for refusals that are not core errors.
pub fn refusal(status: StatusCode, code: Code, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: ErrorDetail { code: code.as_str().to_owned(), message: message.into(), missing_parts: None },
    };
    (status, axum::Json(body)).into_response()
}

/// Refuses over-long URLs (414) and over-large header sections (431), and puts an idle timeout
/// and a minimum rate on the request body.
pub async fn request_limits<F, Fut>(limits: &HttpLimits, request: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let url_bytes = request.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if url_bytes > limits.max_url_bytes {
        return Surface::of(request.uri().path()).refusal(
            StatusCode::URI_TOO_LONG,
            Code::UriTooLong,
            format!("the URL is {url_bytes} bytes; the most accepted is {}", limits.max_url_bytes),
        );
    }
    // Name, value and the ": " and CRLF around them, as on the wire.
    let header_bytes: usize =
        request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if header_bytes > limits.max_header_bytes {
        return Surface::of(request.uri().path()).refusal(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Code::HeadersTooLarge,
            format!(
                "the request headers are {header_bytes} bytes; the most accepted is {}",
                limits.max_header_bytes
            ),
        );
    }
    let paced = !limits.body_idle_timeout.is_zero() || limits.body_min_rate > 0;
    let request = if request.body().is_end_stream() || !paced {
        request
    } else {
        request.map(|body| Body::from_stream(PacedBody::new(body.into_data_stream(), limits)))
    };
    next(request).await
}

/// Says `Connection: close` on an error answered before the request's body was read to its end
/// (a refusal before the upload's bytes were taken, a dependency down): hyper closes such a
/// connection after the answer, as the rest of the body is still on the wire, but does not say
/// so, and a client that reuses it would see its next request fail without an answer.
pub async fn close_after_unread_body<F, Fut>(request: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    if request.body().is_end_stream() || request.version() >= Version::HTTP_2 {
        return next(request).await;
    }
    let (request, read) = BodyRead::observe(request);
    let mut response = next(request).await;
    let failed = response.status().is_client_error() || response.status().is_server_error();
    if failed && !read.is_none_or(|read| read.ended()) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Adds the security headers where the response has none of its own: `X-Frame-Options`,
/// `Referrer-Policy`, `X-Content-Type-Options`; a strict Content-Security-Policy on API responses
/// (not on `/docs` (`docs`), whose page needs its scripts, and not on file bytes, which carry their
/// own); HSTS when the service is reached over https; and `Retry-After` on a handler's 429 and on
/// a 503.
pub fn add_security_headers(limits: &HttpLimits, docs: bool, response: &mut Response) {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ] {
        if !headers.contains_key(&name) {
            headers.insert(name, value);
        }
    }
    let is_json_or_empty = headers
        .get(header::CONTENT_TYPE)
        .is_none_or(|value| value.to_str().is_ok_and(|v| v.starts_with("application/json")));
    if !docs && is_json_or_empty && !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, API_CSP);
    }
    if limits.strict_transport_security {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    // A 429 from a handler (a workspace or key at its cap of uploads in progress) and a 503 (a
    // store did not answer) say when to come back, whichever surface shaped their bodies; the rate
    // limiter sets its own.
    let retry_after = match response.status() {
        StatusCode::TOO_MANY_REQUESTS => Some(cabinet_core::transfers::UPLOAD_RETRY_AFTER_SECS),
        StatusCode::SERVICE_UNAVAILABLE => Some(UNAVAILABLE_RETRY_AFTER_SECS),
        _ => None,
    };
    if let Some(seconds) = retry_after {
        response.headers_mut().entry(header::RETRY_AFTER).or_insert(HeaderValue::from(seconds));
    }
}

/// What a client answered 503 (a store did not answer in time, or the disk is full) is told to
/// wait before trying again, in seconds: long enough that clients retrying at once do not pile
/// onto a store that is catching up, short against the 30 s a request may wait for one.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

/// A request body that fails when no byte arrives for `idle` while its reader waits, or when it
/// sends less than `min_bytes` within `window` of waiting: a client that stalls or trickles is cut
/// off, one that is slow but steady is not. Both clocks run only while the handler is waiting for
/// bytes, never while it is busy elsewhere (writing to a slow disk, say).
struct PacedBody {
    inner: BodyDataStream,
    idle: Duration,
    idle_deadline: Option<Pin<Box<Sleep>>>,
    pace: Option<Pace>,
    cut: bool,
}

/// The minimum-rate rule: `min_bytes` must arrive within each `window` of waiting.
struct Pace {
    window: Duration,
    min_bytes: u64,
    /// Waiting time and bytes counted in the current window.
    waited: Duration,
    bytes: u64,
    waiting_since: Option<Instant>,
    window_deadline: Option<Pin<Box<Sleep>>>,
}

impl Pace {
    /// Counts a chunk; the window starts over once it has brought enough bytes.
    fn arrived(&mut self, len: usize) -> bool {
        if let Some(since) = self.waiting_since.take() {
            self.waited += since.elapsed();
        }
        self.window_deadline = None;
        self.bytes += len as u64;
        if self.bytes >= self.min_bytes {
            (self.waited, self.bytes) = (Duration::ZERO, 0);
            return true;
        }
        self.waited < self.window
    }

    /// Whether waiting has now used up the window without enough bytes.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let since = *self.waiting_since.get_or_insert_with(Instant::now);
        let left = self.window.saturating_sub(self.waited);
        let deadline = self
            .window_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until((since + left).into())));
        deadline.as_mut().poll(cx).is_ready()
    }
}

impl PacedBody {
    fn new(inner: BodyDataStream, limits: &HttpLimits) -> Self {
        let pace = (limits.body_min_rate > 0 && !limits.body_rate_window.is_zero()).then(|| Pace {
            window: limits.body_rate_window,
            min_bytes: (limits.body_min_rate as f64 * limits.body_rate_window.as_secs_f64()).ceil() as u64,
            waited: Duration::ZERO,
            bytes: 0,
            waiting_since: None,
            window_deadline: None,
        });
        Self { inner, idle: limits.body_idle_timeout, idle_deadline: None, pace, cut: false }
    }

    fn cut_off(&mut self, message: String) -> Poll<Option<Result<Bytes, io::Error>>> {
        self.cut = true;
        (self.idle_deadline, self.pace) = (None, None);
        tracing::info!(reason = %message, "a request body was cut off");
        Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::TimedOut, message))))
    }

    fn too_slow(&self) -> String {
        let pace = self.pace.as_ref().expect("only with a pace");
        format!(
            "the body sent fewer than {} bytes in {} s; the least accepted is {} bytes/s",
            pace.min_bytes,
            pace.window.as_secs_f64(),
            (pace.min_bytes as f64 / pace.window.as_secs_f64()).round()
        )
    }
}

impl Stream for PacedBody {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.cut {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.idle_deadline = None;
                if let Some(pace) = &mut self.pace {
                    if !pace.arrived(chunk.len()) {
                        let message = self.too_slow();
                        return self.cut_off(message);
                    }
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(item) => {
                self.idle_deadline = None;
                Poll::Ready(item.map(|chunk| chunk.map_err(io::Error::other)))
            }
            Poll::Pending => {
                if self.pace.as_mut().is_some_and(|pace| pace.poll_expired(cx)) {
                    let message = self.too_slow();
                    return self.cut_off(message);
                }
                if self.idle.is_zero() {
                    return Poll::Pending;
                }
                let idle = self.idle;
                let deadline = self.idle_deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => self.cut_off(format!("no bytes arrived for {} s", idle.as_secs_f64())),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}
