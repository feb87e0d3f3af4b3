//! `/v1/uploads`: start an upload (reserve + sign), read its state, complete or cancel it.

use axum::extract::State;
use axum::http::StatusCode;
use cabinet_core::uploads::NewUpload;
use cabinet_core::{FolderId, UploadId};
use serde::Deserialize;
use utoipa::ToSchema;

use super::shapes::{UploadJson, UploadTicketJson};
use crate::auth::Authenticated;
use crate::error::{ApiResult, ErrorBody, Json, Path};
use crate::AppState;

/// What to upload.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateUploadRequest {
    #[schema(example = "holiday.jpg")]
    pub name: String,
    /// Exact size in bytes; reserved against the quota until the upload ends.
    #[schema(example = 1048576)]
    pub size: u64,
    /// The type the client believes; the stored type is sniffed from the bytes.
    pub mime_type: Option<String>,
    /// Lowercase hex SHA-256 of the bytes; when given, the bytes are verified against it.
    pub sha256: Option<String>,
    pub folder_id: Option<FolderId>,
    /// Lifetime of the upload URL in seconds (default 3600, at most 7 days).
    pub expires_in: Option<u64>,
}

/// Start an upload: reserves `size` and returns a signed URL for the bytes.
#[utoipa::path(
    post, path = "/v1/uploads", tag = "uploads",
    request_body = CreateUploadRequest,
    responses(
        (status = 201, description = "Upload started", body = UploadTicketJson),
        (status = 400, description = "Invalid name, size, type or checksum", body = ErrorBody),
        (status = 401, description = "Missing or invalid key", body = ErrorBody),
        (status = 403, description = "Key lacks the write role", body = ErrorBody),
        (status = 404, description = "Unknown folder or workspace", body = ErrorBody),
        (status = 413, description = "Larger than the workspace's file size limit", body = ErrorBody),
        (status = 507, description = "Quota exceeded", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_upload(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Json(request): Json<CreateUploadRequest>,
) -> ApiResult<(StatusCode, Json<UploadTicketJson>)> {
    let ticket = state
        .cabinet
        .start_upload(
            &caller,
            NewUpload {
                name: request.name,
                size: Some(request.size),
                mime_type: request.mime_type,
                sha256: request.sha256,
                folder_id: request.folder_id,
                expires_in: request.expires_in,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(ticket.into())))
}

/// An upload's status; the file once it succeeded, the reason once it failed.
#[utoipa::path(
    get, path = "/v1/uploads/{id}", tag = "uploads",
    params(("id" = UploadId, Path, description = "Upload id")),
    responses(
        (status = 200, body = UploadJson),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such upload in this workspace", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_upload(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<UploadJson>> {
    let upload = state.cabinet.get_upload(&caller, &UploadId::parse(&id)?).await?;
    Ok(Json(UploadJson::new(upload, &state.cabinet)))
}

/// Finalize an upload. Idempotent: a finished upload is returned as it is.
#[utoipa::path(
    post, path = "/v1/uploads/{id}/complete", tag = "uploads",
    params(("id" = UploadId, Path, description = "Upload id")),
    responses(
        (status = 200, body = UploadJson),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not received yet, still arriving, or failed", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn complete_upload(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<UploadJson>> {
    let upload = state.cabinet.complete_upload(&caller, &UploadId::parse(&id)?).await?;
    Ok(Json(UploadJson::new(upload, &state.cabinet)))
}

/// Cancel an upload that has not received its bytes; its reservation is released.
#[utoipa::path(
    delete, path = "/v1/uploads/{id}", tag = "uploads",
    params(("id" = UploadId, Path, description = "Upload id")),
    responses(
        (status = 200, body = UploadJson),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already ended, or bytes are arriving", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn cancel_upload(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<UploadJson>> {
    let upload = state.cabinet.cancel_upload(&caller, &UploadId::parse(&id)?).await?;
    Ok(Json(UploadJson::new(upload, &state.cabinet)))
}
