//! Who a CMS request is from and which organization (workspace) it acts on: `Bearer <key>` or
//! DRF's `Token <key>`; the organization from `organization_id` (body or query), else the
//! `X-Cabinet-Workspace` header, else the key's only workspace. Another organization is 404.

use axum::http::{HeaderMap, StatusCode};
use cabinet_core::{Caller, ErrorKind};

use super::error::{CmsError, CmsResult};
use crate::compat::common_b::{authorization_secret, workspace_header};
use crate::AppState;

fn secret(headers: &HeaderMap) -> CmsResult<&str> {
    match authorization_secret(headers, &["bearer", "token"]) {
        None => {
            Err(CmsError::detail(StatusCode::UNAUTHORIZED, "Authentication credentials were not provided."))
        }
        Some("") => {
            Err(CmsError::detail(StatusCode::UNAUTHORIZED, "Invalid token header. No credentials provided."))
        }
        Some(secret) => Ok(secret),
    }
}

fn auth_error(err: cabinet_core::Error) -> CmsError {
    match err.kind() {
        ErrorKind::Unauthenticated => CmsError::detail(StatusCode::UNAUTHORIZED, "Invalid token."),
        _ => err.into(),
    }
}

/// The caller, acting on the organization the request names (or the key's only one).
pub async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    organization: Option<String>,
) -> CmsResult<Caller> {
    let secret = secret(headers)?;
    let organization = organization.filter(|o| !o.is_empty()).or_else(|| workspace_header(headers));
    state.cabinet.authenticate(secret, organization.as_deref()).await.map_err(auth_error)
}

/// The caller of an upload, where `organization_id` is required: a valid key without one is 400.
pub async fn uploader(
    state: &AppState,
    headers: &HeaderMap,
    organization: Option<String>,
) -> CmsResult<Caller> {
    let organization = organization.filter(|o| !o.is_empty()).or_else(|| workspace_header(headers));
    let secret = secret(headers)?;
    match organization {
        Some(organization) => {
            state.cabinet.authenticate(secret, Some(&organization)).await.map_err(auth_error)
        }
        None => match state.cabinet.authenticate(secret, None).await {
            Err(err) if err.kind() == ErrorKind::Unauthenticated => Err(auth_error(err)),
            _ => Err(CmsError::required("organization_id")),
        },
    }
}
