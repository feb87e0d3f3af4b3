//! tus 1.0.0 (<https://tus.io/protocols/resumable-upload>) at `/tus/v1/`: the core protocol and
//! the extensions creation, creation-with-upload, creation-defer-length, termination, expiration
//! and checksum (sha256), over the core's resumable uploads (`cabinet_core::resumable`). Keys and
//! end-user tokens authenticate as on `/v1` (`Authorization: Bearer …`).
//!
//! `Upload-Metadata` names the file: `filename` (or `name`), `filetype` (or `type`), `folder_id`,
//! and `sha256` (hex of the whole file, verified before the file exists); other keys are ignored.
//! Errors have the native body (`{"error": {"code", "message"}}`) with the status tus clients
//! act on: 409 offset mismatch, 412 wrong version, 415 wrong content type, 460 checksum
//! mismatch, 410 ended (expired, terminated or failed), 423 another request is appending.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, options};
use axum::Router;
use base64::Engine;
use cabinet_core::resumable::{Append, NewResumable, ResumableState};
use cabinet_core::uploads::parse_sha256;
use cabinet_core::{Caller, Code, Error, FolderId, UploadId};
use futures::{StreamExt, TryStreamExt};

use crate::auth::Authenticated;
use crate::error::{ApiError, Path};
use crate::v1::content_length;
use crate::AppState;

/// Where the endpoint is mounted; uploads are `{PREFIX}{upload_id}`.
pub const PREFIX: &str = "/tus/v1/";
/// The mount, for the layers that treat the protocol apart (CORS).
pub const MOUNT: &str = "/tus/";
/// The one version spoken.
pub const VERSION: &str = "1.0.0";
/// The extensions supported.
pub const EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum";
/// The checksum algorithms `Upload-Checksum` may name.
pub const CHECKSUM_ALGORITHMS: &str = "sha256";
/// The content type of appended bytes.
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// The headers a browser may read from the answers (CORS).
pub const EXPOSED_HEADERS: &str = "Location, Upload-Offset, Upload-Length, Upload-Defer-Length, \
     Upload-Expires, Upload-Metadata, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, \
     Tus-Checksum-Algorithm, Upload-Complete, Upload-Draft-Interop-Version, Upload-Limit";

const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
const TUS_VERSION: HeaderName = HeaderName::from_static("tus-version");
const TUS_EXTENSION: HeaderName = HeaderName::from_static("tus-extension");
const TUS_MAX_SIZE: HeaderName = HeaderName::from_static("tus-max-size");
const TUS_CHECKSUM_ALGORITHM: HeaderName = HeaderName::from_static("tus-checksum-algorithm");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
const UPLOAD_DEFER_LENGTH: HeaderName = HeaderName::from_static("upload-defer-length");
const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
const UPLOAD_CHECKSUM: HeaderName = HeaderName::from_static("upload-checksum");
const METHOD_OVERRIDE: HeaderName = HeaderName::from_static("x-http-method-override");
/// The status tus gives a checksum mismatch.
const CHECKSUM_MISMATCH: u16 = 460;

/// The endpoint's routes (outside the OpenAPI documents: a protocol of headers, not JSON).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tus/v1", options(discover).post(create))
        .route("/tus/v1/", options(discover).post(create))
        .route("/tus/v1/{upload_id}", any(upload))
        .layer(middleware::from_fn(protocol))
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// Every answer says `Tus-Resumable`; every request but `OPTIONS` must speak this version.
async fn protocol(request: Request, next: Next) -> Response {
    let version = request.headers().get(&TUS_RESUMABLE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut response = if request.method() != Method::OPTIONS && version.as_deref() != Some(VERSION) {
        let message = match version {
            None => "send Tus-Resumable: 1.0.0".to_owned(),
            Some(other) => format!("tus version {other:?} is not supported; this server speaks {VERSION}"),
        };
        let mut refused =
            refuse(StatusCode::PRECONDITION_FAILED, Error::bad_request(Code::UnsupportedVersion, message));
        refused.headers_mut().insert(TUS_VERSION, HeaderValue::from_static(VERSION));
        refused
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(TUS_RESUMABLE, HeaderValue::from_static(VERSION));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An error in the native shape with the status given.
fn refuse(status: StatusCode, err: Error) -> Response {
    let mut response = ApiError(err).into_response();
    *response.status_mut() = status;
    response
}

/// An error as tus clients expect its status.
pub struct TusError(Error);

impl From<Error> for TusError {
    fn from(err: Error) -> Self {
        cabinet_core::audit::note_error(&err);
        TusError(err)
    }
}

impl From<ApiError> for TusError {
    fn from(err: ApiError) -> Self {
        TusError(err.0)
    }
}

impl IntoResponse for TusError {
    fn into_response(self) -> Response {
        let status = match self.0.code() {
            Code::ChunkChecksumMismatch => StatusCode::from_u16(CHECKSUM_MISMATCH).expect("a valid status"),
            Code::UploadNotLive => StatusCode::GONE,
            Code::UploadInProgress => StatusCode::LOCKED,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => crate::error::status_of(self.0.kind()),
        };
        refuse(status, self.0)
    }
}

type TusResult = Result<Response, TusError>;

/// `OPTIONS`: what this server supports; no key needed.
async fn discover(State(state): State<AppState>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(TUS_VERSION, HeaderValue::from_static(VERSION));
    headers.insert(TUS_EXTENSION, HeaderValue::from_static(EXTENSIONS));
    headers.insert(TUS_MAX_SIZE, HeaderValue::from(state.cabinet.settings().max_file_bytes));
    headers.insert(TUS_CHECKSUM_ALGORITHM, HeaderValue::from_static(CHECKSUM_ALGORITHMS));
    response
}

/// `POST`: creates an upload (reserving `Upload-Length`), with its first bytes when the body is
/// `application/offset+octet-stream`.
async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    body: Body,
) -> TusResult {
    let length = match (header_u64(&headers, &UPLOAD_LENGTH)?, headers.get(&UPLOAD_DEFER_LENGTH)) {
        (Some(length), None) => Some(length),
        (None, Some(defer)) if defer == "1" => None,
        _ => {
            return Err(Error::bad_request(
                Code::InvalidSize,
                "send Upload-Length, or Upload-Defer-Length: 1 to declare it later",
            )
            .into())
        }
    };
    let max = state.cabinet.settings().max_file_bytes;
    if length.is_some_and(|length| length > max) {
        return Err(Error::TooLarge {
            code: Code::FileTooLarge,
            message: format!("the most this server accepts is {max} bytes (Tus-Max-Size)"),
        }
        .into());
    }
    let metadata = Metadata::parse(headers.get(&UPLOAD_METADATA))?;
    let with_bytes = is_offset_stream(&headers);
    if !with_bytes && content_length(&headers).unwrap_or(0) > 0 {
        return Err(unsupported_media_type());
    }
    let upload = state
        .cabinet
        .start_resumable(
            &caller,
            NewResumable {
                name: metadata.name.ok_or_else(|| {
                    Error::bad_request(
                        Code::InvalidName,
                        "name the file in Upload-Metadata: filename <base64>",
                    )
                })?,
                length,
                mime_type: metadata.mime_type,
                sha256: metadata.sha256,
                folder_id: metadata.folder_id,
                expires_in: None,
            },
        )
        .await?;
    let location = format!("{}{PREFIX}{}", state.cabinet.url_base(), upload.id);
    let mut response = if with_bytes {
        let append = Append {
            sha256: checksum(&headers)?,
            content_length: content_length(&headers),
            ..Append::default()
        };
        match state.cabinet.append_resumable(&caller, &upload.id, append, stream_of(body)).await {
            Ok(appended) => {
                let mut response = StatusCode::CREATED.into_response();
                describe(response.headers_mut(), &appended, false);
                response
            }
            // The upload exists: the client learns where, and resumes from its offset.
            Err(err) => {
                let mut response = TusError(err).into_response();
                if let Ok(created) = state.cabinet.resumable_state(&caller, &upload.id).await {
                    describe(response.headers_mut(), &created, false);
                }
                response
            }
        }
    } else if length == Some(0) {
        // Nothing to append: the empty file exists at once (clients send no PATCH for it).
        let append = Append { content_length: Some(0), ..Append::default() };
        let done =
            state.cabinet.append_resumable(&caller, &upload.id, append, stream_of(Body::empty())).await?;
        let mut response = StatusCode::CREATED.into_response();
        describe(response.headers_mut(), &done, false);
        response
    } else {
        let mut response = StatusCode::CREATED.into_response();
        expires(response.headers_mut(), upload.expires_at);
        response
    };
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `HEAD`, `PATCH`, `DELETE` of one upload (and `POST` with `X-HTTP-Method-Override`, for
/// clients behind proxies that only pass GET and POST).
async fn upload(
    State(state): State<AppState>,
    Path(upload_id): Path<String>,
    method: Method,
    headers: HeaderMap,
    request: Request,
) -> TusResult {
    let method = match (&method, headers.get(&METHOD_OVERRIDE).and_then(|v| v.to_str().ok())) {
        (&Method::POST, Some(overridden)) => Method::from_bytes(overridden.trim().as_bytes())
            .map_err(|_| Error::bad_request(Code::MethodNotAllowed, "unknown X-HTTP-Method-Override"))?,
        _ => method,
    };
    if method == Method::OPTIONS {
        return Ok(discover(State(state)).await);
    }
    if ![Method::HEAD, Method::PATCH, Method::DELETE].contains(&method) {
        let mut refused = refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            Error::bad_request(Code::MethodNotAllowed, "an upload takes HEAD, PATCH, DELETE and OPTIONS"),
        );
        refused.headers_mut().insert(header::ALLOW, HeaderValue::from_static("HEAD, PATCH, DELETE, OPTIONS"));
        return Ok(refused);
    }
    let (mut parts, body) = request.into_parts();
    let Authenticated(caller) =
        <Authenticated as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, &state)
            .await?;
    // An id of another kind is an unknown upload.
    let id = UploadId::parse(&upload_id)?;
    match method {
        Method::HEAD => head(&state, &caller, &id).await,
        Method::PATCH => patch(&state, &caller, &id, &headers, body).await,
        _ => {
            state.cabinet.terminate_resumable(&caller, &id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
    }
}

async fn head(state: &AppState, caller: &Caller, id: &UploadId) -> TusResult {
    let current = state.cabinet.resumable_state(caller, id).await?;
    let mut response = StatusCode::OK.into_response();
    describe(response.headers_mut(), &current, true);
    // What the upload was created with, as Cabinet keeps it (the name as validated).
    let upload = &current.upload;
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let mut metadata = vec![format!("filename {}", encode(&upload.name))];
    metadata.extend(upload.declared_mime.as_deref().map(|mime| format!("filetype {}", encode(mime))));
    metadata.extend(upload.folder_id.as_ref().map(|folder| format!("folder_id {}", encode(folder.as_str()))));
    metadata.extend(upload.sha256.as_deref().map(|sha256| format!("sha256 {}", encode(sha256))));
    if let Ok(value) = HeaderValue::from_str(&metadata.join(",")) {
        response.headers_mut().insert(UPLOAD_METADATA, value);
    }
    Ok(response)
}

async fn patch(
    state: &AppState,
    caller: &Caller,
    id: &UploadId,
    headers: &HeaderMap,
    body: Body,
) -> TusResult {
    if !is_offset_stream(headers) {
        return Err(unsupported_media_type());
    }
    let offset = header_u64(headers, &UPLOAD_OFFSET)?
        .ok_or_else(|| Error::bad_request(Code::InvalidOffset, "send Upload-Offset"))?;
    let append = Append {
        offset,
        length: header_u64(headers, &UPLOAD_LENGTH)?,
        sha256: checksum(headers)?,
        content_length: content_length(headers),
        completes: false,
    };
    let appended = state.cabinet.append_resumable(caller, id, append, stream_of(body)).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    describe(response.headers_mut(), &appended, false);
    Ok(response)
}

/// The headers that say where an upload stands (`HEAD` adds its length).
fn describe(headers: &mut HeaderMap, state: &ResumableState, with_length: bool) {
    headers.insert(UPLOAD_OFFSET, HeaderValue::from(state.offset));
    if with_length {
        match state.length {
            Some(length) => headers.insert(UPLOAD_LENGTH, HeaderValue::from(length)),
            None => headers.insert(UPLOAD_DEFER_LENGTH, HeaderValue::from_static("1")),
        };
    }
    if state.file.is_none() {
        expires(headers, state.upload.expires_at);
    }
}

fn expires(headers: &mut HeaderMap, at: chrono::DateTime<chrono::Utc>) {
    let text = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    if let Ok(value) = HeaderValue::from_str(&text) {
        headers.insert(UPLOAD_EXPIRES, value);
    }
}

fn is_offset_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(OFFSET_OCTET_STREAM))
}

fn unsupported_media_type() -> TusError {
    TusError(Error::bad_request(
        Code::UnsupportedMediaType,
        "send the bytes with Content-Type: application/offset+octet-stream",
    ))
}

fn header_u64(headers: &HeaderMap, name: &HeaderName) -> Result<Option<u64>, TusError> {
    let Some(value) = headers.get(name) else { return Ok(None) };
    let parsed = value.to_str().ok().filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
    parsed.and_then(|v| v.parse().ok()).map(Some).ok_or_else(|| {
        TusError(Error::bad_request(Code::InvalidSize, format!("{name} must be a non-negative integer")))
    })
}

/// `Upload-Checksum: sha256 <base64>`, as lowercase hex.
fn checksum(headers: &HeaderMap) -> Result<Option<String>, TusError> {
    let Some(value) = headers.get(&UPLOAD_CHECKSUM) else { return Ok(None) };
    let invalid = |message: &str| TusError(Error::bad_request(Code::InvalidSha256, message.to_owned()));
    let text = value.to_str().map_err(|_| invalid("Upload-Checksum must be \"sha256 <base64>\""))?;
    let (algorithm, digest) =
        text.trim().split_once(' ').ok_or_else(|| invalid("Upload-Checksum must be \"sha256 <base64>\""))?;
    if !algorithm.eq_ignore_ascii_case("sha256") {
        return Err(invalid("the only checksum algorithm supported is sha256 (Tus-Checksum-Algorithm)"));
    }
    let digest = base64::engine::general_purpose::STANDARD
        .decode(digest.trim())
        .ok()
        .filter(|digest| digest.len() == 32)
        .ok_or_else(|| invalid("an sha256 checksum is 32 bytes in base64"))?;
    Ok(Some(hex_of(&digest)))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn stream_of(body: Body) -> cabinet_core::ByteStream<'static> {
    body.into_data_stream().map_err(std::io::Error::other).boxed()
}

/// What `Upload-Metadata` says of the file.
#[derive(Debug, Default, PartialEq)]
struct Metadata {
    name: Option<String>,
    mime_type: Option<String>,
    folder_id: Option<FolderId>,
    sha256: Option<String>,
}

impl Metadata {
    /// `key base64value,key2 base64value2`; a key may come without a value.
    fn parse(header: Option<&HeaderValue>) -> Result<Self, TusError> {
        let mut metadata = Metadata::default();
        let Some(header) = header else { return Ok(metadata) };
        let invalid = |message: String| TusError(Error::bad_request(Code::InvalidBase64, message));
        let text = header.to_str().map_err(|_| invalid("Upload-Metadata must be ASCII".to_owned()))?;
        for pair in text.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
            // Keys Cabinet does not read are not decoded (Uppy sends `relativePath null`).
            if !["filename", "name", "filetype", "type", "folder_id", "sha256"].contains(&key) {
                continue;
            }
            let value = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .ok()
                .and_then(|value| String::from_utf8(value).ok())
                .ok_or_else(|| {
                    invalid(format!("the Upload-Metadata value of {key:?} is not base64 of UTF-8"))
                })?;
            let value = Some(value).filter(|value| !value.is_empty());
            match key {
                "filename" => metadata.name = value.or(metadata.name),
                "name" => metadata.name = metadata.name.or(value),
                "filetype" => metadata.mime_type = value.or(metadata.mime_type),
                "type" => metadata.mime_type = metadata.mime_type.or(value),
                "folder_id" => {
                    metadata.folder_id = value.map(|id| FolderId::parse(&id)).transpose()?;
                }
                "sha256" => metadata.sha256 = value.map(|hex| parse_sha256(&hex)).transpose()?,
                _ => {}
            }
        }
        Ok(metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn metadata_names_the_file_as_uppy_and_tuspy_send_it() {
        let header = format!(
            "relativePath null,name {},type {},filename {},filetype {}",
            b64("a.txt"),
            b64("text/plain"),
            b64("b.txt"),
            b64("text/csv")
        );
        let parsed = Metadata::parse(Some(&HeaderValue::from_str(&header).unwrap())).ok().unwrap();
        assert_eq!(parsed.name.as_deref(), Some("b.txt"));
        assert_eq!(parsed.mime_type.as_deref(), Some("text/csv"));
        let empty = Metadata::parse(Some(&HeaderValue::from_static("filename"))).ok().unwrap();
        assert_eq!(empty.name, None);
        assert!(Metadata::parse(Some(&HeaderValue::from_static("filename !!!"))).is_err());
    }

    #[test]
    fn checksums_are_sha256_in_base64() {
        let mut headers = HeaderMap::new();
        let digest = [7u8; 32];
        let value = format!("sha256 {}", base64::engine::general_purpose::STANDARD.encode(digest));
        headers.insert(UPLOAD_CHECKSUM, HeaderValue::from_str(&value).unwrap());
        assert_eq!(checksum(&headers).ok().unwrap(), Some("07".repeat(32)));
        headers.insert(UPLOAD_CHECKSUM, HeaderValue::from_static("md5 AAAA"));
        assert!(checksum(&headers).is_err());
    }
}
