//! The S3 surface's rate limit: each S3 key has the allowance an API key has on the other surfaces
//! (`--rate-limit-per-minute`), counted once s3s has verified the request's signature, so a key's
//! allowance is spent only by requests that key signed; an access key id is not secret (every
//! presigned URL shows it), so a request that merely names it spends nothing. Requests without a
//! signature are refused as s3s refuses them by default. A refusal is `SlowDown` (503) with
//! `Retry-After`, sent once the key's next request would be allowed (at most a second later), as
//! the other surfaces pace theirs: a key that floods its connections with refused requests costs
//! the server about what its allowance does. It is made before the operation reads its input or
//! names its caller, so refusals write no audit record.

use std::hash::{DefaultHasher, Hash, Hasher};

use s3s::access::{S3Access, S3AccessContext};
use s3s::{s3_error, S3Result};
use tokio::time::Instant;

use crate::rate_limit::RateLimiter;

pub(super) struct KeyAllowance(pub(super) RateLimiter);

#[async_trait::async_trait]
impl S3Access for KeyAllowance {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        };
        let mut holder = DefaultHasher::new();
        ("s3 key", credentials.access_key.as_str()).hash(&mut holder);
        let verdict = self.0.check(holder.finish(), Instant::now(), false);
        if verdict.allowed {
            return Ok(());
        }
        tokio::time::sleep(verdict.pause()).await;
        let retry_after_secs = verdict.retry_after_secs;
        Err(super::errors::slow_down(
            format!("too many requests for this key; try again in {retry_after_secs} s"),
            retry_after_secs,
        ))
    }
}
