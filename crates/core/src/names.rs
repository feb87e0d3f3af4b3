//! Names of files and folders: any Unicode a person would type, never anything that could be read
//! as a path or smuggle control characters. Names are data, never used as paths. Two names that a
//! person cannot tell apart (another Unicode spelling of the same text, an invisible character,
//! a full-width letter) are one name where names must be distinct.

use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};
use crate::Code;

/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 255;

/// Checks a file or folder name and returns it trimmed of surrounding white space, in Unicode's
/// composed form (NFC), so "Café" is stored alike however it was typed.
pub fn validate_name(raw: &str) -> Result<String> {
    let composed: String = raw.nfc().collect();
    let name = composed.trim();
    let refuse = |message: &str| Err(Error::bad_request(Code::InvalidName, message.to_owned()));
    if name.is_empty() {
        return refuse("the name must not be empty");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::bad_request(
            Code::NameTooLong,
            format!("the name must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name == "." || name == ".." {
        return refuse("the name must not be . or ..");
    }
    if name.contains(['/', '\\']) || name.chars().any(is_slash_look_alike) {
        return refuse("the name must not contain / or \\, or a character that looks like one");
    }
    if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return refuse("the name must not contain control characters");
    }
    if !name.chars().any(|c| !c.is_whitespace() && !is_invisible(c)) {
        return refuse("the name must have a visible character");
    }
    Ok(name.to_owned())
}

/// The form names are compared and searched in: invisible characters dropped, compatibility
/// forms unified (NFKC: full-width `Ａ` is `A`, `ﬁ` is `fi`), then Unicode lowercase. So
/// `Report.PDF` matches `report`, `RÉSUMÉ` matches `résumé` in either spelling, and a name with
/// a zero-width space in it is the same name as the one without.
pub fn fold(name: &str) -> String {
    if name.is_ascii() {
        return name.to_ascii_lowercase();
    }
    let visible: String = name.chars().filter(|c| !is_invisible(*c)).collect();
    // Lowercasing can leave a sequence that is no longer normalised (and NFKC can make
    // uppercase), so normalise on both sides.
    visible.nfkc().collect::<String>().to_lowercase().nfkc().collect()
}

/// Characters drawn as nothing at all: Unicode's Default_Ignorable_Code_Point set (zero-width
/// spaces and joiners, soft hyphen, variation selectors, fillers, tags).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{034f}'
            | '\u{061c}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fff8}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    )
}

/// Characters drawn like `/` or `\`, which would make a name read as a path.
fn is_slash_look_alike(c: char) -> bool {
    matches!(c, '\u{ff0f}' | '\u{ff3c}' | '\u{2215}' | '\u{2044}' | '\u{29f8}' | '\u{29f9}' | '\u{fe68}')
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
            assert_eq!(validate_name(name).unwrap_err().code(), Code::InvalidName, "{name:?}");
        }
    }

    #[test]
    fn names_that_look_alike_are_one_name() {
        let composed = "Caf\u{e9}.txt";
        let decomposed = "Cafe\u{301}.txt";
        assert_eq!(validate_name(decomposed).unwrap(), composed, "stored composed");
        assert_eq!(fold(composed), fold(decomposed));
        assert_eq!(fold("re\u{200b}port.pdf"), fold("report.pdf"));
        assert_eq!(fold("\u{ff32}eport.pdf"), fold("report.pdf"), "full-width R");
        assert_eq!(fold("RÉSUMÉ"), "résumé");
        assert_ne!(fold("résumé"), fold("resume"), "accents still count");
    }

    #[test]
    fn invisible_and_slash_like_names_are_refused() {
        for name in ["\u{200b}", " \u{200b}\u{feff} ", "\u{fe0f}", "a\u{ff0f}b", "a\u{2215}b", "a\u{ff3c}b"] {
            assert_eq!(validate_name(name).unwrap_err().code(), Code::InvalidName, "{name:?}");
        }
    }

    #[test]
    fn overlong_names_are_refused() {
        assert_eq!(validate_name(&"x".repeat(3000)).unwrap_err().code(), Code::NameTooLong);
        assert!(validate_name(&"é".repeat(MAX_NAME_CHARS)).is_ok());
    }
}
