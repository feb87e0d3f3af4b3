//! `/v1/uploads`: start an upload (reserve + sign), read its state, complete or cancel it; for a
//! multipart upload, sign its parts' URLs and list the parts received.

use axum::extract::State;
use axum::http::StatusCode;
use cabinet_core::uploads::NewUpload;
use cabinet_core::{Code, FolderId, UploadId};
use serde::Deserialize;
use utoipa::ToSchema;

use super::shapes::{PartListJson, PartUrlsJson, UploadJson, UploadTicketJson};
use crate::auth::Authenticated;
use crate::error::{ApiResult, ErrorBody, Json, Path};
use crate::schemas;
use crate::AppState;

/// What to upload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUploadRequest {
    #[schema(schema_with = crate::input_schema::name)]
    pub name: String,
    /// Exact size in bytes; reserved against the quota until the upload ends.
    #[schema(example = 1048576)]
    pub size: u64,
    /// The type the client believes; the stored type is sniffed from the bytes.
    #[schema(schema_with = crate::input_schema::mime_type_or_null)]
    pub mime_type: Option<String>,
    /// Hex SHA-256 of the bytes; when given, the bytes are verified against it.
    #[schema(schema_with = crate::input_schema::sha256_or_null)]
    pub sha256: Option<String>,
    #[schema(value_type = Option<schemas::FolderId>)]
    pub folder_id: Option<FolderId>,
    /// Lifetime of the upload URL in seconds (default 3600, or 86400 for a multipart upload; at
    /// most 7 days).
    #[schema(minimum = 1, maximum = 604800)]
    pub expires_in: Option<u64>,
    /// Send the bytes in parts, resumably: each part has its own URL (`POST
    /// /v1/uploads/{id}/parts`), parts can be sent in any order and again, and
    /// `POST /v1/uploads/{id}/complete` joins them. The response's `upload_url` is then null.
    #[serde(default)]
    pub multipart: bool,
    /// With `multipart`: bytes per part, all but the last (default 64 MiB; 5 MiB to 5 GiB; at most
    /// 10,000 parts).
    // `MIN_PART_SIZE..=MAX_PART_SIZE` of `cabinet_core::multipart`.
    #[schema(example = 67108864, minimum = 5242880, maximum = 5368709120.0)]
    pub part_size: Option<u64>,
}

/// Adds to `CreateUploadRequest` the rule between two of its fields: `part_size` only with
/// `"multipart": true` (serde cannot say it on the struct).
pub fn document_part_size_rule(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Schema, Type};
    use utoipa::openapi::RefOr;

    let Some(components) = api.components.as_mut() else { return };
    let Some(RefOr::T(Schema::Object(request))) = components.schemas.get("CreateUploadRequest").cloned()
    else {
        return;
    };
    let without_part_size =
        ObjectBuilder::new().property("part_size", ObjectBuilder::new().schema_type(Type::Null));
    let multipart = ObjectBuilder::new()
        .property("multipart", ObjectBuilder::new().schema_type(Type::Boolean).enum_values(Some([true])))
        .required("multipart");
    let rule = AnyOfBuilder::new().item(without_part_size).item(multipart);
    let documented = AllOfBuilder::new().item(request).item(rule).build();
    components.schemas.insert("CreateUploadRequest".to_owned(), Schema::AllOf(documented).into());
}

/// Which parts to sign URLs for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartUrlsRequest {
    /// 1-based part numbers, at most 100 per request.
    // 1 to `cabinet_core::multipart::MAX_PART_URLS`.
    #[schema(example = json!([1, 2, 3]), min_items = 1, max_items = 100)]
    pub part_numbers: Vec<u32>,
}

/// Start an upload: reserves `size` and returns a signed URL for the bytes.
#[utoipa::path(
    post, path = "/v1/uploads", tag = "uploads",
    request_body = CreateUploadRequest,
    responses(
        (status = 201, description = "Upload started", body = UploadTicketJson),
        (status = 400, description = "Invalid name, size, type, checksum or part size", body = ErrorBody),
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
    // Answered 201 once the change commits: its audit record commits with it.
    cabinet_core::audit::answers_change_with(StatusCode::CREATED.as_u16());
    let multipart = match (request.multipart, request.part_size) {
        (true, part_size) => Some(part_size),
        (false, None) => None,
        (false, Some(_)) => {
            return Err(cabinet_core::Error::bad_request(
                Code::InvalidPartSize,
                "part_size is only for a multipart upload (\"multipart\": true)",
            )
            .into())
        }
    };
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
                multipart,
                awaits_record: false,
                max_bytes: None,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(ticket.into())))
}

/// An upload's status; the file once it succeeded, the reason once it failed.
#[utoipa::path(
    get, path = "/v1/uploads/{id}", tag = "uploads",
    params(("id" = schemas::UploadId, Path, description = "Upload id")),
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
    Ok(Json(UploadJson::new(upload, &state.cabinet).await?))
}

/// Sign URLs for parts of a multipart upload: each URL takes exactly that part's `size` bytes
/// with a `PUT`, and lives an hour at most (never past the upload's expiry).
#[utoipa::path(
    post, path = "/v1/uploads/{id}/parts", tag = "uploads",
    params(("id" = schemas::UploadId, Path, description = "Upload id")),
    request_body = PartUrlsRequest,
    responses(
        (status = 200, body = PartUrlsJson),
        (status = 400, description = "No part numbers, more than 100, or one out of range", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Key lacks the write role", body = ErrorBody),
        (status = 404, description = "No such upload in this workspace", body = ErrorBody),
        (status = 409, description = "Not a multipart upload, or no longer accepting parts", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_part_urls(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Json(request): Json<PartUrlsRequest>,
) -> ApiResult<Json<PartUrlsJson>> {
    let urls = state.cabinet.part_urls(&caller, &UploadId::parse(&id)?, &request.part_numbers).await?;
    Ok(Json(PartUrlsJson { parts: urls.into_iter().map(Into::into).collect() }))
}

/// The parts of a multipart upload received so far, ascending (empty once it has ended).
#[utoipa::path(
    get, path = "/v1/uploads/{id}/parts", tag = "uploads",
    params(("id" = schemas::UploadId, Path, description = "Upload id")),
    responses(
        (status = 200, body = PartListJson),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such upload in this workspace", body = ErrorBody),
        (status = 409, description = "Not a multipart upload", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_parts(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<PartListJson>> {
    let (plan, parts) = state.cabinet.received_parts(&caller, &UploadId::parse(&id)?).await?;
    Ok(Json(PartListJson {
        part_size: plan.part_size,
        part_count: plan.part_count,
        parts: parts.into_iter().map(Into::into).collect(),
    }))
}

/// Finalize an upload. Idempotent: a finished upload is returned as it is. A multipart upload is
/// assembled and verified here; with parts missing it answers 409 `parts_missing` (listing them in
/// `missing_parts`) and stays open, so the client sends them and completes again.
#[utoipa::path(
    post, path = "/v1/uploads/{id}/complete", tag = "uploads",
    params(("id" = schemas::UploadId, Path, description = "Upload id")),
    responses(
        (status = 200, body = UploadJson),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not received yet, parts missing, still arriving, or failed", body = ErrorBody),
        (status = 413, description = "Larger than the workspace accepts", body = ErrorBody),
        (status = 422, description = "Size or checksum mismatch (the upload is FAILED)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn complete_upload(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<UploadJson>> {
    let upload = state.cabinet.complete_upload(&caller, &UploadId::parse(&id)?).await?;
    Ok(Json(UploadJson::new(upload, &state.cabinet).await?))
}

/// Cancel an upload that has not received its bytes; its reservation is released and the parts
/// of a multipart upload are removed.
#[utoipa::path(
    delete, path = "/v1/uploads/{id}", tag = "uploads",
    params(("id" = schemas::UploadId, Path, description = "Upload id")),
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
    Ok(Json(UploadJson::new(upload, &state.cabinet).await?))
}
