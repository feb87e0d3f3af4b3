//! `/metrics`: the Prometheus text format, from the `metrics` facade the core and this layer
//! record into. Requests are counted by surface, route template, method and status (never by
//! path, file, key or workspace), with their latency and the bytes of their bodies.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use axum::response::IntoResponse;
use bytes::Bytes;
use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram, Label};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::surface::Surface;
use crate::AppState;

/// Requests answered, by `surface`, `route`, `method` and `status`.
pub const REQUESTS: &str = "cabinet_http_requests_total";
/// Time to a response's head, in seconds, by `surface`, `route` and `method`.
pub const REQUEST_SECONDS: &str = "cabinet_http_request_duration_seconds";
/// Requests being handled now.
pub const REQUESTS_IN_FLIGHT: &str = "cabinet_http_requests_in_flight";
/// Bytes of request bodies read, by `surface`.
pub const RECEIVED_BYTES: &str = "cabinet_http_received_bytes_total";
/// Bytes of response bodies sent, by `surface`.
pub const SENT_BYTES: &str = "cabinet_http_sent_bytes_total";

/// Connections open now, on every listener.
pub const CONNECTIONS_OPEN: &str = "cabinet_http_connections_open";
/// Connections closed as soon as they were accepted, by `reason` (`per_address`: the client's
/// address held its cap, `--max-connections-per-address`; `total`: the listener held its own,
/// `--max-connections`).
pub const CONNECTIONS_REFUSED: &str = "cabinet_http_connections_refused_total";

/// What a request is counted under when no route matched it (a path would be unbounded).
const UNMATCHED_ROUTE: &str = "unmatched";

/// Latency buckets, in seconds: from a cached small read to a long transfer's head.
const SECONDS_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How often histograms are folded into their buckets when nobody scrapes: until then their
/// samples are held, so this bounds what they take.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Who may read `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Anyone who reaches the server.
    #[default]
    Open,
    /// Requests with `Authorization: Bearer <token>`.
    Token(String),
    /// Nobody: `/metrics` is not served, and nothing is recorded.
    Off,
}

/// The process's recorder, installed on first use (every server in the process shares it).
/// `None` when another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .ok()?
                .install_recorder()
                .ok()?;
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let upkeep = handle.clone();
                runtime.spawn(async move {
                    let mut ticker = tokio::time::interval(UPKEEP_EVERY);
                    loop {
                        ticker.tick().await;
                        upkeep.run_upkeep();
                    }
                });
            }
            Some(handle)
        })
        .as_ref()
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>, request: Request<Body>) -> Response<Body> {
    let refused = |status: StatusCode, code: cabinet_core::Code, message: &str| {
        Surface::Native.refusal(status, code, message.into())
    };
    match &state.limits.metrics {
        MetricsAccess::Off => {
            return refused(StatusCode::NOT_FOUND, cabinet_core::Code::NotFound, "route not found")
        }
        MetricsAccess::Token(token) => {
            let presented =
                request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
            if !presented
                .and_then(|value| value.strip_prefix("Bearer "))
                .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
            {
                return refused(
                    StatusCode::UNAUTHORIZED,
                    cabinet_core::Code::Unauthenticated,
                    "/metrics needs `Authorization: Bearer` with the metrics token",
                );
            }
        }
        MetricsAccess::Open => {}
    }
    let Some(handle) = install() else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            cabinet_core::Code::Unavailable,
            "another metrics recorder is installed",
        );
    };
    state.cabinet.sample_gauges();
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))],
        handle.render(),
    )
        .into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The handles requests are counted with, each made on first use and kept: making one builds its
/// key (labels, a hash) and finds it in the recorder's registry, which was a measurable part of a
/// small request's cost. Their labels come from fixed sets (surfaces, route templates, methods,
/// statuses), so what is kept is bounded as the series are.
#[derive(Default)]
pub struct Figures {
    in_flight: OnceLock<Gauge>,
    /// By surface, in the order `Surface` declares them.
    received: [OnceLock<Counter>; Surface::ALL.len()],
    sent: [OnceLock<Counter>; Surface::ALL.len()],
    /// By route template, then surface and method.
    routes: RwLock<HashMap<String, Vec<RouteFigures>>>,
}

/// One route's handles for one surface and method.
struct RouteFigures {
    surface: Surface,
    method: &'static str,
    latency: Histogram,
    by_status: Vec<(u16, Counter)>,
}

impl Figures {
    fn received(&self, surface: Surface) -> &Counter {
        self.received[surface as usize]
            .get_or_init(|| counter!(RECEIVED_BYTES, "surface" => surface_name(surface)))
    }

    fn sent(&self, surface: Surface) -> &Counter {
        self.sent[surface as usize].get_or_init(|| counter!(SENT_BYTES, "surface" => surface_name(surface)))
    }

    /// The latency histogram and the count for `status` of `route`, surface and method.
    fn of_route(
        &self,
        surface: Surface,
        route: &str,
        method: &'static str,
        status: u16,
    ) -> (Histogram, Counter) {
        let find = |routes: &HashMap<String, Vec<RouteFigures>>| {
            let figures = routes.get(route)?.iter().find(|f| f.surface == surface && f.method == method)?;
            let count = figures.by_status.iter().find(|(s, _)| *s == status)?;
            Some((figures.latency.clone(), count.1.clone()))
        };
        if let Some(found) = find(&self.routes.read().unwrap_or_else(PoisonError::into_inner)) {
            return found;
        }
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        let of_route = routes.entry(route.to_owned()).or_default();
        let at = match of_route.iter().position(|f| f.surface == surface && f.method == method) {
            Some(at) => at,
            None => {
                let labels = [("surface", surface_name(surface)), ("route", route), ("method", method)];
                let latency = histogram!(REQUEST_SECONDS, labels_of(&labels));
                of_route.push(RouteFigures { surface, method, latency, by_status: Vec::new() });
                of_route.len() - 1
            }
        };
        let figures = &mut of_route[at];
        if !figures.by_status.iter().any(|(s, _)| *s == status) {
            let status_name = status.to_string();
            let labels = [
                ("surface", surface_name(surface)),
                ("route", route),
                ("method", method),
                ("status", &status_name),
            ];
            let count = counter!(REQUESTS, labels_of(&labels));
            figures.by_status.push((status, count));
        }
        find(&routes).expect("made above")
    }
}

fn labels_of(pairs: &[(&'static str, &str)]) -> Vec<Label> {
    pairs.iter().map(|(name, value)| Label::new(*name, (*value).to_owned())).collect()
}

/// Counts a request (when there are `figures` to count it in): in flight while it is handled,
/// then by status with its latency, and the bytes of both bodies as they pass.
pub async fn record<F, Fut>(figures: Option<&Figures>, request: Request<Body>, next: F) -> Response<Body>
where
    F: FnOnce(Request<Body>) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    let Some(figures) = figures else {
        return next(request).await;
    };
    let surface = Surface::of(request.uri().path());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = method_name(request.method());
    // Most requests have no body: nothing to count, so no wrapper to pass through.
    let request = if http_body::Body::is_end_stream(request.body()) {
        request
    } else {
        request.map(|body| Counted::body(body, figures.received(surface).clone()))
    };
    let started = Instant::now();
    let in_flight = figures.in_flight.get_or_init(|| gauge!(REQUESTS_IN_FLIGHT));
    in_flight.increment(1.0);
    let response = next(request).await;
    in_flight.decrement(1.0);
    let route = route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    let (latency, count) = figures.of_route(surface, route, method, response.status().as_u16());
    latency.record(started.elapsed().as_secs_f64());
    count.increment(1);
    response.map(|body| Counted::body(body, figures.sent(surface).clone()))
}

/// A body whose data bytes are counted as they pass. Its length and end are its inner body's, so
/// a response keeps its `Content-Length` and an empty request is still known to be empty.
struct Counted {
    inner: Body,
    bytes: Counter,
}

impl Counted {
    fn body(inner: Body, bytes: Counter) -> Body {
        Body::new(Self { inner, bytes })
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.bytes.increment(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A method as a label value: one HTTP defines, else `other`. A client may send any token as a
/// method, even where no route takes it (405), and each one named would be series of its own that
/// the recorder keeps for good: memory and a scrape that grow with what unauthenticated clients
/// send.
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// A surface as a label value.
fn surface_name(surface: Surface) -> &'static str {
    match surface {
        Surface::Native => "native",
        Surface::Mavera => "mavera",
        Surface::Mavi => "mavi",
        Surface::Cms => "cms",
        Surface::Serenities => "serenities",
    }
}
