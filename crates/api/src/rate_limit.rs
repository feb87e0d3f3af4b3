//! Per-client rate limiting: a token bucket per credential holder (an API key, however its
//! surface spells it in `Authorization`; an end user, however many tokens they hold), and per
//! client IP for requests without a credential (the signed storage endpoint, probes, a secret that
//! cannot be one) — behind trusted proxies, the client's address they forward. Every limited response says how much is left; a refusal is 429 with `Retry-After`.
//! A request refused after its body was read is charged one request more for every whole 256 KiB
//! read: what it made the server receive, hash and write, a refusal the caller's quota does not
//! pay for (uploads of unknown size past the quota, the wrong checksum), costs its allowance. At
//! the default allowance a client can so make the server read at most ~1.5 GiB a minute that it
//! then refuses, where a MiB a request let it be ~6 GiB (reading, hashing and writing a refused MiB
//! costs the server about what thirty small requests do); a refused 1 GiB costs 4,096 requests,
//! so the client can still list and delete to make room.
//! The buckets live in this process: N nodes allow up to N times the rate.

use std::collections::hash_map::{DefaultHasher, HashMap};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tokio::time::Instant;

use cabinet_core::{Cabinet, Code};

use crate::body_read::BodyRead;
use crate::client_address::TrustedProxies;
use crate::credentials::Presented;
use crate::surface::Surface;

const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
/// Buckets kept before full (idle) ones are forgotten.
const PRUNE_AT: usize = 10_000;

/// Token buckets, one per client, refilled continuously at `per_minute / 60` per second up to
/// `per_minute`.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<u64, Bucket>>,
    proxies: TrustedProxies,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The outcome of one request against its bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub allowed: bool,
    /// Whole requests left right now.
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until the next request would be allowed (0 when allowed).
    pub retry_after_secs: u64,
    /// How long until the bucket holds a whole token again (zero when allowed).
    pub next_token_in: Duration,
}

/// A refused request is charged one request more for each of these read from its body.
pub const CHARGED_BODY_BYTES: u64 = 256 << 10;

/// The longest a refusal waits before it is sent (see [`rate_limit`]).
pub const MAX_REFUSAL_PAUSE: Duration = Duration::from_secs(1);

impl Verdict {
    /// How long a refusal waits before it is sent: until the next token, at most a second.
    pub fn pause(&self) -> Duration {
        self.next_token_in.min(MAX_REFUSAL_PAUSE)
    }
}

impl RateLimiter {
    /// A limiter allowing `per_minute` requests per client per minute; 0 turns it off.
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, buckets: Mutex::new(HashMap::new()), proxies: TrustedProxies::none() }
    }

    /// The same, counting requests without a credential by the address these proxies forward.
    pub fn behind(self, proxies: TrustedProxies) -> Self {
        Self { proxies, ..self }
    }

    /// Takes one token from `client`'s bucket, if it has one.
    pub fn check(&self, client: u64, now: Instant) -> Verdict {
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= PRUNE_AT {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * per_second < capacity
            });
        }
        let bucket = self.refilled(&mut buckets, client, now);
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        let seconds_for = |tokens: f64| (tokens.max(0.0) / per_second).ceil() as u64;
        Verdict {
            allowed,
            remaining: bucket.tokens.floor() as u64,
            reset_secs: seconds_for(capacity - bucket.tokens),
            retry_after_secs: if allowed { 0 } else { seconds_for(1.0 - bucket.tokens).max(1) },
            next_token_in: if allowed {
                Duration::ZERO
            } else {
                Duration::from_secs_f64((1.0 - bucket.tokens).max(0.0) / per_second)
            },
        }
    }

    /// Takes `requests` more from `client`'s bucket, into debt down to one bucket's worth below
    /// empty: the client is refused until the bucket has refilled past it, a minute at most.
    pub fn charge(&self, client: u64, requests: f64, now: Instant) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = self.refilled(&mut buckets, client, now);
        bucket.tokens = (bucket.tokens - requests).max(-f64::from(self.per_minute));
    }

    /// `client`'s bucket, refilled for the time since it was last used (a new one is full).
    fn refilled<'a>(
        &self,
        buckets: &'a mut HashMap<u64, Bucket>,
        client: u64,
        now: Instant,
    ) -> &'a mut Bucket {
        let capacity = f64::from(self.per_minute);
        let bucket = buckets.entry(client).or_insert(Bucket { tokens: capacity, updated: now });
        let refilled = now.duration_since(bucket.updated).as_secs_f64() * capacity / 60.0;
        bucket.tokens = (bucket.tokens + refilled).min(capacity);
        bucket.updated = now;
        bucket
    }
}

/// Who a request counts against: the holder of the credential it presents, else its client's
/// address.
fn client_of(cabinet: &Cabinet, proxies: &TrustedProxies, surface: Surface, request: &Request) -> u64 {
    let mut hasher = DefaultHasher::new();
    let holder =
        Presented::of(request.headers(), surface.schemes()).secret().and_then(|s| cabinet.holder_of(s));
    match holder {
        Some(holder) => ("holder", holder).hash(&mut hasher),
        None => {
            let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
            let ip = peer.map(|peer| proxies.client_of(peer, request.headers()));
            ("ip", ip).hash(&mut hasher)
        }
    }
    hasher.finish()
}

fn set_headers(headers: &mut HeaderMap, per_minute: u32, verdict: &Verdict, surface: Surface) {
    headers.insert(LIMIT, HeaderValue::from(per_minute));
    headers.insert(REMAINING, HeaderValue::from(verdict.remaining));
    let reset = surface.rate_limit_reset(verdict.reset_secs, chrono::Utc::now().timestamp());
    headers.insert(RESET, HeaderValue::from(reset));
}

/// The middleware: 429 with `Retry-After` once a client's bucket is empty. Health probes are
/// never limited. A refusal is sent when the client's next request would be allowed (at most
/// [`MAX_REFUSAL_PAUSE`] later): a client that keeps its connections busy with refused requests
/// sends them no faster than its allowance refills, so a flood costs the server about what the
/// allowance does, not what the client can send. The pause is a timer: no thread, no body read.
pub async fn rate_limit<F, Fut>(
    limiter: &RateLimiter,
    cabinet: &Cabinet,
    request: Request,
    next: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    if limiter.per_minute == 0 || matches!(request.uri().path(), "/healthz" | "/readyz") {
        return next(request).await;
    }
    // Each dialect answers in its own envelope, and Mavera's reset is a unix time.
    let surface = Surface::of(request.uri().path());
    let client = client_of(cabinet, &limiter.proxies, surface, &request);
    let verdict = limiter.check(client, Instant::now());
    if !verdict.allowed {
        let mut response = surface.refusal(
            StatusCode::TOO_MANY_REQUESTS,
            Code::RateLimited,
            format!("too many requests; try again in {} s", verdict.retry_after_secs),
        );
        set_headers(response.headers_mut(), limiter.per_minute, &verdict, surface);
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(verdict.retry_after_secs));
        tokio::time::sleep(verdict.pause()).await;
        return response;
    }
    let (request, body_read) = BodyRead::observe(request);
    let mut response = next(request).await;
    let status = response.status();
    if status.is_client_error() || status == StatusCode::INSUFFICIENT_STORAGE {
        let charged = body_read.map_or(0, |read| read.bytes()) / CHARGED_BODY_BYTES;
        if charged > 0 {
            limiter.charge(client, charged as f64, Instant::now());
        }
    }
    set_headers(response.headers_mut(), limiter.per_minute, &verdict, surface);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_refills_and_says_when() {
        let limiter = RateLimiter::new(60);
        let start = Instant::now();
        for i in 0..60 {
            let verdict = limiter.check(1, start);
            assert!(verdict.allowed, "request {i}");
            assert_eq!(verdict.remaining, 59 - i);
        }
        let refused = limiter.check(1, start);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 1);
        assert_eq!(refused.reset_secs, 60);
        // Another client has its own bucket.
        assert!(limiter.check(2, start).allowed);
        // One token a second comes back.
        assert!(limiter.check(1, start + Duration::from_millis(1_100)).allowed);
        let refused = limiter.check(1, start + Duration::from_millis(1_200));
        assert!(!refused.allowed);
        // The refusal says when the next token is there: 0.2 of one has come back since 1.1 s.
        let wait = refused.next_token_in.as_secs_f64();
        assert!((0.75..0.85).contains(&wait), "{wait}");
    }

    #[test]
    fn a_charge_takes_requests_into_debt_down_to_a_bucket_below_empty() {
        let limiter = RateLimiter::new(60);
        let start = Instant::now();
        assert!(limiter.check(1, start).allowed);
        limiter.charge(1, 10.0, start);
        assert_eq!(limiter.check(1, start).remaining, 48);
        limiter.charge(1, 1000.0, start);
        assert!(!limiter.check(1, start).allowed);
        // Sixty below empty: a minute refills it to empty, and the next token is a second on.
        assert!(!limiter.check(1, start + Duration::from_secs(60)).allowed);
        assert!(limiter.check(1, start + Duration::from_millis(61_100)).allowed);
        // Another client's bucket is untouched.
        assert_eq!(limiter.check(2, start).remaining, 59);
    }

    #[test]
    fn a_refusal_waits_for_the_next_token_and_never_more_than_a_second() {
        let start = Instant::now();
        // 600 a minute: a token every 100 ms.
        let fast = RateLimiter::new(600);
        for _ in 0..600 {
            assert!(fast.check(1, start).allowed);
        }
        let pause = fast.check(1, start).pause();
        assert!(pause > Duration::from_millis(99) && pause <= Duration::from_millis(100), "{pause:?}");
        // 6 a minute: a token every 10 s, but a refusal waits a second at most.
        let slow = RateLimiter::new(6);
        for _ in 0..6 {
            assert!(slow.check(1, start).allowed);
        }
        assert_eq!(slow.check(1, start).pause(), MAX_REFUSAL_PAUSE);
        assert_eq!(slow.check(2, start).pause(), Duration::ZERO, "an allowed request waits for nothing");
    }
}
