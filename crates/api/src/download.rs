//! Serving a file's bytes, the same way on every surface: `Range` (one range; 206/416),
//! `ETag`/`If-None-Match`/`If-Range`, `Content-Length`, and a `Content-Disposition` that cannot
//! inject headers. Types a browser would execute are always attachments and sandboxed. Thumbnails
//! are served whole, with their own `ETag`.

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::Response;
use cabinet_core::content_type::{disposition, is_active_content};
use cabinet_core::links::Caching;
use cabinet_core::ports::ByteRange;
use cabinet_core::thumbnails::Thumbnail;
use cabinet_core::{Cabinet, Error, FileRecord};

use crate::error::ApiResult;

/// What a `Range` header asks of a representation of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// Serve it all (no header, a header we do not serve ranges for, or several ranges).
    Full,
    Partial(ByteRange),
    Unsatisfiable,
}

/// Parses a single `bytes=` range.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let parse = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match parse(suffix) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if size == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Partial(ByteRange { first: size.saturating_sub(n), last: size - 1 }),
            None => RangeRequest::Full,
        },
        (first, "") => match parse(first) {
            Some(first) if first < size => RangeRequest::Partial(ByteRange { first, last: size - 1 }),
            Some(_) => RangeRequest::Unsatisfiable,
            None => RangeRequest::Full,
        },
        (first, last) => match (parse(first), parse(last)) {
            (Some(first), Some(last)) if first > last => RangeRequest::Full,
            (Some(first), Some(_)) if first >= size => RangeRequest::Unsatisfiable,
            (Some(first), Some(last)) => RangeRequest::Partial(ByteRange { first, last: last.min(size - 1) }),
            _ => RangeRequest::Full,
        },
    }
}

/// `Content-Disposition` for a name (the value is built by the core, which also hands it to S3).
pub fn content_disposition(name: &str, attachment: bool) -> HeaderValue {
    HeaderValue::from_str(&disposition(name, attachment))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag)
}

/// The most headers a file's response carries before the layers add theirs (8, and one spare):
/// with the layers' they fit the map's first allocation (24), so it never grows.
const FILE_HEADERS: usize = 9;

/// Builds the response for a file, streaming its bytes from the blob store, cacheable as the URL
/// it was read at allows.
pub async fn serve_file(
    cabinet: &Cabinet,
    file: &FileRecord,
    request: &HeaderMap,
    force_attachment: bool,
    head_only: bool,
    caching: Caching,
) -> ApiResult<Response<Body>> {
    let etag = format!("\"{}\"", file.sha256);
    let header_str = |name| request.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let mut response = Response::builder();
    if let Some(headers) = response.headers_mut() {
        // The file's own headers and what the layers add, in one allocation.
        headers.reserve(FILE_HEADERS + crate::LAYER_HEADERS);
    }
    response = response
        .header(header::ETAG, &etag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, caching.header_value());
    if header_str(header::IF_NONE_MATCH).is_some_and(|list| etag_matches(list, &etag)) {
        return Ok(response.status(StatusCode::NOT_MODIFIED).body(Body::empty()).map_err(Error::internal)?);
    }
    let active = is_active_content(&file.mime_type);
    response = response
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&file.mime_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        )
        .header(header::CONTENT_DISPOSITION, content_disposition(&file.name, force_attachment || active));
    if active {
        response = response.header(header::CONTENT_SECURITY_POLICY, "sandbox; default-src 'none'");
    }
    // A range applies only if the client's copy is still this one.
    let range_header = match header_str(header::IF_RANGE) {
        Some(if_range) if if_range.trim() != etag => None,
        _ => header_str(header::RANGE),
    };
    let (status, range) = match parse_range(range_header, file.size) {
        RangeRequest::Full => (StatusCode::OK, None),
        RangeRequest::Partial(range) => (StatusCode::PARTIAL_CONTENT, Some(range)),
        RangeRequest::Unsatisfiable => {
            return Ok(response
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{}", file.size))
                .body(Body::empty())
                .map_err(Error::internal)?);
        }
    };
    let length = range.map_or(file.size, |range| range.len());
    response = response.status(status).header(header::CONTENT_LENGTH, length);
    if let Some(range) = range {
        response = response
            .header(header::CONTENT_RANGE, format!("bytes {}-{}/{}", range.first, range.last, file.size));
    }
    let body = if head_only || length == 0 {
        Body::empty()
    } else {
        Body::from_stream(cabinet.read_file(file, range).await?)
    };
    Ok(response.body(body).map_err(Error::internal)?)
}

/// Builds the response for a thumbnail: its type, a strong `ETag` (304 when the client has it),
/// cacheable privately for an hour (a file's bytes never change, so neither do its thumbnails).
pub fn serve_thumbnail(thumbnail: Thumbnail, request: &HeaderMap) -> ApiResult<Response<Body>> {
    let response = Response::builder()
        .header(header::ETAG, &thumbnail.etag)
        .header(header::CACHE_CONTROL, "private, max-age=3600")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    let cached = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|list| etag_matches(list, &thumbnail.etag));
    if cached {
        return Ok(response.status(StatusCode::NOT_MODIFIED).body(Body::empty()).map_err(Error::internal)?);
    }
    Ok(response
        .header(header::CONTENT_TYPE, thumbnail.content_type)
        .header(header::CONTENT_LENGTH, thumbnail.bytes.len())
        .body(Body::from(thumbnail.bytes))
        .map_err(Error::internal)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_as_rfc_9110_says() {
        let r = |first, last| RangeRequest::Partial(ByteRange { first, last });
        assert_eq!(parse_range(Some("bytes=0-9"), 100), r(0, 9));
        assert_eq!(parse_range(Some("bytes=90-"), 100), r(90, 99));
        assert_eq!(parse_range(Some("bytes=-10"), 100), r(90, 99));
        assert_eq!(parse_range(Some("bytes=-1000"), 100), r(0, 99));
        assert_eq!(parse_range(Some("bytes=50-1000"), 100), r(50, 99));
        assert_eq!(parse_range(Some("bytes=100-"), 100), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), RangeRequest::Full);
        assert_eq!(parse_range(Some("items=0-1"), 100), RangeRequest::Full);
        assert_eq!(parse_range(Some("bytes=9-1"), 100), RangeRequest::Full);
        assert_eq!(parse_range(Some("bytes=a-b"), 100), RangeRequest::Full);
        assert_eq!(parse_range(None, 100), RangeRequest::Full);
    }

    #[test]
    fn a_hostile_name_cannot_break_out_of_the_disposition_header() {
        let value = content_disposition("a\"; filename=evil.html\r\nX-Injected: 1", true);
        let text = value.to_str().unwrap();
        assert!(!text.contains('\r') && !text.contains('\n'));
        assert!(text.starts_with("attachment; filename=\"a_"));
        assert_eq!(text.matches('"').count(), 2);
        let emoji = content_disposition("😀 résumé.pdf", false);
        assert_eq!(
            emoji.to_str().unwrap(),
            "inline; filename=\"_ r_sum_.pdf\"; filename*=UTF-8''%F0%9F%98%80%20r%C3%A9sum%C3%A9.pdf"
        );
    }
}
