//! The OpenAPI document is complete and honest, and the docs page works offline.

use crate::support;

use reqwest::{Method, StatusCode};
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
        ("/console/cabinet-client.js", "text/javascript"),
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

/// Paths axum mounts that are deliberately in no surface's document, each with why.
const UNDOCUMENTED: &[(&str, &str)] = &[
    ("/", "leads a browser to the console (303 to /console)"),
    ("/v1/events/stream", "server-sent events: a text/event-stream that does not end (README: Events)"),
    ("/console", "the web console: a UI over the documented API"),
    ("/console/", "the web console"),
    ("/console/{asset}", "the console's static files"),
    ("/docs", "the Swagger UI page"),
    ("/docs/", "the Swagger UI page"),
    ("/docs/{*rest}", "the Swagger UI's static files"),
    ("/openapi.json", "the native API's document"),
    ("/compat/mavera/openapi.json", "the Mavera dialect's document"),
    ("/compat/mavi/openapi.json", "the MAVI dialect's document"),
    ("/compat/cms/openapi.json", "the CMS dialect's document"),
    ("/compat/serenities/openapi.json", "the Serenities dialect's document"),
    ("/tus/v1", "tus 1.0.0 creation and discovery: a protocol of headers, not JSON (docs/compat/tus.md, tests/tus.rs)"),
    ("/tus/v1/", "tus 1.0.0 creation and discovery (docs/compat/tus.md, tests/tus.rs)"),
    ("/resumable/v1", "the IETF resumable-upload draft's creation: headers, not JSON (docs/compat/tus.md, tests/resumable.rs)"),
    ("/resumable/v1/", "the IETF resumable-upload draft's creation (docs/compat/tus.md, tests/resumable.rs)"),
    ("/resumable/v1/{upload_id}", "an IETF draft upload resource: HEAD, PATCH, DELETE, OPTIONS (docs/compat/tus.md)"),
    ("/tus/v1/{upload_id}", "a tus 1.0.0 upload: HEAD, PATCH, DELETE, OPTIONS (docs/compat/tus.md, tests/tus.rs)"),
    (
        "/compat/mavera/api/v1/{*rest}",
        "Mavera's 404 for unknown routes: no state, no key, no body read \
         (`the_mavera_catch_all_is_inert` holds it to that)",
    ),
];

/// The paths of an axum router, from its `Debug` (axum has no public route list): the path
/// router prints `RouteId(n): "/path"` for each mounted path. If axum changes that output, the
/// sanity check in the test below fails rather than passing with nothing compared.
fn mounted_paths(router: &axum::Router) -> Vec<String> {
    let debug = format!("{router:?}");
    // The path router comes first; the fallback router after it holds only axum's own fallback.
    let (routes, _fallback) =
        debug.split_once("fallback_router:").expect("axum's Router Debug names its fallback router");
    let mut paths = Vec::new();
    let mut rest = routes;
    while let Some(at) = rest.find("RouteId(") {
        rest = &rest[at + "RouteId(".len()..];
        let Some(close) = rest.find("): \"") else { continue };
        if !rest[..close].bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        rest = &rest[close + 4..];
        let end = rest.find('"').expect("a closing quote");
        paths.push(rest[..end].to_owned());
        rest = &rest[end..];
    }
    paths.sort();
    paths.dedup();
    paths
}

/// A concrete URL path for a template: every parameter becomes `x`.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| if segment.starts_with('{') { "x" } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every path axum mounts is in the document with every method it answers, but those listed in
/// `UNDOCUMENTED`; and the document lists nothing that is not mounted. The methods are probed on
/// the live server: a method not mounted on a path is axum's 405, anything else is mounted.
#[tokio::test]
async fn every_mounted_route_is_in_the_document() {
    let server = TestServer::spawn().await;
    let state = cabinet_api::AppState { cabinet: server.cabinet.clone(), limits: Default::default() };
    let (router, documents) = cabinet_api::router::routes(state);
    let mounted = mounted_paths(&router);
    assert!(
        mounted.len() > 40
            && mounted.iter().any(|p| p == "/v1/uploads")
            && mounted.iter().any(|p| p == "/console"),
        "could not read the mounted paths from axum's Debug output (did axum change it?): {mounted:?}"
    );
    // Every surface's document, each path prefixed with its document's mount: a path in two
    // documents fails in `all_documents`.
    let doc = support::routes::all_documents(&server.http, &server.url).await;
    let documented = doc["paths"].as_object().expect("paths");
    let built: Vec<String> = documents
        .iter()
        .flat_map(|(surface, api)| {
            api.paths.paths.keys().map(move |path| format!("{}{path}", surface.mount()))
        })
        .collect();
    let mut built_sorted = built.clone();
    built_sorted.sort();
    assert_eq!(
        documented.keys().cloned().collect::<Vec<_>>(),
        built_sorted,
        "the served documents are the router's"
    );
    let excluded: Vec<&str> = UNDOCUMENTED.iter().map(|(path, _)| *path).collect();
    for path in &excluded {
        assert!(mounted.iter().any(|p| p == path), "{path} is excluded but no longer mounted: drop it");
        assert!(!documented.contains_key(*path), "{path} is excluded but documented: drop the exclusion");
    }
    let mut missing = Vec::new();
    for path in mounted.iter().filter(|p| !excluded.contains(&p.as_str())) {
        let Some(item) = documented.get(path) else {
            missing.push(format!("{path} (every method)"));
            continue;
        };
        for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let response = server
                .http
                .request(method.clone(), format!("{}{}", server.url, concrete(path)))
                .send()
                .await
                .unwrap();
            let answered = response.status() != StatusCode::METHOD_NOT_ALLOWED;
            let in_doc = item.get(method.as_str().to_ascii_lowercase()).is_some_and(|op| op.is_object());
            if answered && !in_doc {
                missing.push(format!("{method} {path} (answered {})", response.status()));
            }
            if in_doc && !answered {
                missing.push(format!("{method} {path} is documented but answers 405"));
            }
        }
    }
    for path in documented.keys() {
        if !mounted.contains(path) {
            missing.push(format!("{path} is documented but not mounted"));
        }
    }
    assert!(missing.is_empty(), "mounted routes and the document disagree: {missing:#?}");
}

/// The one mounted API path outside the document answers every method, with or without a key,
/// with Mavera's 404 and nothing else.
#[tokio::test]
async fn the_mavera_catch_all_is_inert() {
    let server = TestServer::spawn().await;
    for tail in ["nope", "files/x/y/z", "%00", "a/b/c/d/e/f"] {
        for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            for key in [None, Some(server.tenant.key.as_str())] {
                let mut request = server
                    .http
                    .request(method.clone(), format!("{}/compat/mavera/api/v1/{tail}", server.url))
                    .body("{\"workspace_id\": \"x\"}");
                if let Some(key) = key {
                    request = request.bearer_auth(key);
                }
                let (status, body) = server.send(request).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{method} {tail}: {body}");
                assert!(body.to_string().contains("route"), "{method} {tail}: {body}");
            }
        }
    }
}

#[tokio::test]
async fn the_native_api_refuses_a_field_it_does_not_know_instead_of_ignoring_it() {
    let server = TestServer::spawn().await;
    let key = &server.tenant.key;
    for (method, path, body) in [
        (Method::POST, "/v1/folders", serde_json::json!({"name": "Reports", "parent": null})),
        (Method::POST, "/v1/uploads", serde_json::json!({"name": "a.txt", "size": 1, "sha": "x"})),
        (
            Method::POST,
            "/v1/files",
            serde_json::json!({"name": "a.txt", "content_base64": "aGk=", "folder": null}),
        ),
        (Method::POST, "/v1/tokens", serde_json::json!({"sub": "alice", "ttl_secs": 60})),
    ] {
        let (status, body) = server.send(server.request(method, path, key).json(&body)).await;
        support::assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_json");
    }
    // A form field after which nothing is read is refused too, before the bytes are stored.
    let form = reqwest::multipart::Form::new()
        .text("nmae", "typo.txt")
        .part("file", reqwest::multipart::Part::bytes(b"hey".to_vec()).file_name("a.txt"));
    let (status, body) = server.send(server.request(Method::POST, "/v1/files", key).multipart(form)).await;
    support::assert_error(status, &body, StatusCode::BAD_REQUEST, "unknown_field");
    let (_, files) = server.send(server.get("/v1/files")).await;
    assert_eq!(files["total"], 0, "{files}");
}

#[tokio::test]
async fn list_bounds_above_what_the_document_allows_are_refused() {
    let server = TestServer::spawn().await;
    // The document says int64; the databases count in i64.
    let (status, body) = server.send(server.get("/v1/files?offset=9223372036854775808")).await;
    support::assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_offset");
    let (status, body) = server.send(server.get("/v1/folders?offset=9223372036854775808")).await;
    support::assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_offset");
    let (status, body) = server.send(server.get("/v1/files?min_size=9223372036854775808")).await;
    support::assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_size");
    let (status, _) =
        server.send(server.get("/v1/files?offset=9223372036854775807&max_size=9223372036854775807")).await;
    assert_eq!(status, StatusCode::OK);
    // The Serenities dialect refuses it in its own envelope, saying which bound was broken.
    let list = "/compat/serenities/api/v1/files/list";
    let request = serde_json::json!({"offset": 9223372036854775808u64});
    let (status, body) =
        server.send(server.request(Method::POST, list, &server.tenant.key).json(&request)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "BAD_REQUEST");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| m.starts_with("Offset must be at most")),
        "{body}"
    );
}

#[tokio::test]
async fn a_token_sub_is_bounded_in_characters_as_documented_not_in_bytes() {
    let server = TestServer::spawn().await;
    let sub = "é".repeat(200);
    let request = serde_json::json!({ "sub": sub });
    let (status, body) =
        server.send(server.request(Method::POST, "/v1/tokens", &server.tenant.key).json(&request)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let request = serde_json::json!({ "sub": "é".repeat(201) });
    let (status, body) =
        server.send(server.request(Method::POST, "/v1/tokens", &server.tenant.key).json(&request)).await;
    support::assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_sub");
}

#[tokio::test]
async fn serenities_parameters_are_a_json_object_never_an_array_read_by_position() {
    let server = TestServer::spawn().await;
    for (procedure, body) in
        [("getUsage", serde_json::json!([])), ("list", serde_json::json!(["root", null, "size"]))]
    {
        let path = format!("/compat/serenities/api/v1/files/{procedure}");
        let (status, body) =
            server.send(server.request(Method::POST, &path, &server.tenant.key).json(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{procedure}: {body}");
        assert_eq!(body["error"]["code"], "BAD_REQUEST", "{procedure}: {body}");
    }
    // No body at all still means no parameters.
    let path = "/compat/serenities/api/v1/files/getUsage";
    let (status, body) = server.send(server.request(Method::POST, path, &server.tenant.key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn each_surface_documents_its_own_request_shapes_with_the_servers_rules() {
    let server = TestServer::spawn().await;
    let doc = support::routes::all_documents(&server.http, &server.url).await;
    let schemas = &doc["components"]["schemas"];
    // Mavera's requests once shared names with the native ones, and one overwrote the other.
    assert_eq!(schemas["CreateFolderRequest"]["required"], serde_json::json!(["name"]));
    assert_eq!(schemas["CreateFolderRequest"]["additionalProperties"], false);
    let mavera = &schemas["MaveraCreateFolderRequest"];
    assert!(mavera["required"].as_array().unwrap().contains(&serde_json::json!("workspace_id")), "{mavera}");
    assert!(mavera.get("additionalProperties").is_none(), "a dialect ignores unknown fields: {mavera}");
    // A name's rule is the same pattern everywhere it is taken.
    let name = &schemas["CreateFolderRequest"]["properties"]["name"]["pattern"];
    assert!(name.as_str().is_some_and(|p| p.starts_with('^')), "{name}");
    assert_eq!(&mavera["properties"]["name"]["pattern"], name);
    assert_eq!(&schemas["RenameParams"]["properties"]["newName"]["pattern"], name);
}

/// Each surface has a document of its own at `<mount>/openapi.json`, whose `servers` entry is that
/// mount and whose paths are relative to it, so a client generated from it (or `/docs`' "Try it
/// out") sends each request to the path the router serves.
#[tokio::test]
async fn each_surface_has_its_own_document_served_under_its_mount() {
    use cabinet_api::surface::Surface;

    let server = TestServer::spawn().await;
    let mut ids = std::collections::BTreeMap::new();
    for surface in Surface::ALL {
        let url = format!("{}{}", server.url, surface.document_path());
        let (status, doc) = server.send(server.http.get(&url)).await;
        assert_eq!(status, StatusCode::OK, "{url}");
        let mount = surface.mount();
        let expected_server = if mount.is_empty() { "/" } else { mount };
        assert_eq!(doc["servers"], serde_json::json!([{ "url": expected_server }]), "{url}");
        assert_eq!(doc["info"]["title"], surface.title(), "{url}");
        let paths = doc["paths"].as_object().expect("paths");
        assert!(!paths.is_empty(), "{url}: no paths");
        for (path, item) in paths {
            let whole = format!("{mount}{path}");
            assert_eq!(Surface::of(&whole), surface, "{url}: {path} is not this surface's");
            for (method, operation) in item.as_object().unwrap() {
                let id =
                    operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {whole}: no id"));
                if surface != Surface::Native {
                    assert!(id.starts_with(&format!("{}_", surface.name())), "{method} {whole}: {id}");
                }
                if let Some(other) = ids.insert(id.to_owned(), format!("{method} {whole}")) {
                    panic!("operationId {id} names {other} and {method} {whole}");
                }
            }
        }
        // A dialect's document carries its own key scheme and error shapes only.
        let schemes: Vec<&String> =
            doc["components"]["securitySchemes"].as_object().unwrap().keys().collect();
        assert_eq!(schemes.len(), 1, "{url}: {schemes:?}");
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for status in ["400", "401", "404"] {
            let own = surface.error_schema(status);
            assert!(schemas.contains_key(own), "{url}: no {own}");
        }
        for other in Surface::ALL.into_iter().filter(|other| *other != surface) {
            for status in ["400", "401", "404"] {
                let theirs = other.error_schema(status);
                if theirs != surface.error_schema(status) {
                    assert!(
                        !schemas.contains_key(theirs),
                        "{url}: carries {theirs}, {other:?}'s error shape"
                    );
                }
            }
        }
    }
    // The ids are the ones clients were generated with: renaming one breaks them.
    for (id, operation) in [
        ("get_quota", "get /v1/quota"),
        ("list_files", "get /v1/files"),
        ("create_folder", "post /v1/folders"),
        ("toggle_file_favorite", "post /v1/files/{id}/favorite"),
        ("toggle_folder_favorite", "post /v1/folders/{id}/favorite"),
        ("get_stored_file", "get /storage/v1/files/{workspace_id}/{file_id}"),
        ("serenities_get_quota", "post /compat/serenities/api/v1/files/getQuota"),
        ("serenities_move", "post /compat/serenities/api/v1/files/move"),
        ("cms_list_files", "get /compat/cms/files/"),
        ("mavera_list_files", "get /compat/mavera/api/v1/files"),
        ("mavi_signed_url", "post /compat/mavi/serve/api/v2/upload/signed-url"),
    ] {
        assert_eq!(ids.get(id).map(String::as_str), Some(operation), "{id}");
    }
}

/// Error examples are the refusal each status stands for, in the surface's own shape: `/v1/quota`
/// shows no missing upload parts, and a dialect never shows the native envelope.
#[tokio::test]
async fn error_examples_fit_their_status_and_surface() {
    let server = TestServer::spawn().await;
    let doc = support::routes::all_documents(&server.http, &server.url).await;
    let example = |path: &str, method: &str, status: &str| {
        doc["paths"][path][method]["responses"][status]["content"]["application/json"]["example"].clone()
    };
    assert_eq!(example("/v1/quota", "get", "401")["error"]["code"], "unauthenticated");
    assert_eq!(example("/v1/quota", "get", "429")["error"]["code"], "rate_limited");
    assert_eq!(example("/v1/files/{id}", "get", "404")["error"]["code"], "not_found");
    for (path, method) in [("/v1/quota", "get"), ("/v1/files", "get"), ("/v1/files/{id}", "get")] {
        for (status, response) in doc["paths"][path][method]["responses"].as_object().unwrap() {
            let example = &response["content"]["application/json"]["example"];
            if status.starts_with('4') {
                assert!(example["error"]["code"].is_string(), "{method} {path} {status}: {example}");
                assert!(
                    example["error"].get("missing_parts").is_none(),
                    "{method} {path} {status}: {example}"
                );
            }
        }
    }
    let serenities = example("/compat/serenities/api/v1/files/getQuota", "post", "401");
    assert_eq!(serenities["error"]["code"], "UNAUTHORIZED", "{serenities}");
    let cms = example("/compat/cms/files/", "get", "401");
    assert!(cms["detail"].is_string(), "{cms}");
    // The one operation whose refusal names missing parts shows them; a refusal a description
    // names by its code shows that code; a signed route is refused for its signature.
    let complete = example("/v1/uploads/{id}/complete", "post", "409");
    assert_eq!(complete["error"]["code"], "parts_missing", "{complete}");
    assert!(complete["error"]["missing_parts"].is_array(), "{complete}");
    assert_eq!(example("/v1/files/{id}/thumbnail", "get", "422")["error"]["code"], "thumbnail_unsupported");
    assert_eq!(example("/v1/files/{id}", "delete", "409")["error"]["code"], "file_in_use");
    let signed = example("/storage/v1/files/{workspace_id}/{file_id}", "get", "403");
    assert_eq!(signed["error"]["code"], "invalid_signature", "{signed}");
    // MAVI's envelope repeats the status: an example under 404 says 404.
    let mavi = example("/compat/mavi/serve/api/v2/{asset_id}/metadata", "get", "404");
    assert_eq!(mavi["code"], 404, "{mavi}");
}

/// Every operation that needs a store documents the 503 it gets when a store does not answer, and
/// every 429 and 503 documents the `Retry-After` the server sends with it, on every surface, so a
/// client generated from a document knows both the refusal and when to send again.
#[tokio::test]
async fn every_503_and_429_is_documented_with_its_retry_after() {
    let server = TestServer::spawn().await;
    let doc = support::routes::all_documents(&server.http, &server.url).await;
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(responses) = operation["responses"].as_object() else { continue };
            operations += 1;
            if path != "/healthz" {
                assert!(responses.contains_key("503"), "{method} {path} documents no 503");
            }
            for status in ["429", "503"] {
                let Some(response) = responses.get(status) else { continue };
                let retry_after = &response["headers"]["Retry-After"];
                assert_eq!(retry_after["schema"]["type"], "integer", "{method} {path} {status}: {response}");
            }
        }
    }
    assert!(operations > 100, "the documents hold {operations} operations");
    let example = |path: &str, method: &str| {
        doc["paths"][path][method]["responses"]["503"]["content"]["application/json"]["example"].clone()
    };
    assert_eq!(example("/v1/files/{id}", "get")["error"]["code"], "unavailable");
    assert_eq!(example("/storage/v1/files/{workspace_id}/{file_id}", "get")["error"]["code"], "unavailable");
    let serenities = example("/compat/serenities/api/v1/files/getQuota", "post");
    assert!(serenities["error"]["code"].is_string(), "{serenities}");
}

/// A parameter is in the path exactly when the path template names it, on every surface (the
/// storage routes' signature and the CMS's filters are query parameters), so validators accept
/// the documents and clients put each value where the router reads it.
#[tokio::test]
async fn parameters_are_in_the_path_exactly_when_the_template_names_them() {
    let server = TestServer::spawn().await;
    let doc = support::routes::all_documents(&server.http, &server.url).await;
    let mut wrong = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let named: Vec<&str> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, operation) in item.as_object().unwrap() {
            let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
            for parameter in &parameters {
                let name = parameter["name"].as_str().unwrap();
                if parameter["in"] == "path" && !named.contains(&name) {
                    wrong.push(format!("{method} {path}: {name} is a path parameter the path lacks"));
                }
            }
            for name in &named {
                if !parameters.iter().any(|p| p["in"] == "path" && p["name"] == *name) {
                    wrong.push(format!("{method} {path}: {{{name}}} is not declared in the path"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
