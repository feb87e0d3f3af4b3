//! The OpenAPI document's frame: info, tags and the bearer scheme. The paths come from the routes
//! themselves (see `router.rs`), so a mounted route is always a documented one.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::surface::Surface;

/// The frame of `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cabinet",
        description = "A self-hostable, multi-tenant Files API: signed uploads, verified files, signed downloads.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "uploads", description = "Upload sessions: reserve, send bytes to the signed URL, done"),
        (name = "files", description = "Finished files: details, metadata, favorites, references, trash"),
        (name = "folders", description = "The folder tree"),
        (name = "search", description = "Search and tags across the workspace"),
        (name = "trash", description = "Deleted files and folders, until purged"),
        (name = "access", description = "End-user tokens and access rules"),
        (name = "workspace", description = "Quota and usage"),
        (name = "storage", description = "The signed storage endpoint; the URL is the credential"),
        (name = "health", description = "Liveness and readiness"),
        (name = "compat-mavera", description = "The Mavera dialect: Mavera's Files and Folders API at /compat/mavera/api/v1"),
        (name = "compat-mavi", description = "The MAVI dialect: memories.ai's asset API at /compat/mavi/serve/api/v2"),
    )
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            crate::v1::BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key. Keys scoped to several workspaces name one with the \
                         X-Cabinet-Workspace header or the workspace_id query parameter.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            crate::compat::mavi::RAW_KEY,
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "Authorization",
                    "The MAVI dialect: the raw API key, without `Bearer` (which is accepted too).",
                ),
            )),
        );
    }
}

/// Documents the refusals every operation can get from the layers around it, so the document
/// does not lie by omission: 414/431/429 from the request limits and the rate limiter; 400, 401
/// and 404 from authentication (a bad key; a workspace that is not the key's); 400 (a stalled or
/// malformed body) and 413 wherever a body is taken; 404 wherever a path names something.
pub fn document_common_responses(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::Operation;
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

    let refusal = |description: &str, schema: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name(schema))).build(),
            )
            .build()
    };
    for (path, item) in api.paths.paths.iter_mut() {
        let public = matches!(path.as_str(), "/healthz" | "/readyz");
        let surface = Surface::of(path);
        let operations: [&mut Option<Operation>; 7] = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
        ];
        for operation in operations.into_iter().flatten() {
            let mut statuses =
                vec![("414", "The URL is too long"), ("431", "The request headers are too large")];
            if !public {
                statuses.push(("429", "Too many requests; see Retry-After"));
            }
            if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                statuses.push(("400", "Invalid input, or a key of several workspaces named none"));
                statuses.push(("401", "Missing, invalid or revoked API key"));
                statuses.push(("404", "Not found, or not in a workspace of this key"));
            }
            if operation.request_body.is_some() {
                statuses.push(("400", "The body is malformed, or stalled and was cut off"));
                statuses.push(("413", "The body is too large"));
            }
            if path.contains('{') {
                statuses.push(("404", "Not found"));
            }
            for (status, description) in statuses {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| refusal(description, surface.error_schema(status)).into());
            }
        }
    }
}

/// Marks a JSON body whose properties are all optional as optional itself, on the surfaces under
/// `prefixes`: they read no body at all as `{}` (the Serenities and Mavera dialects).
pub fn document_optional_bodies(api: &mut utoipa::openapi::OpenApi, prefixes: &[&str]) {
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::{RefOr, Required};

    let schemas = api.components.as_ref().map(|c| c.schemas.clone()).unwrap_or_default();
    let all_optional = |name: &str| matches!(schemas.get(name), Some(RefOr::T(Schema::Object(object))) if object.required.is_empty());
    for (path, item) in api.paths.paths.iter_mut() {
        if !prefixes.iter().any(|prefix| path.starts_with(prefix)) {
            continue;
        }
        for operation in [&mut item.post, &mut item.patch, &mut item.put].into_iter().flatten() {
            let Some(body) = operation.request_body.as_mut() else { continue };
            let named = body.content.get("application/json").and_then(|content| match &content.schema {
                Some(RefOr::Ref(reference)) => reference.ref_location.rsplit('/').next().map(str::to_owned),
                _ => None,
            });
            if named.as_deref().is_some_and(all_optional) {
                body.required = Some(Required::False);
            }
        }
    }
}

/// Where one operation's output names a resource other operations take, as OpenAPI links (so the
/// fuzzer's stateful phase chains them): (operation, its success status, the id in its response or
/// request, the path of the resource it names). Every operation on that path and below it is
/// linked, with the path's one parameter filled from the id.
const LINKS: &[(&str, &str, &str, &str, &str)] = &[
    ("post", "/v1/uploads", "201", "$response.body#/id", "/v1/uploads/{id}"),
    ("post", "/v1/files", "201", "$response.body#/id", "/v1/files/{id}"),
    ("delete", "/v1/files/{id}", "200", "$request.path.id", "/v1/files/{id}"),
    ("post", "/v1/folders", "201", "$response.body#/id", "/v1/folders/{id}"),
    ("delete", "/v1/folders/{id}", "200", "$request.path.id", "/v1/folders/{id}"),
    ("post", "/compat/cms/files/", "201", "$response.body#/api_id", "/compat/cms/files/{api_id}/"),
    ("post", "/compat/cms/files", "201", "$response.body#/api_id", "/compat/cms/files/{api_id}"),
    ("post", "/compat/mavera/api/v1/files", "201", "$response.body#/id", "/compat/mavera/api/v1/files/{id}"),
    (
        "post",
        "/compat/mavera/api/v1/folders",
        "201",
        "$response.body#/id",
        "/compat/mavera/api/v1/folders/{id}",
    ),
];

/// Adds `LINKS` to the document. A link whose source or target is not documented is a bug of this
/// table, so it panics (and every test that builds the router fails).
pub fn document_links(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::link::LinkBuilder;

    for &(method, path, status, id, target) in LINKS {
        let parameter = target
            .trim_end_matches('/')
            .rsplit_once('{')
            .and_then(|(_, p)| p.strip_suffix('}'))
            .expect("a target ends in {param}");
        let mut links = Vec::new();
        for (to_path, item) in &api.paths.paths {
            if to_path != target && !to_path.starts_with(&format!("{target}/")) {
                continue;
            }
            if to_path.matches('{').count() != 1 {
                continue;
            }
            for (to_method, operation) in [
                ("get", &item.get),
                ("post", &item.post),
                ("put", &item.put),
                ("patch", &item.patch),
                ("delete", &item.delete),
            ] {
                if operation.is_none() || (to_path == path && to_method == method) {
                    continue;
                }
                let pointer =
                    format!("#/paths/{}/{to_method}", to_path.replace('~', "~0").replace('/', "~1"));
                let name = format!("{to_method}{}", to_path[target.len()..].replace(['/', '-'], "_"));
                // utoipa 5 spells the field `operation_ref` in JSON; OpenAPI's is `operationRef`.
                let mut spelled = utoipa::openapi::extensions::Extensions::default();
                spelled.insert("operationRef".to_owned(), pointer.into());
                links.push((
                    name,
                    LinkBuilder::new().parameter(parameter, id).extensions(Some(spelled)).build(),
                ));
            }
        }
        assert!(!links.is_empty(), "link {method} {path} → {target}: no operation to link to");
        let item =
            api.paths.paths.get_mut(path).unwrap_or_else(|| panic!("link from {path}: not documented"));
        let operation = match method {
            "get" => item.get.as_mut(),
            "post" => item.post.as_mut(),
            "put" => item.put.as_mut(),
            "patch" => item.patch.as_mut(),
            "delete" => item.delete.as_mut(),
            _ => None,
        };
        let operation = operation.unwrap_or_else(|| panic!("link from {method} {path}: not documented"));
        let response = operation.responses.responses.get_mut(status);
        let Some(utoipa::openapi::RefOr::T(response)) = response else {
            panic!("link from {method} {path}: no inline {status} response");
        };
        for (name, link) in links {
            response.links.insert(name, link.into());
        }
    }
}
