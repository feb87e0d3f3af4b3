//! The `Caller` extractor: `Authorization: Bearer <key>`, and the workspace named by the
//! `X-Cabinet-Workspace` header or the `workspace_id` query parameter (or the key's only one).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use cabinet_core::{Caller, Error};

use crate::credentials::{named_workspace, Presented};
use crate::error::ApiError;
use crate::surface::Surface;
use crate::AppState;

/// An authenticated caller, as an extractor.
pub struct Authenticated(pub Caller);

/// The workspace a request names: the `X-Cabinet-Workspace` header, else the `workspace_id` query
/// parameter.
fn requested_workspace(parts: &Parts) -> Option<String> {
    named_workspace(&parts.headers).or_else(|| {
        let query = parts.uri.query().unwrap_or("");
        query.split('&').find_map(|pair| pair.strip_prefix("workspace_id=")).map(str::to_owned)
    })
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let secret = Presented::of(&parts.headers, Surface::Native.schemes())
            .secret()
            .ok_or(Error::Unauthenticated("send Authorization: Bearer <API key>"))?;
        let workspace = requested_workspace(parts);
        let caller = state.cabinet.authenticate(secret, workspace.as_deref()).await?;
        Ok(Authenticated(caller))
    }
}
