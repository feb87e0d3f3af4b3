//! What clients may attach to a file: tags (normalised, bounded), short texts (alt text, caption,
//! copyright), a custom JSON object of bounded size, and references.

use crate::error::{Error, Result};
use crate::Code;

/// The most tags one file may carry.
pub const MAX_TAGS: usize = 50;
/// The longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;
/// The longest alt text, caption, copyright or reference label, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// The longest kind or id of a reference, in characters.
pub const MAX_REFERENCE_CHARS: usize = 200;
/// The largest custom metadata object, serialised.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// Normalises one tag: trimmed, lowercase; refuses empty, long, comma or control characters.
pub fn normalize_tag(raw: &str) -> Result<String> {
    let tag = crate::names::fold(raw.trim());
    if tag.is_empty()
        || tag.chars().count() > MAX_TAG_CHARS
        || tag.contains(',')
        || tag.chars().any(char::is_control)
    {
        return Err(Error::bad_request(
            Code::InvalidTag,
            format!("tags are 1 to {MAX_TAG_CHARS} characters, without commas or control characters"),
        ));
    }
    Ok(tag)
}

/// Normalises a set of tags: each as `normalize_tag`, deduplicated and sorted.
pub fn normalize_tags(raw: Vec<String>) -> Result<Vec<String>> {
    let mut tags = raw.iter().map(|tag| normalize_tag(tag)).collect::<Result<Vec<_>>>()?;
    tags.sort();
    tags.dedup();
    if tags.len() > MAX_TAGS {
        return Err(Error::bad_request(
            Code::TooManyTags,
            format!("a file may have at most {MAX_TAGS} tags"),
        ));
    }
    Ok(tags)
}

/// Checks a short text field.
pub fn validate_text(raw: &str) -> Result<String> {
    if raw.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::bad_request(
            Code::TextTooLong,
            format!("text fields are at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    if raw.contains('\0') {
        return Err(Error::bad_request(Code::InvalidText, "text fields must not contain NUL"));
    }
    Ok(raw.to_owned())
}

/// Checks a custom metadata object's size.
pub fn validate_custom(metadata: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
    let size = serde_json::to_vec(metadata).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(Error::TooLarge {
            code: Code::MetadataTooLarge,
            message: format!("metadata is at most {MAX_METADATA_BYTES} bytes of JSON"),
        });
    }
    Ok(())
}

/// Checks the kind or id of a reference: 1 to 200 characters, no control characters.
pub fn validate_reference_part(what: &str, raw: &str) -> Result<String> {
    let value = raw.trim();
    if value.is_empty() || value.chars().count() > MAX_REFERENCE_CHARS || value.chars().any(char::is_control)
    {
        return Err(Error::bad_request(
            Code::InvalidReference,
            format!("the reference {what} must be 1 to {MAX_REFERENCE_CHARS} characters without control characters"),
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_normalised_deduplicated_and_bounded() {
        let tags =
            normalize_tags(vec![" Product ".into(), "EVENT".into(), "product".into(), "Été".into()]).unwrap();
        assert_eq!(tags, vec!["event", "product", "été"]);
        assert!(normalize_tags(vec!["a,b".into()]).is_err());
        assert!(normalize_tags(vec!["".into()]).is_err());
        assert!(normalize_tags(vec!["x".repeat(65)]).is_err());
        assert!(normalize_tags((0..51).map(|i| format!("t{i}")).collect()).is_err());
    }
}
