//! The one error type of Cabinet: every variant has a stable string `code` and a `kind` that the
//! HTTP layer maps to a status in one place. Internal causes are kept for the log, never shown.

use std::error::Error as StdError;

pub use crate::codes::Code;

/// What sort of failure an [`Error`] is; each HTTP surface maps this to its own status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed (400).
    BadRequest,
    /// No valid credentials (401).
    Unauthenticated,
    /// Valid credentials, not allowed (403).
    Forbidden,
    /// Unknown id, including another tenant's (404).
    NotFound,
    /// The state of the resource does not allow it (409).
    Conflict,
    /// The body or the declared size is too large (413).
    TooLarge,
    /// Well-formed, but failed validation (422).
    Unprocessable,
    /// The workspace's storage quota would be exceeded (507).
    QuotaExceeded,
    /// Too many at once; try again after a while (429, with `Retry-After`).
    TooManyRequests,
    /// Our fault (500); details are logged, not returned.
    Internal,
    /// A dependency (database, storage) is not reachable right now (503).
    Unavailable,
}

/// Cabinet's error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed input, with a stable code such as `invalid_name`.
    #[error("{message}")]
    BadRequest { code: Code, message: String },
    /// Missing, unknown, revoked or expired credentials.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The key was valid once and has been revoked (told apart for the dialects that say so).
    #[error("this API key has been revoked")]
    KeyRevoked,
    /// The caller's role or scope does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// A signed URL that is malformed, tampered with or expired.
    #[error("{message}")]
    BadSignature { code: Code, message: &'static str },
    /// No such thing in the caller's workspace.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A conflict with the current state, with a stable code such as `upload_not_waiting`.
    #[error("{message}")]
    Conflict { code: Code, message: String },
    /// Too many bytes.
    #[error("{message}")]
    TooLarge { code: Code, message: String },
    /// Well-formed input that failed verification (size or checksum mismatch).
    #[error("{message}")]
    Unprocessable { code: Code, message: String },
    /// A multipart upload cannot be completed yet: these parts (1-based) are missing or have the
    /// wrong size. The upload stays open.
    #[error("{} part(s) are missing or incomplete: upload them, then complete again", .missing.len())]
    PartsMissing { missing: Vec<u32> },
    /// The workspace's quota cannot take `requested` more bytes.
    #[error("storage quota exceeded: {requested} bytes requested, {available} bytes available")]
    QuotaExceeded { requested: u64, available: u64 },
    /// The caller already has as many of something in progress as it may; it may retry after
    /// `retry_after_secs`.
    #[error("{message}")]
    TooManyRequests { code: Code, message: String, retry_after_secs: u64 },
    /// A dependency is down.
    #[error("service unavailable")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// Anything else; the source is logged, never returned.
    #[error("internal error")]
    Internal(#[source] Box<dyn StdError + Send + Sync>),
}

impl Error {
    /// The stable, machine-readable code of this error.
    pub fn code(&self) -> Code {
        match self {
            Error::BadRequest { code, .. }
            | Error::Conflict { code, .. }
            | Error::TooLarge { code, .. }
            | Error::Unprocessable { code, .. }
            | Error::BadSignature { code, .. }
            | Error::TooManyRequests { code, .. } => *code,
            Error::Unauthenticated(_) | Error::KeyRevoked => Code::Unauthenticated,
            Error::Forbidden(_) => Code::Forbidden,
            Error::NotFound(_) => Code::NotFound,
            Error::QuotaExceeded { .. } => Code::QuotaExceeded,
            Error::PartsMissing { .. } => Code::PartsMissing,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Internal(_) => Code::Internal,
        }
    }

    /// The category, for mapping to a status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadRequest { .. } => ErrorKind::BadRequest,
            Error::Unauthenticated(_) | Error::KeyRevoked => ErrorKind::Unauthenticated,
            Error::Forbidden(_) | Error::BadSignature { .. } => ErrorKind::Forbidden,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Conflict { .. } | Error::PartsMissing { .. } => ErrorKind::Conflict,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::Unprocessable { .. } => ErrorKind::Unprocessable,
            Error::QuotaExceeded { .. } => ErrorKind::QuotaExceeded,
            Error::TooManyRequests { .. } => ErrorKind::TooManyRequests,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// A 400 with a code and message.
    pub fn bad_request(code: Code, message: impl Into<String>) -> Self {
        Error::BadRequest { code, message: message.into() }
    }

    /// A 409 with a code and message.
    pub fn conflict(code: Code, message: impl Into<String>) -> Self {
        Error::Conflict { code, message: message.into() }
    }

    /// A 500 wrapping its cause.
    pub fn internal(cause: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Error::Internal(cause.into())
    }

    /// The causes behind this error, outermost first, joined by `: ` (`pool timed out while
    /// waiting for an open connection`), or its own words when it has none. An `unavailable` or
    /// `internal` error's own words name only its kind: this says why, for logs and for an error
    /// told again to several waiters, which cannot share its sources.
    pub fn causes(&self) -> String {
        let mut causes = Vec::new();
        let mut source = StdError::source(self);
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        if causes.is_empty() {
            return self.to_string();
        }
        causes.join(": ")
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        match err.kind() {
            // The server's disk is full: nothing wrong with the request, and it may work later.
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                Error::Unavailable(Box::new(err))
            }
            _ => Error::Internal(Box::new(err)),
        }
    }
}

/// Cabinet's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
