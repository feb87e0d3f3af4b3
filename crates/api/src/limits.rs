//! Limits every request passes before a handler sees it — URL length, header size, and an idle
//! timeout on the request body — and the security headers every response leaves with. A refusal
//! here has the same `{"error":{"code","message"}}` shape as any other.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::Stream;
use tokio::time::Sleep;

use crate::error::{ErrorBody, ErrorDetail};
use crate::HttpLimits;

/// The policy on JSON API responses: they load nothing and may not be framed.
const API_CSP: HeaderValue = HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'");
const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000; includeSubDomains");

/// A response in the shared error shape, for refusals that are not core errors.
pub fn refusal(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: ErrorDetail { code: code.to_owned(), message: message.into(), missing_parts: None },
    };
    (status, axum::Json(body)).into_response()
}

/// Refuses over-long URLs (414) and over-large header sections (431), and puts an idle timeout
/// on the request body.
pub async fn request_limits(State(limits): State<Arc<HttpLimits>>, request: Request, next: Next) -> Response {
    let url_bytes = request.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if url_bytes > limits.max_url_bytes {
        return refusal(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the URL is {url_bytes} bytes; the most accepted is {}", limits.max_url_bytes),
        );
    }
    // Name, value and the ": " and CRLF around them, as on the wire.
    let header_bytes: usize =
        request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if header_bytes > limits.max_header_bytes {
        return refusal(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the request headers are {header_bytes} bytes; the most accepted is {}",
                limits.max_header_bytes
            ),
        );
    }
    let request = if request.body().is_end_stream() || limits.body_idle_timeout.is_zero() {
        request
    } else {
        let idle = limits.body_idle_timeout;
        request.map(|body| Body::from_stream(IdleTimeout::new(body.into_data_stream(), idle)))
    };
    next.run(request).await
}

/// Adds the security headers: a strict Content-Security-Policy on API responses (not on `/docs`,
/// whose page needs its scripts, and not on file bytes, which carry their own), and HSTS when the
/// service is reached over https.
pub async fn security_headers(
    State(limits): State<Arc<HttpLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let docs = request.uri().path().starts_with("/docs");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let is_json_or_empty = headers
        .get(header::CONTENT_TYPE)
        .is_none_or(|value| value.to_str().is_ok_and(|v| v.starts_with("application/json")));
    if !docs && is_json_or_empty && !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, API_CSP);
    }
    if limits.strict_transport_security {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    response
}

/// A request body that fails when no byte arrives for `idle` while its reader waits: a client
/// that stalls is cut off, one that is slow but steady is not. The clock runs only while the
/// handler is waiting for bytes, never while it is busy elsewhere.
struct IdleTimeout {
    inner: BodyDataStream,
    idle: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    timed_out: bool,
}

impl IdleTimeout {
    fn new(inner: BodyDataStream, idle: Duration) -> Self {
        Self { inner, idle, deadline: None, timed_out: false }
    }
}

impl Stream for IdleTimeout {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.timed_out {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(item) => {
                self.deadline = None;
                Poll::Ready(item.map(|chunk| chunk.map_err(io::Error::other)))
            }
            Poll::Pending => {
                let idle = self.idle;
                let deadline = self.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.deadline = None;
                        self.timed_out = true;
                        tracing::info!(idle_secs = idle.as_secs_f64(), "a request body stalled; cut off");
                        Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no bytes arrived for {} s", idle.as_secs_f64()),
                        ))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}
