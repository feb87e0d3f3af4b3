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

/// `names::is_invisible` (Default_Ignorable_Code_Point). The ones beyond the Basic Multilingual
/// Plane are the characters themselves: ECMA-262 escapes them only under the `u` flag, which
/// JSON Schema does not set, while validators and generators that read code points (jsonschema-rs,
/// Python's `re`, as schemathesis uses them) take a literal range.
macro_rules! invisible {
    () => {
        concat!(
            r"\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8",
            "\u{1BCA0}-\u{1BCA3}\u{1D173}-\u{1D17A}\u{E0000}-\u{E0FFF}"
        )
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

/// What `str::trim` leaves of a run (the caller puts the leading white space before it): a first
/// and a last character that are neither white space nor forbidden, nothing forbidden between
/// them, `$inner` a quantifier for the characters between (`{0,62}`: at most 64 in all), then
/// the trailing white space.
macro_rules! trimmed_run {
    ([$($forbidden:tt)*], $inner:literal) => {
        concat!(
            "[^", $($forbidden)*, white_space!(), "]",
            "(?:[^", $($forbidden)*, "]", $inner, "[^", $($forbidden)*, white_space!(), "])?",
            "[", white_space!(), "]*"
        )
    };
}

/// One tag as `metadata::normalize_tag` takes it, within a list or alone: white space around at
/// most `MAX_TAG_CHARS` characters without commas or control characters, one of them visible.
macro_rules! tag {
    () => {
        concat!(
            "[",
            white_space!(),
            "]*",
            "(?![",
            white_space!(),
            invisible!(),
            "]*(?:,|$))",
            trimmed_run!([control!(), not_in_tags!()], "{0,62}")
        )
    };
}

// The quantifiers above and below spell these bounds (the first and last character aside).
const _: () = assert!(crate::metadata::MAX_TAG_CHARS == 64);
const _: () = assert!(crate::names::MAX_NAME_CHARS == 255);
const _: () = assert!(crate::metadata::MAX_REFERENCE_CHARS == 200);
const _: () = assert!(crate::metadata::MAX_EXTERNAL_ID_CHARS == 200);

/// `names::validate_name`: white space around at most `MAX_NAME_CHARS` characters with no
/// control, bidi or slash-like character, one of them visible, and not `.` or `..`.
pub const NAME_PATTERN: &str = concat!(
    "^(?![",
    white_space!(),
    r"]*\.\.?[",
    white_space!(),
    "]*$)",
    "[",
    white_space!(),
    "]*",
    "(?![",
    white_space!(),
    invisible!(),
    "]*$)",
    trimmed_run!([control!(), not_in_names!()], "{0,253}"),
    "$"
);

/// `metadata::normalize_tag` for one tag.
pub const TAG_PATTERN: &str = concat!("^", tag!(), "$");

/// Comma-separated tags as a list filter takes them (`tags=a,b`): each piece blank (skipped) or a
/// tag.
pub const TAG_LIST_PATTERN: &str =
    concat!("^(?:[", white_space!(), "]*|", tag!(), ")", "(?:,(?:[", white_space!(), "]*|", tag!(), "))*$");

/// `metadata::validate_external_id`: 1 to `MAX_EXTERNAL_ID_CHARS` characters without a slash or
/// control characters, no white space at either end, not starting with `file_`.
pub const EXTERNAL_ID_PATTERN: &str = concat!(
    "^(?!file_)[^",
    control!(),
    "/",
    white_space!(),
    "](?:[^",
    control!(),
    "/]{0,198}[^",
    control!(),
    "/",
    white_space!(),
    "])?$"
);

/// `metadata::validate_text` (with `maxLength` `MAX_TEXT_CHARS`): anything but NUL.
pub const TEXT_PATTERN: &str = r"^[^\u0000]*$";

/// `metadata::validate_reference_part` (a reference's kind or id) and an end-user token's `sub`
/// (`rules`): white space around 1 to `MAX_REFERENCE_CHARS` characters without control ones.
pub const REFERENCE_PART_PATTERN: &str =
    concat!("^[", white_space!(), "]*", trimmed_run!([control!()], "{0,198}"), "$");

/// A search query (`Cabinet::search`): white space around a run without control characters.
pub const SEARCH_QUERY_PATTERN: &str =
    concat!("^[", white_space!(), "]*", trimmed_run!([control!()], "*"), "$");

/// Text without control characters: a name filter as `listing::check_name_filter` takes it
/// untrimmed (the Mavera dialect's `search`).
pub const NO_CONTROL_PATTERN: &str = concat!("^[^", control!(), "]*$");

/// A name filter of a list: blank (no filter), or a search query.
pub const NAME_FILTER_PATTERN: &str =
    concat!("^[", white_space!(), "]*(?:", trimmed_run!([control!()], "*"), ")?$");

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

/// `webhooks::checked_event_types` for one entry of a filter: `*`, a type, or a prefix ending
/// in `.*` (at most 64 characters, a length the schema states beside it).
pub const WEBHOOK_EVENT_TYPE_PATTERN: &str = r"^(?:\*|[a-z_]+(?:\.[a-z_]+)*(?:\.\*)?)$";

/// A webhook receiver's URL as `webhooks::checked_receiver` first reads it: http or https, a
/// host without credentials. (Whether the host is a public address depends on the server's
/// `--webhook-allow-private` and on DNS, which no pattern states.)
pub const WEBHOOK_URL_PATTERN: &str = r"^https?://[^\s/?#@]+(?:[/?#]\S*)?$";
