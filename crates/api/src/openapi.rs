//! The OpenAPI documents: their frame (info, tags, key schemes), the post-processing that makes
//! them honest and readable by generators (common refusals, examples, bytes, unions, ids, links),
//! and the split into one document per surface. The paths come from the routes themselves (see
//! `router.rs`), so a mounted route is always a documented one, in exactly one surface's document.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::surface::Surface;

/// The frame of every surface's document (`split` keeps the tags and schemes each one uses).
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
        (name = "audit", description = "The audit log: who changed or was refused what, when, from where"),
        (name = "webhooks", description = "Signed POSTs of the workspace's events to receivers, at least once and in order"),
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
/// malformed body) and 413 wherever a body is taken; 404 wherever a path names something; 503
/// wherever a store is needed (all but `/healthz`). A 429 and a 503 document their `Retry-After`,
/// which the server sends with every one, so a generated client can read when to send again.
pub fn document_common_responses(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::path::Operation;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

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
        // `/healthz` answers from the process alone; `/readyz` documents its own 503.
        let needs_a_store = path != "/healthz";
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
            if needs_a_store {
                statuses.push(("503", "The server cannot take the request now (a store does not answer, or the disk is full); send it again after the Retry-After seconds"));
            }
            for (status, description) in statuses {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| refusal(description, surface.error_schema(status)).into());
            }
            for status in ["429", "503"] {
                if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status) {
                    let seconds = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).build();
                    response.headers.entry("Retry-After".to_owned()).or_insert_with(|| {
                        HeaderBuilder::new()
                            .schema(seconds)
                            .description(Some("How many seconds to wait before sending the request again"))
                            .build()
                    });
                }
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
    ("post", "/v1/webhooks", "201", "$response.body#/id", "/v1/webhooks/{id}"),
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

/// Adds `LINKS` to the document (after `document_operation_ids`: links name operations by id). A link whose source or target is not documented is a bug of this
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
                // By id, not by a pointer into `paths`: the link survives the split into one
                // document per surface, where a dialect's paths lose their mount.
                let Some(operation_id) = operation.as_ref().and_then(|o| o.operation_id.clone()) else {
                    panic!("{to_method} {to_path} has no operationId to link to");
                };
                let name = format!("{to_method}{}", to_path[target.len()..].replace(['/', '-'], "_"));
                // utoipa 5 spells the field `operation_id` in JSON; OpenAPI's is `operationId`.
                let mut spelled = utoipa::openapi::extensions::Extensions::default();
                spelled.insert("operationId".to_owned(), operation_id.into());
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

/// Prefixes every dialect operation's id with its dialect's name (`serenities_get_quota`), so an
/// id names one operation across the five documents, and checks that none is taken twice.
pub fn document_operation_ids(api: &mut utoipa::openapi::OpenApi) {
    let mut seen = std::collections::BTreeMap::new();
    for (path, item) in api.paths.paths.iter_mut() {
        let surface = Surface::of(path);
        for operation in operations_mut(item) {
            let id = operation.operation_id.get_or_insert_with(String::new);
            assert!(!id.is_empty(), "an operation on {path} has no id");
            if surface != Surface::Native {
                *id = format!("{}_{id}", surface.name());
            }
            if let Some(other) = seen.insert(id.clone(), path.clone()) {
                panic!("operationId {id} is taken by {other} and {path}");
            }
        }
    }
}

/// Every operation of a path item.
fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
    ]
    .into_iter()
    .flatten()
}

/// Gives each error response an example that is right for its status and operation, in its
/// surface's own envelope (the bytes the server sends for that refusal), so no operation shows
/// another's error: `/v1/quota` is never shown a missing upload part. The code is the one the
/// response's description names in backquotes, else the one its words describe (a 409 "in use"),
/// else the one `EXAMPLE_CODES` gives the operation, else the usual one for the status. An example
/// the operation gives itself is kept.
pub fn document_error_examples(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;

    for (path, item) in api.paths.paths.iter_mut() {
        let surface = Surface::of(path);
        let named = named_by(path, surface);
        for operation in operations_mut(item) {
            let request = operation.request_body.as_ref().map(|body| {
                (
                    body.content.contains_key("application/json"),
                    body.content.contains_key("multipart/form-data"),
                )
            });
            let signed = operation.security.as_ref().is_none_or(|s| s.is_empty());
            let takes_query = operation.parameters.as_ref().is_some_and(|parameters| {
                parameters.iter().any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query))
            });
            let id = operation.operation_id.clone().unwrap_or_default();
            for (status, response) in operation.responses.responses.iter_mut() {
                let RefOr::T(response) = response else { continue };
                let Ok(code) = status.parse::<u16>() else { continue };
                if code < 400 {
                    continue;
                }
                let Some(content) = response.content.get_mut("application/json") else { continue };
                // An operation that gives its own example knows its refusal best (the CMS's
                // 409 lists what uses the file).
                if content.example.is_some() {
                    continue;
                }
                let case = Refused { status: code, request, signed, takes_query, named };
                let (native, message) = code_named_in(&response.description)
                    .or_else(|| code_described_in(code, &response.description))
                    .or_else(|| {
                        EXAMPLE_CODES.iter().find(|(op, st, _)| *op == id && *st == code).map(|(_, _, c)| *c)
                    })
                    .map(|native| (native, message_of(native, &case)))
                    .unwrap_or_else(|| usual_refusal(&case));
                content.example = Some(example_body(surface, &case, native, message));
            }
        }
    }
}

/// What an error example is chosen from: the status and the operation's shape.
struct Refused {
    status: u16,
    /// Its request body: (takes JSON, takes a form); `None` without one.
    request: Option<(bool, bool)>,
    /// Its credential is a signed URL.
    signed: bool,
    takes_query: bool,
    /// What its path names (`file`, `upload`, ...), if it names one.
    named: Option<&'static str>,
}

/// What a path names, for a 404's message: the thing its last id is the id of (`{id}` after
/// `files`, `{upload_id}`, the CMS's `{api_id}`), or, on a native path without one, the workspace.
fn named_by(path: &str, surface: Surface) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let noun = |word: &str| match word.trim_end_matches('s') {
        "file" | "api" => Some("file"),
        "folder" => Some("folder"),
        "upload" => Some("upload"),
        "part" => Some("part"),
        "asset" => Some("asset"),
        _ => None,
    };
    let from_ids = segments.iter().enumerate().rev().find_map(|(at, segment)| {
        let parameter = segment.strip_prefix('{')?.strip_suffix('}')?;
        match parameter {
            "id" => segments[..at].last().and_then(|literal| noun(literal)),
            "part_number" => Some("part"),
            other => other.strip_suffix("_id").and_then(noun),
        }
    });
    from_ids.or((surface == Surface::Native).then_some("workspace"))
}

/// Codes no status implies, by operation id and status.
const EXAMPLE_CODES: &[(&str, u16, cabinet_core::Code)] = {
    use cabinet_core::Code::*;
    &[
        ("delete_file", 409, FileInUse),
        ("delete_folder", 409, FolderNotEmpty),
        ("restore_file", 409, NotInTrash),
        ("restore_folder", 409, NotInTrash),
        ("cancel_upload", 409, UploadNotLive),
        ("complete_upload", 409, PartsMissing),
        ("complete_upload", 413, FileTooLarge),
        ("list_parts", 409, NotMultipart),
        ("create_part_urls", 409, NotMultipart),
        ("create_part_urls", 400, InvalidPartNumbers),
        ("create_upload", 400, InvalidName),
        ("create_upload", 413, FileTooLarge),
        ("update_file", 413, MetadataTooLarge),
        ("put_upload", 409, UploadNotWaiting),
        ("post_upload", 409, UploadNotWaiting),
        ("post_upload", 400, MissingFile),
        ("put_part", 409, UploadNotLive),
        ("put_part", 404, NotFound),
        ("download_url", 400, InvalidExpiresIn),
    ]
};

/// The code a response's description names in backquotes (`` `image_too_large` or ... ``).
fn code_named_in(description: &str) -> Option<cabinet_core::Code> {
    description
        .split('`')
        .skip(1)
        .step_by(2)
        .find_map(|word| cabinet_core::Code::ALL.iter().copied().find(|code| code.as_str() == word))
}

/// The conflict a 409's description describes in words, on any surface.
fn code_described_in(status: u16, description: &str) -> Option<cabinet_core::Code> {
    use cabinet_core::Code;

    let description = description.to_ascii_lowercase();
    let words: [(&str, Code); 6] = [
        ("api_id is taken", Code::ExternalIdTaken),
        ("in use", Code::FileInUse),
        ("not empty", Code::FolderNotEmpty),
        ("not in the trash", Code::NotInTrash),
        ("not a multipart", Code::NotMultipart),
        ("taken", Code::NameTaken),
    ];
    // The first conflict the description names ("Not empty (without recursive), or files in use").
    (status == 409)
        .then(|| {
            words
                .iter()
                .filter_map(|(phrase, code)| description.find(phrase).map(|at| (at, *code)))
                .min_by_key(|(at, _)| *at)
                .map(|(_, code)| code)
        })
        .flatten()
}

/// The usual refusal for a status on an operation of this shape.
fn usual_refusal(case: &Refused) -> (cabinet_core::Code, String) {
    use cabinet_core::Code;

    let code = match case.status {
        400 => match case.request {
            Some((true, _)) => Code::InvalidJson,
            Some((false, true)) => Code::InvalidMultipart,
            Some((false, false)) => Code::IncompleteBody,
            None if case.takes_query => Code::InvalidQuery,
            None => Code::WorkspaceRequired,
        },
        401 => Code::Unauthenticated,
        403 if case.signed => Code::InvalidSignature,
        403 => Code::Forbidden,
        404 => Code::NotFound,
        409 => Code::NameTaken,
        410 => Code::UrlExpired,
        413 => Code::PayloadTooLarge,
        414 => Code::UriTooLong,
        415 => Code::UnsupportedMediaType,
        416 => Code::InvalidRange,
        422 => Code::ChecksumMismatch,
        429 => Code::RateLimited,
        431 => Code::HeadersTooLarge,
        503 => Code::Unavailable,
        402 | 507 => Code::QuotaExceeded,
        _ => Code::Internal,
    };
    (code, message_of(code, case))
}

/// A message as the server words `code`.
fn message_of(code: cabinet_core::Code, case: &Refused) -> String {
    use cabinet_core::Code;

    match code {
        Code::NotFound => {
            case.named.map_or_else(|| "not found".to_owned(), |named| format!("{named} not found"))
        }
        Code::InvalidJson => "the body is not valid JSON: expected value at line 1 column 1".into(),
        Code::InvalidMultipart => "the body is not a valid multipart form".into(),
        Code::IncompleteBody => "the body ended before the declared size".into(),
        Code::InvalidQuery => "invalid query parameter".into(),
        Code::WorkspaceRequired => "this key has several workspaces: name one".into(),
        Code::Unauthenticated => "missing or invalid API key".into(),
        Code::InvalidSignature => "the signature is invalid or has expired".into(),
        Code::Forbidden => "this key's role does not allow it".into(),
        Code::NameTaken => "an item of that name is already there".into(),
        Code::PayloadTooLarge => "the body is too large".into(),
        Code::UriTooLong => "the URL is too long".into(),
        Code::HeadersTooLarge => "the request headers are too large".into(),
        Code::RateLimited => "too many requests; retry after the Retry-After seconds".into(),
        Code::Unavailable => "a store is unavailable; retry".into(),
        Code::QuotaExceeded => "the workspace's storage quota is exceeded".into(),
        Code::ChecksumMismatch => "the bytes do not match the declared SHA-256".into(),
        Code::PartsMissing => "parts are missing: send them, then complete again".into(),
        other => other.as_str().replace('_', " "),
    }
}

/// The body `surface` sends for a refusal, as the server writes it: a handler's error through
/// the surface's own error mapping, or (for what only the layers around the handlers refuse) the
/// surface's refusal.
fn example_body(
    surface: Surface,
    case: &Refused,
    code: cabinet_core::Code,
    message: String,
) -> serde_json::Value {
    use axum::http::StatusCode;
    use cabinet_core::Error;

    let error = match case.status {
        400 => Some(Error::BadRequest { code, message: message.clone() }),
        401 => Some(Error::Unauthenticated("missing or invalid API key")),
        403 if case.signed => {
            Some(Error::BadSignature { code, message: "the signature is invalid or has expired" })
        }
        403 => Some(Error::Forbidden(message.clone())),
        404 => Some(Error::NotFound(case.named.unwrap_or("resource"))),
        409 if code == cabinet_core::Code::PartsMissing => Some(Error::PartsMissing { missing: vec![2, 3] }),
        409 => Some(Error::Conflict { code, message: message.clone() }),
        413 => Some(Error::TooLarge { code, message: message.clone() }),
        402 | 507 => Some(Error::QuotaExceeded { requested: 10_485_760, available: 1_048_576 }),
        422 => Some(Error::Unprocessable { code, message: message.clone() }),
        _ => None,
    };
    let status = StatusCode::from_u16(case.status).unwrap_or(StatusCode::BAD_REQUEST);
    // A dialect that answers that error with another status (MAVI's 400 for a missing asset)
    // sends this one only as a refusal of the layers around it.
    let response = error
        .map(|error| surface.error_response(error))
        .filter(|response| response.status() == status)
        .unwrap_or_else(|| surface.refusal(status, code, message));
    // The body is whole in memory: its future is ready at once.
    let bytes = futures::FutureExt::now_or_never(axum::body::to_bytes(response.into_body(), usize::MAX))
        .expect("a refusal's body is in memory")
        .expect("a refusal's body is in memory");
    serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
}

/// Splits the merged document into one per surface: the native API (with the storage, public and
/// health routes) and each dialect, whose paths are relative to its mount and whose `servers`
/// entry is that mount, so a client (or Swagger's "Try it out") sends each request to the path the
/// router serves. Each document keeps only the schemas, security schemes and tags its operations
/// use, so a dialect's document carries its own scheme and error shapes alone. Each path moves
/// into its surface's document: the paths are most of the document, and a whole copy of them for
/// each surface at start-up stayed in the server's resident memory for good.
pub fn split(mut api: utoipa::openapi::OpenApi) -> Vec<(Surface, utoipa::openapi::OpenApi)> {
    use utoipa::openapi::server::Server;

    let mut all_paths = std::mem::take(&mut api.paths.paths);
    Surface::ALL
        .into_iter()
        .map(|surface| {
            let mut document = api.clone();
            document.info.title = surface.title().to_owned();
            if surface != Surface::Native {
                document.info.description = Some(format!(
                    "Cabinet's {} dialect, mounted at `{}`: the same files and folders as the native \
                     API, in that API's own request and response shapes. The native API's document \
                     is at `/openapi.json`.",
                    surface.name(),
                    surface.mount()
                ));
            }
            let (paths, others) = std::mem::take(&mut all_paths)
                .into_iter()
                .partition(|(path, _)| Surface::of(path) == surface);
            all_paths = others;
            document.paths.paths = paths
                .into_iter()
                .map(|(path, item)| {
                    let relative = path.strip_prefix(surface.mount()).unwrap_or(&path);
                    let relative = if relative.is_empty() { "/".to_owned() } else { relative.to_owned() };
                    (relative, item)
                })
                .collect();
            let server = if surface == Surface::Native { "/" } else { surface.mount() };
            document.servers = Some(vec![Server::new(server)]);
            keep_only_what_is_used(&mut document);
            (surface, document)
        })
        .collect()
}

/// Drops the schemas, security schemes and tags no operation of `document` refers to, directly or
/// through another schema.
fn keep_only_what_is_used(document: &mut utoipa::openapi::OpenApi) {
    fn refs(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("$ref", serde_json::Value::String(target)) => {
                            if let Some(name) = target.strip_prefix("#/components/schemas/") {
                                found.push(name.to_owned());
                            }
                        }
                        _ => refs(value, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| refs(item, found)),
            _ => {}
        }
    }

    let paths = serde_json::to_value(&document.paths).expect("paths serialize");
    let mut pending = Vec::new();
    refs(&paths, &mut pending);
    let mut used = std::collections::BTreeSet::new();
    let components = document.components.get_or_insert_with(Default::default);
    while let Some(name) = pending.pop() {
        if !used.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = components.schemas.get(&name) {
            refs(&serde_json::to_value(schema).expect("schemas serialize"), &mut pending);
        }
    }
    components.schemas.retain(|name, _| used.contains(name));

    let mut schemes = std::collections::BTreeSet::new();
    let mut tags = std::collections::BTreeSet::new();
    for item in document.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            for requirement in operation.security.iter().flatten() {
                let requirement = serde_json::to_value(requirement).expect("security serializes");
                schemes.extend(requirement.as_object().into_iter().flat_map(|o| o.keys().cloned()));
            }
            tags.extend(operation.tags.iter().flatten().cloned());
        }
    }
    components.security_schemes.retain(|name, _| schemes.contains(name));
    if let Some(document_tags) = document.tags.as_mut() {
        document_tags.retain(|tag| tags.contains(&tag.name));
    }
}

/// Documents raw bytes as generators read them: a `Vec<u8>` body is `string`/`binary` (not an
/// array of integers), and every response of bytes offers `application/octet-stream` beside its
/// real types (`*/*`, `image/png`, ...), the one binary type `openapi-python-client` keeps, so no
/// download is left out of a generated client.
pub fn document_binary_bodies(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{Content, RefOr};

    let bytes =
        serde_json::json!({"type": "array", "items": {"type": "integer", "format": "int32", "minimum": 0}});
    let binary = || {
        serde_json::from_value::<RefOr<utoipa::openapi::schema::Schema>>(
            serde_json::json!({"type": "string", "format": "binary"}),
        )
        .expect("a binary schema")
    };
    let fix = |content: &mut Content| -> bool {
        let is_bytes = content
            .schema
            .as_ref()
            .is_some_and(|schema| serde_json::to_value(schema).is_ok_and(|value| value == bytes));
        if is_bytes {
            content.schema = Some(binary());
        }
        is_bytes
    };
    for item in api.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            if let Some(body) = operation.request_body.as_mut() {
                body.content.values_mut().for_each(|content| {
                    fix(content);
                });
            }
            for response in operation.responses.responses.values_mut() {
                let RefOr::T(response) = response else { continue };
                let mut any_bytes = false;
                for content in response.content.values_mut() {
                    any_bytes |= fix(content);
                }
                if any_bytes && !response.content.contains_key("application/octet-stream") {
                    let content = utoipa::openapi::ContentBuilder::new().schema(Some(binary())).build();
                    response.content.insert("application/octet-stream".to_owned(), content);
                }
            }
        }
    }
}

/// Gives search's and the trash's folder-or-file items a union generators keep: `oneOf` two named
/// schemas with a discriminator on `type` (utoipa writes `oneOf` inline `allOf`s, which
/// `openapi-python-client` drops along with every response that holds them).
pub fn document_item_union(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::RefOr;

    let Some(components) = api.components.as_mut() else { return };
    if !components.schemas.contains_key("ItemJson") {
        return;
    }
    let schema = |value: serde_json::Value| {
        serde_json::from_value::<RefOr<Schema>>(value).expect("a schema this function writes")
    };
    for (name, base, tag) in
        [("FolderItemJson", "FolderJson", "folder"), ("FileItemJson", "FileJson", "file")]
    {
        let item = schema(serde_json::json!({
            "description": format!("A {tag}, as search and the trash list it."),
            "allOf": [
                {"$ref": format!("#/components/schemas/{base}")},
                {
                    "type": "object",
                    "required": ["type"],
                    "properties": {"type": {"type": "string", "enum": [tag]}}
                }
            ]
        }));
        components.schemas.insert(name.to_owned(), item);
    }
    let union = schema(serde_json::json!({
        "description": "A folder or a file, as search and the trash list them; `type` says which.",
        "oneOf": [
            {"$ref": "#/components/schemas/FolderItemJson"},
            {"$ref": "#/components/schemas/FileItemJson"}
        ],
        "discriminator": {
            "propertyName": "type",
            "mapping": {
                "folder": "#/components/schemas/FolderItemJson",
                "file": "#/components/schemas/FileItemJson"
            }
        }
    }));
    components.schemas.insert("ItemJson".to_owned(), union);
}
