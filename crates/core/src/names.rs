//! Names of files and folders: any Unicode a person would type, never anything that could be read
//! as a path or smuggle control characters. Names are data, never used as paths.

use crate::error::{Error, Result};

/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 255;

/// Checks a file or folder name and returns it trimmed of surrounding white space.
pub fn validate_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    let refuse = |message: &str| Err(Error::bad_request("invalid_name", message.to_owned()));
    if name.is_empty() {
        return refuse("the name must not be empty");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::bad_request(
            "name_too_long",
            format!("the name must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name == "." || name == ".." {
        return refuse("the name must not be . or ..");
    }
    if name.contains(['/', '\\']) {
        return refuse("the name must not contain / or \\");
    }
    if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return refuse("the name must not contain control characters");
    }
    Ok(name.to_owned())
}

/// The form names are compared and searched in: Unicode lowercase, so `Report.PDF` matches
/// `report` and `RÉSUMÉ` matches `résumé`.
pub fn fold(name: &str) -> String {
    name.to_lowercase()
}

/// "name (2).ext": the `n`th variant of a name, for `on_conflict=rename`.
pub fn numbered(name: &str, n: u32) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => format!("{stem} ({n}).{ext}"),
        _ => format!("{name} ({n})"),
    }
}

/// Characters that reorder text on screen, which can disguise an extension (`exe.txt`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everyday_unicode_names_are_kept() {
        for name in ["Report.PDF", "résumé.docx", "😀 party.png", "تقرير.pdf", "👨‍👩‍👧 family.jpg", "a..b"]
        {
            assert_eq!(validate_name(name).unwrap(), name);
        }
        assert_eq!(validate_name("  padded.txt ").unwrap(), "padded.txt");
    }

    #[test]
    fn path_like_and_control_names_are_refused() {
        for name in ["../x", "a/b", "a\\b", "..", ".", "", "   ", "a\0b", "a\nb", "evil\u{202e}txt.exe"] {
            assert_eq!(validate_name(name).unwrap_err().code(), "invalid_name", "{name:?}");
        }
    }

    #[test]
    fn overlong_names_are_refused() {
        assert_eq!(validate_name(&"x".repeat(3000)).unwrap_err().code(), "name_too_long");
        assert!(validate_name(&"é".repeat(MAX_NAME_CHARS)).is_ok());
    }
}
