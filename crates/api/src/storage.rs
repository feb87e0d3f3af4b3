//! Cabinet's own storage endpoint: takes the bytes of an upload at its signed URL (raw `PUT` or a
//! multipart `POST` whose `file` field holds them) and serves files and thumbnails at signed GET
//! URLs. The signature is checked before a single body byte is read.

use axum::body::Body;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use cabinet_core::{Code, Error};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::download::{serve_file, serve_thumbnail};
use crate::error::{ApiResult, ErrorBody, Json, Path};
use crate::form::{Form, Part};
use crate::v1::content_length;
use crate::v1::shapes::{PartJson, UploadJson};
use crate::AppState;

/// The signature of an upload URL.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct UploadSignature {
    /// Unix seconds after which the URL is refused.
    pub expires: i64,
    /// The most bytes accepted.
    pub max: u64,
    /// HMAC-SHA256 over the operation, workspace, upload, expiry and size limit.
    pub sig: String,
}

/// The signature of a download URL.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct DownloadSignature {
    /// Unix seconds after which the URL is refused.
    pub expires: i64,
    /// `1`: serve as an attachment.
    pub dl: Option<u8>,
    /// HMAC-SHA256 over the operation, workspace, file, expiry and disposition.
    pub sig: String,
}

/// The signature of a thumbnail URL.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ThumbnailSignature {
    /// Unix seconds after which the URL is refused.
    pub expires: i64,
    /// HMAC-SHA256 over the operation, workspace, file, size and expiry.
    pub sig: String,
}

/// Send an upload's bytes as the raw body. No key: the URL is the credential.
#[utoipa::path(
    put, path = "/storage/v1/uploads/{workspace_id}/{upload_id}", tag = "storage",
    params(("workspace_id" = String, Path), ("upload_id" = String, Path), UploadSignature),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Verified and stored; the upload is SUCCESS", body = UploadJson),
        (status = 403, description = "Bad, tampered or expired signature", body = ErrorBody),
        (status = 409, description = "The upload already ended or is receiving", body = ErrorBody),
        (status = 413, description = "More bytes than declared", body = ErrorBody),
        (status = 422, description = "Size or checksum mismatch", body = ErrorBody),
    )
)]
pub async fn put_upload(
    State(state): State<AppState>,
    Path((workspace, upload)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<UploadJson>> {
    let (ws, id, max_bytes) = state.cabinet.verify_upload_url(&workspace, &upload, query.as_deref()).await?;
    let stream = body.into_data_stream().map_err(std::io::Error::other).boxed();
    let done = state.cabinet.receive_upload(&ws, &id, stream, content_length(&headers), max_bytes).await?;
    Ok(Json(UploadJson::new(done, &state.cabinet).await?))
}

/// Send one part of a multipart upload as the raw body: exactly the part's size, or nothing is
/// recorded. Sending a part again replaces it. No key: the URL is the credential.
#[utoipa::path(
    put, path = "/storage/v1/uploads/{workspace_id}/{upload_id}/parts/{part_number}", tag = "storage",
    params(
        ("workspace_id" = String, Path), ("upload_id" = String, Path), ("part_number" = u32, Path),
        UploadSignature,
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "The part is stored", body = PartJson),
        (status = 400, description = "Fewer bytes than the part's size", body = ErrorBody),
        (status = 403, description = "Bad, tampered or expired signature", body = ErrorBody),
        (status = 404, description = "No such part", body = ErrorBody),
        (status = 409, description = "The upload is no longer accepting parts", body = ErrorBody),
        (status = 413, description = "More bytes than the part's size", body = ErrorBody),
    )
)]
pub async fn put_part(
    State(state): State<AppState>,
    Path((workspace, upload, part)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<PartJson>> {
    let (ws, id, number, _) =
        state.cabinet.verify_part_url(&workspace, &upload, &part, query.as_deref()).await?;
    let stream = body.into_data_stream().map_err(std::io::Error::other).boxed();
    let part = state.cabinet.receive_part(&ws, &id, number, stream, content_length(&headers)).await?;
    Ok(Json(part.into()))
}

/// Send an upload's bytes as multipart form data; the `file` field holds them, other fields are
/// ignored.
#[utoipa::path(
    post, path = "/storage/v1/uploads/{workspace_id}/{upload_id}", tag = "storage",
    params(("workspace_id" = String, Path), ("upload_id" = String, Path), UploadSignature),
    request_body(content = crate::v1::files::MultipartUpload, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "Verified and stored; the upload is SUCCESS", body = UploadJson),
        (status = 400, description = "No `file` field", body = ErrorBody),
        (status = 403, description = "Bad, tampered or expired signature", body = ErrorBody),
        (status = 409, description = "The upload already ended or is receiving", body = ErrorBody),
        (status = 413, description = "More bytes than declared, or a form field (8 KiB each, 32 before `file`) over its bound", body = ErrorBody),
        (status = 422, description = "Size or checksum mismatch", body = ErrorBody),
    )
)]
pub async fn post_upload(
    State(state): State<AppState>,
    Path((workspace, upload)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> ApiResult<Json<UploadJson>> {
    let (ws, id, max_bytes) = state.cabinet.verify_upload_url(&workspace, &upload, query.as_deref()).await?;
    let mut form = Form::read(request, max_bytes).await?;
    // Other fields (policy fields some clients send) are read within the form's bounds and dropped.
    while let Some(part) = form.next().await? {
        if let Part::File(field) = part {
            let stream = field.map_err(std::io::Error::other).boxed();
            let done = state.cabinet.receive_upload(&ws, &id, stream, None, max_bytes).await?;
            return Ok(Json(UploadJson::new(done, &state.cabinet).await?));
        }
    }
    Err(Error::bad_request(Code::MissingFile, "the form has no `file` field").into())
}

/// Read a file at a signed URL, with `Range` and `ETag`. No key: the URL is the credential.
#[utoipa::path(
    get, path = "/storage/v1/files/{workspace_id}/{file_id}", tag = "storage", operation_id = "get_stored_file",
    params(("workspace_id" = String, Path), ("file_id" = String, Path), DownloadSignature),
    responses(
        (status = 200, description = "The whole file", content_type = "*/*", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "*/*", body = Vec<u8>),
        (status = 304, description = "Not modified"),
        (status = 403, description = "Bad, tampered or expired signature", body = ErrorBody),
        (status = 404, description = "The file no longer exists", body = ErrorBody),
        (status = 416, description = "Range not satisfiable"),
    )
)]
pub async fn get_file(
    State(state): State<AppState>,
    Path((workspace, file)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response<Body>> {
    let read = state.cabinet.verify_download_url(&workspace, &file, query.as_deref()).await?;
    serve_file(&state.cabinet, &read.file, &headers, read.attachment, method == Method::HEAD, read.caching)
        .await
}

/// Read a file's thumbnail at a signed URL (the file JSON's `thumbnail_url`), made now if it was
/// not yet. No key: the URL is the credential.
#[utoipa::path(
    get, path = "/storage/v1/thumbnails/{workspace_id}/{file_id}/{size}", tag = "storage",
    operation_id = "get_stored_thumbnail",
    params(
        ("workspace_id" = String, Path),
        ("file_id" = String, Path),
        ("size" = u32, Path, description = "Longest edge in pixels: 64, 256 or 1024"),
        ThumbnailSignature,
    ),
    responses(
        (status = 200, description = "The thumbnail: JPEG when the image is opaque, PNG when it has transparency",
            content((Vec<u8> = "image/jpeg"), (Vec<u8> = "image/png"))),
        (status = 304, description = "Not modified"),
        (status = 403, description = "Bad, tampered or expired signature", body = ErrorBody),
        (status = 404, description = "The file no longer exists or is in the trash", body = ErrorBody),
        (status = 422, description = "`image_too_large` or `image_undecodable`: no thumbnail can be made", body = ErrorBody),
    )
)]
pub async fn get_thumbnail(
    State(state): State<AppState>,
    Path((workspace, file, size)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response<Body>> {
    let thumbnail = state.cabinet.thumbnail_at_signed_url(&workspace, &file, &size, query.as_deref()).await?;
    serve_thumbnail(thumbnail, &headers)
}
