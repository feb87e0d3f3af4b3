//! The web console at `/console`: one page, its script and its style, embedded in the binary so
//! it works offline. It is a client of the native API like any other (the key the user types,
//! kept in the tab), so it holds no rule of its own. Its policy lets it load nothing but its own
//! files and talk to nothing but this origin — and, with S3 storage, the bucket's origin, which
//! its uploads are sent to and its signed links point at; it stays out of the OpenAPI document,
//! being a UI.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use cabinet_core::Error;

use crate::error::ApiError;

/// The console's policy: only this origin's scripts, styles, images (thumbnails and signed file URLs
/// are on it) and API, plus the blob store's origin for images and requests when browsers talk to
/// it directly (S3); no inline code, no framing, no forms posting elsewhere.
pub fn policy(storage_origin: Option<&str>) -> HeaderValue {
    // An origin is `scheme://host[:port]`: nothing that could end a directive or a header.
    let extra = storage_origin
        .filter(|origin| {
            (origin.starts_with("http://") || origin.starts_with("https://"))
                && origin.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:/[]".contains(&b))
        })
        .map(|origin| format!(" {origin}"))
        .unwrap_or_default();
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'{extra}; \
         connect-src 'self'{extra}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy).expect("the policy is visible ASCII")
}

/// One embedded file and how to serve it.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../console/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../console/app.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../console/style.css"),
    },
];

/// The console's routes: the page at `/console` (and `/console/`), its files at `/console/{asset}`,
/// under the policy for this blob store's origin (see [`policy`]); `/` leads a browser to it.
pub fn routes(storage_origin: Option<&str>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(page))
        .route("/console/", get(page))
        .route("/console/{asset}", get(asset))
        .with_state(policy(storage_origin))
}

async fn page(State(csp): State<HeaderValue>, headers: HeaderMap) -> Response {
    serve(&ASSETS[0], &headers, csp)
}

async fn asset(State(csp): State<HeaderValue>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => serve(asset, &headers, csp),
        None => ApiError(Error::NotFound("console asset")).into_response(),
    }
}

/// Serves an asset with a validator: browsers revalidate every time (the files are not
/// fingerprinted, so a new binary must never meet a stale script) and get a 304 when unchanged.
fn serve(asset: &Asset, headers: &HeaderMap, csp: HeaderValue) -> Response {
    let etag = etag_of(asset.body);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|list| list.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    let common = [
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::ETAG, HeaderValue::from_str(&etag).expect("hex is a valid header value")),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (common, [(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type))], asset.body)
        .into_response()
}

/// A strong validator from the bytes (FNV-1a: stable across builds and platforms).
fn etag_of(body: &str) -> String {
    let hash = body.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("\"{hash:016x}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_admits_the_storage_origin_for_images_and_requests_only() {
        let local = policy(None);
        assert!(!local.to_str().unwrap().contains("http"));
        let s3 = policy(Some("http://127.0.0.1:9000"));
        let s3 = s3.to_str().unwrap();
        assert!(s3.contains("img-src 'self' http://127.0.0.1:9000;"), "{s3}");
        assert!(s3.contains("connect-src 'self' http://127.0.0.1:9000;"), "{s3}");
        assert!(s3.contains("script-src 'self';"), "{s3}");
        // Nothing that is not an origin gets into the policy.
        let hostile = policy(Some("https://x; script-src *"));
        assert_eq!(hostile, local);
    }

    #[test]
    fn every_asset_the_page_names_is_embedded() {
        let page = ASSETS[0].body;
        for asset in &ASSETS[1..] {
            assert!(
                page.contains(&format!("/console/{}", asset.name)),
                "index.html does not load {}",
                asset.name
            );
        }
    }

    #[test]
    fn the_page_has_no_inline_code_for_the_policy_to_block() {
        let page = ASSETS[0].body;
        assert!(!page.contains("<style"), "inline style");
        assert!(!page.contains(" style="), "inline style attribute");
        assert!(!page.contains("<script>"), "inline script");
        let handler = page.split_whitespace().find(|word| word.starts_with("on") && word.contains("=\""));
        assert_eq!(handler, None, "inline event handler");
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "the console loads nothing from elsewhere"
        );
    }
}
