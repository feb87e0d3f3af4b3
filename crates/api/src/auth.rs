//! The `Caller` extractor: `Authorization: Bearer <key>`, and the workspace named by the
//! `X-Cabinet-Workspace` header or the `workspace_id` query parameter (or the key's only one).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use cabinet_core::{Caller, Error};

use crate::error::ApiError;
use crate::AppState;

/// The header that names the workspace a request acts on.
pub const WORKSPACE_HEADER: &str = "x-cabinet-workspace";

/// An authenticated caller, as an extractor.
pub struct Authenticated(pub Caller);

/// The bearer secret of a request, if it has one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, secret) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| secret.trim())
}

fn requested_workspace(parts: &Parts) -> Result<Option<String>, Error> {
    if let Some(value) = parts.headers.get(WORKSPACE_HEADER) {
        let value = value.to_str().map_err(|_| Error::NotFound("workspace"))?;
        return Ok(Some(value.to_owned()));
    }
    let query = parts.uri.query().unwrap_or("");
    for pair in query.split('&') {
        if let Some(value) = pair.strip_prefix("workspace_id=") {
            return Ok(Some(value.to_owned()));
        }
    }
    Ok(None)
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let secret = bearer(parts).ok_or(Error::Unauthenticated("send Authorization: Bearer <API key>"))?;
        let workspace = requested_workspace(parts)?;
        let caller = state.cabinet.authenticate(secret, workspace.as_deref()).await?;
        Ok(Authenticated(caller))
    }
}
