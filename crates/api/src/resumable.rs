//! The IETF resumable-upload draft (draft-ietf-httpbis-resumable-upload, "Resumable Uploads for
//! HTTP") at `/resumable/v1/`, over the same core resumable uploads as tus (`crate::tus`):
//! creation (`POST` with `Upload-Complete`, the length from `Upload-Length` or from
//! `Content-Length` with `Upload-Complete: ?1`), offset retrieval (`HEAD`), append (`PATCH` with
//! `application/partial-upload`), cancellation (`DELETE`), limits in `Upload-Limit`. No `104`
//! interim response is sent (the Location comes with the final `201`), so a client whose
//! creation request is cut before its answer starts again.
//!
//! Interop versions 6 to 8 (`Upload-Draft-Interop-Version`) are accepted and echoed; a request
//! without the header is taken as the current draft. The file is named by `Content-Disposition`
//! (`filename`), typed by the creation request's `Content-Type`, put in the folder named by the
//! `folder_id` query parameter; a whole-file sha256 may be given as `Repr-Digest: sha-256=:…:`.
//! A completed upload answers `200` with the file's JSON, as `POST /v1/files` would.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use base64::Engine;
use cabinet_core::resumable::{Append, NewResumable, ResumableState};
use cabinet_core::{Caller, Code, Error, FolderId, UploadId};
use futures::TryStreamExt;

use crate::auth::Authenticated;
use crate::error::{ApiError, Path};
use crate::v1::content_length;
use crate::v1::shapes::FileJson;
use crate::AppState;

/// Where creation requests go; upload resources are `{PREFIX}{upload_id}`.
pub const PREFIX: &str = "/resumable/v1/";
/// The mount, for the layers that treat the protocol apart (CORS).
pub const MOUNT: &str = "/resumable/";
/// The media type of appended bytes.
const PARTIAL_UPLOAD: &str = "application/partial-upload";
/// The interop versions spoken (the draft's own numbering of its wire formats).
const INTEROP_VERSIONS: std::ops::RangeInclusive<u32> = 6..=8;

const INTEROP: HeaderName = HeaderName::from_static("upload-draft-interop-version");
const UPLOAD_COMPLETE: HeaderName = HeaderName::from_static("upload-complete");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
const UPLOAD_LIMIT: HeaderName = HeaderName::from_static("upload-limit");
const REPR_DIGEST: HeaderName = HeaderName::from_static("repr-digest");

/// The routes (outside the OpenAPI documents, like tus).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/resumable/v1", post(create).options(discover))
        .route("/resumable/v1/", post(create).options(discover))
        .route("/resumable/v1/{upload_id}", any(upload))
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// An error with the status the draft gives it, in the native shape; a 409 carries the offset.
struct DraftError(Error, Option<u64>);

impl From<Error> for DraftError {
    fn from(err: Error) -> Self {
        cabinet_core::audit::note_error(&err);
        DraftError(err, None)
    }
}

impl From<ApiError> for DraftError {
    fn from(err: ApiError) -> Self {
        DraftError(err.0, None)
    }
}

impl IntoResponse for DraftError {
    fn into_response(self) -> Response {
        let status = match self.0.code() {
            Code::UploadNotLive => StatusCode::GONE,
            Code::UploadInProgress => StatusCode::LOCKED,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::ChunkChecksumMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            _ => crate::error::status_of(self.0.kind()),
        };
        let mut response = ApiError(self.0).into_response();
        *response.status_mut() = status;
        if let Some(offset) = self.1 {
            response.headers_mut().insert(UPLOAD_OFFSET, HeaderValue::from(offset));
        }
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

type DraftResult = Result<Response, DraftError>;

/// The interop version the request speaks (echoed in the answer), or a refusal.
fn interop(headers: &HeaderMap) -> Result<Option<HeaderValue>, DraftError> {
    let Some(value) = headers.get(&INTEROP) else { return Ok(None) };
    let version = value.to_str().ok().and_then(|v| v.trim().parse::<u32>().ok());
    match version {
        Some(version) if INTEROP_VERSIONS.contains(&version) => Ok(Some(value.clone())),
        _ => Err(Error::bad_request(
            Code::UnsupportedVersion,
            format!(
                "Upload-Draft-Interop-Version {} to {} are spoken",
                INTEROP_VERSIONS.start(),
                INTEROP_VERSIONS.end()
            ),
        )
        .into()),
    }
}

/// `Upload-Complete`, a structured boolean (`?1` / `?0`); anything else is ignored.
fn upload_complete(headers: &HeaderMap) -> Option<bool> {
    match headers.get(&UPLOAD_COMPLETE)?.to_str().ok()?.trim() {
        "?1" => Some(true),
        "?0" => Some(false),
        _ => None,
    }
}

/// A structured integer header; anything else is ignored, as the draft says.
fn integer(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    let text = headers.get(name)?.to_str().ok()?.trim();
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok()).flatten()
}

fn limits(headers: &mut HeaderMap, state: &AppState, upload: Option<&ResumableState>) {
    let mut value = format!("max-size={}", state.cabinet.settings().max_file_bytes);
    if let Some(upload) = upload.filter(|upload| upload.file.is_none()) {
        let age = (upload.upload.expires_at - state.cabinet.now()).num_seconds().max(0);
        value.push_str(&format!(", max-age={age}"));
    }
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(UPLOAD_LIMIT, value);
    }
}

/// `OPTIONS`: resumable uploads are accepted, with these limits.
async fn discover(State(state): State<AppState>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(HeaderName::from_static("accept-patch"), HeaderValue::from_static(PARTIAL_UPLOAD));
    limits(response.headers_mut(), &state, None);
    response
}

/// `POST` with `Upload-Complete`: creates the upload resource with the request's bytes.
async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> DraftResult {
    let version = interop(&headers)?;
    let complete = upload_complete(&headers).ok_or_else(|| {
        Error::bad_request(Code::InvalidSize, "a resumable upload is started with Upload-Complete: ?0 or ?1")
    })?;
    let sent = content_length(&headers);
    let length = match (integer(&headers, &UPLOAD_LENGTH), complete.then_some(sent).flatten()) {
        (Some(declared), Some(sent)) if declared != sent => {
            return Err(Error::bad_request(
                Code::InvalidSize,
                "Upload-Length and the Content-Length of a complete upload differ",
            )
            .into())
        }
        (declared, sent) => declared.or(sent),
    };
    let name = filename(&headers).ok_or_else(|| {
        Error::bad_request(Code::InvalidName, "name the file: Content-Disposition: inline; filename=\"…\"")
    })?;
    let mime_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .filter(|mime| !mime.is_empty() && !mime.starts_with(PARTIAL_UPLOAD));
    let folder_id = query.get("folder_id").map(|id| FolderId::parse(id)).transpose()?;
    let upload = state
        .cabinet
        .start_resumable(
            &caller,
            NewResumable { name, length, mime_type, sha256: digest(&headers)?, folder_id, expires_in: None },
        )
        .await?;
    let location = format!("{}{PREFIX}{}", state.cabinet.url_base(), upload.id);
    let append = Append { offset: 0, length, sha256: None, content_length: sent, completes: complete };
    let answer = match state.cabinet.append_resumable(&caller, &upload.id, append, stream_of(body)).await {
        Ok(appended) => respond(&state, &appended, StatusCode::CREATED).await,
        Err(err) => Err(DraftError(err, None)),
    };
    let mut response = answer.unwrap_or_else(IntoResponse::into_response);
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    echo(response.headers_mut(), version);
    Ok(response)
}

/// The answer to an append or a creation: the file's JSON once complete, else where it stands.
async fn respond(state: &AppState, appended: &ResumableState, incomplete: StatusCode) -> DraftResult {
    let mut response = match &appended.file {
        Some(file) => {
            let json = FileJson::of(file.clone(), &state.cabinet).await?;
            (StatusCode::OK, axum::Json(json)).into_response()
        }
        None => incomplete.into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(UPLOAD_OFFSET, HeaderValue::from(appended.offset));
    let complete = if appended.file.is_some() { "?1" } else { "?0" };
    headers.insert(UPLOAD_COMPLETE, HeaderValue::from_static(complete));
    limits(headers, state, Some(appended));
    Ok(response)
}

/// `HEAD`, `PATCH` and `DELETE` of an upload resource.
async fn upload(
    State(state): State<AppState>,
    Path(upload_id): Path<String>,
    method: Method,
    headers: HeaderMap,
    request: Request,
) -> DraftResult {
    let version = interop(&headers)?;
    if method == Method::OPTIONS {
        return Ok(discover(State(state)).await);
    }
    if ![Method::HEAD, Method::PATCH, Method::DELETE].contains(&method) {
        let mut refused = ApiError(Error::bad_request(
            Code::MethodNotAllowed,
            "an upload resource takes HEAD, PATCH, DELETE and OPTIONS",
        ))
        .into_response();
        *refused.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        refused.headers_mut().insert(header::ALLOW, HeaderValue::from_static("HEAD, PATCH, DELETE, OPTIONS"));
        return Ok(refused);
    }
    let (mut parts, body) = request.into_parts();
    let Authenticated(caller) =
        <Authenticated as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, &state)
            .await?;
    let id = UploadId::parse(&upload_id)?;
    let mut response = match method {
        Method::HEAD => {
            let current = state.cabinet.resumable_state(&caller, &id).await?;
            let mut response = StatusCode::NO_CONTENT.into_response();
            let headers = response.headers_mut();
            headers.insert(UPLOAD_OFFSET, HeaderValue::from(current.offset));
            let complete = if current.file.is_some() { "?1" } else { "?0" };
            headers.insert(UPLOAD_COMPLETE, HeaderValue::from_static(complete));
            if let Some(length) = current.length {
                headers.insert(UPLOAD_LENGTH, HeaderValue::from(length));
            }
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            limits(headers, &state, Some(&current));
            response
        }
        Method::PATCH => append(&state, &caller, &id, &headers, body).await?,
        _ => {
            state.cabinet.terminate_resumable(&caller, &id).await?;
            StatusCode::NO_CONTENT.into_response()
        }
    };
    echo(response.headers_mut(), version);
    Ok(response)
}

async fn append(
    state: &AppState,
    caller: &Caller,
    id: &UploadId,
    headers: &HeaderMap,
    body: Body,
) -> DraftResult {
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !media.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(PARTIAL_UPLOAD) {
        return Err(Error::bad_request(
            Code::UnsupportedMediaType,
            "append with Content-Type: application/partial-upload",
        )
        .into());
    }
    let offset = integer(headers, &UPLOAD_OFFSET)
        .ok_or_else(|| Error::bad_request(Code::InvalidOffset, "send Upload-Offset"))?;
    let complete = upload_complete(headers)
        .ok_or_else(|| Error::bad_request(Code::InvalidSize, "send Upload-Complete: ?0 or ?1"))?;
    let sent = content_length(headers);
    let length =
        integer(headers, &UPLOAD_LENGTH).or(if complete { sent.map(|sent| offset + sent) } else { None });
    let append = Append { offset, length, sha256: None, content_length: sent, completes: complete };
    match state.cabinet.append_resumable(caller, id, append, stream_of(body)).await {
        Ok(appended) => respond(state, &appended, StatusCode::NO_CONTENT).await,
        Err(err) if err.code() == Code::OffsetMismatch => {
            let current = state.cabinet.resumable_state(caller, id).await.ok().map(|now| now.offset);
            Err(DraftError(err, current))
        }
        Err(err) => Err(err.into()),
    }
}

fn echo(headers: &mut HeaderMap, version: Option<HeaderValue>) {
    if let Some(version) = version {
        headers.insert(INTEROP, version);
    }
}

/// The file name of `Content-Disposition` (`filename*=UTF-8''…` preferred, then `filename`).
fn filename(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_DISPOSITION)?.to_str().ok()?;
    let mut plain = None;
    for parameter in value.split(';').map(str::trim) {
        let Some((key, raw)) = parameter.split_once('=') else { continue };
        match key.trim().to_ascii_lowercase().as_str() {
            "filename*" => {
                let encoded =
                    raw.trim().strip_prefix("UTF-8''").or_else(|| raw.trim().strip_prefix("utf-8''"))?;
                return percent_encoding::percent_decode_str(encoded)
                    .decode_utf8()
                    .ok()
                    .map(|name| name.into_owned());
            }
            "filename" => plain = Some(raw.trim().trim_matches('"').to_owned()),
            _ => {}
        }
    }
    plain.filter(|name| !name.is_empty())
}

/// `Repr-Digest: sha-256=:<base64>:` (RFC 9530) as lowercase hex; other algorithms are ignored.
fn digest(headers: &HeaderMap) -> Result<Option<String>, DraftError> {
    let Some(value) = headers.get(&REPR_DIGEST).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    for member in value.split(',').map(str::trim) {
        let Some(encoded) = member.strip_prefix("sha-256=:").and_then(|rest| rest.strip_suffix(':')) else {
            continue;
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .filter(|bytes| bytes.len() == 32)
            .ok_or_else(|| {
                Error::bad_request(Code::InvalidSha256, "Repr-Digest's sha-256 must be 32 bytes in base64")
            })?;
        return Ok(Some(bytes.iter().map(|b| format!("{b:02x}")).collect()));
    }
    Ok(None)
}

fn stream_of(body: Body) -> cabinet_core::ByteStream<'static> {
    futures::StreamExt::boxed(body.into_data_stream().map_err(std::io::Error::other))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_name_comes_from_content_disposition() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("inline; filename=\"a b.jpg\""));
        assert_eq!(filename(&headers).as_deref(), Some("a b.jpg"));
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("inline; filename=\"x.jpg\"; filename*=UTF-8''caf%C3%A9.jpg"),
        );
        assert_eq!(filename(&headers).as_deref(), Some("café.jpg"));
    }

    #[test]
    fn structured_fields_other_than_the_expected_are_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert(UPLOAD_COMPLETE, HeaderValue::from_static("?1"));
        headers.insert(UPLOAD_OFFSET, HeaderValue::from_static("-5"));
        assert_eq!(upload_complete(&headers), Some(true));
        assert_eq!(integer(&headers, &UPLOAD_OFFSET), None);
        headers.insert(UPLOAD_COMPLETE, HeaderValue::from_static("true"));
        assert_eq!(upload_complete(&headers), None);
    }
}
