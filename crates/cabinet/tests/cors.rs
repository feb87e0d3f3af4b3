//! CORS: the server's list (`--cors-origins`) on the API, signed URLs and public URLs; a
//! workspace's own list (`cabinet admin set-cors`) replacing it on that workspace's signed and
//! public URLs only; `*` (the default) as it always was; `none`. Preflights and actual requests,
//! from an allowed and a refused origin.

use crate::support;

use cabinet_api::{CorsOrigins, HttpLimits};
use cabinet_core::WorkspaceId;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{Options, TestServer};

const APP: &str = "https://app.example.com";
const SHOP: &str = "https://shop.example.com";
const EVIL: &str = "https://evil.example";

async fn server_with(origins: &str) -> TestServer {
    let http = HttpLimits { cors_origins: CorsOrigins::parse(origins).unwrap(), ..HttpLimits::default() };
    TestServer::spawn_with(Options { http: Some(http), ..Options::default() }).await
}

/// The three kinds of URL a page may call: an API route, a signed download URL, a public URL.
struct Urls {
    api: String,
    signed: String,
    public: String,
}

async fn urls(server: &TestServer) -> Urls {
    let (status, file) = server
        .send(
            server
                .request(Method::POST, "/v1/files", &server.tenant.key)
                .json(&json!({"name": "page.txt", "content_base64": "aGVsbG8="})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let file = file["id"].as_str().unwrap().to_owned();
    let (status, link) = server.send(server.get(&format!("/v1/files/{file}/download-url"))).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let (status, rules) = server
        .send(
            server
                .request(Method::PUT, "/v1/access-rules", &server.tenant.key)
                .json(&json!({"read": "public"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rules}");
    Urls {
        api: format!("{}/v1/files/{file}", server.url),
        signed: link["url"].as_str().unwrap().to_owned(),
        public: format!("{}/public/v1/files/{}/{file}", server.url, server.tenant.workspace),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|value| value.to_str().unwrap())
}

/// A GET from `origin` (with the tenant's key on the API): its status and headers.
async fn get_from(server: &TestServer, url: &str, origin: &str) -> (StatusCode, HeaderMap) {
    let mut request = server.http.get(url).header("origin", origin);
    if url.starts_with(&format!("{}/v1/", server.url)) {
        request = request.bearer_auth(&server.tenant.key);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.headers().clone())
}

/// The preflight a browser sends before a GET with `Authorization` from `origin`.
async fn preflight_from(server: &TestServer, url: &str, origin: &str) -> (StatusCode, HeaderMap) {
    let response = server
        .http
        .request(Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    (response.status(), response.headers().clone())
}

/// Asserts `origin` may read `url` (the preflight allows it, the answer names it).
async fn assert_allowed(server: &TestServer, url: &str, origin: &str) {
    let (status, headers) = preflight_from(server, url, origin).await;
    assert_eq!(status, StatusCode::OK, "preflight of {url} from {origin}");
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some(origin),
        "preflight of {url}: {headers:?}"
    );
    assert_eq!(header(&headers, "access-control-allow-methods"), Some("GET"), "{headers:?}");
    assert_eq!(header(&headers, "access-control-allow-headers"), Some("authorization"), "{headers:?}");
    assert_eq!(header(&headers, "access-control-max-age"), Some("3600"), "{headers:?}");
    assert!(header(&headers, "vary").is_some_and(|vary| vary.contains("origin")), "{headers:?}");
    let (status, headers) = get_from(server, url, origin).await;
    assert_eq!(status, StatusCode::OK, "GET {url} from {origin}");
    assert_eq!(header(&headers, "access-control-allow-origin"), Some(origin), "GET {url}: {headers:?}");
    assert!(header(&headers, "vary").is_some_and(|vary| vary.contains("origin")), "{headers:?}");
}

/// Asserts `origin` may not read `url`: no `Access-Control-Allow-*` on the preflight or the
/// answer (the request itself is served: CORS is the browser's to enforce), `Vary: Origin`.
async fn assert_refused(server: &TestServer, url: &str, origin: &str) {
    let (_, headers) = preflight_from(server, url, origin).await;
    for name in
        ["access-control-allow-origin", "access-control-allow-methods", "access-control-allow-headers"]
    {
        assert_eq!(header(&headers, name), None, "preflight of {url} from {origin}: {headers:?}");
    }
    let (status, headers) = get_from(server, url, origin).await;
    assert_eq!(status, StatusCode::OK, "GET {url} from {origin}");
    assert_eq!(header(&headers, "access-control-allow-origin"), None, "GET {url} from {origin}: {headers:?}");
    assert_eq!(header(&headers, "access-control-expose-headers"), None, "{headers:?}");
    assert!(header(&headers, "vary").is_some_and(|vary| vary.contains("origin")), "{headers:?}");
}

#[tokio::test]
async fn a_listed_origin_may_call_the_api_and_signed_and_public_urls_and_another_may_not() {
    let server = server_with(&format!("{APP}, http://localhost:3000")).await;
    let urls = urls(&server).await;
    for url in [&urls.api, &urls.signed, &urls.public] {
        assert_allowed(&server, url, APP).await;
        assert_allowed(&server, url, "http://localhost:3000").await;
        assert_refused(&server, url, EVIL).await;
        assert_refused(&server, url, "http://localhost:3001").await;
        assert_refused(&server, url, "null").await;
    }
    // An error answer carries the header too, so the page can read why.
    let (status, headers) =
        get_from(&server, &format!("{}/v1/files/file_00000000000000000000000000", server.url), APP).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some(APP));
}

#[tokio::test]
async fn a_workspace_list_replaces_the_servers_on_its_signed_and_public_urls_only() {
    let server = server_with(APP).await;
    let urls = urls(&server).await;
    let shop = CorsOrigins::parse(SHOP).unwrap();
    server.cabinet.set_workspace_cors_origins(&server.tenant.workspace, Some(&shop)).await.unwrap();
    for url in [&urls.signed, &urls.public] {
        assert_allowed(&server, url, SHOP).await;
        assert_refused(&server, url, APP).await;
        assert_refused(&server, url, EVIL).await;
    }
    // The API goes by the server's list: a preflight carries no credential to find a workspace by.
    assert_allowed(&server, &urls.api, APP).await;
    assert_refused(&server, &urls.api, SHOP).await;

    // Another workspace's URLs still go by the server's list.
    let other = server.tenant(None, cabinet_core::Role::Admin).await;
    let (status, upload) = server
        .send(
            server
                .request(Method::POST, "/v1/files", &other.key)
                .json(&json!({"name": "other.txt", "content_base64": "aGVsbG8="})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{upload}");
    let (_, link) = server
        .send(server.request(
            Method::GET,
            &format!("/v1/files/{}/download-url", upload["id"].as_str().unwrap()),
            &other.key,
        ))
        .await;
    let other_signed = link["url"].as_str().unwrap();
    assert_allowed(&server, other_signed, APP).await;
    assert_refused(&server, other_signed, SHOP).await;

    // `none` for the workspace: nobody, even where the server allows every origin; back to the
    // server's list with `None`.
    server
        .cabinet
        .set_workspace_cors_origins(&server.tenant.workspace, Some(&CorsOrigins::None))
        .await
        .unwrap();
    assert_refused(&server, &urls.signed, APP).await;
    server.cabinet.set_workspace_cors_origins(&server.tenant.workspace, None).await.unwrap();
    assert_allowed(&server, &urls.signed, APP).await;
    assert_refused(&server, &urls.signed, SHOP).await;
}

#[tokio::test]
async fn a_workspace_list_may_open_its_urls_where_the_server_allows_no_origin() {
    let server = server_with("none").await;
    let urls = urls(&server).await;
    let (_, headers) = get_from(&server, &urls.signed, SHOP).await;
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
    let shop = CorsOrigins::parse(&format!("{SHOP},{APP}")).unwrap();
    server.cabinet.set_workspace_cors_origins(&server.tenant.workspace, Some(&shop)).await.unwrap();
    assert_allowed(&server, &urls.signed, SHOP).await;
    assert_allowed(&server, &urls.public, APP).await;
    assert_refused(&server, &urls.signed, EVIL).await;
    let (_, headers) = get_from(&server, &urls.api, SHOP).await;
    assert_eq!(header(&headers, "access-control-allow-origin"), None, "the API stays closed");
}

#[tokio::test]
async fn with_the_default_star_every_origin_gets_what_it_always_got() {
    let server = TestServer::spawn().await;
    let urls = urls(&server).await;
    for url in [&urls.api, &urls.signed, &urls.public] {
        let (status, headers) = preflight_from(&server, url, EVIL).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"), "{headers:?}");
        assert_eq!(header(&headers, "access-control-allow-methods"), Some("*"), "{headers:?}");
        assert_eq!(header(&headers, "access-control-allow-headers"), Some("*"), "{headers:?}");
        assert_eq!(header(&headers, "access-control-max-age"), Some("3600"), "{headers:?}");
        assert_eq!(
            header(&headers, "vary"),
            Some("origin, access-control-request-method, access-control-request-headers"),
            "{headers:?}"
        );
        let (status, headers) = get_from(&server, url, EVIL).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"), "{headers:?}");
        assert_eq!(header(&headers, "access-control-expose-headers"), Some("*"), "{headers:?}");
        // Without an Origin header too, as before.
        let response = server.http.get(url).send().await.unwrap();
        assert_eq!(header(response.headers(), "access-control-allow-origin"), Some("*"));
    }
}

#[tokio::test]
async fn with_none_no_cors_header_is_sent_and_options_is_a_method_like_any() {
    let server = server_with("none").await;
    let urls = urls(&server).await;
    for url in [&urls.api, &urls.signed, &urls.public] {
        let (status, headers) = preflight_from(&server, url, APP).await;
        assert_ne!(status, StatusCode::OK, "no preflight is answered: {url}");
        assert_eq!(header(&headers, "access-control-allow-origin"), None);
        assert_eq!(header(&headers, "access-control-allow-methods"), None);
        let (status, headers) = get_from(&server, url, APP).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "access-control-allow-origin"), None, "{headers:?}");
    }
}

#[tokio::test]
async fn an_unknown_workspace_in_a_signed_path_goes_by_the_servers_list() {
    let server = server_with(APP).await;
    let url = format!(
        "{}/storage/v1/files/{}/file_00000000000000000000000000",
        server.url,
        WorkspaceId::generate()
    );
    let (status, headers) = get_from(&server, &url, APP).await;
    assert!(status.is_client_error(), "{status}");
    assert_eq!(header(&headers, "access-control-allow-origin"), Some(APP));
    let (_, headers) = get_from(&server, &url, EVIL).await;
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
}

#[test]
fn a_bad_origin_stops_the_server_at_start_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cabinet"))
        .args(["--data-dir", dir.path().to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
        .args(["--cors-origins", "https://app.example.com,https://shop.example.com/"])
        .env_remove("CABINET_CORS_ORIGINS")
        .env_remove("CABINET_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the server did not start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--cors-origins")
            && stderr.contains("https://shop.example.com/")
            && stderr.contains("no path"),
        "{stderr}"
    );
}
