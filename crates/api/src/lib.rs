//! Cabinet's HTTP surfaces over the core: the native `/v1` API, the signed storage endpoint,
//! `/openapi.json`, `/docs`, and the web console at `/console`. Handlers are thin: parse, call one
//! core method, render.

pub mod audit;
pub mod auth;
pub mod body_read;
pub mod client_address;
pub mod compat;
pub mod console;
pub mod cors;
pub mod credentials;
pub mod download;
pub mod error;
pub mod form;
pub mod health;
pub mod input_schema;
pub mod limits;
pub mod openapi;
pub mod rate_limit;
pub mod resumable;
pub mod router;
pub mod s3;
pub mod schemas;
pub mod storage;
pub mod surface;
pub mod telemetry;
pub mod timestamps;
pub mod tus;
pub mod v1;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::{middleware, Router};
use cabinet_core::{Cabinet, Code, Error};
use futures::FutureExt;
use tracing::{Instrument, Span};

use crate::error::ApiError;
use crate::surface::Surface;
pub use cabinet_core::cors::CorsOrigins;
pub use client_address::TrustedProxies;
pub use telemetry::MetricsAccess;

/// Limits and policies of the HTTP layer that the core does not know about.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// The largest JSON (base64) direct upload body.
    pub json_upload_bytes: usize,
    /// The largest body of every other JSON route.
    pub json_body_bytes: usize,
    /// The longest path and query, in bytes (longer: 414).
    pub max_url_bytes: usize,
    /// The largest header section, in bytes (larger: 431).
    pub max_header_bytes: usize,
    /// How long a request body may send nothing while it is being read (zero: no limit).
    pub body_idle_timeout: Duration,
    /// The least a request body must send, in bytes per second averaged over `body_rate_window`
    /// of waiting for it (0: no minimum).
    pub body_min_rate: u64,
    /// The window over which `body_min_rate` is averaged.
    pub body_rate_window: Duration,
    /// Requests per minute per API key, or per IP without one (0: no limit).
    pub rate_limit_per_minute: u32,
    /// Proxies whose `X-Forwarded-For` names the client's address (for the per-IP limit).
    pub trusted_proxies: TrustedProxies,
    /// Whether URLs handed out start with the public URL those proxies report the client used
    /// (`X-Forwarded-Host`/`-Proto`, `Forwarded`) rather than the configured one; the scheme to
    /// assume when a proxy names only a host.
    pub url_base_from_proxies: Option<&'static str>,
    /// Send `Strict-Transport-Security` (the service is reached over https).
    pub strict_transport_security: bool,
    /// The largest direct upload through the MAVI dialect (its docs say 500 MB); larger files
    /// get 413 pointing to its signed URL.
    pub mavi_direct_upload_bytes: u64,
    /// The largest file a MAVI signed URL takes (its docs: 5 GB).
    pub mavi_signed_upload_bytes: u64,
    /// The file extensions the MAVI dialect accepts (its docs' supported formats), lowercase
    /// without the dot; any other gets 415.
    pub mavi_formats: Vec<String>,
    /// The largest file the Mavera dialect takes that is not a video (its docs: 10 MB).
    pub mavera_file_bytes: u64,
    /// The largest video file (`video/*`) the Mavera dialect takes (its docs: 2 GB).
    pub mavera_video_bytes: u64,
    /// Who may read `/metrics`.
    pub metrics: MetricsAccess,
    /// The web origins browsers may call from (`--cors-origins`); a workspace's own list replaces
    /// it on its signed and public URLs (see `cors.rs`).
    pub cors_origins: CorsOrigins,
}

impl HttpLimits {
    /// The largest JSON (base64) upload body by default: 16 MiB.
    pub const DEFAULT_JSON_UPLOAD_BYTES: usize = 16 * 1024 * 1024;
    /// The largest body of other JSON routes by default: 2 MiB.
    pub const DEFAULT_JSON_BODY_BYTES: usize = 2 * 1024 * 1024;
    /// The longest path and query by default: 8 KiB.
    pub const DEFAULT_MAX_URL_BYTES: usize = 8 * 1024;
    /// The largest header section by default: 32 KiB.
    pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
    /// Seconds a request body may send nothing, by default.
    pub const DEFAULT_BODY_IDLE_TIMEOUT_SECS: u64 = 30;
    /// The least bytes per second a request body must send, by default.
    pub const DEFAULT_BODY_MIN_RATE: u64 = 1024;
    /// Seconds over which the body's rate is averaged, by default.
    pub const DEFAULT_BODY_RATE_WINDOW_SECS: u64 = 60;
    /// Requests per minute per key (or IP), by default.
    pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 6000;
    /// The largest MAVI direct upload by default: its docs' 500 MB.
    pub const DEFAULT_MAVI_DIRECT_UPLOAD_BYTES: u64 = 500_000_000;
    /// The largest MAVI signed-URL upload by default: its docs' 5 GB.
    pub const DEFAULT_MAVI_SIGNED_UPLOAD_BYTES: u64 = 5_000_000_000;
    /// The formats MAVI documents (video, audio, image), as file extensions; `jpg`, `tif` and
    /// `mpg` are the other spellings of JPEG, TIFF and MPEG.
    pub const DEFAULT_MAVI_FORMATS: &'static str = "mp4,mov,avi,webm,mkv,flv,wmv,mpeg,mpg,\
        mp3,wav,aac,flac,ogg,m4a,jpeg,jpg,png,gif,webp,bmp,tiff,tif";
    /// The largest Mavera file that is not a video by default: its docs' 10 MB.
    pub const DEFAULT_MAVERA_FILE_BYTES: u64 = 10_000_000;
    /// The largest Mavera video by default: its docs' 2 GB.
    pub const DEFAULT_MAVERA_VIDEO_BYTES: u64 = 2_000_000_000;

    /// A comma-separated list of extensions, normalised (lowercase, no dots or blanks).
    pub fn formats(list: &str) -> Vec<String> {
        list.split(',')
            .map(|format| format.trim().trim_start_matches('.').to_ascii_lowercase())
            .filter(|format| !format.is_empty())
            .collect()
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            json_upload_bytes: Self::DEFAULT_JSON_UPLOAD_BYTES,
            json_body_bytes: Self::DEFAULT_JSON_BODY_BYTES,
            max_url_bytes: Self::DEFAULT_MAX_URL_BYTES,
            max_header_bytes: Self::DEFAULT_MAX_HEADER_BYTES,
            body_idle_timeout: Duration::from_secs(Self::DEFAULT_BODY_IDLE_TIMEOUT_SECS),
            body_min_rate: Self::DEFAULT_BODY_MIN_RATE,
            body_rate_window: Duration::from_secs(Self::DEFAULT_BODY_RATE_WINDOW_SECS),
            rate_limit_per_minute: Self::DEFAULT_RATE_LIMIT_PER_MINUTE,
            trusted_proxies: TrustedProxies::none(),
            url_base_from_proxies: None,
            strict_transport_security: false,
            mavi_direct_upload_bytes: Self::DEFAULT_MAVI_DIRECT_UPLOAD_BYTES,
            mavi_signed_upload_bytes: Self::DEFAULT_MAVI_SIGNED_UPLOAD_BYTES,
            mavi_formats: Self::formats(Self::DEFAULT_MAVI_FORMATS),
            mavera_file_bytes: Self::DEFAULT_MAVERA_FILE_BYTES,
            mavera_video_bytes: Self::DEFAULT_MAVERA_VIDEO_BYTES,
            metrics: MetricsAccess::default(),
            cors_origins: CorsOrigins::default(),
        }
    }
}

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub cabinet: Cabinet,
    pub limits: Arc<HttpLimits>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application: routes, OpenAPI, and the layers every response passes through.
pub fn app(cabinet: Cabinet, limits: HttpLimits) -> Router {
    let limits = Arc::new(limits);
    let limiter = Arc::new(
        rate_limit::RateLimiter::new(limits.rate_limit_per_minute).behind(limits.trusted_proxies.clone()),
    );
    let cors_policy =
        cors::CorsPolicy { global: Arc::new(limits.cors_origins.clone()), cabinet: cabinet.clone() };
    let recording = limits.metrics != MetricsAccess::Off && telemetry::install().is_some();
    let around_each_route = Arc::new(AroundRoute {
        figures: recording.then(telemetry::Figures::default),
        limits: limits.clone(),
        limiter,
        audit: audit::AuditCapture {
            cabinet: cabinet.clone(),
            proxies: limits.trusted_proxies.clone(),
            s3: false,
        },
        cabinet: cabinet.clone(),
    });
    let state = AppState { cabinet, limits: limits.clone() };
    let (router, _) = router::routes(state.clone());
    let router = router.route("/metrics", axum::routing::get(telemetry::metrics).with_state(state));
    let routed = router
        // JSON routes; the streaming routes lift it and enforce their own (see `router.rs`).
        .layer(DefaultBodyLimit::max(limits.json_body_bytes))
        .fallback(|uri: Uri| async move {
            Surface::of(uri.path()).refusal(StatusCode::NOT_FOUND, Code::NotFound, "route not found".into())
        })
        .method_not_allowed_fallback(|uri: Uri| async move {
            Surface::of(uri.path()).refusal(
                StatusCode::METHOD_NOT_ALLOWED,
                Code::MethodNotAllowed,
                "this route does not take that method".into(),
            )
        })
        // These wrap every route, since they read the route matched (`MatchedPath`).
        .layer(middleware::from_fn_with_state(around_each_route, around_route));
    // The rest need no route, so they wrap the router once.
    let around_every_request = Arc::new(AroundRequest { limits, cors: cors_policy });
    let outside = tower::ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(around_every_request, around_request))
        .service(routed);
    Router::new().fallback_service(outside)
}

/// What the layer around every request needs.
struct AroundRequest {
    limits: Arc<HttpLimits>,
    cors: cors::CorsPolicy,
}

/// What every request passes once, before a route is matched, as one middleware (as layers of
/// their own, each boxed the service inside it again for every request): CORS, which may answer a
/// preflight itself; the request id, kept from the client's `X-Request-Id` or made, and sent back;
/// the request's span and its `response` line; and the security headers, on every answer.
async fn around_request(
    axum::extract::State(around): axum::extract::State<Arc<AroundRequest>>,
    mut request: Request<Body>,
    next: middleware::Next,
) -> Response<Body> {
    let docs = request.uri().path().starts_with("/docs");
    let mut response =
        match cors::decide(&around.cors, request.method(), request.uri(), request.headers()).await {
            cors::Decision::Answered(preflight) => preflight,
            cors::Decision::Add(cors_headers) => {
                let id = match request.headers().get(REQUEST_ID) {
                    Some(id) => id.clone(),
                    None => {
                        let mut text = [0; ulid::ULID_LEN];
                        let id = HeaderValue::from_str(ulid::Ulid::new().array_to_str(&mut text))
                            .expect("a ULID is a header value");
                        request.headers_mut().insert(REQUEST_ID, id.clone());
                        id
                    }
                };
                let started = std::time::Instant::now();
                let span = request_span(&around.limits, &request, &id);
                let mut response = next.run(request).instrument(span.clone()).await;
                span.in_scope(|| {
                    tracing::info!(
                        status = response.status().as_u16(),
                        latency_ms = started.elapsed().as_millis() as u64,
                        "response"
                    )
                });
                response.headers_mut().entry(REQUEST_ID).or_insert(id);
                cors::add(response.headers_mut(), cors_headers);
                response
            }
        };
    limits::add_security_headers(&around.limits, docs, &mut response);
    response
}

/// The span every line logged while a request is handled carries. Made here rather than by
/// tower-http's `TraceLayer`, which wrapped every response body to enter the span at each poll
/// of it, for lines no response body writes. The path only: query strings carry signatures,
/// which are credentials. The client is the one behind trusted proxies, as the rate limiter
/// counts it.
fn request_span(limits: &HttpLimits, request: &Request<Body>, id: &HeaderValue) -> Span {
    // The fields are worked out only when the span is enabled.
    let client = || {
        LoggedClient(
            request
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|peer| limits.trusted_proxies.client_of(peer.0.ip(), request.headers())),
        )
    };
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        client = %client(),
        request_id = %id.to_str().unwrap_or("-"),
    )
}

/// A request's client in its log span: `-` when unknown, and an IPv4 address written without
/// `fmt`'s machinery, which took a few percent of a small request's instructions.
struct LoggedClient(Option<std::net::IpAddr>);

impl std::fmt::Display for LoggedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("-"),
            Some(std::net::IpAddr::V4(address)) => {
                let mut text = [0u8; 15];
                let mut len = 0;
                for (index, octet) in address.octets().into_iter().enumerate() {
                    if index > 0 {
                        text[len] = b'.';
                        len += 1;
                    }
                    let digits = [octet / 100, octet / 10 % 10, octet % 10];
                    let skip = if octet >= 100 {
                        0
                    } else if octet >= 10 {
                        1
                    } else {
                        2
                    };
                    for digit in &digits[skip..] {
                        text[len] = b'0' + digit;
                        len += 1;
                    }
                }
                f.write_str(std::str::from_utf8(&text[..len]).expect("ASCII digits and dots"))
            }
            Some(address) => address.fmt(f),
        }
    }
}

/// The most response headers the layers around a handler add: rate limit (3, and `Retry-After`),
/// request id, CORS (3), security (5). hyper writes `Date` and `Connection` itself.
const LAYER_HEADERS: usize = 13;

/// What the layers around each route need.
struct AroundRoute {
    figures: Option<telemetry::Figures>,
    limits: Arc<HttpLimits>,
    limiter: Arc<rate_limit::RateLimiter>,
    audit: audit::AuditCapture,
    cabinet: Cabinet,
}

/// The layers around each route, as one middleware: as layers of their own, each cloned the
/// stack inside it and boxed its future again for every request.
async fn around_route(
    axum::extract::State(around): axum::extract::State<Arc<AroundRoute>>,
    request: Request<Body>,
    next: middleware::Next,
) -> Response<Body> {
    let around = &*around;
    // Outside the limits, so their refusals (429, 413, 414) are counted too.
    telemetry::record(around.figures.as_ref(), request, |request| {
        limits::close_after_unread_body(request, |request| {
            limits::request_limits(&around.limits, request, |request| {
                rate_limit::rate_limit(&around.limiter, &around.cabinet, request, |request| {
                    // Outside the request scope: the record is appended once the handler is done.
                    answering_panics(audit::around(&around.audit, request, |request| {
                        in_request_scope(&around.cabinet, &around.limits, request, |request| {
                            next.run(request)
                        })
                    }))
                })
            })
        })
    })
    .await
}

/// `handled`'s response, or a 500 in the error shape if it panics: the connection and the server
/// go on.
fn answering_panics(
    handled: impl std::future::Future<Output = Response<Body>>,
) -> impl std::future::Future<Output = Response<Body>> {
    // Not an `async fn`: one would hold `handled` twice, as its argument and inside the catch,
    // and the future of every request is moved whole more than once.
    std::panic::AssertUnwindSafe(handled).catch_unwind().map(|handled| {
        handled.unwrap_or_else(|_| {
            tracing::error!("a handler panicked");
            ApiError(Error::internal("panic")).into_response()
        })
    })
}

/// Runs a request's handler in the store's request scope (`Cabinet::in_request_scope`), when the
/// request has no body: with one, a read shared from the key lookup on could stay open for as long
/// as the client takes to send it. Behind a trusted proxy that reports the public URL the client
/// used, the URLs the handler hands out start with it (`Cabinet::with_url_base`).
async fn in_request_scope<F, Fut>(
    cabinet: &Cabinet,
    limits: &HttpLimits,
    request: Request<Body>,
    next: F,
) -> Response<Body>
where
    F: FnOnce(Request<Body>) -> Fut,
    Fut: std::future::Future<Output = Response<Body>> + Send,
{
    let url_base = limits.url_base_from_proxies.and_then(|default_scheme| {
        let peer = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()?;
        limits.trusted_proxies.url_base_of(peer.0.ip(), request.headers(), default_scheme)
    });
    let work = async {
        let mut response = if axum::body::HttpBody::is_end_stream(request.body()) {
            cabinet.in_request_scope(next(request)).await
        } else {
            next(request).await
        };
        // Room for what the layers outside add, in one allocation rather than a doubling of the
        // map (and a rehash of what it holds) every few headers.
        response.headers_mut().reserve(LAYER_HEADERS);
        response
    };
    match url_base {
        Some(base) => cabinet.with_url_base(base, work).await,
        None => work.await,
    }
}

/// The OpenAPI documents, one per surface, as served at `/openapi.json` (native) and each
/// dialect's `<mount>/openapi.json`.
pub fn openapi_documents(cabinet: Cabinet) -> Vec<(Surface, utoipa::openapi::OpenApi)> {
    router::routes(AppState { cabinet, limits: Arc::new(HttpLimits::default()) }).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_handler_that_panics_is_answered_with_a_500_in_the_error_shape() {
        let response = answering_panics(async { panic!("a handler's bug") }).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("the body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("a JSON body");
        assert_eq!(body["error"]["code"], "internal", "{body}");
    }

    #[tokio::test]
    async fn a_handler_that_answers_is_passed_through() {
        let response = answering_panics(async { StatusCode::ACCEPTED.into_response() }).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }

    #[test]
    fn a_logged_client_is_written_as_its_address_displays() {
        for address in [
            "0.0.0.0",
            "127.0.0.1",
            "9.10.99.100",
            "255.255.255.255",
            "10.0.200.7",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let parsed: std::net::IpAddr = address.parse().unwrap();
            assert_eq!(LoggedClient(Some(parsed)).to_string(), address);
        }
        assert_eq!(LoggedClient(None).to_string(), "-");
    }
}
