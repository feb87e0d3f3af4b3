//! CORS: which web origins a browser lets read Cabinet's answers. The server's list
//! (`--cors-origins`, in [`HttpLimits`](crate::HttpLimits)) applies everywhere; on the routes that
//! name their workspace without a credential — signed storage URLs (`/storage/v1/{kind}/{ws}/…`)
//! and public URLs (`/public/v1/files/{ws}/…`) — a workspace's own list (`cabinet admin set-cors`)
//! replaces it, preflights included. The API routes (`/v1`, the dialects) go by the server's list:
//! a preflight carries no credential to find a workspace by.
//!
//! With `*` (the default) every answer is what `tower_http`'s `CorsLayer` with `Any` gave before:
//! `Access-Control-Allow-Origin: *`, every `OPTIONS` answered as a preflight allowing any method
//! and header. With a list, an allowed origin is echoed back (with `Vary: Origin`), and a refused
//! one gets no `Access-Control-Allow-*` header at all, so the browser keeps the answer from the
//! page. With `none`, no CORS header is sent and `OPTIONS` goes to the routes like any method.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use cabinet_core::cors::CorsOrigins;
use cabinet_core::{Cabinet, WorkspaceId};

/// How long a browser may keep a preflight's answer.
const MAX_AGE: Duration = Duration::from_secs(3600);

/// What `Vary` names on every answer (as `CorsLayer` did): the answer depends on these.
const VARY: &str = "origin, access-control-request-method, access-control-request-headers";

/// The server's list and where to find a workspace's.
#[derive(Clone)]
pub struct CorsPolicy {
    pub global: Arc<CorsOrigins>,
    pub cabinet: Cabinet,
}

/// The workspace a path names without a credential: a signed storage route's or a public URL's.
pub fn workspace_of(path: &str) -> Option<WorkspaceId> {
    let mut segments = path.strip_prefix('/')?.split('/');
    let ws = match (segments.next()?, segments.next()?, segments.next()?) {
        ("storage", "v1", _kind) => segments.next()?,
        ("public", "v1", "files") => segments.next()?,
        _ => return None,
    };
    WorkspaceId::parse(ws).ok()
}

/// What CORS makes of a request before it goes on: a preflight answered here, or the headers to
/// add to the route's answer ([`add`]).
pub enum Decision {
    Answered(Response<Body>),
    Add(HeaderMap),
}

/// Applies the list that governs the request. It takes the request's parts, not the request: a
/// body is not `Sync`, and a borrowed request would be held across the workspace's lookup.
pub async fn decide(
    policy: &CorsPolicy,
    method: &Method,
    uri: &Uri,
    request_headers: &HeaderMap,
) -> Decision {
    let origin = request_headers.get(header::ORIGIN);
    let mut origins = policy.global.clone();
    if origin.is_some() {
        if let Some(ws) = workspace_of(uri.path()) {
            // An unknown workspace, or a store that does not answer, goes by the server's list;
            // the route itself answers 404 or 503.
            if let Ok(Some(own)) = policy.cabinet.workspace_cors_origins(&ws).await {
                origins = Arc::new(own);
            }
        }
    }
    let allow_origin = match (&*origins, origin) {
        (CorsOrigins::Any, _) => Some(HeaderValue::from_static("*")),
        (CorsOrigins::List(_), Some(origin)) if origin.to_str().is_ok_and(|o| origins.allows(o)) => {
            Some(origin.clone())
        }
        _ => None,
    };
    let mut headers = HeaderMap::new();
    if let Some(allow_origin) = &allow_origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin.clone());
    }
    // The resumable upload protocols (tus, the IETF draft) answer their own `OPTIONS`
    // (discovery); only a browser's preflight is answered here.
    let path = uri.path();
    let tus = path.starts_with(crate::tus::MOUNT) || path.starts_with(crate::resumable::MOUNT);
    let preflight = method == Method::OPTIONS
        && (!tus || request_headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD));
    if preflight && *origins != CorsOrigins::None {
        if allow_origin.is_some() {
            preflight_allowance(&origins, request_headers, &mut headers);
            if tus {
                // Their clients send `Authorization`, which the `*` wildcard does not cover.
                if let Some(asked) = request_headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
                }
            }
        }
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::OK;
        add(response.headers_mut(), headers);
        return Decision::Answered(response);
    }
    if allow_origin.is_some() {
        // Their headers by name too: `*` is not honoured on credentialed requests.
        let exposed = if tus { crate::tus::EXPOSED_HEADERS } else { "*" };
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(exposed));
    }
    Decision::Add(headers)
}

/// What an allowed preflight answers: any method and header with `*`; with a list, the method and
/// headers asked for, named (the `*` wildcard does not cover `Authorization`).
fn preflight_allowance(origins: &CorsOrigins, request: &HeaderMap, headers: &mut HeaderMap) {
    let star = HeaderValue::from_static("*");
    let (methods, allowed_headers) = match origins {
        CorsOrigins::Any => (Some(star.clone()), Some(star)),
        _ => (
            request.get(header::ACCESS_CONTROL_REQUEST_METHOD).cloned(),
            request.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned(),
        ),
    };
    if let Some(methods) = methods {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, methods);
    }
    if let Some(allowed_headers) = allowed_headers {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed_headers);
    }
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(MAX_AGE.as_secs()));
}

/// Sets `headers` on the response, and adds to its `Vary`.
pub fn add(response: &mut HeaderMap, headers: HeaderMap) {
    for (name, value) in headers.iter() {
        response.insert(name, value.clone());
    }
    response.append(header::VARY, HeaderValue::from_static(VARY));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_is_found_in_signed_and_public_paths_only() {
        let ws = WorkspaceId::generate();
        for path in [
            format!("/storage/v1/files/{ws}/file_x"),
            format!("/storage/v1/uploads/{ws}/up_x/parts/1"),
            format!("/storage/v1/thumbnails/{ws}/file_x/small"),
            format!("/public/v1/files/{ws}/file_x"),
        ] {
            assert_eq!(workspace_of(&path), Some(ws.clone()), "{path}");
        }
        for path in [
            format!("/v1/files/{ws}"),
            format!("/public/v1/folders/{ws}/x"),
            "/storage/v1/files/not-a-workspace/x".to_owned(),
            "/storage/v1".to_owned(),
            "/".to_owned(),
        ] {
            assert_eq!(workspace_of(&path), None, "{path}");
        }
    }
}
