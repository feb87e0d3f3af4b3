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
//! names its caller, so refusals write no audit record.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use s3s::access::{S3Access, S3AccessContext};
use s3s::{s3_error, S3Result};
use tokio::time::Instant;

use crate::client_address::{counted_as, TrustedProxies};
use crate::rate_limit::RateLimiter;

pub(super) struct KeyAllowance {
    pub(super) limiter: RateLimiter,
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
        let verdict = self.limiter.check(holder, Instant::now(), false);
        if verdict.allowed {
            return Ok(());
        }
        tokio::time::sleep(verdict.pause()).await;
        let retry_after_secs = verdict.retry_after_secs;
        Err(super::errors::slow_down(
            format!("too many requests; try again in {retry_after_secs} s"),
            retry_after_secs,
        ))
    }
}
