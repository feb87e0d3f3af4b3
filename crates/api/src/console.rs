//! The web console at `/console`: one page, its script and its style, embedded in the binary so
//! it works offline. It is a client of the native API like any other (the key the user types,
//! kept in the tab), so it holds no rule of its own. Its policy lets it load nothing but its own
//! files and talk to nothing but this origin; it stays out of the OpenAPI document, being a UI.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use cabinet_core::Error;

use crate::error::ApiError;

/// Only this origin's scripts, styles, images (signed file URLs are on it), and API; no inline
/// code, no framing, no forms posting elsewhere.
const CONSOLE_CSP: HeaderValue = HeaderValue::from_static(
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
);

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

/// The console's routes: the page at `/console` (and `/console/`), its files at `/console/{asset}`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(page))
        .route("/console/", get(page))
        .route("/console/{asset}", get(asset))
}

async fn page(headers: HeaderMap) -> Response {
    serve(&ASSETS[0], &headers)
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => serve(asset, &headers),
        None => ApiError(Error::NotFound("console asset")).into_response(),
    }
}

/// Serves an asset with a validator: browsers revalidate every time (the files are not
/// fingerprinted, so a new binary must never meet a stale script) and get a 304 when unchanged.
fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let etag = etag_of(asset.body);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|list| list.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    let common = [
        (header::CONTENT_SECURITY_POLICY, CONSOLE_CSP),
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
