//! MAVI's asset endpoints.

use std::io;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cabinet_core::files::DirectUpload;
use cabinet_core::links::Caching;
use cabinet_core::uploads::{NewUpload, UploadState};
use cabinet_core::{Caller, FileId, FileRecord, UploadId, UploadStatus};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::envelope::{ok, DoneBody, Envelope, MaviError, MaviErrorBody, MaviResult};
use super::{caller, PREFIX};
use crate::download::serve_file;
use crate::error::Path;
use crate::form::{Form, FormError, Part};
use crate::AppState;

/// How long a signed URL lives, as MAVI's (about 26 hours).
const SIGNED_URL_SECONDS: u64 = 93_600;

/// `POST /upload/signed-url`.
#[derive(Debug, serde::Deserialize, ToSchema)]
pub struct SignedUrlRequest {
    /// The original filename with extension.
    #[schema(schema_with = crate::input_schema::name)]
    pub original_filename: String,
}

/// Where to send the bytes.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedUrlData {
    /// The id the file will have: it names the asset (pending, then the file) from now on.
    #[schema(example = "file_01jdq4x7m2c8v5n3k9w6r1t0ya")]
    pub asset_id: String,
    /// Takes a multipart POST whose `file` field holds the bytes (or a raw PUT); no key needed.
    pub signed_url: String,
    /// Seconds.
    #[schema(example = 93600)]
    pub expires_in: i64,
}

/// Get a signed URL for an upload of any size up to the workspace's limits; the upload completes
/// by itself when the bytes arrive, and the quota is charged then.
#[utoipa::path(
    post, path = "/compat/mavi/serve/api/v2/upload/signed-url", tag = "compat-mavi",
    request_body = SignedUrlRequest,
    responses(
        (status = 200, body = Envelope<SignedUrlData>),
        (status = 400, body = MaviErrorBody),
        (status = 401, body = MaviErrorBody),
        (status = 402, description = "The workspace's storage is full", body = MaviErrorBody),
        (status = 415, description = "The file name's extension is not a format MAVI takes (`--mavi-formats`)", body = MaviErrorBody),
    ),
    security(("mavi_key" = []))
)]
pub async fn signed_url(State(state): State<AppState>, request: Request) -> MaviResult<Response> {
    // The key is checked before a byte of the body is read.
    let caller = caller(&state, request.headers()).await?;
    let limit = state.limits.json_body_bytes;
    let body = axum::body::to_bytes(request.into_body(), limit).await.map_err(|_| MaviError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        msg: format!("The request body is larger than {limit} bytes"),
    })?;
    let request: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| MaviError::bad("Invalid request parameters"))?;
    let name = match request.get("original_filename") {
        Some(serde_json::Value::String(name)) if !name.trim().is_empty() => name.clone(),
        _ => return Err(MaviError::bad("Invalid request parameters: original_filename is required")),
    };
    check_format(&state, &name)?;
    let ticket = state
        .cabinet
        .start_upload(
            &caller,
            NewUpload {
                name,
                size: None,
                expires_in: Some(SIGNED_URL_SECONDS),
                max_bytes: Some(state.limits.mavi_signed_upload_bytes),
                ..Default::default()
            },
        )
        .await?;
    let expires_in = (ticket.upload.expires_at - state.cabinet.now()).num_seconds().max(0);
    // The asset is named by the id its file will have, which it keeps for its whole life and on
    // every surface (the native API, the other dialects).
    let asset_id = ticket.upload.file_id.to_string();
    Ok(ok(Some(SignedUrlData { asset_id, signed_url: ticket.url, expires_in })))
}

/// The direct upload's form: the `file` field; others are ignored.
pub struct DirectUploadForm;

impl utoipa::PartialSchema for DirectUploadForm {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::input_schema::form_with_file(Vec::new())
    }
}

impl ToSchema for DirectUploadForm {}

/// The new asset.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetId {
    #[schema(example = "file_01jdq4x7m2c8v5n3k9w6r1t0ya")]
    pub asset_id: String,
}

/// Upload a file in the request (multipart `file`), up to 500 MB by default; larger files go
/// through `/upload/signed-url`.
#[utoipa::path(
    post, path = "/compat/mavi/serve/api/v2/upload", tag = "compat-mavi",
    request_body(content = DirectUploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, body = Envelope<AssetId>),
        (status = 400, body = MaviErrorBody),
        (status = 401, body = MaviErrorBody),
        (status = 402, body = MaviErrorBody),
        (status = 413, description = "Over the direct upload limit (use /upload/signed-url), or a form field (8 KiB each, 32 before `file`) over its bound", body = MaviErrorBody),
        (status = 415, body = MaviErrorBody),
    ),
    security(("mavi_key" = []))
)]
pub async fn upload(State(state): State<AppState>, request: Request) -> MaviResult<Response> {
    let caller = caller(&state, request.headers()).await?;
    let limit = state.limits.mavi_direct_upload_bytes;
    let too_large = || MaviError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        msg: format!("The file is larger than {limit} bytes; upload it with {PREFIX}/upload/signed-url"),
    };
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(MaviError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            msg: "Unsupported media type: send multipart/form-data with a file field".into(),
        });
    }
    // A body far over the limit is refused before it is read.
    let mut form = Form::read(request, limit).await.map_err(|err| match err {
        FormError::TooLarge { .. } => too_large(),
        err => err.into(),
    })?;
    while let Some(part) = form.next().await? {
        let Part::File(field) = part else { continue };
        let name = field.file_name().filter(|n| !n.trim().is_empty()).unwrap_or("file").to_owned();
        let name = name.rsplit(['/', '\\']).next().unwrap_or(&name).to_owned();
        check_format(&state, &name)?;
        let mime = field.content_type().filter(|m| *m != "application/octet-stream").map(str::to_owned);
        let body = field.map_err(io::Error::other).boxed();
        let meta = DirectUpload { name, mime_type: mime, folder_id: None, max_bytes: Some(limit) };
        let file = match state.cabinet.upload_direct(&caller, meta, body).await {
            Ok(file) => file,
            Err(err) if err.kind() == cabinet_core::ErrorKind::TooLarge => return Err(too_large()),
            Err(err) => return Err(err.into()),
        };
        return Ok(ok(Some(AssetId { asset_id: file.id.to_string() })));
    }
    Err(MaviError::bad("Invalid request parameters: the form has no file field"))
}

/// MAVI takes only the formats it documents (configurable): other files get 415.
fn check_format(state: &AppState, name: &str) -> MaviResult<()> {
    let extension = name.rsplit_once('.').map(|(_, extension)| extension.to_ascii_lowercase());
    let formats = &state.limits.mavi_formats;
    match extension {
        Some(extension) if formats.contains(&extension) => Ok(()),
        _ => Err(MaviError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            msg: format!("Unsupported media type: supported formats are {}", formats.join(", ")),
        }),
    }
}

/// What an asset id names.
// Built and consumed once per request: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Asset {
    /// An upload that has not (yet) become a file.
    Pending(UploadState),
    File(FileRecord),
}

/// Resolves an asset id: a file id, which names the asset from its signed URL on (the upload
/// until the file exists, then the file), or an upload id.
async fn resolve(state: &AppState, caller: &Caller, id: &str) -> MaviResult<Asset> {
    let not_found = || MaviError::bad("Asset not found");
    let upload = if id.starts_with(UploadId::PREFIX) {
        state.cabinet.get_upload(caller, &UploadId::parse(id).map_err(|_| not_found())?).await?
    } else {
        let file_id = FileId::parse(id).map_err(|_| not_found())?;
        match state.cabinet.readable_file(caller, &file_id).await {
            Ok(file) => return Ok(Asset::File(file)),
            Err(cabinet_core::Error::NotFound(_)) => state.cabinet.upload_of_file(caller, &file_id).await?,
            Err(err) => return Err(err.into()),
        }
    };
    match (upload.upload.status, &upload.file) {
        (UploadStatus::Success, Some(file)) if file.trashed_at.is_none() => Ok(Asset::File(file.clone())),
        (UploadStatus::Success, _) => Err(not_found()),
        _ => Ok(Asset::Pending(upload)),
    }
}

/// One asset's metadata; sizes and times are strings (times in epoch milliseconds).
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetMetadata {
    /// The extension without its dot.
    #[schema(example = "mp4")]
    pub extension: String,
    pub asset_id: String,
    /// The name without its extension.
    #[schema(example = "video")]
    pub original_filename: String,
    #[schema(example = "133652816")]
    pub file_size: String,
    /// `WAITING`, `UPLOADING`, `SUCCESS` or `FAILED`.
    #[schema(example = "SUCCESS")]
    pub upload_status: String,
    #[schema(example = "1766989317192")]
    pub create_time: String,
    #[schema(example = "1766989317192")]
    pub modify_time: String,
    /// For an asset anyone may read (its read rule is `public`): its URL at this content version,
    /// which needs no key and may be cached by anyone for a year; absent otherwise, so the seed's
    /// shape is unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

/// The metadata list.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetadataData {
    pub total: u64,
    pub resource: Vec<AssetMetadata>,
}

fn metadata_of(
    asset_id: &str,
    name: &str,
    size: u64,
    status: &str,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
) -> AssetMetadata {
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() => (stem, extension),
        _ => (name, ""),
    };
    AssetMetadata {
        extension: extension.to_owned(),
        asset_id: asset_id.to_owned(),
        original_filename: stem.to_owned(),
        file_size: size.to_string(),
        upload_status: status.to_owned(),
        create_time: created.timestamp_millis().to_string(),
        modify_time: modified.timestamp_millis().to_string(),
        public_url: None,
    }
}

/// An asset's metadata and upload status; poll it until `upload_status` is `SUCCESS`.
#[utoipa::path(
    get, path = "/compat/mavi/serve/api/v2/{asset_id}/metadata", tag = "compat-mavi",
    params(("asset_id" = String, Path, description = "An upload id or a file id")),
    responses(
        (status = 200, body = Envelope<MetadataData>),
        (status = 400, description = "Asset not found", body = MaviErrorBody),
        (status = 401, body = MaviErrorBody),
    ),
    security(("mavi_key" = []))
)]
pub async fn metadata(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(asset_id): Path<String>,
) -> MaviResult<Response> {
    let caller = caller(&state, &headers).await?;
    let resource = match resolve(&state, &caller, &asset_id).await? {
        Asset::File(file) => {
            let links = state.cabinet.links_for_one(&file).await?;
            AssetMetadata {
                public_url: links.public_url(&file),
                ..metadata_of(&asset_id, &file.name, file.size, "SUCCESS", file.created_at, file.updated_at)
            }
        }
        Asset::Pending(UploadState { upload, .. }) => metadata_of(
            &asset_id,
            &upload.name,
            upload.size,
            upload.status.as_str(),
            upload.created_at,
            upload.updated_at,
        ),
    };
    Ok(ok(Some(MetadataData { total: 1, resource: vec![resource] })))
}

/// The asset's bytes, as an attachment.
#[utoipa::path(
    get, path = "/compat/mavi/serve/api/v2/{asset_id}/download", tag = "compat-mavi",
    params(("asset_id" = String, Path, description = "An upload id or a file id")),
    responses(
        (status = 200, description = "The bytes", content_type = "*/*", body = Vec<u8>),
        (status = 400, description = "Asset not found, or not uploaded yet", body = MaviErrorBody),
        (status = 401, body = MaviErrorBody),
    ),
    security(("mavi_key" = []))
)]
pub async fn download(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(asset_id): Path<String>,
) -> MaviResult<Response<Body>> {
    let caller = caller(&state, &headers).await?;
    match resolve(&state, &caller, &asset_id).await? {
        Asset::File(file) => {
            serve_file(&state.cabinet, &file, &headers, true, false, Caching::PrivateRevalidated)
                .await
                .map_err(|err| err.0.into())
        }
        Asset::Pending(pending) => Err(MaviError::bad(format!(
            "The asset is not ready: upload_status is {}",
            pending.upload.status.as_str()
        ))),
    }
}

/// `GET /download` parameters: Cabinet's bucket is the workspace, its blob the asset id.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BucketBlob {
    /// The workspace id.
    pub bucket: Option<String>,
    /// The asset id.
    pub blob: Option<String>,
}

/// An asset's bytes by bucket and blob, as an attachment (MAVI's download by GCS bucket and
/// blob; in Cabinet the bucket is the workspace and the blob the asset id).
#[utoipa::path(
    get, path = "/compat/mavi/serve/api/v2/download", tag = "compat-mavi",
    params(BucketBlob),
    responses(
        (status = 200, description = "The bytes", content_type = "*/*", body = Vec<u8>),
        (status = 400, description = "Bucket or blob missing, or the resource does not exist", body = MaviErrorBody),
        (status = 401, body = MaviErrorBody),
    ),
    security(("mavi_key" = []))
)]
pub async fn download_by_bucket_blob(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<BucketBlob>, QueryRejection>,
) -> MaviResult<Response<Body>> {
    let caller = caller(&state, &headers).await?;
    let Ok(Query(query)) = query else { return Err(MaviError::bad("Invalid request parameters")) };
    let present = |value: Option<String>| value.filter(|value| !value.trim().is_empty());
    let bucket = present(query.bucket).ok_or_else(|| MaviError::bad("Bucket cannot be null or empty"))?;
    let blob = present(query.blob).ok_or_else(|| MaviError::bad("Blob cannot be null or empty"))?;
    let missing = || MaviError::bad("Resource does not exist");
    if bucket != caller.workspace_id.as_str() {
        return Err(missing());
    }
    match resolve(&state, &caller, &blob).await.map_err(|_| missing())? {
        Asset::File(file) => {
            serve_file(&state.cabinet, &file, &headers, true, false, Caching::PrivateRevalidated)
                .await
                .map_err(|err| err.0.into())
        }
        Asset::Pending(_) => Err(missing()),
    }
}

/// Delete an asset, permanently (its storage is reclaimed at once). A pending upload is cancelled.
#[utoipa::path(
    delete, path = "/compat/mavi/serve/api/v2/{asset_id}", tag = "compat-mavi",
    params(("asset_id" = String, Path, description = "An upload id or a file id")),
    responses(
        (status = 200, description = "Deleted; `data` is null", body = DoneBody),
        (status = 400, description = "Asset not found", body = MaviErrorBody),
        (status = 401, body = MaviErrorBody),
        (status = 409, description = "The file is in use, or its bytes are arriving", body = MaviErrorBody),
    ),
    security(("mavi_key" = []))
)]
pub async fn delete_asset(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(asset_id): Path<String>,
) -> MaviResult<Response> {
    let caller = caller(&state, &headers).await?;
    match resolve(&state, &caller, &asset_id).await? {
        Asset::File(file) => {
            state.cabinet.delete_file(&caller, &file.id, false, true).await?;
        }
        Asset::Pending(pending) if pending.upload.status.is_live() => {
            state.cabinet.cancel_upload(&caller, &pending.upload.id).await?;
        }
        Asset::Pending(_) => {}
    }
    Ok(ok::<()>(None).into_response())
}
