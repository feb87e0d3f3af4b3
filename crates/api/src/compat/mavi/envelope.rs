//! MAVI's envelope, `{code, msg, data, success, failed}`, with the HTTP status equal to `code`;
//! core errors are mapped to it here, in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cabinet_core::{Error, ErrorKind};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::log_if_internal;
use crate::form::FormError;

/// Every MAVI response body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    /// The HTTP status, as an integer.
    #[schema(example = 200)]
    pub code: u16,
    #[schema(example = "success")]
    pub msg: String,
    pub data: Option<T>,
    pub success: bool,
    pub failed: bool,
}

/// A MAVI error body (`data` is null).
#[derive(Debug, Serialize, ToSchema)]
pub struct MaviErrorBody {
    #[schema(example = 400)]
    pub code: u16,
    #[schema(example = "Asset not found")]
    pub msg: String,
    #[schema(value_type = Option<Object>)]
    pub data: Option<()>,
    #[schema(example = false)]
    pub success: bool,
    #[schema(example = true)]
    pub failed: bool,
}

/// A MAVI success that carries no data (`data` is null), as a delete answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct DoneBody {
    #[schema(example = 200)]
    pub code: u16,
    #[schema(example = "success")]
    pub msg: String,
    #[schema(value_type = Option<Object>)]
    pub data: Option<()>,
    #[schema(example = true)]
    pub success: bool,
    #[schema(example = false)]
    pub failed: bool,
}

/// A successful MAVI response.
pub fn ok<T: Serialize>(data: Option<T>) -> Response {
    let body = Envelope { code: 200, msg: "success".into(), data, success: true, failed: false };
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// An error on its way to a MAVI client.
#[derive(Debug)]
pub struct MaviError {
    pub status: StatusCode,
    pub msg: String,
}

/// The result of a MAVI handler.
pub type MaviResult<T> = Result<T, MaviError>;

impl MaviError {
    /// 400 with a message.
    pub fn bad(msg: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, msg: msg.into() }
    }
}

impl From<Error> for MaviError {
    fn from(err: Error) -> Self {
        cabinet_core::audit::note_error(&err);
        log_if_internal(&err);
        let (status, msg) = match (&err, err.kind()) {
            // MAVI answers an unknown asset with 400, whosever it is.
            (Error::NotFound("file" | "upload"), _) => {
                (StatusCode::BAD_REQUEST, "Asset not found".to_owned())
            }
            (_, ErrorKind::NotFound) => (StatusCode::BAD_REQUEST, format!("Resource does not exist: {err}")),
            (_, ErrorKind::Unauthenticated) => (StatusCode::UNAUTHORIZED, "Unauthorized".to_owned()),
            (_, ErrorKind::Forbidden) => (StatusCode::FORBIDDEN, err.to_string()),
            (_, ErrorKind::BadRequest | ErrorKind::Unprocessable) => {
                (StatusCode::BAD_REQUEST, err.to_string())
            }
            (_, ErrorKind::Conflict) => (StatusCode::CONFLICT, err.to_string()),
            (_, ErrorKind::TooLarge) => (StatusCode::PAYLOAD_TOO_LARGE, err.to_string()),
            (_, ErrorKind::QuotaExceeded) => {
                (StatusCode::PAYMENT_REQUIRED, format!("Insufficient storage: {err}"))
            }
            (_, ErrorKind::TooManyRequests) => (StatusCode::TOO_MANY_REQUESTS, err.to_string()),
            (_, ErrorKind::Internal | ErrorKind::Unavailable) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error".to_owned())
            }
        };
        Self { status, msg }
    }
}

impl From<FormError> for MaviError {
    fn from(err: FormError) -> Self {
        match err {
            FormError::Malformed(message) => MaviError::bad(format!("Invalid request parameters: {message}")),
            FormError::TooLarge { message, .. } => {
                Self { status: StatusCode::PAYLOAD_TOO_LARGE, msg: message }
            }
        }
    }
}

impl IntoResponse for MaviError {
    fn into_response(self) -> Response {
        refusal(self.status, self.msg)
    }
}

/// An error response in MAVI's envelope.
pub fn refusal(status: StatusCode, msg: String) -> Response {
    let body = MaviErrorBody { code: status.as_u16(), msg, data: None, success: false, failed: true };
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_side_failures_are_500_that_hide_their_cause() {
        for err in [Error::Internal("disk on fire".into()), Error::Unavailable("pool timed out".into())] {
            let mavi = MaviError::from(err);
            assert_eq!(
                (mavi.status, mavi.msg.as_str()),
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
            );
        }
    }
}
