//! Who a CMS request is from and which organization (workspace) it acts on: `Bearer <key>` or
//! DRF's `Token <key>`; the organization from `organization_id` (body or query), else the
//! `X-Cabinet-Workspace` header, else the key's only workspace. Another organization is 404.

use axum::http::{HeaderMap, StatusCode};
use cabinet_core::{Caller, Credential, ErrorKind};

use super::error::{CmsError, CmsResult};
use crate::credentials::{named_workspace, Presented};
use crate::surface::Surface;
use crate::AppState;

fn secret(headers: &HeaderMap) -> CmsResult<&str> {
    match Presented::of(headers, Surface::Cms.schemes()) {
        Presented::Missing => {
            Err(CmsError::detail(StatusCode::UNAUTHORIZED, "Authentication credentials were not provided."))
        }
        Presented::Unusable => {
            Err(CmsError::detail(StatusCode::UNAUTHORIZED, "Invalid token header. No credentials provided."))
        }
        Presented::Secret(secret) => Ok(secret),
    }
}

fn auth_error(err: cabinet_core::Error) -> CmsError {
    match err.kind() {
        ErrorKind::Unauthenticated => CmsError::detail(StatusCode::UNAUTHORIZED, "Invalid token."),
        _ => err.into(),
    }
}

/// The request's key, checked before anything of its body is read (the body may name the
/// organization, never the key).
pub async fn key(state: &AppState, headers: &HeaderMap) -> CmsResult<Credential> {
    let secret = secret(headers)?;
    state.cabinet.check_secret(secret).await.map_err(auth_error)
}

fn organization_of(headers: &HeaderMap, organization: Option<String>) -> Option<String> {
    organization.filter(|o| !o.is_empty()).or_else(|| named_workspace(headers))
}

/// The caller, acting on the organization the request names (or the key's only one).
pub async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    organization: Option<String>,
) -> CmsResult<Caller> {
    let key = key(state, headers).await?;
    key.caller(organization_of(headers, organization).as_deref()).map_err(auth_error)
}

/// The caller of an upload, where `organization_id` is required: a valid key without one is 400.
pub fn uploader(key: Credential, headers: &HeaderMap, organization: Option<String>) -> CmsResult<Caller> {
    match organization_of(headers, organization) {
        Some(organization) => key.caller(Some(&organization)).map_err(auth_error),
        None => Err(CmsError::required("organization_id")),
    }
}
