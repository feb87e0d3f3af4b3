//! `/metrics`: what it counts, who may read it, and a real Prometheus server scraping it.
//!
//! The recorder is the process's, shared by every server a test binary starts, so each test
//! judges what its own requests added, never absolute counts.

use crate::support;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cabinet_api::{HttpLimits, MetricsAccess};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{Options, TestServer};

/// One scrape: each sample's value by its name and labels, as written (`name{a="b",…}`).
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    async fn of(server: &TestServer, token: Option<&str>) -> Self {
        let mut request = server.http.get(format!("{}/metrics", server.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("GET /metrics");
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
        let text = response.text().await.unwrap();
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a sample line");
                (series.to_owned(), value.parse().expect("a sample value"))
            })
            .collect();
        Self(samples)
    }

    /// The sum of the samples of `name` whose labels include every one of `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(series, _)| {
                let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
                series_name == name
                    && labels.iter().all(|(label, value)| rest.contains(&format!("{label}=\"{value}\"")))
            })
            .map(|(_, value)| value)
            .sum()
    }
}

#[tokio::test]
async fn requests_uploads_and_bytes_are_counted_by_route_template_never_by_id() {
    let server = TestServer::spawn().await;
    let before = Scrape::of(&server, None).await;
    let bytes = vec![7u8; 300_000];
    let done = server.upload(&server.tenant, "counted.bin", &bytes).await;
    let file_id = done["file"]["id"].as_str().expect("the file's id").to_owned();
    let (status, _) = server.send(server.get(&format!("/v1/files/{file_id}"))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.send(server.get("/v1/files/file_00000000000000000000000000")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.send(server.get("/no/such/route")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Over the quota: refused before a byte is taken.
    let small = server.tenant(Some(10), cabinet_core::Role::Admin).await;
    let (status, _) = server.start_upload(&small, json!({"name": "big.bin", "size": 11})).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE);
    let after = Scrape::of(&server, None).await;

    let added = |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    let file_route = [("surface", "native"), ("route", "/v1/files/{id}"), ("method", "GET")];
    assert_eq!(added("cabinet_http_requests_total", &[&file_route[..], &[("status", "200")]].concat()), 1.0);
    assert_eq!(added("cabinet_http_requests_total", &[&file_route[..], &[("status", "404")]].concat()), 1.0);
    assert_eq!(added("cabinet_http_requests_total", &[("route", "unmatched"), ("status", "404")]), 1.0);
    assert_eq!(added("cabinet_http_request_duration_seconds_count", &file_route), 2.0);
    assert_eq!(added("cabinet_uploads_total", &[("outcome", "succeeded")]), 1.0);
    assert_eq!(added("cabinet_reservations_refused_total", &[("reason", "quota_exceeded")]), 1.0);
    assert!(
        added("cabinet_http_received_bytes_total", &[("surface", "native")]) >= bytes.len() as f64,
        "the upload's bytes were not counted in"
    );
    assert!(added("cabinet_http_sent_bytes_total", &[("surface", "native")]) > 0.0);
    assert!(after.sum("cabinet_store_pool_max_connections", &[("pool", "write")]) >= 1.0);
    // No label names a file, an upload, a workspace or a key.
    let upload_id = done["id"].as_str().unwrap();
    for series in after.0.keys() {
        for private in [file_id.as_str(), upload_id, server.tenant.workspace.as_str(), &server.tenant.key] {
            assert!(!series.contains(private), "{series} names {private}");
        }
        assert!(!series.contains("/no/such/route"), "{series} names a path no route matched");
    }
}

/// Any token is a method to HTTP: were each one a label value, every invented one would add series
/// that the recorder keeps for good, at no cost to the unauthenticated client that sends them.
#[tokio::test]
async fn methods_no_route_knows_are_counted_as_other_and_add_no_series() {
    let server = TestServer::spawn().await;
    let invented = |n: usize| Method::from_bytes(format!("INVENTED{n}").as_bytes()).expect("a method token");
    let send_each = |n: usize| {
        let server = &server;
        async move {
            for path in ["/v1/files", "/no/such/route"] {
                let request = server.http.request(invented(n), format!("{}{path}", server.url));
                let (status, _) = server.send(request).await;
                assert!(status.is_client_error(), "{path}: {status}");
            }
        }
    };
    // Once first, so that the series of `other` exist before the scrape taken before.
    send_each(0).await;
    let before = Scrape::of(&server, None).await;
    for n in 1..=20 {
        send_each(n).await;
    }
    let after = Scrape::of(&server, None).await;

    let other = [("surface", "native"), ("route", "/v1/files"), ("method", "other")];
    let added = |labels: &[(&str, &str)]| {
        after.sum("cabinet_http_requests_total", labels) - before.sum("cabinet_http_requests_total", labels)
    };
    assert_eq!(added(&other), 20.0);
    assert_eq!(added(&[("route", "unmatched"), ("method", "other")]), 20.0);
    for series in after.0.keys() {
        assert!(!series.contains("INVENTED"), "{series} names a method the client invented");
        let new = !before.0.contains_key(series);
        assert!(!(new && series.contains("method=\"other\"")), "20 more invented methods added {series}");
    }
}

#[tokio::test]
async fn a_metrics_token_is_required_when_set_and_off_serves_nothing() {
    let limits =
        HttpLimits { metrics: MetricsAccess::Token("scrape-secret".into()), ..HttpLimits::default() };
    let server = TestServer::spawn_with(Options { http: Some(limits), ..Options::default() }).await;
    for token in [None, Some("wrong"), Some(server.tenant.key.as_str())] {
        let mut request = server.http.get(format!("{}/metrics", server.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let (status, body) = server.send(request).await;
        support::assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let scrape = Scrape::of(&server, Some("scrape-secret")).await;
    assert!(scrape.sum("cabinet_http_requests_total", &[("route", "/metrics"), ("status", "401")]) >= 3.0);

    let limits = HttpLimits { metrics: MetricsAccess::Off, ..HttpLimits::default() };
    let server = TestServer::spawn_with(Options { http: Some(limits), ..Options::default() }).await;
    let (status, body) = server.send(server.http.get(format!("{}/metrics", server.url))).await;
    support::assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

/// Debian's `prometheus`, or `None` (with a notice) where it is not installed, unless
/// `CABINET_REQUIRE_PROMETHEUS=1` (dev/test installs it): then the test fails.
fn prometheus_or_skip() -> Option<&'static str> {
    const BINARY: &str = "prometheus";
    if Command::new(BINARY).arg("--version").output().is_ok_and(|out| out.status.success()) {
        return Some(BINARY);
    }
    if std::env::var("CABINET_REQUIRE_PROMETHEUS").as_deref() == Ok("1") {
        panic!("CABINET_REQUIRE_PROMETHEUS=1 but `prometheus` is not installed (dev/test installs it)");
    }
    eprintln!("skipping: `prometheus` is not installed (dev/test installs it)");
    None
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_it_and_answers_a_query_about_its_requests() {
    let Some(prometheus) = prometheus_or_skip() else { return };
    let limits =
        HttpLimits { metrics: MetricsAccess::Token("scrape-secret".into()), ..HttpLimits::default() };
    let server = TestServer::spawn_with(Options { http: Some(limits), ..Options::default() }).await;
    for _ in 0..5 {
        let (status, _) = server.send(server.request(Method::GET, "/v1/quota", &server.tenant.key)).await;
        assert_eq!(status, StatusCode::OK);
    }

    let dir = tempfile::tempdir().unwrap();
    let target = server.url.trim_start_matches("http://");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: cabinet\n    \
             authorization:\n      credentials: scrape-secret\n    static_configs:\n      \
             - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _prometheus = KillOnDrop(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );

    let query = "sum(cabinet_http_requests_total{job=\"cabinet\",route=\"/v1/quota\",status=\"200\"})";
    let deadline = Instant::now() + Duration::from_secs(60);
    let answered = loop {
        let answer: Option<Value> = async {
            let response = server
                .http
                .get(format!("http://127.0.0.1:{port}/api/v1/query"))
                .query(&[("query", query)])
                .send()
                .await
                .ok()?;
            response.json().await.ok()
        }
        .await;
        let value = answer.as_ref().and_then(|answer| answer["data"]["result"][0]["value"][1].as_str());
        if let Some(value) = value.and_then(|value| value.parse::<f64>().ok()).filter(|value| *value >= 5.0) {
            break value;
        }
        assert!(Instant::now() < deadline, "Prometheus never answered {query} with ≥ 5: {answer:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // The recorder is the process's: other tests' requests may add to it, never take away.
    assert!(answered >= 5.0);
    // Prometheus saw the target up, with the token it was given.
    let up: Value = server
        .http
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", "up{job=\"cabinet\"}")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
}

/// Connections are counted while open, and one closed as soon as it was accepted, by the cap that
/// closed it: here the per-address cap of 1, a second connection from the same address.
#[tokio::test]
async fn open_connections_and_those_closed_over_a_cap_are_counted() {
    use cabinet::connections::ConnectionLimits;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let limits = ConnectionLimits {
        header_read_timeout: Some(Duration::from_secs(30)),
        max_per_address: Some(1),
        max_total: None,
        send_timeout: None,
    };
    let server = TestServer::spawn_with(Options { connections: Some(limits), ..Options::default() }).await;
    let address = support::raw::address_of(&server.url);
    let other = std::net::IpAddr::from([127, 0, 0, 3]);
    let before = Scrape::of(&server, None).await;
    let mut held = support::raw::connect_from(other, address).await.unwrap();
    held.write_all(support::raw::head("GET", "/healthz", None, &[]).as_bytes()).await.unwrap();
    assert_eq!(support::raw::read_response(&mut held).await.unwrap().status, 200);
    let mut over = support::raw::connect_from(other, address).await.unwrap();
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(5), over.read(&mut byte)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "a second connection from one address stayed open");
    let after = Scrape::of(&server, None).await;
    let refused =
        |scrape: &Scrape| scrape.sum("cabinet_http_connections_refused_total", &[("reason", "per_address")]);
    assert!(refused(&after) >= refused(&before) + 1.0, "{} then {}", refused(&before), refused(&after));
    // The held connection and the scrape's own, at least (other tests' servers count too).
    assert!(after.sum("cabinet_http_connections_open", &[]) >= 2.0);
    drop(held);
}
