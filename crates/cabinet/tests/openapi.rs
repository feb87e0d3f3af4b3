//! The OpenAPI document is complete and honest, and the docs page works offline.

mod support;

use reqwest::StatusCode;
use support::TestServer;

#[tokio::test]
async fn every_route_is_documented_with_its_methods() {
    let server = TestServer::spawn().await;
    let (status, doc) = server.send(server.http.get(format!("{}/openapi.json", server.url))).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/v1/uploads", &["post"][..]),
        ("/v1/uploads/{id}", &["get", "delete"]),
        ("/v1/uploads/{id}/complete", &["post"]),
        ("/v1/uploads/{id}/parts", &["get", "post"]),
        ("/v1/files", &["get", "post"]),
        ("/v1/files/{id}", &["get", "delete"]),
        ("/v1/files/{id}/download-url", &["get"]),
        ("/v1/files/{id}/content", &["get"]),
        ("/v1/quota", &["get"]),
        ("/v1/usage", &["get"]),
        ("/storage/v1/uploads/{workspace_id}/{upload_id}", &["put", "post"]),
        ("/storage/v1/uploads/{workspace_id}/{upload_id}/parts/{part_number}", &["put"]),
        ("/storage/v1/files/{workspace_id}/{file_id}", &["get"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
    ] {
        for method in methods {
            let operation = &paths[path][method];
            assert!(operation.is_object(), "{method} {path} is not documented");
            assert!(
                operation["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
        }
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_binary() {
    let server = TestServer::spawn().await;
    let page = server.http.get(format!("{}/docs/", server.url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("unpkg.com") && !html.contains("cdn"), "the docs page must not load from a CDN");
    let bundle = server.http.get(format!("{}/docs/swagger-ui-bundle.js", server.url)).send().await.unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let server = TestServer::spawn().await;
    let (status, body) = server.send(server.http.get(format!("{}/healthz", server.url))).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (status, body) = server.send(server.http.get(format!("{}/readyz", server.url))).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ready")));
    let response = server.http.get(format!("{}/healthz", server.url)).send().await.unwrap();
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn unknown_routes_get_the_error_shape() {
    let server = TestServer::spawn().await;
    let (status, body) = server.send(server.get("/v1/nope")).await;
    support::assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn the_console_is_served_from_the_binary_under_its_own_policy() {
    let server = TestServer::spawn().await;
    for (path, content_type) in [
        ("/console", "text/html"),
        ("/console/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/style.css", "text/css"),
    ] {
        let response = server.http.get(format!("{}{path}", server.url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
        assert!(header("content-type").starts_with(content_type), "{path}: {}", header("content-type"));
        let csp = header("content-security-policy");
        assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("http"), "{path}: {csp}");
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        let etag = header("etag");
        let again = server
            .http
            .get(format!("{}{path}", server.url))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
    let missing = server.http.get(format!("{}/console/nothing.js", server.url)).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let (_, doc) = server.send(server.http.get(format!("{}/openapi.json", server.url))).await;
    assert!(
        doc["paths"].as_object().unwrap().keys().all(|path| !path.starts_with("/console")),
        "the console is a UI, not part of the API's document"
    );
}
