//! The S3 surface's rate limit: each S3 key has the allowance an API key has on the other surfaces
//! (`--rate-limit-per-minute`), counted once s3s has verified the request's signature, so a key's
//! allowance is spent only by requests that key signed; an access key id is not secret (every
//! presigned URL shows it), so a request that merely names it spends nothing. A presigned URL is
//! handed to others to use, as Cabinet's own signed URLs are, so its requests count against the
//! address they come from, as those do, not against the key that signed it. Requests without a
//! signature are refused as s3s refuses them by default. A refusal is `SlowDown` (503) with
//! `Retry-After`, sent once the key's next request would be allowed (at most a second later), as
//! the other surfaces pace theirs: a key that floods its connections with refused requests costs
//! the server about what its allowance does. It is made before the operation reads its input or
//! names its caller, so refusals write no audit record. As on the other surfaces, the bytes of
//! a request refused (4xx) after its body was read (a wrong checksum, a part past the quota) come
//! out of a second allowance of whoever sent it (`RateLimiter::charge_refused_body`), and while
//! that is spent its requests that may send more than 32 KiB are refused before a byte is read.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use cabinet_core::Code;
use s3s::access::{S3Access, S3AccessContext};
use s3s::{s3_error, S3Result};
use tokio::time::Instant;

use crate::body_read::BodyRead;
use crate::client_address::{counted_as, TrustedProxies};
use crate::rate_limit::{RateLimiter, REFUSED_BODY_BYTES_PER_REQUEST};

pub(super) struct KeyAllowance {
    pub(super) limiter: Arc<RateLimiter>,
    /// Proxies whose forwarding headers name the client of a presigned URL.
    pub(super) proxies: TrustedProxies,
}

impl KeyAllowance {
    /// Whose allowance a verified request spends: its client's address for a presigned URL (its
    /// signature in the query), else the key that signed it.
    fn holder(&self, cx: &mut S3AccessContext<'_>, access_key: &str) -> u64 {
        let mut holder = DefaultHasher::new();
        let presigned = cx.uri().query().is_some_and(|query| {
            query
                .split('&')
                .any(|pair| pair.starts_with("X-Amz-Signature=") || pair.starts_with("Signature="))
        });
        let peer = cx.extensions_mut().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        match peer {
            Some(peer) if presigned => {
                ("s3 ip", counted_as(self.proxies.client_of(peer, cx.headers()))).hash(&mut holder)
            }
            _ => ("s3 key", access_key).hash(&mut holder),
        }
        holder.finish()
    }
}

#[async_trait::async_trait]
impl S3Access for KeyAllowance {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(access_key) = cx.credentials().map(|credentials| credentials.access_key.clone()) else {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        };
        let holder = self.holder(cx, &access_key);
        if let Some(sender) = cx.extensions_mut().get::<Sender>() {
            let _ = sender.0.set(holder);
        }
        let large_body = may_send_a_large_body(cx.method(), cx.headers());
        let verdict = self.limiter.check(holder, Instant::now(), large_body);
        if verdict.allowed {
            return Ok(());
        }
        tokio::time::sleep(verdict.pause()).await;
        let refusal = cabinet_core::Error::TooManyRequests {
            code: Code::RateLimited,
            message: verdict.refusal_message(),
            retry_after_secs: verdict.retry_after_secs,
        };
        Err(super::errors::s3_error_of(refusal))
    }
}

/// Whether a request may send more than [`REFUSED_BODY_BYTES_PER_REQUEST`]: its declared length
/// (of the object, for an `aws-chunked` body) says so, or it may send a body of no declared length.
fn may_send_a_large_body(method: &Method, headers: &HeaderMap) -> bool {
    let declared = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    match declared("x-amz-decoded-content-length").or_else(|| declared(header::CONTENT_LENGTH.as_str())) {
        Some(length) => length > REFUSED_BODY_BYTES_PER_REQUEST,
        None => matches!(*method, Method::PUT | Method::POST),
    }
}

/// Whose allowance a request spent, once its check has run: for the layer around s3s, which
/// charges what it read of a refused body to it.
#[derive(Clone, Default)]
struct Sender(Arc<OnceLock<u64>>);

/// The layer around s3s, for what an answer leaves of its request's body: a failure answered
/// before the body was read to its end says `Connection: close`, as on the other surfaces
/// (`limits::close_after_unread_body`); and a request refused after its body was read
/// charges the bytes read to the refused-body allowance of whoever sent it (when there is a rate
/// limit), as `rate_limit::rate_limit` does.
pub(super) async fn after_the_answer(
    State(limiter): State<Option<Arc<RateLimiter>>>,
    request: Request,
    next: Next,
) -> Response {
    crate::limits::close_after_unread_body(request, |mut request| async move {
        let sender = Sender::default();
        request.extensions_mut().insert(sender.clone());
        // The observer `close_after_unread_body` put on the body, if it has one.
        let (request, read) = BodyRead::observe(request);
        let response = next.run(request).await;
        if let (Some(limiter), Some(holder)) = (&limiter, sender.0.get()) {
            limiter.charge_if_refused(*holder, response.status(), read.as_deref(), Instant::now());
        }
        response
    })
    .await
}
