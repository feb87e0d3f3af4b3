//! Mavera's Files API: a presigned upload URL, then `POST /files` to turn the arrived bytes into
//! the file record (verified against the declared size and checksum by the core upload session),
//! list/get/update/delete and favorites.

use std::collections::{BTreeMap, HashMap};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use cabinet_core::listing::{encode_cursor, FileFilter, FolderScope, Paging, Sort};
use cabinet_core::ports::FileChange;
use cabinet_core::uploads::NewUpload;
use cabinet_core::{Code, FileId, FolderId, UploadStatus};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::error::{MaveraError, MaveraErrorBody, MaveraResult};
use super::shapes::{render_file, render_files, Deleted, FileList, FileObject, UploadUrlObject};
use super::{caller, Body, Key, Params, PREFIX};
use crate::compat::upload_ids::upload_id_in;
use crate::error::Path;
use crate::AppState;

/// `POST /files/upload-url`.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct UploadUrlRequest {
    #[schema(schema_with = crate::input_schema::name)]
    pub file_name: String,
    #[schema(schema_with = crate::input_schema::mime_type)]
    pub file_type: String,
    #[schema(example = 1024, minimum = 1)]
    pub file_size: u64,
    #[schema(example = "ws_01jdq4x7m2c8v5n3k9w6r1t0ya")]
    pub workspace_id: String,
    /// SHA-256 of the bytes, hex; the bytes are verified against it.
    #[schema(schema_with = crate::input_schema::sha256_or_null)]
    pub checksum: Option<String>,
    #[schema(schema_with = crate::input_schema::folder_id_or_null)]
    pub folder_id: Option<String>,
}

/// Get a presigned URL to PUT a file's bytes to; reserves `file_size` against the quota.
#[utoipa::path(
    post, path = "/compat/mavera/api/v1/files/upload-url", tag = "compat-mavera",
    request_body = UploadUrlRequest,
    responses(
        (status = 200, body = UploadUrlObject),
        (status = 400, description = "missing_field / invalid_field (e.g. file_size over the limit)", body = MaveraErrorBody),
        (status = 401, body = MaveraErrorBody),
        (status = 402, description = "storage_quota_exceeded", body = MaveraErrorBody),
        (status = 404, description = "Unknown workspace or folder", body = MaveraErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_upload_url(
    State(state): State<AppState>,
    key: Key,
    body: Body,
) -> MaveraResult<axum::Json<UploadUrlObject>> {
    let workspace = body.opt_string("workspace_id")?;
    let caller = key.caller(workspace.as_deref())?;
    let workspace = workspace.ok_or_else(|| MaveraError::missing("workspace_id"))?;
    let file_name = body.string("file_name")?;
    let file_type = body.string("file_type")?;
    let file_size = body.size("file_size")?;
    let checksum = body.opt_string("checksum")?;
    let folder_id = body.folder("folder_id")?.flatten();
    check_kind_limit(&state, &file_type, file_size)?;
    let ticket = state
        .cabinet
        .start_upload(
            &caller,
            NewUpload {
                name: file_name.clone(),
                size: Some(file_size),
                mime_type: Some(file_type.clone()),
                sha256: checksum.clone(),
                folder_id: folder_id.clone(),
                expires_in: None,
                multipart: None,
                // Mavera's file exists once `POST /files` records it, not when the bytes arrive.
                awaits_record: true,
                max_bytes: None,
            },
        )
        .await
        .map_err(|err| {
            let param = match err.code() {
                Code::InvalidName | Code::NameTooLong => "file_name",
                Code::InvalidSha256 => "checksum",
                Code::InvalidMimeType | Code::UnsupportedMediaType => "file_type",
                _ => "file_size",
            };
            MaveraError::from(err).about(param)
        })?;
    let upload = &ticket.upload;
    let mut send: BTreeMap<String, String> = ticket.headers.iter().cloned().collect();
    if !send.keys().any(|name| name.eq_ignore_ascii_case("content-type")) {
        send.insert("Content-Type".into(), upload.declared_mime.clone().unwrap_or(file_type.clone()));
    }
    if let Some(sha256) = &upload.sha256 {
        if !send.keys().any(|name| name.eq_ignore_ascii_case("x-amz-checksum-sha256")) {
            // S3's form of the checksum: base64 of the raw digest (the core checked it is hex).
            let raw: Vec<u8> = (0..sha256.len() / 2)
                .filter_map(|i| u8::from_str_radix(&sha256[2 * i..2 * i + 2], 16).ok())
                .collect();
            send.insert(
                "x-amz-checksum-sha256".into(),
                base64::engine::general_purpose::STANDARD.encode(raw),
            );
        }
    }
    // The file's lasting URL, handed out before it exists: 404 until the record is made.
    let public_url = state.cabinet.permalink_of_upload(upload).await?;
    let mut next_body = json!({
        "name": file_name, "type": file_type, "url": public_url,
        "workspace_id": workspace, "file_size": file_size,
    });
    if let Some(folder) = &folder_id {
        next_body["folder_id"] = json!(folder);
    }
    Ok(axum::Json(UploadUrlObject {
        object: "upload_url",
        upload_url: ticket.url.clone(),
        public_url,
        key: upload.id.to_string(),
        expires_in: (upload.expires_at - state.cabinet.now()).num_seconds().max(0),
        method: "PUT",
        headers: send,
        next_step: json!({
            "description": "PUT the file's bytes to upload_url with these headers, then create the file record.",
            "endpoint": format!("POST {PREFIX}/files"),
            "body": next_body,
        }),
    }))
}

/// `POST /files`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = MaveraCreateFileRequest)]
#[allow(dead_code)]
pub struct CreateFileRequest {
    #[schema(schema_with = crate::input_schema::name)]
    pub name: String,
    /// The file's type: kept as far as its bytes agree.
    #[serde(rename = "type")]
    #[schema(schema_with = crate::input_schema::mime_type)]
    pub mime_type: String,
    /// The `public_url` (or `key`) from `upload-url`. An `upload_url` is taken too when it names
    /// the upload, which it does not on S3 when a checksum was declared (the bytes go straight to
    /// the file's own key there).
    #[schema(schema_with = crate::input_schema::naming_an_upload)]
    pub url: String,
    #[schema(example = "ws_01jdq4x7m2c8v5n3k9w6r1t0ya")]
    pub workspace_id: String,
    #[schema(example = 1024, minimum = 1)]
    pub file_size: u64,
    #[schema(schema_with = crate::input_schema::folder_id_or_null)]
    pub folder_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Only `upload` (the default): Mavera's other sources (drives, URLs) fetch from outside
    /// services this server does not connect to, and are refused as a bad `source`.
    pub source: Option<MaveraSource>,
}

/// Where a file's bytes came from: here, always an upload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaveraSource {
    Upload,
}

/// Create the file record once the bytes are at the upload URL: this is what makes the file (and
/// starts charging its storage); its size and checksum are verified, and it keeps the `type`
/// given here as far as its bytes agree.
#[utoipa::path(
    post, path = "/compat/mavera/api/v1/files", tag = "compat-mavera",
    request_body = CreateFileRequest,
    responses(
        (status = 201, body = FileObject),
        (status = 400, description = "missing_field / invalid_field, or the bytes did not arrive as declared", body = MaveraErrorBody),
        (status = 401, body = MaveraErrorBody),
        (status = 402, description = "storage_quota_exceeded", body = MaveraErrorBody),
        (status = 404, body = MaveraErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_file(
    State(state): State<AppState>,
    key: Key,
    body: Body,
) -> MaveraResult<(StatusCode, axum::Json<FileObject>)> {
    let workspace = body.opt_string("workspace_id")?;
    let caller = key.caller(workspace.as_deref())?;
    workspace.ok_or_else(|| MaveraError::missing("workspace_id"))?;
    let name = body.string("name")?;
    let mime_type = body.string("type")?;
    let url = body.string("url")?;
    let file_size = body.size("file_size")?;
    let folder = body.folder("folder_id")?;
    let metadata = body.object("metadata")?;
    check_kind_limit(&state, &mime_type, file_size)?;
    if let Some(source) = body.opt_string("source")?.filter(|source| source != "upload") {
        // Drives and URLs are fetched by a service Cabinet does not run; only uploaded bytes are.
        return Err(MaveraError::invalid(
            "source",
            format!("source {source} needs an outside service this server does not connect to; upload the bytes and record them with source upload"),
        ));
    }
    let upload_id = upload_id_in(&url)
        .ok_or_else(|| MaveraError::invalid("url", "url must be the public_url that upload-url returned"))?;
    let upload =
        state.cabinet.get_upload(&caller, &upload_id).await.map_err(|e| MaveraError::from(e).about("url"))?;
    if upload.upload.size != file_size {
        return Err(MaveraError::invalid(
            "file_size",
            format!("file_size is {file_size}; the upload declared {} bytes", upload.upload.size),
        ));
    }
    // Recording is what makes the file (and charges its storage); the record's `type` is the
    // one the file keeps, as far as its bytes agree.
    let done =
        state.cabinet.record_upload(&caller, &upload_id, Some(&mime_type)).await.map_err(|err| match err
            .code()
        {
            Code::UploadFailed | Code::UploadIncomplete | Code::UploadInProgress => {
                MaveraError::invalid("url", err.to_string())
            }
            Code::InvalidMimeType | Code::UnsupportedMediaType => MaveraError::from(err).about("type"),
            _ => MaveraError::from(err).about("url"),
        })?;
    if done.upload.status != UploadStatus::Success {
        return Err(MaveraError::invalid("url", "the upload has not succeeded"));
    }
    let mut file = done.file.ok_or(cabinet_core::Error::NotFound("file"))?;
    let change = FileChange {
        name: (name != file.name).then_some(name),
        folder: folder.filter(|target| *target != file.folder_id),
        metadata,
        ..Default::default()
    };
    if change.name.is_some() || change.folder.is_some() || change.metadata.is_some() {
        file = state
            .cabinet
            .update_file(&caller, &file.id, change)
            .await
            .map_err(|e| MaveraError::from(e).about("name"))?;
    }
    Ok((StatusCode::CREATED, axum::Json(render_file(&state, &caller, file).await?)))
}

/// Mavera's size limit for a kind of file: videos up to one size, every other file up to another
/// (its docs: 2 GB and 10 MB). Over it is a bad `file_size`.
fn check_kind_limit(state: &AppState, mime_type: &str, size: u64) -> MaveraResult<()> {
    let is_video = mime_type.trim().to_ascii_lowercase().starts_with("video/");
    let (limit, kind) = if is_video {
        (state.limits.mavera_video_bytes, "video files")
    } else {
        (state.limits.mavera_file_bytes, "files that are not videos")
    };
    if size > limit {
        return Err(MaveraError::invalid(
            "file_size",
            format!("file_size is {size} bytes; the most allowed for {kind} is {limit} bytes"),
        ));
    }
    Ok(())
}

/// `GET /files` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListFilesParams {
    /// The workspace (needed when the key has several).
    pub workspace_id: Option<String>,
    #[param(schema_with = crate::input_schema::folder_id_or_empty)]
    pub folder_id: Option<String>,
    /// MIME prefix: `image`, `video`, `application/pdf`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub mime_type: Option<String>,
    pub is_favorite: Option<bool>,
    /// Case-insensitive substring of the name.
    #[param(schema_with = crate::input_schema::no_control)]
    pub search: Option<String>,
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The id of the last file of the previous page.
    #[param(schema_with = crate::input_schema::file_id_or_empty)]
    pub cursor: Option<String>,
}

/// List files, newest first.
#[utoipa::path(
    get, path = "/compat/mavera/api/v1/files", tag = "compat-mavera",
    params(ListFilesParams),
    responses((status = 200, body = FileList), (status = 400, body = MaveraErrorBody), (status = 401, body = MaveraErrorBody), (status = 404, body = MaveraErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_files(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> MaveraResult<axum::Json<FileList>> {
    let params = Params::from(query)?;
    let caller = caller(&state, &headers, params.get("workspace_id")).await?;
    let folder = match params.get("folder_id") {
        Some(raw) => FolderScope::In(FolderId::parse(raw)?),
        None => FolderScope::Anywhere,
    };
    let filter = FileFilter {
        folder,
        name_contains: cabinet_core::listing::name_query(params.get("search")),
        mime_prefix: params.get("type").map(str::to_owned),
        favorite: params.bool("is_favorite")?,
        ..Default::default()
    };
    let sort = Sort::NEWEST_FIRST;
    // Mavera's cursor is the last file's id; the core pages by (created_at, id) after it.
    let cursor = match params.get("cursor") {
        Some(raw) => {
            let id =
                FileId::parse(raw).map_err(|_| MaveraError::invalid("cursor", "cursor is not a file id"))?;
            let last = state
                .cabinet
                .get_file(&caller, &id)
                .await
                .map_err(|_| MaveraError::invalid("cursor", "cursor is not a file of this workspace"))?;
            Some(encode_cursor(&last, sort))
        }
        None => None,
    };
    let paging = Paging::parse(Some(params.limit()?), cursor.as_deref(), None, sort)?;
    let page = state.cabinet.list_files(&caller, filter, sort, paging).await?;
    let has_more = page.next_cursor.is_some();
    let next_cursor = has_more.then(|| page.items.last().map(|file| file.id.to_string())).flatten();
    let data = render_files(&state, &caller, page.items).await?;
    Ok(axum::Json(FileList { object: "list", data, has_more, next_cursor }))
}

/// The workspace a request by id names, if any.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct WorkspaceParam {
    pub workspace_id: Option<String>,
}

/// One file.
#[utoipa::path(
    get, path = "/compat/mavera/api/v1/files/{id}", tag = "compat-mavera",
    params(("id" = String, Path, description = "File id"), WorkspaceParam),
    responses((status = 200, body = FileObject), (status = 401, body = MaveraErrorBody), (status = 404, body = MaveraErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_file(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> MaveraResult<axum::Json<FileObject>> {
    let params = Params::from(query)?;
    let caller = caller(&state, &headers, params.get("workspace_id")).await?;
    let file = state.cabinet.readable_file(&caller, &FileId::parse(&id)?).await?;
    Ok(axum::Json(render_file(&state, &caller, file).await?))
}

/// `PATCH /files/{id}`; fields left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = MaveraUpdateFileRequest)]
#[allow(dead_code)]
pub struct UpdateFileRequest {
    #[schema(schema_with = crate::input_schema::name_or_null)]
    pub name: Option<String>,
    /// A folder id; null moves the file to the root.
    #[schema(schema_with = crate::input_schema::folder_id_or_null)]
    pub folder_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Rename, move or describe a file.
#[utoipa::path(
    patch, path = "/compat/mavera/api/v1/files/{id}", tag = "compat-mavera",
    params(("id" = String, Path, description = "File id"), WorkspaceParam),
    request_body = UpdateFileRequest,
    responses((status = 200, body = FileObject), (status = 400, body = MaveraErrorBody), (status = 401, body = MaveraErrorBody), (status = 404, body = MaveraErrorBody), (status = 409, body = MaveraErrorBody)),
    security(("bearer" = []))
)]
pub async fn update_file(
    State(state): State<AppState>,
    key: Key,
    Path(id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Body,
) -> MaveraResult<axum::Json<FileObject>> {
    let params = Params::from(query)?;
    let workspace = body.opt_string("workspace_id")?.or(params.get("workspace_id").map(str::to_owned));
    let caller = key.caller(workspace.as_deref())?;
    let change = FileChange {
        name: body.opt_string("name")?,
        folder: body.folder("folder_id")?,
        metadata: body.object("metadata")?,
        ..Default::default()
    };
    let file = state
        .cabinet
        .update_file(&caller, &FileId::parse(&id)?, change)
        .await
        .map_err(|e| MaveraError::from(e).about("name"))?;
    Ok(axum::Json(render_file(&state, &caller, file).await?))
}

/// How a delete behaves.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct DeleteParams {
    pub workspace_id: Option<String>,
    /// `false` moves it to the trash instead (a Cabinet extension; Mavera's delete reclaims the
    /// storage at once, which is the default).
    pub permanent: Option<bool>,
    /// Delete even if something uses the file.
    pub force: Option<bool>,
}

/// Delete a file: its storage is reclaimed and the quota updated at once (with `permanent=false`,
/// to the trash instead, still counted until it is purged).
#[utoipa::path(
    delete, path = "/compat/mavera/api/v1/files/{id}", tag = "compat-mavera",
    params(("id" = String, Path, description = "File id"), DeleteParams),
    responses((status = 200, body = Deleted), (status = 401, body = MaveraErrorBody), (status = 404, body = MaveraErrorBody), (status = 409, description = "The file is in use", body = MaveraErrorBody)),
    security(("bearer" = []))
)]
pub async fn delete_file(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> MaveraResult<axum::Json<Deleted>> {
    let params = Params::from(query)?;
    let caller = caller(&state, &headers, params.get("workspace_id")).await?;
    let permanent = params.bool("permanent")?.unwrap_or(true);
    let force = params.bool("force")?.unwrap_or(false);
    let id = FileId::parse(&id)?;
    // A file in the trash (put there through another surface) is gone as far as Mavera is
    // concerned.
    state.cabinet.readable_file(&caller, &id).await?;
    let file = state.cabinet.delete_file(&caller, &id, force, permanent).await?;
    Ok(axum::Json(Deleted { id: file.id.to_string(), object: "file", deleted: true }))
}

/// Toggle a file's favorite mark; returns the file.
#[utoipa::path(
    post, path = "/compat/mavera/api/v1/files/{id}/favorite", tag = "compat-mavera",
    operation_id = "toggle_file_favorite",
    params(("id" = String, Path, description = "File id"), WorkspaceParam),
    responses((status = 200, body = FileObject), (status = 401, body = MaveraErrorBody), (status = 404, body = MaveraErrorBody)),
    security(("bearer" = []))
)]
pub async fn toggle_favorite(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> MaveraResult<axum::Json<FileObject>> {
    let params = Params::from(query)?;
    let caller = caller(&state, &headers, params.get("workspace_id")).await?;
    let file = state.cabinet.toggle_file_favorite(&caller, &FileId::parse(&id)?).await?;
    Ok(axum::Json(render_file(&state, &caller, file).await?))
}
