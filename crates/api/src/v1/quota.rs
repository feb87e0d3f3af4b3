//! `/v1/quota` and `/v1/usage`.

use axum::extract::State;

use super::shapes::{QuotaJson, UsageJson};
use crate::auth::Authenticated;
use crate::error::{ApiResult, ErrorBody, Json};
use crate::AppState;

/// The workspace's quota: used, reserved, limit, available.
#[utoipa::path(
    get, path = "/v1/quota", tag = "workspace",
    responses((status = 200, body = QuotaJson), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_quota(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<QuotaJson>> {
    Ok(Json(state.cabinet.quota(&caller).await?.into()))
}

/// The workspace's totals: bytes in files and how many files.
#[utoipa::path(
    get, path = "/v1/usage", tag = "workspace",
    responses((status = 200, body = UsageJson), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_usage(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<UsageJson>> {
    Ok(Json(state.cabinet.usage(&caller).await?.into()))
}
