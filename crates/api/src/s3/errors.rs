//! Cabinet's errors in S3's shape: each core error gets the S3 code tools know, with Cabinet's
//! message. Quota has no S3 code: it is `QuotaExceeded` with status 403 (documented).

use axum::http::StatusCode;
use cabinet_core::{Code, Error};
use s3s::{S3Error, S3ErrorCode};

/// The S3 error for a core error.
pub fn s3_error_of(err: Error) -> S3Error {
    cabinet_core::audit::note_error(&err);
    let message = err.to_string();
    let (code, status) = match &err {
        Error::BadRequest { code: Code::NameTooLong, .. } => (S3ErrorCode::KeyTooLongError, None),
        Error::BadRequest { .. } => (S3ErrorCode::InvalidArgument, None),
        Error::Unauthenticated(_) | Error::KeyRevoked => (S3ErrorCode::InvalidAccessKeyId, None),
        Error::Forbidden(_) | Error::BadSignature { .. } => (S3ErrorCode::AccessDenied, None),
        Error::NotFound(_) => (S3ErrorCode::NoSuchKey, None),
        Error::Conflict { code: Code::FileInUse, .. } => {
            (S3ErrorCode::Custom("FileInUse".into()), Some(StatusCode::CONFLICT))
        }
        Error::Conflict { code: Code::WorkspaceNotEmpty, .. } => (S3ErrorCode::BucketNotEmpty, None),
        Error::Conflict { .. } => (S3ErrorCode::OperationAborted, None),
        Error::TooLarge { .. } => (S3ErrorCode::EntityTooLarge, None),
        Error::Unprocessable { code: Code::ChecksumMismatch, .. } => (S3ErrorCode::BadDigest, None),
        Error::Unprocessable { .. } => (S3ErrorCode::IncompleteBody, None),
        Error::PartsMissing { .. } => (S3ErrorCode::InvalidPart, None),
        Error::QuotaExceeded { .. } => {
            (S3ErrorCode::Custom("QuotaExceeded".into()), Some(StatusCode::FORBIDDEN))
        }
        Error::TooManyRequests { .. } => (S3ErrorCode::SlowDown, None),
        Error::Unavailable(_) => (S3ErrorCode::ServiceUnavailable, None),
        Error::Internal(_) => {
            tracing::error!(error = ?err, "internal error on the S3 surface");
            (S3ErrorCode::InternalError, None)
        }
    };
    let mut error = S3Error::with_message(code, message);
    if let Some(status) = status {
        error.set_status_code(status);
    }
    // `SlowDown` is a 503, which would otherwise get the `Retry-After` of a store that does not
    // answer. s3s answers with an error's headers in place of its own, so they name the body's
    // type too.
    if let Error::TooManyRequests { retry_after_secs, .. } = &err {
        use axum::http::{header, HeaderMap, HeaderValue};
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, (*retry_after_secs).into());
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
        error.set_headers(headers);
    }
    error
}

/// What s3s could not turn into an S3 error response (it has none of its own): 500, logged.
pub(super) async fn http_error(err: s3s::HttpError) -> axum::response::Response {
    tracing::error!(error = ?err, "the S3 service failed a request");
    axum::response::IntoResponse::into_response(StatusCode::INTERNAL_SERVER_ERROR)
}

/// S3 names each request (`x-amz-request-id`) and repeats the name in an error's body
/// (`<RequestId>`), which SDKs report with the error; s3s leaves both to the service.
pub(super) async fn request_id(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let id = ulid::Ulid::new().to_string();
    let (mut parts, body) = next.run(request).await.into_parts();
    if let Ok(value) = HeaderValue::from_str(&id) {
        parts.headers.insert("x-amz-request-id", value);
    }
    let error_xml = parts.status.is_client_error() || parts.status.is_server_error();
    let error_xml = error_xml
        && parts.headers.get(header::CONTENT_TYPE).is_some_and(|kind| kind.as_bytes() == b"application/xml");
    if !error_xml {
        return axum::response::Response::from_parts(parts, body);
    }
    // An error's body is a few hundred bytes of s3s's XML.
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(err) => {
            tracing::warn!(error = %err, "an S3 error body could not be read to name its request");
            String::new()
        }
    };
    let text = match text.rfind("</Error>") {
        Some(at) if !text.contains("<RequestId>") => {
            format!("{}<RequestId>{id}</RequestId>{}", &text[..at], &text[at..])
        }
        _ => text,
    };
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    axum::response::Response::from_parts(parts, axum::body::Body::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_down_says_when_to_come_back_as_the_refusal_does() {
        let refusal = Error::TooManyRequests {
            code: Code::TooManyUploads,
            message: "too many uploads in progress".into(),
            retry_after_secs: 2,
        };
        let error = s3_error_of(refusal);
        assert_eq!(error.code(), &S3ErrorCode::SlowDown);
        let headers = error.headers().expect("headers");
        assert_eq!(headers.get(axum::http::header::RETRY_AFTER).unwrap(), "2");
        assert_eq!(headers.get(axum::http::header::CONTENT_TYPE).unwrap(), "application/xml");
    }
}
