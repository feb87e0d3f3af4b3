//! Base64 file bodies, as the CMS and Serenities dialects take them: the pattern their schemas
//! document, the decoding, and the byte stream the core's direct upload takes.

use base64::Engine;
use bytes::Bytes;
use cabinet_core::ByteStream;
use futures::{stream, StreamExt};

/// ASCII white space, which `decode_base64` skips anywhere in the payload.
macro_rules! ascii_space {
    () => {
        r"[\t\n\f\r ]*"
    };
}

/// A base64 character and the white space after it.
macro_rules! b64 {
    ($class:literal) => {
        concat!($class, ascii_space!())
    };
}

/// What `decode_base64` takes, as a JSON Schema pattern: an optional `data:<type/subtype>;base64,`
/// prefix, then standard base64 with ASCII white space anywhere and the padding optional (the
/// last character before it carries no stray bits).
pub(crate) const DIALECT_BASE64_PATTERN: &str = concat!(
    r"^(?:data:(?:[A-Za-z0-9!#$&^_.+\-]{1,127}/[A-Za-z0-9!#$&^_.+\-]{1,127})?;base64,)?",
    ascii_space!(),
    "(?:",
    b64!("[A-Za-z0-9+/]"),
    b64!("[A-Za-z0-9+/]"),
    b64!("[A-Za-z0-9+/]"),
    b64!("[A-Za-z0-9+/]"),
    ")*(?:",
    b64!("[A-Za-z0-9+/]"),
    b64!("[AQgw]"),
    "(?:",
    b64!("="),
    b64!("="),
    ")?|",
    b64!("[A-Za-z0-9+/]"),
    b64!("[A-Za-z0-9+/]"),
    b64!("[AEIMQUYcgkosw048]"),
    "(?:",
    b64!("="),
    ")?)?$"
);

/// Decodes standard base64, ignoring whitespace and missing padding; a `data:<mime>;base64,`
/// prefix is stripped and its MIME type returned.
pub(crate) fn decode_base64(raw: &str) -> Option<(Vec<u8>, Option<String>)> {
    let (mime, payload) = match raw.strip_prefix("data:").and_then(|rest| rest.split_once(',')) {
        Some((header, payload)) => {
            let mime = header.strip_suffix(";base64")?;
            (Some(mime.to_owned()).filter(|m| !m.is_empty()), payload)
        }
        None => (None, raw),
    };
    let compact: String = payload.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engine = base64::engine::general_purpose::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(compact.as_bytes()).ok().map(|bytes| (bytes, mime))
}

/// A decoded body as the one-chunk stream the core's direct upload takes.
pub(crate) fn byte_stream(bytes: Vec<u8>) -> ByteStream<'static> {
    stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(bytes)) }).boxed()
}
