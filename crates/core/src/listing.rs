//! How lists are asked for: filters, sort, and paging by keyset cursor or offset. The rules (page
//! sizes, what a cursor holds, which sorts exist) live here; stores only execute them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::ids::FolderId;
use crate::model::{FileRecord, Folder};
use crate::Code;

/// The most items one page may hold.
pub const MAX_PAGE: u32 = 100;
/// Items per page when the client does not say.
pub const DEFAULT_PAGE: u32 = 50;

/// What a list is ordered by; the id breaks ties, so the order is total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Case-insensitive name.
    Name,
    CreatedAt,
    UpdatedAt,
    Size,
}

/// A sort key and its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl Sort {
    /// Newest first: the default of every list.
    pub const NEWEST_FIRST: Sort = Sort { key: SortKey::CreatedAt, descending: true };

    /// Parses `sort` (name | created_at | updated_at | size) and `order` (asc | desc). Without an
    /// order, names sort ascending and everything else descending.
    pub fn parse(sort: Option<&str>, order: Option<&str>) -> Result<Sort> {
        let key = match sort.unwrap_or("created_at") {
            "name" => SortKey::Name,
            "created_at" => SortKey::CreatedAt,
            "updated_at" => SortKey::UpdatedAt,
            "size" => SortKey::Size,
            _ => {
                return Err(Error::bad_request(
                    Code::InvalidSort,
                    "sort must be name, created_at, updated_at or size",
                ))
            }
        };
        let descending = match order {
            None => key != SortKey::Name,
            Some("asc") => false,
            Some("desc") => true,
            Some(_) => return Err(Error::bad_request(Code::InvalidOrder, "order must be asc or desc")),
        };
        Ok(Sort { key, descending })
    }
}

/// Where in the tree to look.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FolderScope {
    /// Everywhere in the workspace.
    #[default]
    Anywhere,
    /// Directly at the root.
    Root,
    /// Directly in this folder.
    In(FolderId),
    /// In this folder or any folder below it.
    Subtree(FolderId),
}

/// Which files.
#[derive(Debug, Clone, Default)]
pub struct FileFilter {
    pub folder: FolderScope,
    /// Case-folded substring of the name.
    pub name_contains: Option<String>,
    /// e.g. `image/` or `application/pdf`.
    pub mime_prefix: Option<String>,
    /// Tags the file must have (matched by `metadata::tag_key`, whatever their case).
    pub tags_all: Vec<String>,
    /// Tags of which the file must have at least one (matched the same way).
    pub tags_any: Vec<String>,
    pub favorite: Option<bool>,
    /// (kind, id) of a reference the file must have.
    pub referenced_by: Option<(String, String)>,
    /// Only trashed files instead of only live ones.
    pub trashed: bool,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    /// Only files this end user uploaded.
    pub created_by: Option<String>,
}

impl FileFilter {
    /// Whether the filter keeps every live file of the workspace: the default list, whose
    /// `total` the store keeps as a counter rather than counting.
    pub fn is_every_live_file(&self) -> bool {
        let FileFilter {
            folder,
            name_contains,
            mime_prefix,
            tags_all,
            tags_any,
            favorite,
            referenced_by,
            trashed,
            created_from,
            created_to,
            min_size,
            max_size,
            created_by,
        } = self;
        *folder == FolderScope::Anywhere
            && name_contains.is_none()
            && mime_prefix.is_none()
            && tags_all.is_empty()
            && tags_any.is_empty()
            && favorite.is_none()
            && referenced_by.is_none()
            && !trashed
            && created_from.is_none()
            && created_to.is_none()
            && min_size.is_none()
            && max_size.is_none()
            && created_by.is_none()
    }
}

/// A client's name filter as every list matches it: trimmed, folded (`names::fold`), and none
/// when nothing is left.
pub fn name_query(raw: Option<&str>) -> Option<String> {
    raw.map(str::trim).filter(|query| !query.is_empty()).map(crate::names::fold)
}

/// How many items a page holds, as each surface lets a client ask for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize {
    /// When the client does not say.
    pub default: u32,
    /// The most a client may ask for.
    pub max: u32,
}

impl PageSize {
    /// The lists' own: 50 unless asked, at most 100.
    pub const LISTS: PageSize = PageSize { default: DEFAULT_PAGE, max: MAX_PAGE };

    /// The size asked for, refused (`invalid_limit`) outside 1 to `max`.
    pub fn checked(self, asked: Option<u32>) -> Result<u32> {
        match asked {
            None => Ok(self.default),
            Some(n) if (1..=self.max).contains(&n) => Ok(n),
            Some(_) => Err(Error::bad_request(
                Code::InvalidLimit,
                format!("limit must be between 1 and {}", self.max),
            )),
        }
    }

    /// The size asked for, never refused: what is not a size of 1 or more is the default, and
    /// more than `max` is `max` (as Django REST framework's paginators do).
    pub fn clamped(self, asked: Option<&str>) -> u32 {
        asked
            .and_then(|raw| raw.parse::<u32>().ok())
            .filter(|n| *n >= 1)
            .map_or(self.default, |n| n.min(self.max))
    }
}

/// Refuses a name filter with a control character (NUL among them): no name can hold one, and
/// the databases would refuse it deep inside the query rather than say so.
pub fn check_name_filter(name_contains: Option<&str>) -> Result<()> {
    if name_contains.is_some_and(|query| query.chars().any(char::is_control)) {
        return Err(Error::bad_request(
            Code::InvalidQuery,
            "a name filter must not contain control characters",
        ));
    }
    Ok(())
}

/// Which folders.
#[derive(Debug, Clone, Default)]
pub struct FolderFilter {
    pub parent: FolderScope,
    pub name_contains: Option<String>,
    pub favorite: Option<bool>,
    pub trashed: bool,
}

/// The sort value of the last item of a page and its id: the next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub value: CursorValue,
    pub id: String,
}

/// A sort value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorValue {
    Text(String),
    Number(i64),
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Start {
    #[default]
    First,
    After(Cursor),
    Offset(u64),
}

/// A page request: the store returns up to `limit` items (the service asks one more to learn
/// whether another page follows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    pub limit: u32,
    pub start: Start,
}

impl Paging {
    /// Whether this is a first page that can hold items: one that comes back empty means nothing
    /// matches at all.
    pub fn is_first_page(&self) -> bool {
        self.limit > 0 && matches!(self.start, Start::First | Start::Offset(0))
    }

    /// Validates limit, cursor and offset (a cursor and an offset together are refused).
    pub fn parse(
        limit: Option<u32>,
        cursor: Option<&str>,
        offset: Option<u64>,
        sort: Sort,
    ) -> Result<Paging> {
        let limit = PageSize::LISTS.checked(limit)?;
        let start = match (cursor, offset) {
            (Some(_), Some(_)) => {
                return Err(Error::bad_request(Code::InvalidPaging, "give a cursor or an offset, not both"))
            }
            (Some(cursor), None) => Start::After(decode_cursor(cursor, sort)?),
            // The databases count rows in i64; a larger offset is a mistake, not a far page.
            (None, Some(offset)) if offset > i64::MAX as u64 => {
                return Err(Error::bad_request(
                    Code::InvalidOffset,
                    format!("offset must be at most {}", i64::MAX),
                ))
            }
            (None, Some(offset)) => Start::Offset(offset),
            (None, None) => Start::First,
        };
        Ok(Paging { limit, start })
    }
}

/// What a list item offers to sort and page by.
pub trait Sortable {
    fn sort_value(&self, key: SortKey) -> CursorValue;
    fn item_id(&self) -> String;
}

impl Sortable for FileRecord {
    fn sort_value(&self, key: SortKey) -> CursorValue {
        match key {
            SortKey::Name => CursorValue::Text(crate::names::fold(&self.name)),
            SortKey::CreatedAt => CursorValue::Number(self.created_at.timestamp_millis()),
            SortKey::UpdatedAt => CursorValue::Number(self.updated_at.timestamp_millis()),
            SortKey::Size => CursorValue::Number(self.size as i64),
        }
    }

    fn item_id(&self) -> String {
        self.id.to_string()
    }
}

impl Sortable for Folder {
    fn sort_value(&self, key: SortKey) -> CursorValue {
        match key {
            SortKey::Name => CursorValue::Text(crate::names::fold(&self.name)),
            SortKey::CreatedAt => CursorValue::Number(self.created_at.timestamp_millis()),
            SortKey::UpdatedAt => CursorValue::Number(self.updated_at.timestamp_millis()),
            SortKey::Size => CursorValue::Number(0),
        }
    }

    fn item_id(&self) -> String {
        self.id.to_string()
    }
}

/// Encodes where the next page starts. The sort key is part of the cursor, so a cursor is never
/// used with another sort.
pub fn encode_cursor(item: &impl Sortable, sort: Sort) -> String {
    let value = match item.sort_value(sort.key) {
        CursorValue::Text(text) => format!("t{text}"),
        CursorValue::Number(n) => format!("n{n}"),
    };
    URL_SAFE_NO_PAD.encode(format!("{}\u{1f}{}\u{1f}{value}", sort_tag(sort), item.item_id()))
}

fn sort_tag(sort: Sort) -> String {
    format!("{:?}{}", sort.key, if sort.descending { "-" } else { "+" })
}

fn decode_cursor(raw: &str, sort: Sort) -> Result<Cursor> {
    let invalid = || Error::bad_request(Code::InvalidCursor, "the cursor is not one this list returned");
    let text = URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid)?;
    let mut parts = text.splitn(3, '\u{1f}');
    let (tag, id, value) = (parts.next(), parts.next(), parts.next());
    let (Some(tag), Some(id), Some(value)) = (tag, id, value) else { return Err(invalid()) };
    if tag != sort_tag(sort) {
        return Err(Error::bad_request(Code::InvalidCursor, "the cursor belongs to another sort order"));
    }
    let value = if let Some(text) = value.strip_prefix('t') {
        CursorValue::Text(text.to_owned())
    } else if let Some(n) = value.strip_prefix('n') {
        CursorValue::Number(n.parse().map_err(|_| invalid())?)
    } else {
        return Err(invalid());
    };
    Ok(Cursor { value, id: id.to_owned() })
}

/// Turns `limit + 1` fetched items into a page.
pub fn into_page<T: Sortable>(
    mut items: Vec<T>,
    paging: &Paging,
    sort: Sort,
    total: u64,
) -> crate::model::Page<T> {
    let next_cursor = if items.len() > paging.limit as usize {
        items.truncate(paging.limit as usize);
        items.last().map(|last| encode_cursor(last, sort))
    } else {
        None
    };
    crate::model::Page { items, next_cursor, total }
}

impl Sortable for crate::ports::SearchHit {
    fn sort_value(&self, key: SortKey) -> CursorValue {
        match self {
            crate::ports::SearchHit::Folder(folder) => folder.sort_value(key),
            crate::ports::SearchHit::File(file) => file.sort_value(key),
        }
    }

    fn item_id(&self) -> String {
        match self {
            crate::ports::SearchHit::Folder(folder) => folder.item_id(),
            crate::ports::SearchHit::File(file) => file.item_id(),
        }
    }
}

/// How several tags filter: files with all of them, or with any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagsParam {
    All,
    Any,
}

impl TagsParam {
    /// Parses `all` (default) or `any`.
    pub fn parse(raw: Option<&str>) -> Result<Self> {
        match raw {
            None | Some("all") => Ok(TagsParam::All),
            Some("any") => Ok(TagsParam::Any),
            Some(_) => Err(Error::bad_request(Code::InvalidTagsMatch, "tags_match must be all or any")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_first_page_that_can_hold_items_tells_that_nothing_matches() {
        let page = |limit, start| Paging { limit, start };
        assert!(page(10, Start::First).is_first_page());
        assert!(page(10, Start::Offset(0)).is_first_page());
        assert!(!page(10, Start::Offset(1)).is_first_page());
        assert!(!page(0, Start::First).is_first_page());
    }

    #[test]
    fn a_page_size_is_checked_or_clamped_within_its_surfaces_bounds() {
        let trash = PageSize { default: 100, max: 500 };
        assert_eq!(trash.checked(None).unwrap(), 100);
        assert_eq!(trash.checked(Some(500)).unwrap(), 500);
        for refused in [0, 501] {
            assert_eq!(trash.checked(Some(refused)).unwrap_err().code(), Code::InvalidLimit);
        }
        assert_eq!(PageSize::LISTS.clamped(None), DEFAULT_PAGE);
        assert_eq!(PageSize::LISTS.clamped(Some("0")), DEFAULT_PAGE);
        assert_eq!(PageSize::LISTS.clamped(Some("x")), DEFAULT_PAGE);
        assert_eq!(PageSize::LISTS.clamped(Some("7")), 7);
        assert_eq!(PageSize::LISTS.clamped(Some("100000")), MAX_PAGE);
    }

    #[test]
    fn a_name_query_is_trimmed_and_folded_once_for_every_list() {
        assert_eq!(name_query(Some("  Café  ")), Some(crate::names::fold("Café")));
        assert_eq!(name_query(Some("   ")), None);
        assert_eq!(name_query(None), None);
    }
}
