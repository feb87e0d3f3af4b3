//! Content types: sniffed from the bytes, never taken on trust. A declared type is kept only when
//! the bytes agree with it or say nothing; types a browser would execute are flagged so every
//! download surface serves them as attachments.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::Code;

/// The largest declared content type accepted.
const MAX_MIME_LEN: usize = 255;

/// Checks a declared content type is a plausible `type/subtype` and returns it lowercased.
pub fn parse_declared(raw: &str) -> Result<String, crate::Error> {
    let essence = raw.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let valid_token =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    match essence.split_once('/') {
        Some((kind, sub)) if essence.len() <= MAX_MIME_LEN && valid_token(kind) && valid_token(sub) => {
            Ok(essence)
        }
        _ => Err(crate::Error::bad_request(
            Code::InvalidMimeType,
            "mime_type must look like type/subtype, e.g. image/png",
        )),
    }
}

/// Decides a file's content type from its first bytes, its declared type and its name.
pub fn sniff(head: &[u8], declared: Option<&str>, name: &str) -> String {
    if let Some(found) = infer::get(head) {
        let found = found.mime_type();
        return match declared {
            Some(declared) if agrees(declared, found) => declared.to_owned(),
            _ => found.to_owned(),
        };
    }
    if head.is_empty() {
        return declared.map(str::to_owned).unwrap_or_else(|| from_extension(name).to_owned());
    }
    if looks_like_text(head) {
        if let Some(markup) = markup_type(head) {
            return markup.to_owned();
        }
        return match declared {
            Some(declared) if is_textual(declared) => declared.to_owned(),
            _ => {
                let by_name = from_extension(name);
                if is_textual(by_name) {
                    by_name.to_owned()
                } else {
                    "text/plain".to_owned()
                }
            }
        };
    }
    match declared {
        Some(declared) if !is_textual(declared) => declared.to_owned(),
        _ => "application/octet-stream".to_owned(),
    }
}

/// RFC 8187 `attr-char`: everything else is percent-encoded.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// A `Content-Disposition` value for a name: an ASCII fallback with anything risky replaced, and
/// the exact name percent-encoded in `filename*`. Never contains a quote, CR or LF of the name.
pub fn disposition(name: &str, attachment: bool) -> String {
    let fallback: String =
        name.chars()
            .map(|c| {
                if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | ';' | '%') || c == ' ' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
    let encoded = utf8_percent_encode(name, ATTR_CHAR);
    let kind = if attachment { "attachment" } else { "inline" };
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// Whether a browser would run this type's content as a page or script if served inline.
pub fn is_active_content(mime: &str) -> bool {
    let essence = mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "text/html"
            | "application/xhtml+xml"
            | "image/svg+xml"
            | "text/xml"
            | "application/xml"
            | "text/javascript"
            | "application/javascript"
            | "application/x-javascript"
            | "application/ecmascript"
            | "text/ecmascript"
            | "application/wasm"
            | "application/x-shockwave-flash"
            | "multipart/x-mixed-replace"
    ) || !(essence.starts_with("image/")
        || essence.starts_with("video/")
        || essence.starts_with("audio/")
        || essence == "text/plain"
        || essence == "text/csv"
        || essence == "application/json"
        || essence == "application/pdf")
}

fn agrees(declared: &str, found: &str) -> bool {
    declared == found
        || (declared == "image/jpg" && found == "image/jpeg")
        || (declared == "audio/mp3" && found == "audio/mpeg")
        || (declared == "video/quicktime" && found == "video/mp4")
}

fn is_textual(mime: &str) -> bool {
    mime.starts_with("text/")
        || matches!(
            mime,
            "application/json" | "application/xml" | "application/x-ndjson" | "application/yaml"
        )
}

fn looks_like_text(head: &[u8]) -> bool {
    // A multi-byte character may be cut at the end of the head.
    let valid_prefix = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(err) => err.error_len().is_none() && head.len() - err.valid_up_to() < 4,
    };
    valid_prefix && !head.iter().any(|&b| b == 0 || (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c)))
}

fn markup_type(head: &[u8]) -> Option<&'static str> {
    let text = String::from_utf8_lossy(&head[..head.len().min(1024)]).to_ascii_lowercase();
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if text.contains("<svg") {
        return Some("image/svg+xml");
    }
    if ["<!doctype html", "<html", "<head", "<script", "<body", "<iframe"]
        .iter()
        .any(|tag| text.contains(tag))
    {
        return Some("text/html");
    }
    if text.starts_with("<?xml") {
        return Some("application/xml");
    }
    None
}

fn from_extension(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "md" | "markdown" => "text/markdown",
        "json" => "application/json",
        "ndjson" => "application/x-ndjson",
        "yaml" | "yml" => "application/yaml",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "html" | "htm" => "text/html",
        "svg" => "image/svg+xml",
        "xml" => "application/xml",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn the_bytes_win_over_a_lying_declaration() {
        assert_eq!(sniff(PNG, Some("text/html"), "x.html"), "image/png");
        assert_eq!(sniff(b"<html><script>alert(1)</script>", Some("image/png"), "a.png"), "text/html");
        assert_eq!(
            sniff(b"<svg xmlns='http://www.w3.org/2000/svg'/>", Some("image/png"), "a"),
            "image/svg+xml"
        );
    }

    #[test]
    fn a_declaration_that_agrees_or_fills_a_gap_is_kept() {
        assert_eq!(sniff(PNG, Some("image/png"), "x"), "image/png");
        assert_eq!(sniff(b"a,b\n1,2\n", Some("text/csv"), "x"), "text/csv");
        assert_eq!(sniff(b"{\"a\":1}", None, "x.json"), "application/json");
        assert_eq!(sniff(b"hello", None, "x"), "text/plain");
        assert_eq!(sniff(&[1, 2, 3, 0, 255], Some("application/x-thing"), "x"), "application/x-thing");
        assert_eq!(sniff(&[1, 2, 3, 0, 255], None, "x"), "application/octet-stream");
    }

    #[test]
    fn pages_and_scripts_are_active_content() {
        for mime in [
            "text/html",
            "image/svg+xml",
            "application/xhtml+xml",
            "text/javascript",
            "application/x-unknown",
        ] {
            assert!(is_active_content(mime), "{mime}");
        }
        for mime in ["image/png", "video/mp4", "text/plain", "application/json"] {
            assert!(!is_active_content(mime), "{mime}");
        }
    }

    #[test]
    fn declared_types_are_validated() {
        assert_eq!(parse_declared("Image/PNG; charset=x").unwrap(), "image/png");
        for bad in ["", "png", "image/", "a/b\r\nX-Evil: 1", "a b/c"] {
            assert!(parse_declared(bad).is_err(), "{bad:?}");
        }
    }
}
