//! Per-client rate limiting: a token bucket per credential holder (an API key, however its
//! surface spells it in `Authorization`; an end user, however many tokens they hold), and per
//! client IP for requests without a credential (the signed storage endpoint, probes, a secret that
//! cannot be one; an IPv6 client per /64) — behind trusted proxies, the client's address they
//! forward. Every limited response says how much is left; a refusal is 429 with `Retry-After`.
//! A request refused after its body was read (uploads of unknown size past the quota, the wrong
//! checksum) made the server receive, hash and write bytes that the caller's quota does not pay
//! for, so they come out of a second allowance of the same client: refused body bytes, refilled
//! at 32 KiB for each request of its allowance (~190 MiB a minute at the default) and holding at
//! most ten seconds of that (~32 MiB), so no client can make the server read more than a short
//! burst of them at once. Reading, hashing and writing a refused MiB costs the server about what
//! thirty small requests do: 32 KiB is one request's worth. While that allowance is below empty
//! (down to a minute's refill), the client's requests that would send more than 32 KiB, or a body
//! of unknown length, are refused with 429 before a byte is read; its lists, deletes and small
//! bodies go on, so it can still make room.
//! The buckets live in this process: N nodes allow up to N times the rate.

use std::collections::hash_map::{DefaultHasher, HashMap};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::HttpBody;
use axum::extract::{ConnectInfo, Request};
use axum::http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, RETRY_AFTER};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tokio::time::Instant;

use cabinet_core::{Cabinet, Code};

use crate::body_read::BodyRead;
use crate::client_address::{counted_as, TrustedProxies};
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
    /// Bytes of bodies the client may still have read and then refused; below zero, its large
    /// bodies wait.
    refused_body_bytes: f64,
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
    /// Whether it was refused for the bodies the client had refused before, not for its requests.
    pub for_refused_bodies: bool,
}

impl Verdict {
    /// What a refusal says: which allowance is spent, and when to try again.
    pub fn refusal_message(&self) -> String {
        if self.for_refused_bodies {
            format!(
                "too many bytes of this client's requests were refused after they were read; \
                 send bodies over {} KiB again in {} s",
                REFUSED_BODY_BYTES_PER_REQUEST >> 10,
                self.retry_after_secs
            )
        } else {
            format!("too many requests; try again in {} s", self.retry_after_secs)
        }
    }
}

/// The refused body bytes a client may have read for each request of its allowance; a request
/// that may send more than this waits while that allowance is spent.
pub const REFUSED_BODY_BYTES_PER_REQUEST: u64 = 32 << 10;

/// How much refill the refused-body allowance holds: the largest burst of refused bodies.
const REFUSED_BODY_BURST: Duration = Duration::from_secs(10);

/// How far below empty refused bodies take that allowance: a minute of refill.
const REFUSED_BODY_DEBT: Duration = Duration::from_secs(60);

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

    /// Takes one token from `client`'s bucket, if it has one. `large_body`: the request may send
    /// more than [`REFUSED_BODY_BYTES_PER_REQUEST`], so it waits while the client's refused-body
    /// allowance is below empty (and takes no token then).
    pub fn check(&self, client: u64, now: Instant, large_body: bool) -> Verdict {
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= PRUNE_AT {
            let (body_capacity, body_per_second) =
                (self.refused_body_capacity(), self.refused_body_per_second());
            buckets.retain(|_, b| {
                let idle = now.duration_since(b.updated).as_secs_f64();
                b.tokens + idle * per_second < capacity
                    || b.refused_body_bytes + idle * body_per_second < body_capacity
            });
        }
        let bucket = self.refilled(&mut buckets, client, now);
        let seconds_for = |tokens: f64| (tokens.max(0.0) / per_second).ceil() as u64;
        if large_body && bucket.refused_body_bytes < 0.0 {
            let wait = -bucket.refused_body_bytes / self.refused_body_per_second();
            return Verdict {
                allowed: false,
                remaining: bucket.tokens.floor() as u64,
                reset_secs: seconds_for(capacity - bucket.tokens),
                retry_after_secs: (wait.ceil() as u64).max(1),
                next_token_in: Duration::from_secs_f64(wait),
                for_refused_bodies: true,
            };
        }
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
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
            for_refused_bodies: false,
        }
    }

    /// When the answer `status` refused the request (a 4xx, or a quota's 507), takes what was read
    /// of its body from `client`'s refused-body allowance ([`Self::charge_refused_body`]).
    pub fn charge_if_refused(&self, client: u64, status: StatusCode, read: Option<&BodyRead>, now: Instant) {
        if status.is_client_error() || status == StatusCode::INSUFFICIENT_STORAGE {
            let bytes = read.map_or(0, BodyRead::bytes);
            if bytes > 0 {
                self.charge_refused_body(client, bytes, now);
            }
        }
    }

    /// Takes the `bytes` of a refused body from `client`'s refused-body allowance, down to a
    /// minute's refill below empty: its large bodies wait until that has come back.
    pub fn charge_refused_body(&self, client: u64, bytes: u64, now: Instant) {
        let floor = -self.refused_body_per_second() * REFUSED_BODY_DEBT.as_secs_f64();
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = self.refilled(&mut buckets, client, now);
        bucket.refused_body_bytes = (bucket.refused_body_bytes - bytes as f64).max(floor);
    }

    /// Refused body bytes a second that come back to a client's allowance.
    fn refused_body_per_second(&self) -> f64 {
        f64::from(self.per_minute) * REFUSED_BODY_BYTES_PER_REQUEST as f64 / 60.0
    }

    /// The most refused body bytes a client's allowance holds.
    fn refused_body_capacity(&self) -> f64 {
        self.refused_body_per_second() * REFUSED_BODY_BURST.as_secs_f64()
    }

    /// `client`'s bucket, refilled for the time since it was last used (a new one is full).
    fn refilled<'a>(
        &self,
        buckets: &'a mut HashMap<u64, Bucket>,
        client: u64,
        now: Instant,
    ) -> &'a mut Bucket {
        let capacity = f64::from(self.per_minute);
        let body_capacity = self.refused_body_capacity();
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: capacity,
            refused_body_bytes: body_capacity,
            updated: now,
        });
        let idle = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + idle * capacity / 60.0).min(capacity);
        bucket.refused_body_bytes =
            (bucket.refused_body_bytes + idle * self.refused_body_per_second()).min(body_capacity);
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
            let ip = peer.map(|peer| counted_as(proxies.client_of(peer, request.headers())));
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
    let verdict = limiter.check(client, Instant::now(), may_send_a_large_body(&request));
    if !verdict.allowed {
        let mut response =
            surface.refusal(StatusCode::TOO_MANY_REQUESTS, Code::RateLimited, verdict.refusal_message());
        set_headers(response.headers_mut(), limiter.per_minute, &verdict, surface);
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(verdict.retry_after_secs));
        tokio::time::sleep(verdict.pause()).await;
        return response;
    }
    let (request, body_read) = BodyRead::observe(request);
    let mut response = next(request).await;
    limiter.charge_if_refused(client, response.status(), body_read.as_deref(), Instant::now());
    set_headers(response.headers_mut(), limiter.per_minute, &verdict, surface);
    response
}

/// Whether `request` may send more than [`REFUSED_BODY_BYTES_PER_REQUEST`]: its declared length
/// says so, or it has a body of no declared length.
fn may_send_a_large_body(request: &Request) -> bool {
    let declared = request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match declared {
        Some(length) => length > REFUSED_BODY_BYTES_PER_REQUEST,
        None => !request.body().is_end_stream(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_refills_and_says_when() {
        let limiter = RateLimiter::new(60);
        let start = Instant::now();
        for i in 0..60 {
            let verdict = limiter.check(1, start, false);
            assert!(verdict.allowed, "request {i}");
            assert_eq!(verdict.remaining, 59 - i);
        }
        let refused = limiter.check(1, start, false);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 1);
        assert_eq!(refused.reset_secs, 60);
        // Another client has its own bucket.
        assert!(limiter.check(2, start, false).allowed);
        // One token a second comes back.
        assert!(limiter.check(1, start + Duration::from_millis(1_100), false).allowed);
        let refused = limiter.check(1, start + Duration::from_millis(1_200), false);
        assert!(!refused.allowed);
        // The refusal says when the next token is there: 0.2 of one has come back since 1.1 s.
        let wait = refused.next_token_in.as_secs_f64();
        assert!((0.75..0.85).contains(&wait), "{wait}");
    }

    #[test]
    fn refused_bodies_hold_back_a_clients_large_bodies_until_their_bytes_have_come_back() {
        // 60 a minute: 32 KiB of refused body a second comes back, up to 320 KiB, down to
        // 1,920 KiB below empty.
        let limiter = RateLimiter::new(60);
        let start = Instant::now();
        let kib = |n: u64| n << 10;
        // A new client's allowance holds its burst: refused bodies up to it leave it not in debt.
        limiter.charge_refused_body(1, kib(320), start);
        assert!(limiter.check(1, start, true).allowed);
        // One byte more, and its large bodies wait for that byte to come back (a second at least),
        // taking no request; requests without one go on.
        limiter.charge_refused_body(1, 1, start);
        let held = limiter.check(1, start, true);
        assert!(!held.allowed && held.for_refused_bodies);
        assert_eq!(held.retry_after_secs, 1);
        assert_eq!(held.remaining, 59);
        let small = limiter.check(1, start, false);
        assert!(small.allowed && !small.for_refused_bodies);
        assert_eq!(small.remaining, 58);
        // 1 MiB more: debt of 1,024 KiB + 1 byte, 32 s of refill.
        limiter.charge_refused_body(1, kib(1024), start);
        let held = limiter.check(1, start, true);
        assert_eq!(held.retry_after_secs, 33);
        assert!(!limiter.check(1, start + Duration::from_secs(32), true).allowed);
        assert!(limiter.check(1, start + Duration::from_millis(32_100), true).allowed);
        // The debt stops a minute of refill below empty, however much was refused.
        limiter.charge_refused_body(1, kib(1 << 20), start + Duration::from_secs(40));
        let held = limiter.check(1, start + Duration::from_secs(40), true);
        assert_eq!(held.retry_after_secs, 60);
        assert!(limiter.check(1, start + Duration::from_millis(100_100), true).allowed);
        // Another client's allowance is untouched.
        assert!(limiter.check(2, start, true).allowed);
    }

    #[test]
    fn a_refusal_waits_for_the_next_token_and_never_more_than_a_second() {
        let start = Instant::now();
        // 600 a minute: a token every 100 ms.
        let fast = RateLimiter::new(600);
        for _ in 0..600 {
            assert!(fast.check(1, start, false).allowed);
        }
        let pause = fast.check(1, start, false).pause();
        assert!(pause > Duration::from_millis(99) && pause <= Duration::from_millis(100), "{pause:?}");
        // 6 a minute: a token every 10 s, but a refusal waits a second at most.
        let slow = RateLimiter::new(6);
        for _ in 0..6 {
            assert!(slow.check(1, start, false).allowed);
        }
        assert_eq!(slow.check(1, start, false).pause(), MAX_REFUSAL_PAUSE);
        assert_eq!(
            slow.check(2, start, false).pause(),
            Duration::ZERO,
            "an allowed request waits for nothing"
        );
    }
}
