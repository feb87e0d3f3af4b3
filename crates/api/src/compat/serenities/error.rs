//! The Serenities dialect's edge: the `{"error": {"code", "message"}}` envelope with its upper-case
//! codes (every core error becomes one here, in one place), the bearer caller, and the JSON body
//! (empty means `{}`; unknown fields ignored; a wrong type or a missing field is BAD_REQUEST).
//!
//! Quota: an exceeded storage quota is 413 `PAYLOAD_TOO_LARGE` whose message starts with
//! "Storage quota exceeded", so clients that know only the documented codes still handle it.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cabinet_core::{Caller, Error, ErrorKind};
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

use crate::credentials::{named_workspace, Presented};
use crate::error::log_if_internal;
use crate::surface::capitalised;
use crate::surface::Surface;
use crate::AppState;

/// An error on its way to a Serenities client.
#[derive(Debug)]
pub struct SerenitiesError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// The error envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct SerenitiesErrorBody {
    pub error: SerenitiesErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct SerenitiesErrorDetail {
    /// `BAD_REQUEST`, `UNAUTHORIZED`, `FORBIDDEN`, `NOT_FOUND`, `CONFLICT`, `PAYLOAD_TOO_LARGE`
    /// (also for an exceeded quota); `INTERNAL_SERVER_ERROR`, `SERVICE_UNAVAILABLE`.
    #[schema(example = "NOT_FOUND")]
    pub code: String,
    #[schema(example = "File not found")]
    pub message: String,
}

impl SerenitiesError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code: "BAD_REQUEST", message: message.into() }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self { status: StatusCode::UNAUTHORIZED, code: "UNAUTHORIZED", message: message.into() }
    }

    /// A refusal made outside a handler (unknown route, wrong method, rate limit, request limits),
    /// with the RPC error name of its status.
    pub fn refusal(status: StatusCode, message: String) -> Self {
        let code = match status {
            StatusCode::NOT_FOUND => "NOT_FOUND",
            StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_SUPPORTED",
            StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
            StatusCode::TOO_MANY_REQUESTS => "TOO_MANY_REQUESTS",
            StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
            _ => "BAD_REQUEST",
        };
        Self { status, code, message: capitalised(&message) }
    }
}

impl From<Error> for SerenitiesError {
    fn from(err: Error) -> Self {
        cabinet_core::audit::note_error(&err);
        log_if_internal(&err);
        let message = capitalised(&err.to_string());
        let (status, code) = match err.kind() {
            ErrorKind::BadRequest | ErrorKind::Unprocessable => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            ErrorKind::Unauthenticated => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "FORBIDDEN"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "CONFLICT"),
            ErrorKind::TooLarge | ErrorKind::QuotaExceeded => {
                (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE")
            }
            ErrorKind::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS"),
            ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR"),
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE"),
        };
        let message = match err.kind() {
            ErrorKind::Internal => "Internal server error".to_owned(),
            ErrorKind::Unavailable => "Service unavailable".to_owned(),
            _ => message,
        };
        Self { status, code, message }
    }
}

impl IntoResponse for SerenitiesError {
    fn into_response(self) -> Response {
        let body = SerenitiesErrorBody {
            error: SerenitiesErrorDetail { code: self.code.to_owned(), message: self.message },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The result of a Serenities handler.
pub type SerenitiesResult<T> = Result<T, SerenitiesError>;

/// The caller: `Authorization: Bearer <key>`, acting on the key's only workspace or the one the
/// `X-Cabinet-Workspace` header names.
pub struct SerenitiesCaller(pub Caller);

impl FromRequestParts<AppState> for SerenitiesCaller {
    type Rejection = SerenitiesError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let secret = match Presented::of(&parts.headers, Surface::Serenities.schemes()) {
            Presented::Missing => {
                return Err(SerenitiesError::unauthorized(
                    "Missing API key: send Authorization: Bearer <key>",
                ))
            }
            Presented::Unusable => return Err(SerenitiesError::unauthorized("Invalid API key")),
            Presented::Secret(secret) => secret,
        };
        let workspace = named_workspace(&parts.headers);
        match state.cabinet.authenticate(secret, workspace.as_deref()).await {
            Ok(caller) => Ok(SerenitiesCaller(caller)),
            Err(Error::KeyRevoked) => Err(SerenitiesError::unauthorized("API key has been revoked")),
            Err(err) if err.kind() == ErrorKind::Unauthenticated => {
                Err(SerenitiesError::unauthorized("Invalid API key"))
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// A JSON body; an empty body is `{}`. Read up to the JSON body limit, or the JSON upload limit
/// when `UPLOAD`.
pub struct Body<T, const UPLOAD: bool = false>(pub T);

impl<T: DeserializeOwned, const UPLOAD: bool> FromRequest<AppState> for Body<T, UPLOAD> {
    type Rejection = SerenitiesError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = if UPLOAD { state.limits.json_upload_bytes } else { state.limits.json_body_bytes };
        let bytes = axum::body::to_bytes(request.into_body(), limit).await.map_err(|_| SerenitiesError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "PAYLOAD_TOO_LARGE",
            message: format!("The request body is larger than {limit} bytes"),
        })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
        let invalid = |err: serde_json::Error| SerenitiesError::bad_request(format!("Invalid input: {err}"));
        // Parameters are named: serde would read a struct from a JSON array by position too.
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(invalid)?;
        if !value.is_object() {
            return Err(SerenitiesError::bad_request("Invalid input: the body must be a JSON object"));
        }
        serde_json::from_value(value).map(Body).map_err(invalid)
    }
}
