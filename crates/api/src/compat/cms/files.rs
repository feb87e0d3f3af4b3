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
use cabinet_core::{Caller, Code, Error, FileId, FileRecord};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::IntoParams;

use super::auth::{caller, key, uploader};
use super::error::{CmsDetail, CmsError, CmsFieldErrors, CmsResult};
use super::shapes::{
    CmsBase64Upload, CmsFile, CmsFilePage, CmsFilePatch, CmsFormPatch, CmsInUse, CmsMultipartUpload, CmsUsage,
};
use crate::compat::base64_body::{byte_stream, decode_base64};
use crate::form::{Form, Part};
use crate::AppState;

/// Renders one file: its references as `usage` and a `file_url` that lasts (a permalink: clients
/// store it and embed it in pages), which works while the file is live.
async fn render(state: &AppState, caller: &Caller, file: FileRecord) -> CmsResult<CmsFile> {
    let usage = state.cabinet.list_references(caller, &file.id).await?;
    let file_url = state.cabinet.permalink_of(caller, &file, false).await?;
    let links = state.cabinet.links_for_one(&file).await?;
    Ok(CmsFile::new(file, usage, file_url, &links))
}

/// The live file a path's `{api_id}` names: a Cabinet file id, or the `api_id` its client chose.
async fn file_at(state: &AppState, caller: &Caller, api_id: &str) -> CmsResult<FileRecord> {
    let found = if api_id.starts_with(FileId::PREFIX) {
        let id = FileId::parse(api_id).map_err(|_| CmsError::not_found())?;
        state.cabinet.readable_file(caller, &id).await
    } else {
        state.cabinet.file_by_external_id(caller, api_id).await
    };
    Ok(found?)
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
    /// Files created at or after this: a date (`2025-06-01`, from its start) or a date-time
    /// (ISO 8601; UTC when it names no offset). django-filter's range spelling.
    #[param(schema_with = date_or_date_time)]
    pub created_at_after: Option<String>,
    /// Files created at or before this: a date (to its end) or a date-time.
    #[param(schema_with = date_or_date_time)]
    pub created_at_before: Option<String>,
    /// The same as `created_at_after` (django-filter's lookup spelling).
    #[serde(rename = "created_at__gte")]
    #[param(schema_with = date_or_date_time)]
    pub created_at_gte: Option<String>,
    /// The same as `created_at_before`.
    #[serde(rename = "created_at__lte")]
    #[param(schema_with = date_or_date_time)]
    pub created_at_lte: Option<String>,
    /// 1-based page number, or `last`.
    pub page: Option<String>,
    /// 1–100, default 50.
    pub page_size: Option<String>,
}

/// The order `ordering` names: its first known field (DRF's OrderingFilter drops fields it does not
/// know; later fields would only break ties, which the file id does here), else newest first.
fn ordering(raw: Option<&str>) -> Sort {
    raw.unwrap_or("")
        .split(',')
        .find_map(|term| {
            let term = term.trim();
            let (descending, field) = match term.strip_prefix('-') {
                Some(field) => (true, field),
                None => (false, term),
            };
            let key = match field {
                "created_at" => SortKey::CreatedAt,
                "updated_at" => SortKey::UpdatedAt,
                "file_name" => SortKey::Name,
                _ => return None,
            };
            Some(Sort { key, descending })
        })
        .unwrap_or(Sort::NEWEST_FIRST)
}

/// A date or a date-time, as the date-range filters take them (empty: no bound). What the pattern
/// cannot rule out (a day past its month's end) is the parameter's 400.
const DATE_OR_DATE_TIME_PATTERN: &str = concat!(
    r"^$|^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])",
    r"(?:[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?)?$"
);

fn date_or_date_time() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(DATE_OR_DATE_TIME_PATTERN))
        .examples(["2025-06-01", "2025-06-01T12:00:00Z"])
        .build()
}

/// Which end of a date range a bound is.
#[derive(Clone, Copy)]
enum RangeEnd {
    /// Inclusive lower bound: a date starts at its midnight (UTC).
    After,
    /// Inclusive upper bound, returned as the exclusive instant after it: a date runs to its end.
    Before,
}

/// A date-range bound as the core takes it (`created_from` inclusive, `created_to` exclusive), or
/// the 400 of the parameter that holds it.
fn range_bound(param: &str, raw: &str, end: RangeEnd) -> CmsResult<DateTime<Utc>> {
    use chrono::{FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
    let invalid = || CmsError::field(param, "Enter a valid date/time.");
    // chrono's parser is lenient (white space, one-digit fields); the document's pattern is not.
    if !is_date_or_date_time_shaped(raw) {
        return Err(invalid());
    }
    if let Ok(date) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let day = match end {
            RangeEnd::After => date,
            RangeEnd::Before => date.succ_opt().ok_or_else(invalid)?,
        };
        return Ok(day.and_hms_opt(0, 0, 0).ok_or_else(invalid)?.and_utc());
    }
    // `Z`, `±hh:mm`, or nothing (UTC) after the local date-time.
    let (local, offset) = if let Some(local) = raw.strip_suffix('Z') {
        (local, FixedOffset::east_opt(0))
    } else {
        match raw.len().checked_sub(6).filter(|at| raw.is_char_boundary(*at)).map(|at| raw.split_at(at)) {
            Some((local, zone)) if zone.starts_with(['+', '-']) && zone.as_bytes()[3] == b':' => {
                let hours: i32 = zone[1..3].parse().map_err(|_| invalid())?;
                let minutes: i32 = zone[4..].parse().map_err(|_| invalid())?;
                let seconds = (hours * 60 + minutes) * 60;
                (local, FixedOffset::east_opt(if zone.starts_with('-') { -seconds } else { seconds }))
            }
            _ => (raw, FixedOffset::east_opt(0)),
        }
    };
    let offset = offset.ok_or_else(invalid)?;
    let local = local.replacen(' ', "T", 1);
    let local = NaiveDateTime::parse_from_str(&local, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(&local, "%Y-%m-%dT%H:%M"))
        .map_err(|_| invalid())?;
    let instant = offset.from_local_datetime(&local).single().ok_or_else(invalid)?.with_timezone(&Utc);
    Ok(match end {
        RangeEnd::After => instant,
        // Times are kept to the millisecond: the next one is the first instant past the bound.
        RangeEnd::Before => {
            cabinet_core::clock::truncate_to_millis(instant) + chrono::Duration::milliseconds(1)
        }
    })
}

/// Whether `raw` has the shape `DATE_OR_DATE_TIME_PATTERN` spells (digits where digits go, each
/// field its width); whether each field is in range is chrono's to say.
fn is_date_or_date_time_shaped(raw: &str) -> bool {
    fn digits(text: &str) -> bool {
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
    }
    fn fields(text: &str, widths: &[usize], separator: char) -> bool {
        let parts: Vec<&str> = text.split(separator).collect();
        parts.len() == widths.len()
            && parts.iter().zip(widths).all(|(part, width)| part.len() == *width && digits(part))
    }
    let Some((date, time)) = raw.get(..10).map(|date| (date, &raw[10..])) else {
        return false;
    };
    if !fields(date, &[4, 2, 2], '-') {
        return false;
    }
    let Some(time) = time.strip_prefix(['T', ' ']) else {
        return time.is_empty();
    };
    let time = match time.strip_suffix('Z') {
        Some(local) => local,
        None => match time.len().checked_sub(6).and_then(|at| time.get(at..).map(|zone| (&time[..at], zone)))
        {
            Some((local, zone)) if zone.starts_with(['+', '-']) && fields(&zone[1..], &[2, 2], ':') => local,
            _ => time,
        },
    };
    let (clock, fraction) = match time.split_once('.') {
        Some((clock, fraction)) => (clock, Some(fraction)),
        None => (time, None),
    };
    let clock_ok = fields(clock, &[2, 2], ':') || fields(clock, &[2, 2, 2], ':');
    let fraction_ok = fraction.is_none_or(|f| f.len() <= 9 && digits(f) && clock.len() == 8);
    clock_ok && fraction_ok
}

/// A range's inclusive start and exclusive end, each optional.
type DateRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The created-at range a list names, in either spelling (the lookup spelling wins when both are
/// given).
fn created_range(params: &ListParams) -> CmsResult<DateRange> {
    let bound = |pairs: [(&str, &Option<String>); 2], end| {
        pairs
            .into_iter()
            .rev()
            .filter_map(|(param, raw)| raw.as_deref().filter(|r| !r.is_empty()).map(|raw| (param, raw)))
            .map(|(param, raw)| range_bound(param, raw, end))
            .next()
            .transpose()
    };
    Ok((
        bound(
            [("created_at_after", &params.created_at_after), ("created_at__gte", &params.created_at_gte)],
            RangeEnd::After,
        )?,
        bound(
            [("created_at_before", &params.created_at_before), ("created_at__lte", &params.created_at_lte)],
            RangeEnd::Before,
        )?,
    ))
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
    let base = format!("{}{}", state.cabinet.url_base(), uri.path());
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
        (status = 400, description = "An invalid tag or date", body = CmsFieldErrors),
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
    let page_size = PageSize::LISTS.clamped(params.page_size.as_deref());
    let tags = crate::v1::params::tag_list(params.tags.as_deref())
        .map_err(|err| CmsError::field("tags", err.to_string()))?;
    let (created_from, created_to) = created_range(&params)?;
    let filter = FileFilter {
        name_contains: cabinet_core::listing::name_query(params.file_name.as_deref()),
        tags_all: tags,
        created_from,
        created_to,
        ..FileFilter::default()
    };
    let sort = ordering(params.ordering.as_deref());
    let list_page = |page: u64| {
        let offset = (page - 1).saturating_mul(u64::from(page_size));
        let paging = Paging { limit: page_size, start: Start::Offset(offset) };
        state.cabinet.list_files(&caller, filter.clone(), sort, paging)
    };
    let (page, listed) = match params.page.as_deref() {
        // DRF's `last_page_strings`: the last page, found from the total of the first.
        Some("last") => {
            let first = list_page(1).await?;
            let last = first.total.div_ceil(u64::from(page_size)).max(1);
            if last == 1 {
                (1, first)
            } else {
                (last, list_page(last).await?)
            }
        }
        raw => {
            let page = match raw {
                None => 1,
                Some(raw) => raw.parse::<u64>().ok().filter(|page| *page >= 1).ok_or_else(invalid_page)?,
            };
            (page, list_page(page).await?)
        }
    };
    let offset = (page - 1).saturating_mul(u64::from(page_size));
    if page > 1 && listed.items.is_empty() {
        return Err(invalid_page());
    }
    let mut usage = state.cabinet.references_of(&caller, &listed.items).await?;
    let mut file_urls = state.cabinet.permalinks_of(&caller, &listed.items).await?;
    let links = state.cabinet.links_for(&caller.workspace_id, &listed.items).await?;
    let mut results = Vec::with_capacity(listed.items.len());
    for file in listed.items {
        let used_by = usage.remove(&file.id).unwrap_or_default();
        let file_url =
            file_urls.remove(&file.id).ok_or_else(|| Error::internal("a listed file has no permalink"))?;
        results.push(CmsFile::new(file, used_by, file_url, &links));
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
    let bytes = read_limited(request, limit).await?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(CmsError::field(
            "non_field_errors",
            format!("Invalid data. Expected a dictionary, but got {}.", json_type(&other)),
        )),
        Err(err) => Err(CmsError::detail(StatusCode::BAD_REQUEST, format!("JSON parse error - {err}"))),
    }
}

/// A PATCH body as Django REST framework's parsers take it: JSON, `multipart/form-data` or
/// `application/x-www-form-urlencoded` (an empty body is no change). From a form, every `tags`
/// field adds its tags (a JSON list or comma-separated) and any other field's last value counts,
/// as a `QueryDict` gives them; a file part and what follows it are ignored.
async fn patch_body(request: Request, limit: usize) -> CmsResult<Map<String, Value>> {
    let kind = content_type(request.headers());
    let mut body = Map::new();
    let mut tags: Option<Vec<Value>> = None;
    let mut add = |name: &str, value: &str| match name {
        "tags" => tags.get_or_insert_with(Vec::new).extend(split_tags(value).into_iter().map(Value::String)),
        _ => {
            body.insert(name.to_owned(), Value::String(value.to_owned()));
        }
    };
    if kind.starts_with("application/json") {
        return json_object(request, limit).await;
    } else if kind.starts_with("multipart/form-data") {
        // No file is taken here: the form is text fields alone, bounded by their bytes.
        let mut form = Form::read_text_only(request).await?;
        while let Some(Part::Text(field)) = form.next().await? {
            check_field_name(&field.name)?;
            add(&field.name, field.text()?);
        }
    } else if kind.starts_with("application/x-www-form-urlencoded") {
        let bytes = read_limited(request, limit).await?;
        for pair in bytes.split(|b| *b == b'&').filter(|pair| !pair.is_empty()) {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            let name = form_decoded(name)?;
            check_field_name(&name)?;
            add(&name, &form_decoded(value)?);
        }
    } else {
        let bytes = read_limited(request, limit).await?;
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(unsupported_media_type(&kind));
        }
    }
    if let Some(tags) = tags {
        body.insert("tags".to_owned(), Value::Array(tags));
    }
    Ok(body)
}

/// Refuses a form field name with an ASCII control character but tab, CR and LF (those a form
/// encoding escapes): no multipart header can carry one, so both kinds of form take the same
/// names (`input_schema::form_field_name`).
fn check_field_name(name: &str) -> CmsResult<()> {
    if name.chars().any(|c| matches!(c, '\0'..='\x08' | '\x0b' | '\x0c' | '\x0e'..='\x1f' | '\x7f')) {
        return Err(CmsError::detail(
            StatusCode::BAD_REQUEST,
            "Form parse error - a field name holds a control character.",
        ));
    }
    Ok(())
}

/// One name or value of an `application/x-www-form-urlencoded` body: `+` is a space, then
/// percent-decoded, as UTF-8.
fn form_decoded(raw: &[u8]) -> CmsResult<String> {
    let spaced: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    percent_encoding::percent_decode(&spaced)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| CmsError::detail(StatusCode::BAD_REQUEST, "Form parse error - the body is not UTF-8."))
}

/// The body, up to `limit` bytes.
async fn read_limited(request: Request, limit: usize) -> CmsResult<bytes::Bytes> {
    axum::body::to_bytes(request.into_body(), limit).await.map_err(|_| {
        CmsError::detail(StatusCode::PAYLOAD_TOO_LARGE, format!("Request body is larger than {limit} bytes."))
    })
}

fn unsupported_media_type(kind: &str) -> CmsError {
    CmsError::detail(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("Unsupported media type \"{kind}\" in request."),
    )
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
        (status = 409, description = "The api_id is taken: `{\"api_id\": [\"...\"]}`", body = CmsFieldErrors),
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
        let mut api_id: Option<String> = None;
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
                    let file = state.cabinet.upload_direct_as(&caller, meta, api_id, body).await?;
                    break (caller, file, tags);
                }
                Some(Part::Text(field)) => match field.name.as_str() {
                    "organization_id" => organization = Some(field.text()?.to_owned()),
                    "file_name" => name = Some(field.text()?.to_owned()).filter(|n| !n.is_empty()),
                    "api_id" => api_id = Some(field.text()?.to_owned()).filter(|id| !id.is_empty()),
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
        let api_id = text_field(&body, "api_id")?.flatten().filter(|id| !id.is_empty());
        let (bytes, mime_type) = decode_base64(content)
            .ok_or_else(|| CmsError::field("file_base64", "Invalid base64-encoded data."))?;
        let meta = DirectUpload { name, mime_type, ..Default::default() };
        let file = state.cabinet.upload_direct_as(&caller, meta, api_id, byte_stream(bytes)).await?;
        (caller, file, tags)
    } else {
        return Err(unsupported_media_type(&kind));
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
    let file = file_at(&state, &caller, &id).await?;
    Ok(Json(render(&state, &caller, file).await?))
}

/// Update alt text, caption, copyright and tags.
#[utoipa::path(
    patch, path = "/compat/cms/files/{api_id}/", tag = "compat-cms",
    params(("api_id" = String, Path, description = "The file's api_id"), OrganizationParams),
    request_body(
        description = "JSON, or a form (multipart or urlencoded) as Django REST framework parses it",
        content(
            (CmsFilePatch = "application/json"),
            (CmsFormPatch = "application/x-www-form-urlencoded"),
            (CmsFormPatch = "multipart/form-data")
        )
    ),
    responses(
        (status = 200, body = CmsFile),
        (status = 400, body = CmsFieldErrors),
        (status = 401, body = CmsDetail),
        (status = 403, body = CmsDetail),
        (status = 404, body = CmsDetail),
        (status = 413, body = CmsDetail),
        (status = 415, body = CmsDetail),
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
    let body = patch_body(request, state.limits.json_body_bytes).await?;
    let id = file_at(&state, &caller, &id).await?.id;
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
        (
            status = 409, description = "In use; `usage` says by what", body = CmsInUse,
            example = json!({
                "detail": "File is in use by 1 objects",
                "usage": [{"model": "edition", "instance_id": "42", "instance_name": "Summer Festival 2025"}]
            })
        ),
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
    let id = file_at(&state, &caller, &id).await?.id;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_bound_reads_every_spelling_its_pattern_documents() {
        let at = |raw: &str, end| range_bound("p", raw, end).map(|t| t.to_rfc3339()).map_err(|e| e.body);
        assert_eq!(at("2025-06-01", RangeEnd::After).unwrap(), "2025-06-01T00:00:00+00:00");
        assert_eq!(at("2025-06-01", RangeEnd::Before).unwrap(), "2025-06-02T00:00:00+00:00");
        for (raw, utc) in [
            ("2025-06-01T12:30", "2025-06-01T12:30:00+00:00"),
            ("2025-06-01 12:30:15", "2025-06-01T12:30:15+00:00"),
            ("2025-06-01T12:30:15.250Z", "2025-06-01T12:30:15.250+00:00"),
            ("2025-06-01T12:30Z", "2025-06-01T12:30:00+00:00"),
            ("2025-06-01T12:30+02:00", "2025-06-01T10:30:00+00:00"),
            ("2025-06-01T12:30:00.123456789-01:30", "2025-06-01T14:00:00.123456789+00:00"),
        ] {
            assert_eq!(at(raw, RangeEnd::After).unwrap(), utc, "{raw}");
        }
        assert_eq!(at("2025-06-01T12:30:15Z", RangeEnd::Before).unwrap(), "2025-06-01T12:30:15.001+00:00");
        for bad in [
            "2025-02-30",
            "yesterday",
            "2025-06-01T25:00",
            "2025-06-01T12:30+0200",
            " 2025-06-01",
            "2025-6-1",
            "2025-06-01T12:30.5",
            "2025-06-01T12:30:00.1234567890",
            "2025-06-01T",
        ] {
            assert!(at(bad, RangeEnd::After).is_err(), "{bad}");
        }
    }
}
