//! `/v1/quota` and `/v1/usage`.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use super::shapes::{QuotaJson, UsageJson};
use crate::auth::Authenticated;
use crate::error::{ApiResult, ErrorBody, Json, Query};
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

/// The metering window.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct UsageParams {
    /// Start of the window (default: 30 days before `to`).
    pub from: Option<DateTime<Utc>>,
    /// End of the window (default: now).
    pub to: Option<DateTime<Utc>>,
}

/// The workspace's totals (bytes in files, how many files) and the storage it held over a
/// window, in byte-seconds and GB-days, for billing.
#[utoipa::path(
    get, path = "/v1/usage", tag = "workspace",
    params(UsageParams),
    responses((status = 200, body = UsageJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_usage(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(params): Query<UsageParams>,
) -> ApiResult<Json<UsageJson>> {
    let usage = state.cabinet.usage(&caller).await?;
    let metering = state.cabinet.metering(&caller, params.from, params.to).await?;
    Ok(Json(UsageJson {
        total_size: usage.total_size,
        file_count: usage.file_count,
        from: metering.from,
        to: metering.to,
        byte_seconds: metering.byte_seconds,
        gb_days: metering.gb_days,
    }))
}
