//! What a client command can end with: an exit code that means something, the API's error code
//! and its message. Every failure of a client command becomes one `CliError` here.

use reqwest_tls::StatusCode;
use serde_json::{json, Value};

/// The exit codes of the client commands (documented in the README and `cabinet --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Anything else: a server error, a checksum mismatch, a local I/O error.
    Other = 1,
    /// Bad arguments (clap's own usage errors exit 2 too), or a request the server found invalid.
    Usage = 2,
    /// No such file, folder or upload.
    NotFound = 3,
    /// The key is missing, wrong or revoked, or may not do this.
    Auth = 4,
    /// A conflict: a name taken, a folder not empty, a file in use, not in the trash.
    Conflict = 5,
    /// The workspace's quota or file size limit would be exceeded.
    Quota = 6,
    /// The server could not be reached, or said it is unavailable.
    Unavailable = 7,
}

impl Exit {
    /// The exit code an HTTP status maps to.
    pub fn of_status(status: StatusCode) -> Exit {
        match status.as_u16() {
            400 | 405 | 414 | 416 | 422 | 431 => Exit::Usage,
            401 | 403 => Exit::Auth,
            404 | 410 => Exit::NotFound,
            409 | 412 => Exit::Conflict,
            413 | 507 => Exit::Quota,
            429 | 502 | 503 | 504 => Exit::Unavailable,
            _ => Exit::Other,
        }
    }
}

/// A failed client command.
#[derive(Debug, Clone)]
pub struct CliError {
    pub exit: Exit,
    /// The API's stable error code when the server sent one (`not_found`, `quota_exceeded`, ...),
    /// else one of the client's own (`unreachable`, `checksum_mismatch`, `io`, ...).
    pub code: String,
    pub message: String,
    /// The HTTP status, when the error came from the server.
    pub status: Option<u16>,
    /// The server's `Retry-After`, when it said when to try again (429, 503).
    pub retry_after: Option<std::time::Duration>,
}

/// A client command's result.
pub type CliResult<T> = Result<T, CliError>;

impl CliError {
    pub fn new(exit: Exit, code: impl Into<String>, message: impl Into<String>) -> Self {
        CliError { exit, code: code.into(), message: message.into(), status: None, retry_after: None }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, "usage", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Exit::NotFound, "not_found", message)
    }

    pub fn other(code: &str, message: impl Into<String>) -> Self {
        Self::new(Exit::Other, code, message)
    }

    /// A local file could not be read or written.
    pub fn io(what: impl std::fmt::Display, err: std::io::Error) -> Self {
        let exit = if err.kind() == std::io::ErrorKind::NotFound { Exit::NotFound } else { Exit::Other };
        Self::new(exit, "io", format!("{what}: {err}"))
    }

    /// An error from the HTTP layer: no connection, a timeout, a broken body.
    pub fn transport(err: reqwest_tls::Error) -> Self {
        if err.is_connect() || (err.is_timeout() && err.url().is_some()) {
            // One line a person can act on, not the HTTP library's chain.
            let place = err.url().map(|url| url.origin().ascii_serialization()).unwrap_or_default();
            let why = match root_io_kind(&err) {
                Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".to_owned(),
                Some(std::io::ErrorKind::TimedOut) => "timed out".to_owned(),
                _ if err.is_timeout() => "timed out".to_owned(),
                _ => root_cause(&err),
            };
            return Self::new(Exit::Unavailable, "unreachable", format!("cannot reach {place}: {why}"));
        }
        let mut message = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        if err.is_decode() {
            Self::new(Exit::Other, "invalid_response", message)
        } else {
            Self::new(Exit::Unavailable, "unreachable", message)
        }
    }

    /// The error as JSON, for `--json`.
    pub fn to_json(&self) -> Value {
        json!({"error": {
            "code": self.code,
            "message": self.message,
            "status": self.status,
            "exit_code": self.exit as i32,
        }})
    }
}

/// The kind of the I/O error at the bottom of an error's chain, if there is one.
fn root_io_kind(err: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut kind = None;
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            kind = Some(io.kind());
        }
        source = cause.source();
    }
    kind
}

/// The last error of a chain, said plainly.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last: &(dyn std::error::Error + 'static) = err;
    while let Some(cause) = last.source() {
        last = cause;
    }
    last.to_string()
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_documented_exit_codes() {
        let exit = |code| Exit::of_status(StatusCode::from_u16(code).unwrap()) as i32;
        assert_eq!(exit(400), 2);
        assert_eq!(exit(401), 4);
        assert_eq!(exit(403), 4);
        assert_eq!(exit(404), 3);
        assert_eq!(exit(409), 5);
        assert_eq!(exit(413), 6);
        assert_eq!(exit(507), 6);
        assert_eq!(exit(503), 7);
        assert_eq!(exit(500), 1);
    }
}
