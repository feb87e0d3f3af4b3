//! Liveness and readiness.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiResult, ErrorBody, Json};
use crate::AppState;

/// A health verdict.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthJson {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = HealthJson)))]
pub async fn healthz() -> Json<HealthJson> {
    Json(HealthJson { status: "ok" })
}

/// The metadata and blob stores answer.
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses((status = 200, body = HealthJson), (status = 503, description = "A store is down", body = ErrorBody))
)]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<HealthJson>> {
    state.cabinet.ready().await?;
    Ok(Json(HealthJson { status: "ready" }))
}
