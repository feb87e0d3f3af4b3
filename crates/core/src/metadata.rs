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

/// Checks one tag and trims it; its case is kept (tags match case-insensitively, by `tag_key`).
/// Refuses empty, long, comma or control characters.
pub fn normalize_tag(raw: &str) -> Result<String> {
    let tag = raw.trim();
    // Checked as folded too: what folds to nothing, or into a comma, is no tag.
    let key = tag_key(tag);
    if key.is_empty()
        || [tag, key.as_str()].iter().any(|form| {
            form.chars().count() > MAX_TAG_CHARS || form.contains(',') || form.chars().any(char::is_control)
        })
    {
        return Err(Error::bad_request(
            Code::InvalidTag,
            format!("tags are 1 to {MAX_TAG_CHARS} characters, without commas or control characters"),
        ));
    }
    Ok(tag.to_owned())
}

/// What tags are matched, counted and told apart by: the tag folded (`names::fold`), so `Event`
/// and `event` are one tag spelt two ways.
pub fn tag_key(tag: &str) -> String {
    crate::names::fold(tag)
}

/// Normalises a set of tags: each as `normalize_tag`, one per `tag_key` (the first spelling
/// given wins), sorted by key.
pub fn normalize_tags(raw: Vec<String>) -> Result<Vec<String>> {
    let mut tags = Vec::with_capacity(raw.len());
    let mut keys = std::collections::HashSet::new();
    for tag in &raw {
        let tag = normalize_tag(tag)?;
        if keys.insert(tag_key(&tag)) {
            tags.push(tag);
        }
    }
    tags.sort_by_cached_key(|tag| (tag_key(tag), tag.clone()));
    if tags.len() > MAX_TAGS {
        return Err(Error::bad_request(
            Code::TooManyTags,
            format!("a file may have at most {MAX_TAGS} tags"),
        ));
    }
    Ok(tags)
}

/// The longest client-chosen file id, in characters.
pub const MAX_EXTERNAL_ID_CHARS: usize = 200;

/// Checks a client-chosen file id (the CMS dialect's `api_id`): 1 to 200 characters, no slash
/// (it is a path segment), no white space at either end, no control characters, and not starting
/// with `file_` (a path segment names one file, whichever kind of id it holds).
/// `patterns::EXTERNAL_ID_PATTERN` spells the same.
pub fn validate_external_id(raw: &str) -> Result<String> {
    let invalid = |why: &str| Error::bad_request(Code::InvalidExternalId, format!("the id {why}"));
    if raw.is_empty() || raw.chars().count() > MAX_EXTERNAL_ID_CHARS {
        return Err(invalid(&format!("must be 1 to {MAX_EXTERNAL_ID_CHARS} characters")));
    }
    if raw.trim() != raw || raw.contains('/') || raw.chars().any(char::is_control) {
        return Err(invalid("must not contain a slash, control characters, or white space at either end"));
    }
    if raw.starts_with(crate::FileId::PREFIX) {
        return Err(invalid(&format!(
            "must not start with {:?}, the prefix of Cabinet's ids",
            crate::FileId::PREFIX
        )));
    }
    Ok(raw.to_owned())
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
    fn tags_keep_their_spelling_and_are_deduplicated_case_insensitively() {
        let tags =
            normalize_tags(vec![" Product ".into(), "EVENT".into(), "product".into(), "Été".into()]).unwrap();
        assert_eq!(tags, vec!["EVENT", "Product", "Été"]);
        assert_eq!(tag_key("Été"), "été");
        assert!(normalize_tags(vec!["a,b".into()]).is_err());
        assert!(normalize_tags(vec!["a\u{FF0C}b".into()]).is_err(), "a comma once folded");
        assert!(normalize_tags(vec!["".into()]).is_err());
        assert!(normalize_tags(vec!["x".repeat(65)]).is_err());
        assert!(normalize_tags((0..51).map(|i| format!("t{i}")).collect()).is_err());
    }

    #[test]
    fn an_external_id_is_one_path_segment_unlike_a_cabinet_id() {
        assert_eq!(validate_external_id("hero-image_2025.v2").unwrap(), "hero-image_2025.v2");
        for bad in ["", " padded", "a/b", "tab\there", "file_mine", &"x".repeat(201)] {
            assert!(validate_external_id(bad).is_err(), "{bad:?}");
        }
        let cabinet_id = crate::FileId::generate().to_string();
        assert!(validate_external_id(&cabinet_id).is_err());
    }
}
