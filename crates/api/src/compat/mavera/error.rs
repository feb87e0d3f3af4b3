//! Mavera's error envelope, `{"error": {"message", "type", "code", "param"}}`, for every error of
//! the dialect: core errors are mapped here, in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cabinet_core::{Code, Error, ErrorKind};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::log_if_internal;

/// The body of every Mavera error.
#[derive(Debug, Serialize, ToSchema)]
pub struct MaveraErrorBody {
    pub error: MaveraErrorDetail,
}

/// What went wrong, OpenAI style.
#[derive(Debug, Serialize, ToSchema)]
pub struct MaveraErrorDetail {
    #[schema(example = "Missing required field: workspace_id")]
    pub message: String,
    /// `authentication_error`, `validation_error`, `invalid_request_error`, `permission_error`,
    /// `not_found_error`, `rate_limit_error` or `api_error`.
    #[serde(rename = "type")]
    #[schema(example = "validation_error")]
    pub kind: String,
    #[schema(example = "missing_field")]
    pub code: String,
    /// The offending parameter, or null.
    pub param: Option<String>,
}

/// An error on its way to a Mavera client.
#[derive(Debug)]
pub struct MaveraError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: String,
    pub message: String,
    pub param: Option<String>,
}

/// The result of a Mavera handler.
pub type MaveraResult<T> = Result<T, MaveraError>;

impl MaveraError {
    /// 400 `missing_field`.
    pub fn missing(param: &str) -> Self {
        Self::validation("missing_field", format!("Missing required field: {param}"), param)
    }

    /// 400 `invalid_field`.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self::validation("invalid_field", message.into(), param)
    }

    fn validation(code: &str, message: String, param: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "validation_error",
            code: code.to_owned(),
            message,
            param: Some(param.to_owned()),
        }
    }

    /// Names the parameter a 400 (or a 402) was about, when the core could not.
    pub fn about(mut self, param: &str) -> Self {
        if matches!(self.status, StatusCode::BAD_REQUEST | StatusCode::PAYMENT_REQUIRED)
            && self.param.is_none()
        {
            self.param = Some(param.to_owned());
        }
        self
    }
}

impl From<Error> for MaveraError {
    fn from(err: Error) -> Self {
        cabinet_core::audit::note_error(&err);
        log_if_internal(&err);
        let message = err.to_string();
        let (status, kind, code) = match (&err, err.kind()) {
            (Error::KeyRevoked, _) => (StatusCode::UNAUTHORIZED, "authentication_error", "revoked_api_key"),
            (_, ErrorKind::Unauthenticated) => {
                (StatusCode::UNAUTHORIZED, "authentication_error", "invalid_api_key")
            }
            (_, ErrorKind::BadRequest) => (StatusCode::BAD_REQUEST, "validation_error", "invalid_field"),
            // Over a size limit is a bad `file_size`, as Mavera answers it.
            (_, ErrorKind::TooLarge) => (StatusCode::BAD_REQUEST, "validation_error", "invalid_field"),
            (_, ErrorKind::Unprocessable) => (StatusCode::BAD_REQUEST, "validation_error", "invalid_field"),
            (_, ErrorKind::QuotaExceeded) => {
                let message = format!("Storage quota exceeded: {message}");
                return Self {
                    status: StatusCode::PAYMENT_REQUIRED,
                    kind: "invalid_request_error",
                    code: "storage_quota_exceeded".into(),
                    message,
                    param: None,
                };
            }
            (_, ErrorKind::Forbidden) => (StatusCode::FORBIDDEN, "permission_error", "permission_denied"),
            (_, ErrorKind::NotFound) => (StatusCode::NOT_FOUND, "not_found_error", "not_found"),
            (_, ErrorKind::Conflict) => (StatusCode::CONFLICT, "invalid_request_error", err.code().as_str()),
            (_, ErrorKind::TooManyRequests) => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", err.code().as_str())
            }
            (_, ErrorKind::Internal) => (StatusCode::INTERNAL_SERVER_ERROR, "api_error", "internal_error"),
            (_, ErrorKind::Unavailable) => {
                (StatusCode::SERVICE_UNAVAILABLE, "api_error", "service_unavailable")
            }
        };
        let message = match err.kind() {
            ErrorKind::Internal => "An internal error occurred.".to_owned(),
            ErrorKind::Unavailable => "The service is unavailable; retry later.".to_owned(),
            _ => message,
        };
        Self { status, kind, code: code.to_owned(), message, param: None }
    }
}

impl IntoResponse for MaveraError {
    fn into_response(self) -> Response {
        let body = MaveraErrorBody {
            error: MaveraErrorDetail {
                message: self.message,
                kind: self.kind.into(),
                code: self.code,
                param: self.param,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl MaveraError {
    /// A refusal made outside a handler (unknown route, wrong method, rate limit, request limits),
    /// in Mavera's vocabulary.
    pub fn refusal(status: StatusCode, code: Code, message: String) -> Self {
        let (kind, code) = match status {
            StatusCode::TOO_MANY_REQUESTS => ("rate_limit_error", "rate_limit_exceeded"),
            StatusCode::NOT_FOUND => ("not_found_error", "not_found"),
            StatusCode::PAYLOAD_TOO_LARGE => ("invalid_request_error", "request_too_large"),
            _ => ("invalid_request_error", code.as_str()),
        };
        MaveraError { status, kind, code: code.to_owned(), message, param: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_side_failures_are_api_errors_that_hide_their_cause() {
        let internal = MaveraError::from(Error::Internal("disk on fire at /var/lib/cabinet".into()));
        assert_eq!(
            (internal.status, internal.kind, internal.code.as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, "api_error", "internal_error")
        );
        assert!(!internal.message.contains("disk"), "{}", internal.message);
        let unavailable = MaveraError::from(Error::Unavailable("pool timed out".into()));
        assert_eq!((unavailable.status, unavailable.kind), (StatusCode::SERVICE_UNAVAILABLE, "api_error"));
        assert!(!unavailable.message.contains("pool"), "{}", unavailable.message);
    }
}
