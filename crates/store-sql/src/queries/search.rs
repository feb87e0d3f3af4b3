//! Search: folders and files together, in one order and one paging.

use std::collections::HashMap;

use cabinet_core::listing::{FileFilter, FolderFilter, Paging, Sort, Start};
use cabinet_core::ports::SearchHit;
use cabinet_core::{FileRecord, Folder, Result, WorkspaceId};
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, QueryBuilder, Type};

use crate::dialect::{Dialect, SqlStore, Value};
use crate::errors::db_error;
use crate::rows::{FileRow, FolderRow, FILE_COLUMNS, FOLDER_COLUMNS};

#[async_trait::async_trait]
impl<D: Dialect> cabinet_core::SearchStore for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db> + ColumnIndex<<D::Db as Database>::Row>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
    i64: Value<D::Db>,
    String: Value<D::Db>,
    bool: Value<D::Db>,
    Option<i64>: Value<D::Db>,
    Option<String>: Value<D::Db>,
    Option<bool>: Value<D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
{
    async fn search(
        &self,
        ws: &WorkspaceId,
        files: &FileFilter,
        folders: &FolderFilter,
        sort: Sort,
        paging: &Paging,
    ) -> Result<(Vec<SearchHit>, u64)> {
        let union = |qb: &mut QueryBuilder<'static, D::Db>| {
            qb.push(
                "(SELECT 'folder' AS kind, f.id, f.name_folded, f.created_at, f.updated_at, CAST(0 AS \
                     BIGINT) AS size",
            );
            let name = Self::push_page_source(qb, "folders", ws, folders.name_contains.as_deref());
            Self::push_folder_filter(qb, ws, folders, name);
            qb.push(
                " UNION ALL SELECT 'file' AS kind, f.id, f.name_folded, f.created_at, f.updated_at, f.size",
            );
            let name = Self::push_page_source(qb, "files", ws, files.name_contains.as_deref());
            Self::push_file_filter(qb, ws, files, name);
            qb.push(") AS hits");
        };
        // Counted in the same pass as the page, as in `list_files`.
        let count_in_page = !matches!(paging.start, Start::After(_));
        let mut qb = QueryBuilder::<'static, D::Db>::new(
            "SELECT hits.kind, hits.id, COUNT(*) OVER () AS total_matches FROM ",
        );
        union(&mut qb);
        qb.push(" WHERE 1 = 1");
        Self::push_page(&mut qb, "hits", sort, paging);
        let rows: Vec<(String, String, i64)> =
            D::fetch_built(&mut qb, self.read_pool()).await.map_err(db_error)?;
        let counted = rows.first().map(|(_, _, total)| (*total).max(0) as u64);
        let nothing_matches = rows.is_empty() && paging.is_first_page();
        // Load the page's folders and files with one query each, then keep the page's order.
        let ids_of = |wanted: &str| -> Vec<String> {
            rows.iter().filter(|(kind, _, _)| kind == wanted).map(|(_, id, _)| id.clone()).collect()
        };
        let (folder_ids, file_ids) = (ids_of("folder"), ids_of("file"));
        let mut folders_by_id = HashMap::new();
        if !folder_ids.is_empty() {
            let mut load = Self::rows_by_id(FOLDER_COLUMNS, "folders", ws, folder_ids);
            let loaded: Vec<FolderRow> =
                D::fetch_built(&mut load, self.read_pool()).await.map_err(db_error)?;
            for row in loaded {
                let folder = Folder::try_from(row)?;
                folders_by_id.insert(folder.id.to_string(), folder);
            }
        }
        let mut files_by_id = HashMap::new();
        if !file_ids.is_empty() {
            let mut load = Self::rows_by_id(FILE_COLUMNS, "files", ws, file_ids);
            let loaded: Vec<FileRow> = D::fetch_built(&mut load, self.read_pool()).await.map_err(db_error)?;
            for row in loaded {
                let file = FileRecord::try_from(row)?;
                files_by_id.insert(file.id.to_string(), file);
            }
        }
        let mut hits = Vec::with_capacity(rows.len());
        for (kind, id, _) in rows {
            let hit = match kind.as_str() {
                "folder" => folders_by_id.remove(&id).map(SearchHit::Folder),
                _ => files_by_id.remove(&id).map(SearchHit::File),
            };
            // A hit deleted between the two queries is simply gone from this page.
            hits.extend(hit);
        }
        let total = match counted {
            Some(total) if count_in_page => total,
            None if nothing_matches => 0,
            _ => {
                let mut count = QueryBuilder::<'static, D::Db>::new("SELECT COUNT(*) FROM ");
                union(&mut count);
                self.count(count).await?
            }
        };
        Ok((hits, total))
    }
}
