//! The one place where a core error becomes an HTTP response: status by kind, body
//! `{"error": {"code", "message"}}`. Internal causes are logged with their chain, never returned.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cabinet_core::{Code, Error, ErrorKind};
use serde::Serialize;
use utoipa::ToSchema;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        cabinet_core::audit::note_error(&err);
        ApiError(err)
    }
}

impl From<crate::form::FormError> for ApiError {
    fn from(err: crate::form::FormError) -> Self {
        ApiError(err.into())
    }
}

/// The error body every native route returns.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code, e.g. `quota_exceeded`.
    #[schema(example = "not_found")]
    pub code: String,
    /// Human-readable explanation.
    #[schema(example = "file not found")]
    pub message: String,
    /// With `parts_missing`: the part numbers still to upload (or re-upload) before completing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_parts: Option<Vec<u32>>,
}

/// The HTTP status of an error kind.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
        ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Logs an error's internal cause, once, where it becomes a response.
pub fn log_if_internal(err: &Error) {
    if matches!(err.kind(), ErrorKind::Internal | ErrorKind::Unavailable) {
        tracing::error!(code = err.code().as_str(), cause = %err.causes(), "request failed");
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        cabinet_core::audit::note_error(&self.0);
        log_if_internal(&self.0);
        let status = status_of(self.0.kind());
        let mut response = (
            status,
            axum::Json(ErrorBody {
                error: ErrorDetail {
                    code: self.0.code().as_str().to_owned(),
                    message: self.0.to_string(),
                    missing_parts: match &self.0 {
                        Error::PartsMissing { missing } => Some(missing.clone()),
                        _ => None,
                    },
                },
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let err = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Error::TooLarge {
                code: Code::PayloadTooLarge,
                message: "the request body is too large".to_owned(),
            },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Error::bad_request(
                Code::UnsupportedMediaType,
                "send a JSON body with Content-Type: application/json",
            ),
            _ => Error::bad_request(Code::InvalidJson, rejection.body_text()),
        };
        ApiError(err)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError(Error::bad_request(Code::InvalidQuery, rejection.body_text()))
    }
}

/// `axum::Json` with Cabinet's error shape on rejection.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

/// Where a JSON answer's body starts: a file's object is most of a kilobyte, and axum's start of
/// 128 bytes grew by copying three times to hold one.
const JSON_BODY_START: usize = 1024;

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(JSON_BODY_START);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => {
                let mut response = Response::new(axum::body::Body::from(body));
                response.headers_mut().insert(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/json"),
                );
                response
            }
            Err(err) => ApiError(Error::internal(err)).into_response(),
        }
    }
}

/// `axum::extract::Query` with Cabinet's error shape on rejection.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        ApiError(Error::bad_request(Code::InvalidPath, rejection.body_text()))
    }
}

/// `axum::extract::Path` with Cabinet's error shape on rejection.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_json_answer_is_its_value_written_as_axum_writes_it() {
        let value = serde_json::json!({"name": "a \"quoted\" name", "size": 1024, "tags": ["x", "ü"]});
        let ours = Json(value.clone()).into_response();
        let axums = axum::Json(value).into_response();
        assert_eq!(ours.status(), axums.status());
        assert_eq!(ours.headers(), axums.headers());
        let body = |response: Response| axum::body::to_bytes(response.into_body(), usize::MAX);
        assert_eq!(body(ours).await.unwrap(), body(axums).await.unwrap());
    }

    #[tokio::test]
    async fn a_value_that_cannot_be_written_as_json_is_a_500_in_the_error_shape() {
        // A map with keys that are not strings is refused by serde_json.
        let unwritable: std::collections::BTreeMap<Vec<u8>, u8> = [(vec![1], 1)].into();
        let response = Json(unwritable).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal", "{body}");
    }
}
