//! What the dialects share: which dialect a path belongs to (so the layers around every route —
//! the rate limiter — answer in that dialect's envelope), and finding an upload id in a URL.

use axum::http::StatusCode;
use axum::response::Response;

use cabinet_core::UploadId;

/// The surfaces whose refusals have their own shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Native,
    Mavera,
    Mavi,
}

impl Surface {
    /// The surface a request path belongs to.
    pub fn of(path: &str) -> Surface {
        if path.starts_with(super::mavera::PREFIX) {
            Surface::Mavera
        } else if path.starts_with(super::mavi::PREFIX) {
            Surface::Mavi
        } else {
            Surface::Native
        }
    }

    /// A refusal made outside any handler (rate limiting), in this surface's envelope.
    pub fn refusal(self, status: StatusCode, code: &str, message: String) -> Response {
        match self {
            Surface::Native => crate::limits::refusal(status, code, message),
            Surface::Mavera => super::mavera::error::refusal(status, code, message),
            Surface::Mavi => super::mavi::envelope::refusal(status, message),
        }
    }

    /// The value of `X-RateLimit-Reset`: seconds until the bucket is full, or (Mavera) the unix
    /// time at which it is.
    pub fn rate_limit_reset(self, reset_secs: u64, now_unix: i64) -> i64 {
        match self {
            Surface::Mavera => now_unix + reset_secs as i64,
            _ => reset_secs as i64,
        }
    }
}

/// The first upload id (`upl_` and 26 lowercase ULID characters) in a URL or key.
pub fn upload_id_in(text: &str) -> Option<UploadId> {
    let mut rest = text;
    while let Some(at) = rest.find(UploadId::PREFIX) {
        let candidate = &rest[at..];
        let end = (UploadId::PREFIX.len() + 26).min(candidate.len());
        if let Ok(id) = UploadId::parse(&candidate[..end]) {
            return Some(id);
        }
        rest = &candidate[UploadId::PREFIX.len()..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_id_is_found_in_any_url_that_carries_one() {
        let id = UploadId::generate();
        let url = format!("http://h/storage/v1/uploads/ws_x/{id}?expires=1&sig=upl_zz");
        assert_eq!(upload_id_in(&url), Some(id.clone()));
        assert_eq!(upload_id_in(&format!("incoming/ws_x/{id}")), Some(id));
        assert_eq!(upload_id_in("http://h/nothing/upl_short"), None);
    }
}
