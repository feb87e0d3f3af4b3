//! The native `/v1` API: one file per resource; handlers parse, call one core method, render.

pub mod access;
pub mod audit;
pub mod events;
pub mod files;
pub mod folders;
pub mod params;
pub mod quota;
pub mod search;
pub mod shapes;
pub mod uploads;
pub mod webhooks;

use axum::http::HeaderMap;

/// The security requirement every `/v1` route documents.
pub const BEARER: &str = "bearer";

/// The `Content-Length` a request declares, if any.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(axum::http::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}
