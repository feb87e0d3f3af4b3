//! The CMS file routes: list (filters, ordering, DRF pages with `available_tags`), upload
//! (multipart or base64), details with usage, metadata PATCH, and delete refusing a file in use
//! unless `force=true`. Each parses, calls the core, renders.

use axum::extract::rejection::QueryRejection;
use axum::extract::{OriginalUri, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cabinet_core::files::DirectUpload;
use cabinet_core::listing::{FileFilter, PageSize, Paging, Sort, SortKey, Start};
use cabinet_core::ports::FileChange;
use cabinet_core::{Caller, Code, FileId, FileRecord, FileReference};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::IntoParams;

use super::auth::{caller, key, uploader};
use super::error::{CmsDetail, CmsError, CmsFieldErrors, CmsResult};
use super::shapes::{
    CmsBase64Upload, CmsFile, CmsFilePage, CmsFilePatch, CmsInUse, CmsMultipartUpload, CmsUsage,
};
use crate::compat::base64_body::{byte_stream, decode_base64};
use crate::form::{Form, Part};
use crate::AppState;

/// Renders one file: its references as `usage` and a signed `file_url`.
async fn render(state: &AppState, caller: &Caller, file: FileRecord) -> CmsResult<CmsFile> {
    let usage = state.cabinet.list_references(caller, &file.id).await?;
    render_with(state, caller, file, usage).await
}

/// Renders one file whose references were read with others'.
async fn render_with(
    state: &AppState,
    caller: &Caller,
    file: FileRecord,
    usage: Vec<FileReference>,
) -> CmsResult<CmsFile> {
    let url = state.cabinet.download_url_of(caller, &file, None, false).await?;
    Ok(CmsFile::new(file, usage, url.url))
}

fn file_id(raw: &str) -> CmsResult<FileId> {
    FileId::parse(raw).map_err(|_| CmsError::not_found())
}

/// The organization a request names.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrganizationParams {
    /// The workspace id (default: the key's only workspace).
    pub organization_id: Option<String>,
}

/// Filters, ordering and page of a list; all optional, invalid values fall back as DRF does.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// The workspace id (default: the key's only workspace).
    pub organization_id: Option<String>,
    /// Case-insensitive substring of the file name.
    #[param(schema_with = crate::input_schema::name_filter)]
    pub file_name: Option<String>,
    /// `created_at`, `-created_at` (default), `updated_at`, `-updated_at`, `file_name`, `-file_name`.
    pub ordering: Option<String>,
    /// Comma-separated; files having all of them.
    #[param(schema_with = crate::input_schema::tag_list)]
    pub tags: Option<String>,
    /// 1-based page number.
    pub page: Option<String>,
    /// 1–100, default 50.
    pub page_size: Option<String>,
}

fn ordering(raw: Option<&str>) -> Sort {
    let raw = raw.unwrap_or("-created_at");
    let (descending, field) = match raw.strip_prefix('-') {
        Some(field) => (true, field),
        None => (false, raw),
    };
    let key = match field {
        "created_at" => SortKey::CreatedAt,
        "updated_at" => SortKey::UpdatedAt,
        "file_name" => SortKey::Name,
        // DRF's OrderingFilter ignores fields it does not know.
        _ => return Sort::NEWEST_FIRST,
    };
    Sort { key, descending }
}

fn invalid_page() -> CmsError {
    CmsError::detail(StatusCode::NOT_FOUND, "Invalid page.")
}

/// The absolute URL of this list with another page (`None`: without a page parameter).
fn page_url(state: &AppState, uri: &axum::http::Uri, page: Option<u64>) -> String {
    let mut pairs: Vec<String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("page="))
        .map(str::to_owned)
        .collect();
    if let Some(page) = page {
        pairs.push(format!("page={page}"));
    }
    let base = format!("{}{}", state.cabinet.settings().public_url, uri.path());
    if pairs.is_empty() {
        base
    } else {
        format!("{base}?{}", pairs.join("&"))
    }
}

/// List an organization's files.
#[utoipa::path(
    get, path = "/compat/cms/files/", tag = "compat-cms",
    params(ListParams),
    responses(
        (status = 200, body = CmsFilePage),
        (status = 400, description = "An invalid tag", body = CmsFieldErrors),
        (status = 401, body = CmsDetail),
        (status = 404, description = "Another organization, or a page past the end", body = CmsDetail),
    ),
    security(("bearer" = []))
)]
pub async fn list_files(
    State(state): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    params: Result<Query<ListParams>, QueryRejection>,
) -> CmsResult<Json<CmsFilePage>> {
    let params = query(params)?;
    let caller = caller(&state, &headers, params.organization_id.clone()).await?;
    let page = match params.page.as_deref() {
        None => 1,
        Some(raw) => raw.parse::<u64>().ok().filter(|page| *page >= 1).ok_or_else(invalid_page)?,
    };
    let page_size = PageSize::LISTS.clamped(params.page_size.as_deref());
    let tags = crate::v1::params::tag_list(params.tags.as_deref())
        .map_err(|err| CmsError::field("tags", err.to_string()))?;
    let filter = FileFilter {
        name_contains: cabinet_core::listing::name_query(params.file_name.as_deref()),
        tags_all: tags,
        ..FileFilter::default()
    };
    let offset = (page - 1).saturating_mul(u64::from(page_size));
    let paging = Paging { limit: page_size, start: Start::Offset(offset) };
    let listed =
        state.cabinet.list_files(&caller, filter, ordering(params.ordering.as_deref()), paging).await?;
    if page > 1 && listed.items.is_empty() {
        return Err(invalid_page());
    }
    let mut usage = state.cabinet.references_of(&caller, &listed.items).await?;
    let mut results = Vec::with_capacity(listed.items.len());
    for file in listed.items {
        let used_by = usage.remove(&file.id).unwrap_or_default();
        results.push(render_with(&state, &caller, file, used_by).await?);
    }
    let available_tags = state.cabinet.tags(&caller).await?.into_iter().map(|(tag, _)| tag).collect();
    Ok(Json(CmsFilePage {
        count: listed.total,
        next: (offset + u64::from(page_size) < listed.total).then(|| page_url(&state, &uri, Some(page + 1))),
        previous: (page > 1).then(|| page_url(&state, &uri, (page > 2).then_some(page - 1))),
        results,
        available_tags,
    }))
}

/// Tags as a client sends them: a list of strings, or one comma-separated string.
fn tags_value(value: &Value) -> CmsResult<Vec<String>> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(text) => Ok(split_tags(text)),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_owned).ok_or_else(|| CmsError::field("tags", "Not a valid string."))
            })
            .collect(),
        other => Err(CmsError::field(
            "tags",
            format!("Expected a list of items but got type \"{}\".", json_type(other)),
        )),
    }
}

/// One form value of tags: a JSON list, or comma-separated.
fn split_tags(text: &str) -> Vec<String> {
    if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text) {
        return items.iter().filter_map(Value::as_str).map(str::to_owned).collect();
    }
    text.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

fn normalized_tags(tags: Vec<String>) -> CmsResult<Vec<String>> {
    cabinet_core::metadata::normalize_tags(tags).map_err(|err| CmsError::field("tags", err.to_string()))
}

/// A string field of a JSON body: absent, null, or text; anything else is that field's 400.
fn text_field(body: &Map<String, Value>, field: &str) -> CmsResult<Option<Option<String>>> {
    match body.get(field) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(text)) => Ok(Some(Some(text.clone()))),
        Some(_) => Err(CmsError::field(field, "Not a valid string.")),
    }
}

/// A JSON object body, read up to `limit` bytes.
async fn json_object(request: Request, limit: usize) -> CmsResult<Map<String, Value>> {
    let bytes = axum::body::to_bytes(request.into_body(), limit).await.map_err(|_| {
        CmsError::detail(StatusCode::PAYLOAD_TOO_LARGE, format!("Request body is larger than {limit} bytes."))
    })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(CmsError::field(
            "non_field_errors",
            format!("Invalid data. Expected a dictionary, but got {}.", json_type(&other)),
        )),
        Err(err) => Err(CmsError::detail(StatusCode::BAD_REQUEST, format!("JSON parse error - {err}"))),
    }
}

fn content_type(headers: &HeaderMap) -> String {
    headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("").to_ascii_lowercase()
}

/// Upload a file: `multipart/form-data` with a `file` field (streamed; other fields first), or
/// JSON with `file_base64`. `organization_id` is required (body, query, or the
/// `X-Cabinet-Workspace` header).
#[utoipa::path(
    post, path = "/compat/cms/files/", tag = "compat-cms",
    params(OrganizationParams),
    request_body(
        description = "multipart/form-data (`organization_id`, `file_name`, `tags` before `file`) or JSON with `file_base64`",
        content((CmsMultipartUpload = "multipart/form-data"), (CmsBase64Upload = "application/json"))
    ),
    responses(
        (status = 201, body = CmsFile),
        (status = 400, description = "A missing or invalid field", body = CmsFieldErrors),
        (status = 401, body = CmsDetail),
        (status = 403, description = "A read-only key", body = CmsDetail),
        (status = 404, description = "Another organization", body = CmsDetail),
        (status = 413, description = "Larger than the direct upload limit, or a form field (8 KiB each, 32 before `file`) over its bound", body = CmsDetail),
        (status = 415, body = CmsDetail),
        (status = 507, description = "The organization's storage quota is exceeded", body = CmsDetail),
    ),
    security(("bearer" = []))
)]
pub async fn upload_file(
    State(state): State<AppState>,
    params: Result<Query<OrganizationParams>, QueryRejection>,
    request: Request,
) -> CmsResult<Response> {
    let params = query(params)?;
    let headers = request.headers().clone();
    // The key is checked before a byte of the body is read; the body only names the organization.
    let key = key(&state, &headers).await?;
    let kind = content_type(&headers);
    let (caller, file, tags) = if kind.starts_with("multipart/form-data") {
        let mut form = Form::read(request, state.cabinet.settings().direct_upload_max_bytes).await?;
        let mut organization = params.organization_id;
        let mut name: Option<String> = None;
        let mut tags: Vec<String> = Vec::new();
        loop {
            match form.next().await? {
                None => {
                    uploader(key, &headers, organization)?;
                    return Err(CmsError::field("file", "No file was submitted."));
                }
                Some(Part::File(field)) => {
                    let caller = uploader(key, &headers, organization)?;
                    let tags = normalized_tags(tags)?;
                    let name = name.unwrap_or_else(|| field.file_name().unwrap_or("").to_owned());
                    let mime_type = field
                        .content_type()
                        .filter(|mime| *mime != "application/octet-stream")
                        .map(str::to_owned);
                    let meta = DirectUpload { name, mime_type, ..Default::default() };
                    let body = field.map_err(std::io::Error::other).boxed();
                    let file = state.cabinet.upload_direct(&caller, meta, body).await?;
                    break (caller, file, tags);
                }
                Some(Part::Text(field)) => match field.name.as_str() {
                    "organization_id" => organization = Some(field.text()?.to_owned()),
                    "file_name" => name = Some(field.text()?.to_owned()).filter(|n| !n.is_empty()),
                    "tags" => tags.extend(split_tags(field.text()?)),
                    _ => {}
                },
            }
        }
    } else if kind.starts_with("application/json") {
        let limit = state.limits.json_upload_bytes;
        let body = json_object(request, limit).await?;
        let organization = match body.get("organization_id") {
            Some(Value::String(id)) => Some(id.clone()),
            None | Some(Value::Null) => params.organization_id,
            Some(_) => return Err(CmsError::field("organization_id", "Not a valid string.")),
        };
        let caller = uploader(key, &headers, organization)?;
        let content = match body.get("file_base64") {
            Some(Value::String(content)) => content,
            Some(Value::Null) | None => {
                return Err(CmsError::field(
                    "file",
                    "No file was submitted: send `file` (multipart) or `file_base64`.",
                ))
            }
            Some(_) => return Err(CmsError::field("file_base64", "Not a valid string.")),
        };
        let name = match text_field(&body, "file_name")? {
            Some(Some(name)) if !name.is_empty() => name,
            _ => return Err(CmsError::field("file_name", "This field is required with file_base64.")),
        };
        let tags = normalized_tags(tags_value(body.get("tags").unwrap_or(&Value::Null))?)?;
        let (bytes, mime_type) = decode_base64(content)
            .ok_or_else(|| CmsError::field("file_base64", "Invalid base64-encoded data."))?;
        let meta = DirectUpload { name, mime_type, ..Default::default() };
        let file = state.cabinet.upload_direct(&caller, meta, byte_stream(bytes)).await?;
        (caller, file, tags)
    } else {
        return Err(CmsError::detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Unsupported media type \"{kind}\" in request."),
        ));
    };
    let file = if tags.is_empty() {
        file
    } else {
        let change = FileChange { tags: Some(tags), ..FileChange::default() };
        state.cabinet.update_file(&caller, &file.id, change).await?
    };
    Ok((StatusCode::CREATED, Json(render(&state, &caller, file).await?)).into_response())
}

/// A file's details, including where it is used.
#[utoipa::path(
    get, path = "/compat/cms/files/{api_id}/", tag = "compat-cms",
    params(("api_id" = String, Path, description = "The file's api_id"), OrganizationParams),
    responses((status = 200, body = CmsFile), (status = 401, body = CmsDetail), (status = 404, body = CmsDetail)),
    security(("bearer" = []))
)]
pub async fn get_file(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    params: Result<Query<OrganizationParams>, QueryRejection>,
) -> CmsResult<Json<CmsFile>> {
    let params = query(params)?;
    let caller = caller(&state, &headers, params.organization_id).await?;
    let file = state.cabinet.readable_file(&caller, &file_id(&id)?).await?;
    Ok(Json(render(&state, &caller, file).await?))
}

/// Update alt text, caption, copyright and tags.
#[utoipa::path(
    patch, path = "/compat/cms/files/{api_id}/", tag = "compat-cms",
    params(("api_id" = String, Path, description = "The file's api_id"), OrganizationParams),
    request_body = CmsFilePatch,
    responses(
        (status = 200, body = CmsFile),
        (status = 400, body = CmsFieldErrors),
        (status = 401, body = CmsDetail),
        (status = 403, body = CmsDetail),
        (status = 404, body = CmsDetail),
        (status = 413, body = CmsDetail),
    ),
    security(("bearer" = []))
)]
pub async fn update_file(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    params: Result<Query<OrganizationParams>, QueryRejection>,
    request: Request,
) -> CmsResult<Json<CmsFile>> {
    let params = query(params)?;
    let headers = request.headers().clone();
    let caller = caller(&state, &headers, params.organization_id).await?;
    let id = file_id(&id)?;
    let body = json_object(request, state.limits.json_body_bytes).await?;
    let clear_empty = |text: Option<Option<String>>| text.map(|t| t.filter(|t| !t.is_empty()));
    let change = FileChange {
        alt_text: clear_empty(text_field(&body, "image_alt_text")?),
        caption: clear_empty(text_field(&body, "caption")?),
        copyright: clear_empty(text_field(&body, "copyright")?),
        tags: match body.get("tags") {
            None => None,
            Some(value) => Some(normalized_tags(tags_value(value)?)?),
        },
        ..FileChange::default()
    };
    let file = state.cabinet.update_file(&caller, &id, change).await?;
    Ok(Json(render(&state, &caller, file).await?))
}

/// Whether to delete a file in use.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    pub organization_id: Option<String>,
    /// `true` deletes even a file in use (default false).
    pub force: Option<String>,
}

/// Delete a file (to Cabinet's trash); a file in use is refused with 409 unless `force=true`.
#[utoipa::path(
    delete, path = "/compat/cms/files/{api_id}/", tag = "compat-cms",
    params(("api_id" = String, Path, description = "The file's api_id"), DeleteParams),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = CmsDetail),
        (status = 403, body = CmsDetail),
        (status = 404, body = CmsDetail),
        (status = 409, description = "In use; `usage` says by what", body = CmsInUse),
    ),
    security(("bearer" = []))
)]
pub async fn delete_file(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    params: Result<Query<DeleteParams>, QueryRejection>,
) -> CmsResult<Response> {
    let params = query(params)?;
    let caller = caller(&state, &headers, params.organization_id).await?;
    let id = file_id(&id)?;
    let force = matches!(
        params.force.as_deref().map(str::to_ascii_lowercase).as_deref(),
        Some("true" | "1" | "yes" | "on")
    );
    match state.cabinet.delete_file(&caller, &id, force, false).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(err) if err.code() == Code::FileInUse => {
            let usage: Vec<CmsUsage> =
                state.cabinet.list_references(&caller, &id).await?.into_iter().map(CmsUsage::from).collect();
            let body = CmsInUse { detail: format!("File is in use by {} objects", usage.len()), usage };
            Ok((StatusCode::CONFLICT, Json(body)).into_response())
        }
        Err(err) => Err(err.into()),
    }
}

/// Query parameters, or the dialect's 400.
fn query<T>(params: Result<Query<T>, QueryRejection>) -> CmsResult<T> {
    params
        .map(|Query(params)| params)
        .map_err(|err| CmsError::detail(StatusCode::BAD_REQUEST, err.body_text()))
}
