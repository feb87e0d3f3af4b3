//! The CMS dialect's errors, Django REST framework style: `{"detail": "..."}` for 401, 403, 404
//! and the like, `{"<field>": ["message"]}` for 400. Every core error becomes one here, in one
//! place; nothing of the native envelope leaks out.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cabinet_core::{Code, Error, ErrorKind};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::error::log_if_internal;
use crate::form::FormError;
use crate::surface::capitalised;

/// An error on its way to a CMS client.
#[derive(Debug)]
pub struct CmsError {
    pub status: StatusCode,
    pub body: Value,
}

/// `{"detail": "..."}`: how the CMS dialect refuses anything that is not a field's fault.
#[derive(Debug, Serialize, ToSchema)]
pub struct CmsDetail {
    #[schema(example = "Not found.")]
    pub detail: String,
}

/// `{"<field>": ["message", ...]}`: what was wrong with which field (`non_field_errors` when
/// it is no one field's fault).
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object, example = json!({"organization_id": ["This field is required."]}))]
pub struct CmsFieldErrors(pub serde_json::Map<String, Value>);

impl CmsError {
    /// A `{"detail"}` error.
    pub fn detail(status: StatusCode, detail: impl Into<String>) -> Self {
        let detail: String = detail.into();
        Self { status, body: json!({ "detail": detail }) }
    }

    /// A 400 about one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message: String = message.into();
        Self { status: StatusCode::BAD_REQUEST, body: json!({ field: [message] }) }
    }

    /// The 400 of a required field that is missing.
    pub fn required(field: &str) -> Self {
        Self::field(field, "This field is required.")
    }

    /// The 404 of anything not found (including another organization's).
    pub fn not_found() -> Self {
        Self::detail(StatusCode::NOT_FOUND, "Not found.")
    }

    /// A refusal made outside a handler (unknown route, wrong method, rate limit, request limits).
    pub fn refusal(status: StatusCode, message: String) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::not_found(),
            _ => Self::detail(status, capitalised(&message)),
        }
    }
}

/// Which request field a core validation error is about.
fn field_of(code: Code) -> &'static str {
    match code {
        Code::InvalidName | Code::NameTooLong => "file_name",
        Code::InvalidTag | Code::TooManyTags => "tags",
        Code::WorkspaceRequired => "organization_id",
        Code::InvalidMimeType | Code::IncompleteBody => "file",
        Code::InvalidExternalId | Code::ExternalIdTaken => "api_id",
        _ => "non_field_errors",
    }
}

impl From<Error> for CmsError {
    fn from(err: Error) -> Self {
        cabinet_core::audit::note_error(&err);
        log_if_internal(&err);
        let message = err.to_string();
        match err.kind() {
            ErrorKind::BadRequest | ErrorKind::Unprocessable => {
                CmsError::field(field_of(err.code()), message)
            }
            ErrorKind::Unauthenticated => CmsError::detail(StatusCode::UNAUTHORIZED, message),
            ErrorKind::Forbidden => CmsError::detail(StatusCode::FORBIDDEN, message),
            ErrorKind::NotFound => CmsError::not_found(),
            // A clash of a client-chosen `api_id` says which field, as DRF's unique validators do.
            ErrorKind::Conflict if err.code() == Code::ExternalIdTaken => {
                CmsError { status: StatusCode::CONFLICT, body: json!({ "api_id": [capitalised(&message)] }) }
            }
            ErrorKind::Conflict => CmsError::detail(StatusCode::CONFLICT, message),
            ErrorKind::TooLarge => CmsError::detail(StatusCode::PAYLOAD_TOO_LARGE, message),
            // The native status, with the DRF body: the message names storage and both sizes.
            ErrorKind::QuotaExceeded => {
                CmsError::detail(StatusCode::INSUFFICIENT_STORAGE, capitalised(&message))
            }
            ErrorKind::TooManyRequests => CmsError::detail(StatusCode::TOO_MANY_REQUESTS, message),
            ErrorKind::Internal => {
                CmsError::detail(StatusCode::INTERNAL_SERVER_ERROR, "A server error occurred.")
            }
            ErrorKind::Unavailable => CmsError::detail(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service temporarily unavailable, try again later.",
            ),
        }
    }
}

impl From<FormError> for CmsError {
    fn from(err: FormError) -> Self {
        match err {
            FormError::Malformed(message) => {
                CmsError::detail(StatusCode::BAD_REQUEST, format!("Multipart form parse error - {message}"))
            }
            FormError::TooLarge { message, .. } => {
                CmsError::detail(StatusCode::PAYLOAD_TOO_LARGE, capitalised(&message))
            }
        }
    }
}

impl IntoResponse for CmsError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
        }
        response
    }
}

/// The result of a CMS handler.
pub type CmsResult<T> = Result<T, CmsError>;
