//! Query parameters shared by every list: sort, order, paging, and the file filters.

use cabinet_core::listing::{FileFilter, FolderScope, Paging, Sort, TagsParam};
use cabinet_core::metadata::normalize_tag;
use cabinet_core::{Code, Error, FolderId, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use utoipa::IntoParams;

/// Sort and paging of a list.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct ListParams {
    /// `name`, `created_at` (default), `updated_at` or `size`.
    #[param(pattern = "^(name|created_at|updated_at|size)$")]
    pub sort: Option<String>,
    /// `asc` or `desc` (default: `asc` for name, `desc` otherwise).
    #[param(pattern = "^(asc|desc)$")]
    pub order: Option<String>,
    /// 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (not with `offset`).
    #[param(schema_with = crate::input_schema::cursor)]
    pub cursor: Option<String>,
    /// Items to skip (instead of a cursor).
    #[param(value_type = Option<i64>, minimum = 0)]
    pub offset: Option<u64>,
}

impl ListParams {
    /// The sort and paging these name.
    pub fn parse(&self) -> Result<(Sort, Paging)> {
        let sort = Sort::parse(self.sort.as_deref(), self.order.as_deref())?;
        let paging = Paging::parse(self.limit, self.cursor.as_deref(), self.offset, sort)?;
        Ok((sort, paging))
    }
}

/// Which files a list or search returns.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct FileFilterParams {
    /// A folder id, or `root` for the top level.
    #[param(schema_with = crate::input_schema::folder_scope)]
    pub folder_id: Option<String>,
    /// With `folder_id`: also every folder below it.
    pub recursive: Option<bool>,
    /// Documented by `NameFilterParams` or `SearchQueryParams`: a search requires it.
    #[param(ignore)]
    pub q: Option<String>,
    /// Comma-separated tags.
    #[param(schema_with = crate::input_schema::tag_list)]
    pub tags: Option<String>,
    /// `all` (default): files with every tag; `any`: files with at least one.
    #[param(pattern = "^(all|any)$")]
    pub tags_match: Option<String>,
    pub favorite: Option<bool>,
    /// A MIME type prefix: `image`, `image/`, `application/pdf`.
    pub mime: Option<String>,
    /// `kind:id` of something that uses the file.
    #[param(schema_with = crate::input_schema::referenced_by)]
    pub referenced_by: Option<String>,
    /// Only files in the trash.
    pub trashed: Option<bool>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    #[param(value_type = Option<i64>, minimum = 0)]
    pub min_size: Option<u64>,
    #[param(value_type = Option<i64>, minimum = 0)]
    pub max_size: Option<u64>,
}

/// The name filter of a file list (read into `FileFilterParams`; here for the document).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct NameFilterParams {
    /// Case-insensitive substring of the name.
    #[param(schema_with = crate::input_schema::name_filter)]
    pub q: Option<String>,
}

/// The query of a search (read into `FileFilterParams`; here for the document). Written out
/// because utoipa drops `required` from a parameter whose schema comes from `schema_with`.
pub struct SearchQueryParams;

impl IntoParams for SearchQueryParams {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        vec![ParameterBuilder::new()
            .name("q")
            .parameter_in(ParameterIn::Query)
            .required(utoipa::openapi::Required::True)
            .description(Some("Case-insensitive substring of the names to find."))
            .schema(Some(crate::input_schema::search_query()))
            .build()]
    }
}

/// Parses a folder parameter: an id or `root`.
pub fn folder_scope(raw: Option<&str>, recursive: bool) -> Result<FolderScope> {
    Ok(match raw {
        None | Some("") => FolderScope::Anywhere,
        Some("root") if recursive => FolderScope::Anywhere,
        Some("root") => FolderScope::Root,
        Some(id) => {
            let id = FolderId::parse(id)?;
            if recursive {
                FolderScope::Subtree(id)
            } else {
                FolderScope::In(id)
            }
        }
    })
}

/// Splits and normalises comma-separated tags.
pub fn tag_list(raw: Option<&str>) -> Result<Vec<String>> {
    raw.unwrap_or("").split(',').filter(|t| !t.trim().is_empty()).map(normalize_tag).collect()
}

impl FileFilterParams {
    /// The filter these name.
    pub fn parse(&self) -> Result<FileFilter> {
        // Sizes are i64 in the databases; a larger bound is a mistake, not "no bound".
        if [self.min_size, self.max_size].into_iter().flatten().any(|size| size > i64::MAX as u64) {
            return Err(Error::bad_request(Code::InvalidSize, format!("sizes are at most {}", i64::MAX)));
        }
        let tags = tag_list(self.tags.as_deref())?;
        let (tags_all, tags_any) = match TagsParam::parse(self.tags_match.as_deref())? {
            TagsParam::All => (tags, Vec::new()),
            TagsParam::Any => (Vec::new(), tags),
        };
        let referenced_by = match self.referenced_by.as_deref() {
            None => None,
            Some(raw) => match raw.split_once(':') {
                Some((kind, id)) if !kind.is_empty() && !id.is_empty() => {
                    Some((kind.to_owned(), id.to_owned()))
                }
                _ => {
                    return Err(Error::bad_request(
                        Code::InvalidReferencedBy,
                        "referenced_by must be kind:id",
                    ))
                }
            },
        };
        Ok(FileFilter {
            folder: folder_scope(self.folder_id.as_deref(), self.recursive.unwrap_or(false))?,
            name_contains: cabinet_core::listing::name_query(self.q.as_deref()),
            mime_prefix: self
                .mime
                .as_deref()
                .map(|m| m.trim().to_ascii_lowercase())
                .filter(|m| !m.is_empty()),
            tags_all,
            tags_any,
            favorite: self.favorite,
            referenced_by,
            trashed: self.trashed.unwrap_or(false),
            created_from: self.created_after,
            created_to: self.created_before,
            min_size: self.min_size,
            max_size: self.max_size,
            created_by: None,
        })
    }
}

/// For PATCH bodies: tells a field set to `null` (`Some(None)`) from one left out (`None`).
pub fn nullable<'de, T, D>(deserializer: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
