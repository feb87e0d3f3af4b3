//! `/v1/search`, `/v1/tags` and `/v1/trash`: views across the whole workspace.

use axum::extract::State;
use cabinet_core::listing::{FileFilter, FolderFilter, PageSize};
use cabinet_core::ports::SearchHit;
use cabinet_core::trash::TrashItem;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::params::{FileFilterParams, ListParams, SearchQueryParams};
use super::shapes::{FileJson, FolderJson, ItemJson, SearchResultsJson};
use crate::auth::Authenticated;
use crate::error::{ApiResult, ErrorBody, Json, Query};
use crate::AppState;

/// Find folders and files whose names contain `q` (case-insensitive, Unicode-aware), with the
/// file filters narrowing files (and `folder_id` + `recursive` narrowing both).
#[utoipa::path(
    get, path = "/v1/search", tag = "search",
    params(SearchQueryParams, FileFilterParams, ListParams),
    responses((status = 200, body = SearchResultsJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn search(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(filter): Query<FileFilterParams>,
    Query(list): Query<ListParams>,
) -> ApiResult<Json<SearchResultsJson>> {
    let (sort, paging) = list.parse()?;
    let files: FileFilter = filter.parse()?;
    let folders = FolderFilter {
        parent: files.folder.clone(),
        name_contains: files.name_contains.clone(),
        favorite: files.favorite,
        trashed: files.trashed,
    };
    let page = state.cabinet.search(&caller, files, folders, sort, paging).await?;
    let hit_files: Vec<cabinet_core::FileRecord> = page
        .items
        .iter()
        .filter_map(|hit| match hit {
            SearchHit::File(file) => Some(file.clone()),
            SearchHit::Folder(_) => None,
        })
        .collect();
    let links = state.cabinet.links_for(&caller.workspace_id, &hit_files).await?;
    Ok(Json(SearchResultsJson {
        total: page.total,
        has_more: page.next_cursor.is_some(),
        next_cursor: page.next_cursor,
        data: page.items.into_iter().map(|hit| ItemJson::new(hit, &links)).collect(),
    }))
}

/// A tag and how many live files carry it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagCountJson {
    #[schema(example = "product")]
    pub tag: String,
    pub count: u64,
}

/// Every tag in the workspace with its count (the CMS's `available_tags`).
#[utoipa::path(
    get, path = "/v1/tags", tag = "search",
    responses((status = 200, body = Vec<TagCountJson>), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_tags(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<Vec<TagCountJson>>> {
    let tags = state.cabinet.tags(&caller).await?;
    Ok(Json(tags.into_iter().map(|(tag, count)| TagCountJson { tag, count }).collect()))
}

/// How much of the trash to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct TrashParams {
    /// 1–500, default 100.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// The trash's top-level entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrashJson {
    pub data: Vec<ItemJson>,
}

/// The trash lists up to 500 entries at once, 100 unless asked.
const TRASH_PAGE: PageSize = PageSize { default: 100, max: 500 };

/// What is in the trash: files and folders deleted on their own (a folder's contents go with it).
#[utoipa::path(
    get, path = "/v1/trash", tag = "trash",
    params(TrashParams),
    responses((status = 200, body = TrashJson), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_trash(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(params): Query<TrashParams>,
) -> ApiResult<Json<TrashJson>> {
    let limit = TRASH_PAGE.checked(params.limit)?;
    let items = state.cabinet.list_trash(&caller, limit).await?;
    // Files in the trash have no public URL.
    let links = state.cabinet.links_for(&caller.workspace_id, &[]).await?;
    Ok(Json(TrashJson {
        data: items
            .into_iter()
            .map(|item| match item {
                TrashItem::File(file) => ItemJson::File(FileJson::new(file, &links)),
                TrashItem::Folder(folder) => ItemJson::Folder(FolderJson::from(folder)),
            })
            .collect(),
    }))
}

/// How many trash entries were purged.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurgedJson {
    pub purged: u64,
}

/// Empty the trash: purge everything in it, reclaiming its quota.
#[utoipa::path(
    delete, path = "/v1/trash", tag = "trash",
    responses((status = 200, body = PurgedJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn empty_trash(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<PurgedJson>> {
    Ok(Json(PurgedJson { purged: state.cabinet.empty_trash(&caller).await? }))
}
