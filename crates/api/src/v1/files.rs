//! `/v1/files`: direct upload, list, details, delete, download URL, authenticated content and
//! thumbnails.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use cabinet_core::files::DirectUpload;
use cabinet_core::links::Caching;
use cabinet_core::ports::FileChange;
use cabinet_core::{Cabinet, Code, Error, FileId, FolderId, WorkspaceId};
use futures::{stream, StreamExt, TryStreamExt};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::params::{nullable, FileFilterParams, ListParams, NameFilterParams};
use super::shapes::{DownloadUrlJson, FavoriteJson, FileJson, FileListJson, ReferenceJson, RestoredFileJson};
use crate::auth::Authenticated;
use crate::download::{serve_file, serve_thumbnail};
use crate::error::{ApiResult, ErrorBody, Json, Path, Query};
use crate::form::{Form, Part};
use crate::schemas;
use crate::AppState;

/// A direct upload as JSON, for small files.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Base64Upload {
    #[schema(schema_with = crate::input_schema::name)]
    pub name: String,
    /// The file's bytes, standard base64.
    #[schema(schema_with = crate::input_schema::base64)]
    pub content_base64: String,
    #[schema(schema_with = crate::input_schema::mime_type_or_null)]
    pub mime_type: Option<String>,
    #[schema(value_type = Option<schemas::FolderId>)]
    pub folder_id: Option<FolderId>,
}

/// A direct upload as multipart form data: metadata fields first, then `file` (the bytes are
/// streamed to storage, so nothing after `file` is read). Another field is refused.
// Deserialize only so the schema carries `deny_unknown_fields` (`additionalProperties: false`);
// the form itself is read field by field in `upload_file`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct MultipartUpload {
    /// The bytes. Its filename is the file's name unless `name` came first.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    #[schema(schema_with = crate::input_schema::name)]
    pub name: Option<String>,
    #[schema(schema_with = crate::input_schema::mime_type)]
    pub mime_type: Option<String>,
    #[schema(value_type = Option<schemas::FolderId>)]
    pub folder_id: Option<FolderId>,
}

/// Upload a file in the request itself: multipart (`file` field, streamed) or JSON base64.
#[utoipa::path(
    post, path = "/v1/files", tag = "files",
    request_body(
        description = "multipart/form-data with a `file` field (metadata fields before it), or JSON with base64 content",
        content(
            (MultipartUpload = "multipart/form-data"),
            (Base64Upload = "application/json"),
        )
    ),
    responses(
        (status = 201, description = "Stored", body = FileJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 413, description = "Larger than the direct upload limit, or a form field (8 KiB each, 32 before `file`) over its bound", body = ErrorBody),
        (status = 507, description = "Quota exceeded", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn upload_file(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    request: Request,
) -> ApiResult<(StatusCode, Json<FileJson>)> {
    // Answered 201 once the change commits: its audit record commits with it.
    cabinet_core::audit::answers_change_with(StatusCode::CREATED.as_u16());
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let file = if content_type.starts_with("multipart/form-data") {
        let file_limit = state.cabinet.settings().direct_upload_max_bytes;
        let mut form = Form::read(request, file_limit).await?;
        let mut meta = DirectUpload::default();
        loop {
            match form.next().await? {
                None => return Err(Error::bad_request(Code::MissingFile, "the form has no `file` field").into()),
                Some(Part::File(field)) => {
                    if meta.name.is_empty() {
                        meta.name = field.file_name().unwrap_or("").to_owned();
                    }
                    if meta.mime_type.is_none() {
                        meta.mime_type = field
                            .content_type()
                            .filter(|mime| *mime != "application/octet-stream")
                            .map(str::to_owned);
                    }
                    let body = field.map_err(std::io::Error::other).boxed();
                    break state.cabinet.upload_direct(&caller, meta, body).await?;
                }
                Some(Part::Text(field)) => match field.name.as_str() {
                    "name" => meta.name = field.text()?.to_owned(),
                    "mime_type" => meta.mime_type = Some(field.text()?.to_owned()),
                    "folder_id" => meta.folder_id = Some(FolderId::parse(field.text()?)?),
                    // A mistyped field would be silently lost: say so instead.
                    other => {
                        return Err(Error::bad_request(
                            Code::UnknownField,
                            format!("unknown form field `{other}`: the fields are name, mime_type, folder_id and file"),
                        )
                        .into())
                    }
                },
            }
        }
    } else if content_type.starts_with("application/json") {
        let limit = state.limits.json_upload_bytes;
        let body = axum::body::to_bytes(request.into_body(), limit).await.map_err(|_| Error::TooLarge {
            code: Code::PayloadTooLarge,
            message: format!("a JSON upload may be at most {limit} bytes; use multipart or POST /v1/uploads"),
        })?;
        let upload: Base64Upload = serde_json::from_slice(&body)
            .map_err(|err| Error::bad_request(Code::InvalidJson, err.to_string()))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(upload.content_base64.trim())
            .map_err(|_| Error::bad_request(Code::InvalidBase64, "content_base64 is not valid base64"))?;
        let meta = DirectUpload {
            name: upload.name,
            mime_type: upload.mime_type,
            folder_id: upload.folder_id,
            max_bytes: None,
        };
        let body = stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(bytes)) }).boxed();
        state.cabinet.upload_direct(&caller, meta, body).await?
    } else {
        return Err(Error::bad_request(
            Code::UnsupportedMediaType,
            "send multipart/form-data with a `file` field, or JSON with content_base64",
        )
        .into());
    };
    Ok((StatusCode::CREATED, Json(FileJson::of(file, &state.cabinet).await?)))
}

/// List files: filtered by folder, name, tags, favorite, type, reference or trash; sorted and
/// paged by cursor or offset.
#[utoipa::path(
    get, path = "/v1/files", tag = "files",
    params(NameFilterParams, FileFilterParams, ListParams),
    responses((status = 200, body = FileListJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_files(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(filter): Query<FileFilterParams>,
    Query(list): Query<ListParams>,
) -> ApiResult<Json<FileListJson>> {
    let (sort, paging) = list.parse()?;
    let page = state.cabinet.list_files(&caller, filter.parse()?, sort, paging).await?;
    Ok(Json(file_list(page, &caller.workspace_id, &state.cabinet).await?))
}

pub(crate) async fn file_list(
    page: cabinet_core::Page<cabinet_core::FileRecord>,
    ws: &WorkspaceId,
    cabinet: &Cabinet,
) -> ApiResult<FileListJson> {
    let links = cabinet.links_for(ws, &page.items).await?;
    Ok(FileListJson {
        total: page.total,
        has_more: page.next_cursor.is_some(),
        next_cursor: page.next_cursor,
        data: page.items.into_iter().map(|file| FileJson::new(file, &links)).collect(),
    })
}

/// A file's details, with what uses it.
#[utoipa::path(
    get, path = "/v1/files/{id}", tag = "files",
    params(("id" = schemas::FileId, Path, description = "File id")),
    responses((status = 200, body = FileJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_file(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<FileJson>> {
    let id = FileId::parse(&id)?;
    let (file, references) = state.cabinet.get_file_with_references(&caller, &id).await?;
    let mut json = FileJson::of(file, &state.cabinet).await?;
    json.references = Some(references.into_iter().map(ReferenceJson::from).collect());
    Ok(Json(json))
}

/// What to change on a file; fields left out stay as they are, `null` clears.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateFileRequest {
    #[schema(schema_with = crate::input_schema::name_or_null)]
    pub name: Option<String>,
    /// A folder id; `null` moves the file to the root.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = crate::input_schema::folder_id_or_null)]
    pub folder_id: Option<Option<FolderId>>,
    pub is_favorite: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = crate::input_schema::text_or_null)]
    pub alt_text: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = crate::input_schema::text_or_null)]
    pub caption: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = crate::input_schema::text_or_null)]
    pub copyright: Option<Option<String>>,
    /// Replaces the custom metadata object.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Replaces the tags.
    #[schema(schema_with = crate::input_schema::tags_or_null)]
    pub tags: Option<Vec<String>>,
}

/// Rename, move, mark or describe a file.
#[utoipa::path(
    patch, path = "/v1/files/{id}", tag = "files",
    params(("id" = schemas::FileId, Path, description = "File id")),
    request_body = UpdateFileRequest,
    responses(
        (status = 200, body = FileJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No such file or target folder", body = ErrorBody),
        (status = 413, description = "Metadata too large", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn update_file(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Json(request): Json<UpdateFileRequest>,
) -> ApiResult<Json<FileJson>> {
    let change = FileChange {
        name: request.name,
        folder: request.folder_id,
        is_favorite: request.is_favorite,
        alt_text: request.alt_text,
        caption: request.caption,
        copyright: request.copyright,
        metadata: request.metadata,
        tags: request.tags,
        external_id: None,
    };
    let file = state.cabinet.update_file(&caller, &FileId::parse(&id)?, change).await?;
    Ok(Json(FileJson::of(file, &state.cabinet).await?))
}

/// How a delete behaves.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct DeleteParams {
    /// Delete even if something uses the file.
    pub force: Option<bool>,
    /// Purge at once instead of moving to the trash.
    pub permanent: Option<bool>,
}

/// Delete a file: to the trash (it still counts against the quota), or purged with `permanent`.
#[utoipa::path(
    delete, path = "/v1/files/{id}", tag = "files",
    params(("id" = schemas::FileId, Path, description = "File id"), DeleteParams),
    responses(
        (status = 200, description = "The trashed (or purged) file", body = FileJson),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The file is in use; the message names what uses it", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_file(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Query(params): Query<DeleteParams>,
) -> ApiResult<Json<FileJson>> {
    let file = state
        .cabinet
        .delete_file(
            &caller,
            &FileId::parse(&id)?,
            params.force.unwrap_or(false),
            params.permanent.unwrap_or(false),
        )
        .await?;
    Ok(Json(FileJson::of(file, &state.cabinet).await?))
}

/// Toggle a file's favorite mark.
#[utoipa::path(
    post, path = "/v1/files/{id}/favorite", tag = "files", operation_id = "toggle_file_favorite",
    params(("id" = schemas::FileId, Path, description = "File id")),
    responses((status = 200, body = FavoriteJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn toggle_favorite(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<FavoriteJson>> {
    let file = state.cabinet.toggle_file_favorite(&caller, &FileId::parse(&id)?).await?;
    Ok(Json(FavoriteJson { id: file.id.to_string(), is_favorite: file.is_favorite }))
}

/// Take a file out of the trash, into its folder (rebuilding a trashed parent chain) or the root.
#[utoipa::path(
    post, path = "/v1/files/{id}/restore", tag = "files",
    params(("id" = schemas::FileId, Path, description = "File id")),
    responses(
        (status = 200, body = RestoredFileJson),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not in the trash", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn restore_file(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<RestoredFileJson>> {
    let (file, note) = state.cabinet.restore_file(&caller, &FileId::parse(&id)?).await?;
    Ok(Json(RestoredFileJson { file: FileJson::of(file, &state.cabinet).await?, restore: note.into() }))
}

/// Something that uses a file.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferenceRequest {
    #[schema(schema_with = crate::input_schema::reference_part)]
    pub kind: String,
    #[schema(schema_with = crate::input_schema::reference_part)]
    pub id: String,
    #[schema(schema_with = crate::input_schema::text_or_null)]
    pub label: Option<String>,
}

/// What uses a file.
#[utoipa::path(
    get, path = "/v1/files/{id}/references", tag = "files",
    params(("id" = schemas::FileId, Path, description = "File id")),
    responses((status = 200, body = Vec<ReferenceJson>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_references(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ReferenceJson>>> {
    let references = state.cabinet.list_references(&caller, &FileId::parse(&id)?).await?;
    Ok(Json(references.into_iter().map(ReferenceJson::from).collect()))
}

/// Record that something uses a file; deleting it then needs `force`.
#[utoipa::path(
    post, path = "/v1/files/{id}/references", tag = "files",
    params(("id" = schemas::FileId, Path, description = "File id")),
    request_body = ReferenceRequest,
    responses(
        (status = 201, body = ReferenceJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn add_reference(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Json(request): Json<ReferenceRequest>,
) -> ApiResult<(StatusCode, Json<ReferenceJson>)> {
    let reference = state
        .cabinet
        .add_reference(&caller, &FileId::parse(&id)?, &request.kind, &request.id, request.label)
        .await?;
    Ok((StatusCode::CREATED, Json(reference.into())))
}

/// Which reference to remove.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ReferenceParams {
    pub kind: String,
    pub id: String,
}

/// Forget that something uses a file.
#[utoipa::path(
    delete, path = "/v1/files/{id}/references", tag = "files",
    params(("id" = schemas::FileId, Path, description = "File id"), ReferenceParams),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn remove_reference(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Query(params): Query<ReferenceParams>,
) -> ApiResult<StatusCode> {
    state.cabinet.remove_reference(&caller, &FileId::parse(&id)?, &params.kind, &params.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How a download URL should behave.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DownloadUrlParams {
    /// Lifetime in seconds, 1 to 604800 (7 days); default 3600.
    #[param(minimum = 1, maximum = 604800)]
    pub expires_in: Option<u64>,
    /// Serve as an attachment (a download) rather than inline.
    pub download: Option<bool>,
    /// A permalink instead: no expiry (`expires_at` null); it works while the file is live and
    /// has these bytes, until the workspace's links are revoked (`POST /v1/links/revoke`) or the
    /// signing key is retired. For links that clients store. Not with `expires_in`.
    pub lasting: Option<bool>,
}

/// A signed GET URL that needs no key: expiring (the same URL for every request within one
/// window, so caches can hit) or, with `lasting=true`, a permalink.
#[utoipa::path(
    get, path = "/v1/files/{id}/download-url", tag = "files",
    params(("id" = schemas::FileId, Path, description = "File id"), DownloadUrlParams),
    responses(
        (status = 200, body = DownloadUrlJson),
        (status = 400, description = "expires_in out of range, or given with lasting", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn download_url(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Query(params): Query<DownloadUrlParams>,
) -> ApiResult<Json<DownloadUrlJson>> {
    let id = FileId::parse(&id)?;
    let attachment = params.download.unwrap_or(false);
    if params.lasting.unwrap_or(false) {
        if params.expires_in.is_some() {
            return Err(Error::bad_request(
                Code::InvalidExpiresIn,
                "a lasting URL has no expiry: leave out expires_in",
            )
            .into());
        }
        let file = state.cabinet.readable_file(&caller, &id).await?;
        let url = state.cabinet.permalink_of(&caller, &file, attachment).await?;
        return Ok(Json(DownloadUrlJson { url, expires_at: None }));
    }
    let url = state.cabinet.download_url(&caller, &id, params.expires_in, attachment).await?;
    Ok(Json(url.into()))
}

/// The file's bytes, with `Range`, `ETag` and `If-None-Match`.
#[utoipa::path(
    get, path = "/v1/files/{id}/content", tag = "files",
    params(("id" = schemas::FileId, Path, description = "File id")),
    responses(
        (status = 200, description = "The whole file", content_type = "*/*", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "*/*", body = Vec<u8>),
        (status = 304, description = "Not modified"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 416, description = "Range not satisfiable"),
    ),
    security(("bearer" = []))
)]
pub async fn get_content(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response<Body>> {
    let file = state.cabinet.readable_file(&caller, &FileId::parse(&id)?).await?;
    serve_file(&state.cabinet, &file, &headers, false, method == Method::HEAD, Caching::PrivateRevalidated)
        .await
}

/// Which thumbnail.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ThumbnailParams {
    /// The longest edge in pixels: 64, 256 (the default) or 1024; any other value is refused
    /// (400 `invalid_size`). Smaller images are never enlarged.
    #[param(value_type = Option<u32>, schema_with = thumbnail_sizes)]
    pub size: Option<u32>,
}

/// A thumbnail of a JPEG, PNG, WebP or GIF (first frame) file: JPEG when the image is opaque,
/// PNG when it has transparency. Made once per size and cached; not counted in the quota.
#[utoipa::path(
    get, path = "/v1/files/{id}/thumbnail", tag = "files",
    params(("id" = schemas::FileId, Path, description = "File id"), ThumbnailParams),
    responses(
        (status = 200, description = "The thumbnail: JPEG when the image is opaque, PNG when it has transparency",
            content((Vec<u8> = "image/jpeg"), (Vec<u8> = "image/png"))),
        (status = 304, description = "Not modified"),
        (status = 400, description = "`invalid_size`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "`thumbnail_unsupported` (not a JPEG, PNG, WebP or GIF image), \
            `image_too_large` (over 64 MiB, 40 megapixels or 16384 pixels a side: refused before decoding), \
            `image_undecodable`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_thumbnail(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Query(params): Query<ThumbnailParams>,
    headers: HeaderMap,
) -> ApiResult<Response<Body>> {
    let (_, thumbnail) = state.cabinet.thumbnail(&caller, &FileId::parse(&id)?, params.size).await?;
    serve_thumbnail(thumbnail, &headers)
}

/// The thumbnail sizes there are.
fn thumbnail_sizes() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .enum_values(Some([64, 256, 1024]))
        .build()
}
