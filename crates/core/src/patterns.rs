//! The input rules of this crate spelled as JSON Schema patterns (ECMA-262, which OpenAPI uses),
//! so every surface's document says exactly what the server accepts. Each pattern mirrors one
//! check, named in its doc; change both together (the fuzzer, `dev/fuzz`, holds them equal).

/// `char::is_control`: Unicode's Cc category.
macro_rules! control {
    () => {
        r"\u0000-\u001F\u007F-\u009F"
    };
}

/// `char::is_whitespace` (Unicode's White_Space), what `str::trim` removes.
macro_rules! white_space {
    () => {
        r"\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
    };
}

/// The Basic Multilingual Plane part of `names::is_invisible` (Default_Ignorable_Code_Point).
macro_rules! invisible {
    () => {
        r"\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8"
    };
}

/// `names::is_bidi_control` and `names::is_slash_look_alike`, with `/` and `\` themselves.
macro_rules! not_in_names {
    () => {
        r"\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069/\\\uFF0F\uFF3C\u2215\u2044\u29F8\u29F9\uFE68"
    };
}

/// What `metadata::normalize_tag` refuses in a tag: a comma, or a character NFKC folds into one.
macro_rules! not_in_tags {
    () => {
        r",\uFE10\uFE50\uFF0C"
    };
}

/// One tag as `metadata::normalize_tag` takes it: white space around a run without commas or
/// control characters that has a visible character. (`MAX_TAG_CHARS` is a separate `maxLength`
/// where a tag stands alone, and a look-ahead in `TAG_LIST_PATTERN`.)
macro_rules! tag {
    () => {
        concat!(
            "[",
            white_space!(),
            "]*",
            "[^",
            control!(),
            not_in_tags!(),
            "]*",
            "[^",
            control!(),
            not_in_tags!(),
            white_space!(),
            invisible!(),
            "]",
            "[^",
            control!(),
            not_in_tags!(),
            "]*",
            "[",
            white_space!(),
            "]*"
        )
    };
}

/// `names::validate_name` (with `maxLength` `MAX_NAME_CHARS`): white space around a run with no
/// control, bidi or slash-like character that holds a visible one, and is not `.` or `..`.
pub const NAME_PATTERN: &str = concat!(
    r"^(?![",
    white_space!(),
    r"]*\.\.?[",
    white_space!(),
    "]*$)",
    "[",
    white_space!(),
    "]*",
    "[^",
    control!(),
    not_in_names!(),
    "]*",
    "[^",
    control!(),
    not_in_names!(),
    white_space!(),
    invisible!(),
    "]",
    "[^",
    control!(),
    not_in_names!(),
    "]*",
    "[",
    white_space!(),
    "]*$"
);

/// `metadata::normalize_tag` for one tag (with `maxLength` `MAX_TAG_CHARS`).
pub const TAG_PATTERN: &str = concat!("^", tag!(), "$");

/// Comma-separated tags as a list filter takes them (`tags=a,b`): each piece blank (skipped) or a
/// tag of at most `MAX_TAG_CHARS` characters.
pub const TAG_LIST_PATTERN: &str = concat!(
    "^(?:[",
    white_space!(),
    "]*|(?![^,]{65})",
    tag!(),
    ")",
    "(?:,(?:[",
    white_space!(),
    "]*|(?![^,]{65})",
    tag!(),
    "))*$"
);

/// `metadata::validate_text` (with `maxLength` `MAX_TEXT_CHARS`): anything but NUL.
pub const TEXT_PATTERN: &str = r"^[^\u0000]*$";

/// Trimmed, not empty, no control character inside: `metadata::validate_reference_part`, an
/// end-user token's `sub` (`rules`), and a name filter (`listing::check_name_filter`, with the
/// search query, which must not be empty).
pub const TRIMMED_PRINTABLE_PATTERN: &str = concat!(
    "^[",
    white_space!(),
    "]*",
    "[^",
    control!(),
    "]*",
    "[^",
    control!(),
    white_space!(),
    "]",
    "[^",
    control!(),
    "]*",
    "[",
    white_space!(),
    "]*$"
);

/// Text without control characters: a name filter as `listing::check_name_filter` takes it
/// untrimmed (the Mavera dialect's `search`).
pub const NO_CONTROL_PATTERN: &str = concat!("^[^", control!(), "]*$");

/// A name filter of a list: blank (no filter), or `TRIMMED_PRINTABLE_PATTERN`.
pub const NAME_FILTER_PATTERN: &str = concat!(
    "^[",
    white_space!(),
    "]*",
    "(?:[^",
    control!(),
    "]*",
    "[^",
    control!(),
    white_space!(),
    "]",
    "[^",
    control!(),
    "]*",
    "[",
    white_space!(),
    "]*)?$"
);

/// A page cursor: unpadded URL-safe base64, as `listing::encode_cursor` writes it. (Only a cursor
/// the list returned is taken; its format is all a schema can say.)
pub const CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]+$";

/// `kind:id`, the `referenced_by` filter: a kind without `:`, then any id.
pub const REFERENCED_BY_PATTERN: &str = r"^[^:]+:[\s\S]+$";

/// Hex SHA-256 in either case, white space around: `uploads::parse_sha256`.
pub const SHA256_PATTERN: &str = concat!("^[", white_space!(), "]*[0-9A-Fa-f]{64}[", white_space!(), "]*$");

/// A declared content type, as `content_type::parse_declared` takes it: `type/subtype` tokens
/// (together at most 255 characters), white space around, any parameters after `;`.
pub const MIME_TYPE_PATTERN: &str = concat!(
    "^[",
    white_space!(),
    "]*",
    r"[A-Za-z0-9!#$&^_.+\-]{1,127}/[A-Za-z0-9!#$&^_.+\-]{1,127}",
    "[",
    white_space!(),
    r"]*(?:;[\s\S]*)?$"
);

/// Standard, padded base64 as the `base64` crate's `STANDARD` engine decodes it (the last
/// character before padding carries no stray bits), white space around.
pub const BASE64_PATTERN: &str = concat!(
    "^[",
    white_space!(),
    "]*",
    "(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?",
    "[",
    white_space!(),
    "]*$"
);
