//! Schemas of the inputs core checks (names, tags, texts, references, cursors, folder scopes), for
//! `schema_with` in every surface's annotations: the document says exactly what the server takes,
//! and each rule is spelled once, in `cabinet_core::patterns` (length bounds of trimmed values
//! live in their patterns, since `maxLength` would count the white space the server trims).

use cabinet_core::metadata::{MAX_TAGS, MAX_TEXT_CHARS};
use cabinet_core::patterns;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};

/// A string (or null) matching `pattern`.
fn string(pattern: &str, max_length: Option<usize>, nullable: bool) -> ObjectBuilder {
    let schema_type = if nullable {
        SchemaType::Array(vec![Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new().schema_type(schema_type).pattern(Some(pattern)).max_length(max_length)
}

/// A file or folder name.
pub fn name() -> utoipa::openapi::Object {
    string(patterns::NAME_PATTERN, None, false).examples(["report.pdf"]).build()
}

/// A file or folder name, or null (left as it is).
pub fn name_or_null() -> utoipa::openapi::Object {
    string(patterns::NAME_PATTERN, None, true).build()
}

/// A file or folder name, or empty (not given: the file part's own filename is used).
pub fn name_or_empty() -> utoipa::openapi::Object {
    string(&or_empty(patterns::NAME_PATTERN), None, false).build()
}

/// A short text (alt text, caption, copyright, a reference's label), or null (cleared).
pub fn text_or_null() -> utoipa::openapi::Object {
    string(patterns::TEXT_PATTERN, Some(MAX_TEXT_CHARS), true).build()
}

/// A reference's kind or id, or an end-user token's `sub`.
pub fn reference_part() -> utoipa::openapi::Object {
    string(patterns::REFERENCE_PART_PATTERN, None, false).build()
}

/// A reference's id, empty or null (not given).
pub fn reference_part_or_empty_or_null() -> utoipa::openapi::Object {
    string(&or_empty(patterns::REFERENCE_PART_PATTERN), None, true).build()
}

/// A client-chosen file id (the CMS dialect's `api_id`), empty or null (none: Cabinet's id).
pub fn external_id_or_empty_or_null() -> utoipa::openapi::Object {
    string(&or_empty(patterns::EXTERNAL_ID_PATTERN), None, true).examples(["hero-image-2025"]).build()
}

/// A client-chosen file id as a form field, or empty (none: Cabinet's id).
pub fn external_id_or_empty() -> utoipa::openapi::Object {
    string(&or_empty(patterns::EXTERNAL_ID_PATTERN), None, false).examples(["hero-image-2025"]).build()
}

/// A short text as a form field (alt text, caption, copyright); empty clears it.
pub fn text() -> utoipa::openapi::Object {
    string(patterns::TEXT_PATTERN, Some(MAX_TEXT_CHARS), false).build()
}

/// One tag.
pub fn tag() -> utoipa::openapi::Object {
    string(patterns::TAG_PATTERN, None, false).build()
}

/// The tags of a file, replacing its tags, or null (left as they are).
pub fn tags_or_null() -> utoipa::openapi::Array {
    ArrayBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::Array, Type::Null]))
        .items(tag())
        .max_items(Some(MAX_TAGS))
        .build()
}

/// Comma-separated tags, as a list filter.
pub fn tag_list() -> utoipa::openapi::Object {
    string(patterns::TAG_LIST_PATTERN, None, false).examples(["product,event"]).build()
}

/// Tags as the CMS dialect takes them: a list of tags, one comma-separated string, or null (none).
pub fn tags_list_or_text_or_null() -> utoipa::openapi::schema::Schema {
    let one_of = utoipa::openapi::schema::OneOfBuilder::new()
        .item(ArrayBuilder::new().items(tag()).max_items(Some(MAX_TAGS)))
        .item(tag_list())
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build();
    utoipa::openapi::schema::Schema::OneOf(one_of)
}

/// Repeated form fields, each a comma-separated list of tags, beside `others` single fields: a
/// form sends at most `form::MAX_FIELDS` fields before its file (more is 413).
pub fn tag_list_fields(others: usize) -> utoipa::openapi::Array {
    ArrayBuilder::new().items(tag_list()).max_items(Some(crate::form::MAX_FIELDS - others)).build()
}

/// A folder id, or null (the root).
pub fn folder_id_or_null() -> utoipa::openapi::Object {
    string(cabinet_core::FolderId::PATTERN, None, true).build()
}

/// An id of one kind (its `PATTERN`), or empty: a Mavera query reads an empty value as absent.
fn id_or_empty(id_pattern: &str) -> utoipa::openapi::Object {
    string(&or_empty(id_pattern), None, false).build()
}

/// A folder id, or empty (not given).
pub fn folder_id_or_empty() -> utoipa::openapi::Object {
    id_or_empty(cabinet_core::FolderId::PATTERN)
}

/// A file id, or empty (not given).
pub fn file_id_or_empty() -> utoipa::openapi::Object {
    id_or_empty(cabinet_core::FileId::PATTERN)
}

fn folder_scope_pattern() -> String {
    let id = cabinet_core::FolderId::PATTERN.trim_start_matches('^').trim_end_matches('$');
    format!("^(|root|{id})$")
}

/// A folder id, `root` (the top level) or empty (anywhere).
pub fn folder_scope() -> utoipa::openapi::Object {
    string(&folder_scope_pattern(), None, false).examples(["root"]).build()
}

/// A folder id; `root`, empty or null for the root (the Serenities dialect).
pub fn folder_scope_or_null() -> utoipa::openapi::Object {
    string(&folder_scope_pattern(), None, true).build()
}

/// Text naming an upload: anything holding an upload id (`compat::upload_ids::upload_id_in`).
pub fn naming_an_upload() -> utoipa::openapi::Object {
    let id = cabinet_core::UploadId::PATTERN.trim_start_matches('^').trim_end_matches('$');
    string(&format!(r"^[\s\S]*{id}[\s\S]*$"), None, false)
        .examples(["upl_01jdq4x7m2c8v5n3k9w6r1t0ya"])
        .build()
}

/// A non-empty string (a dialect reads an empty one as absent).
pub fn non_empty() -> utoipa::openapi::Object {
    ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).build()
}

/// A name filter of a list (blank: no filter).
pub fn name_filter() -> utoipa::openapi::Object {
    string(patterns::NAME_FILTER_PATTERN, None, false).build()
}

/// A search query: not blank.
pub fn search_query() -> utoipa::openapi::Object {
    string(patterns::SEARCH_QUERY_PATTERN, None, false).examples(["report"]).build()
}

/// An audit log filter: text without control characters, of at most
/// `audit::MAX_FILTER_CHARS` characters.
pub fn audit_filter() -> utoipa::openapi::Object {
    string(patterns::NO_CONTROL_PATTERN, Some(cabinet_core::audit::MAX_FILTER_CHARS), false).build()
}

/// Text without control characters.
pub fn no_control() -> utoipa::openapi::Object {
    string(patterns::NO_CONTROL_PATTERN, None, false).build()
}

/// A page cursor: the `next_cursor` of the previous page.
pub fn cursor() -> utoipa::openapi::Object {
    string(patterns::CURSOR_PATTERN, None, false).build()
}

/// `kind:id` of something that uses a file.
pub fn referenced_by() -> utoipa::openapi::Object {
    string(patterns::REFERENCED_BY_PATTERN, None, false).examples(["conversation:conv_42"]).build()
}

/// A sort order: `asc` or `desc`, or null.
pub fn sort_order_or_null() -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
        .enum_values(Some([Some("asc"), Some("desc"), None]))
        .build()
}

/// A declared content type (`type/subtype`): the type the client believes; the stored one is
/// sniffed from the bytes.
pub fn mime_type() -> utoipa::openapi::Object {
    string(patterns::MIME_TYPE_PATTERN, None, false).examples(["image/png"]).build()
}

/// A declared content type, or null.
pub fn mime_type_or_null() -> utoipa::openapi::Object {
    string(patterns::MIME_TYPE_PATTERN, None, true).build()
}

/// A declared content type, empty or null (not given).
pub fn mime_type_or_empty_or_null() -> utoipa::openapi::Object {
    string(&or_empty(patterns::MIME_TYPE_PATTERN), None, true).build()
}

/// A declared SHA-256, or null.
pub fn sha256_or_null() -> utoipa::openapi::Object {
    string(patterns::SHA256_PATTERN, None, true).build()
}

/// File bytes in standard, padded base64.
pub fn base64() -> utoipa::openapi::Object {
    string(patterns::BASE64_PATTERN, None, false).examples(["aGVsbG8="]).build()
}

/// File bytes as the CMS and Serenities dialects take them (`compat::base64_body::decode_base64`).
pub fn dialect_base64() -> utoipa::openapi::Object {
    string(crate::compat::base64_body::DIALECT_BASE64_PATTERN, None, false).examples(["aGVsbG8="]).build()
}

/// The name of a form field a multipart body may carry besides its documented ones (which the
/// dialects ignore). It travels in a quoted header parameter: the HTML form encoding
/// percent-encodes CR, LF and `"` there, and HTTP allows no other control character but tab in a
/// header, so the server refuses a part that names one.
pub fn form_field_name() -> utoipa::openapi::Object {
    string(r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]*$", None, false).build()
}

/// A multipart form: a binary `file` field and `fields` before it, each `(name, schema,
/// required)`; other fields are allowed and ignored, with names a form can send.
pub fn form_with_file(
    fields: Vec<(&str, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>, bool)>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{KnownFormat, SchemaFormat};
    let file = ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)));
    let mut form = ObjectBuilder::new().schema_type(Type::Object);
    for (name, schema, required) in fields {
        form = form.property(name, schema);
        if required {
            form = form.required(name);
        }
    }
    form.property("file", file).required("file").property_names(Some(form_field_name())).into()
}

/// `pattern`, or the empty string (which a dialect reads as "not given").
fn or_empty(pattern: &str) -> String {
    format!("^$|{pattern}")
}

/// A webhook's event filter: 1 to 32 types, prefixes (`file.*`) or `*`; with `nullable`, null
/// too (the default on create, left as it is on update).
pub fn webhook_event_types_or_null() -> utoipa::openapi::Array {
    ArrayBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::Array, Type::Null]))
        .items(string(patterns::WEBHOOK_EVENT_TYPE_PATTERN, Some(64), false).examples(["file.*"]))
        .min_items(Some(1))
        .max_items(Some(32))
        .build()
}

/// A webhook receiver's URL.
pub fn webhook_url() -> utoipa::openapi::Object {
    string(patterns::WEBHOOK_URL_PATTERN, Some(2048), false)
        .examples(["https://app.example.com/hooks/cabinet"])
        .build()
}

/// A webhook receiver's URL, or null (left as it is).
pub fn webhook_url_or_null() -> utoipa::openapi::Object {
    string(patterns::WEBHOOK_URL_PATTERN, Some(2048), true).build()
}
