//! The folder tree: names unique among live siblings, no cycles, no deeper than
//! `MAX_FOLDER_DEPTH`, each checked in the transaction that makes the change.

use cabinet_core::folders::{too_deep, MAX_FOLDER_DEPTH};
use cabinet_core::listing::{FolderFilter, Paging, Sort, SortKey};
use cabinet_core::names::fold;
use cabinet_core::ports::FolderChange;
use cabinet_core::{Code, Error, Folder, FolderId, Result, WorkspaceId};
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, QueryBuilder, Type};

use crate::dialect::{Dialect, SqlStore, Value};
use crate::errors::{db_error, folder_error};
use crate::queries::NameMatched;
use crate::rows::{millis, FolderRow, FOLDER_COLUMNS};

impl<D: Dialect> SqlStore<D>
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
    /// Refuses to put a folder under `parent` — a new one, or `moving` with everything below
    /// it — where that would close a cycle or nest deeper than `MAX_FOLDER_DEPTH`. Both walks
    /// are bounded, so a chain that an older version let grow too deep (or into a cycle) is
    /// refused, never walked for ever. Runs in the transaction that makes the change.
    pub(super) async fn check_placement(
        tx: &mut sqlx::Transaction<'_, D::Db>,
        ws: &WorkspaceId,
        moving: Option<&FolderId>,
        parent: &FolderId,
    ) -> Result<()> {
        let max = i64::from(MAX_FOLDER_DEPTH);
        // The parent and its ancestors, at most one past the limit.
        let chain: Vec<String> = sqlx::query_scalar(
            "WITH RECURSIVE up (id, parent_id, depth) AS ( \
                 SELECT id, parent_id, 1 FROM folders WHERE workspace_id = $1 AND id = $2 \
                 UNION ALL \
                 SELECT f.id, f.parent_id, up.depth + 1 FROM folders f JOIN up ON f.id = up.parent_id \
                 WHERE f.workspace_id = $1 AND up.depth <= $3) \
             SELECT id FROM up",
        )
        .bind(ws.as_str())
        .bind(parent.as_str())
        .bind(max)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_error)?;
        if let Some(moving) = moving {
            if chain.iter().any(|ancestor| ancestor == moving.as_str()) {
                return Err(Error::conflict(
                    Code::FolderCycle,
                    "a folder cannot be moved into its own subtree",
                ));
            }
        }
        let parent_depth = chain.len() as i64;
        if parent_depth >= max {
            return Err(too_deep());
        }
        // How many levels the moved folder carries below itself: live folders, and those
        // trashed along with it (its restore brings them back); walked no further than could
        // still fit. Folders trashed on their own are checked when they are restored.
        let height: i64 = match moving {
            None => 0,
            Some(moving) => sqlx::query_scalar(
                "WITH RECURSIVE down (id, depth) AS ( \
                     SELECT id, 0 FROM folders WHERE workspace_id = $1 AND id = $2 \
                     UNION ALL \
                     SELECT c.id, down.depth + 1 FROM folders c JOIN down ON c.parent_id = down.id \
                     WHERE c.workspace_id = $1 AND (c.trashed_at IS NULL OR c.trash_root = $2) \
                     AND down.depth < $3) \
                 SELECT CAST(COALESCE(MAX(depth), 0) AS BIGINT) FROM down",
            )
            .bind(ws.as_str())
            .bind(moving.as_str())
            .bind(max - parent_depth)
            .fetch_one(&mut **tx)
            .await
            .map_err(db_error)?,
        };
        if parent_depth + 1 + height > max {
            return Err(too_deep());
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl<D: Dialect> cabinet_core::FolderStore for SqlStore<D>
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
    async fn insert_folder(&self, folder: &Folder) -> Result<()> {
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        if let Some(parent) = &folder.parent_id {
            Self::lock_workspace(&mut tx, &folder.workspace_id).await?;
            Self::check_placement(&mut tx, &folder.workspace_id, None, parent).await?;
        }
        sqlx::query(
            "INSERT INTO folders (workspace_id, id, parent_id, name, name_folded, is_favorite, trashed_at, \
             created_at, updated_at, is_shared) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(folder.workspace_id.as_str())
        .bind(folder.id.as_str())
        .bind(folder.parent_id.as_ref().map(|id| id.as_str()))
        .bind(&folder.name)
        .bind(fold(&folder.name))
        .bind(folder.is_favorite)
        .bind(folder.trashed_at.map(millis))
        .bind(millis(folder.created_at))
        .bind(millis(folder.updated_at))
        .bind(folder.is_shared)
        .execute(&mut *tx)
        .await
        .map_err(folder_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    async fn get_folder(&self, ws: &WorkspaceId, id: &FolderId) -> Result<Folder> {
        sqlx::query_as::<_, FolderRow>(&format!(
            "SELECT {FOLDER_COLUMNS} FROM folders WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(self.read_pool())
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound("folder"))?
        .try_into()
    }

    async fn folder_path(&self, ws: &WorkspaceId, id: &FolderId) -> Result<Vec<Folder>> {
        let rows: Vec<FolderRow> = sqlx::query_as(&format!(
            "WITH RECURSIVE up (id, parent_id, depth) AS ( \
                 SELECT id, parent_id, 0 FROM folders WHERE workspace_id = $1 AND id = $2 \
                 UNION ALL \
                 SELECT f.id, f.parent_id, up.depth + 1 FROM folders f JOIN up ON f.id = up.parent_id \
                 WHERE f.workspace_id = $1 AND up.depth < $3) \
             SELECT {cols} FROM folders f JOIN up ON f.id = up.id WHERE f.workspace_id = $1 ORDER BY \
             up.depth DESC",
            cols = FOLDER_COLUMNS.split(", ").map(|c| format!("f.{c}")).collect::<Vec<_>>().join(", ")
        ))
        .bind(ws.as_str())
        .bind(id.as_str())
        .bind(i64::from(MAX_FOLDER_DEPTH))
        .fetch_all(self.read_pool())
        .await
        .map_err(db_error)?;
        if rows.is_empty() {
            return Err(Error::NotFound("folder"));
        }
        // A cut-off path would hide the rules of the folders above the cut.
        if rows.len() > MAX_FOLDER_DEPTH as usize {
            return Err(too_deep());
        }
        rows.into_iter().map(Folder::try_from).collect()
    }

    async fn update_folder(
        &self,
        ws: &WorkspaceId,
        id: &FolderId,
        change: &FolderChange,
        at: DateTime<Utc>,
    ) -> Result<Folder> {
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        if let Some(Some(parent)) = &change.parent {
            Self::lock_workspace(&mut tx, ws).await?;
            Self::check_placement(&mut tx, ws, Some(id), parent).await?;
        }
        let mut qb = QueryBuilder::<'static, D::Db>::new("UPDATE folders SET updated_at = ");
        qb.push_bind(millis(at));
        if let Some(name) = &change.name {
            qb.push(", name = ");
            qb.push_bind(name.clone());
            qb.push(", name_folded = ");
            qb.push_bind(fold(name));
        }
        if let Some(parent) = &change.parent {
            qb.push(", parent_id = ");
            qb.push_bind(parent.as_ref().map(|id| id.to_string()));
        }
        if let Some(favorite) = change.is_favorite {
            qb.push(", is_favorite = ");
            qb.push_bind(favorite);
        }
        if let Some(shared) = change.is_shared {
            qb.push(", is_shared = ");
            qb.push_bind(shared);
        }
        qb.push(" WHERE workspace_id = ");
        qb.push_bind(ws.to_string());
        qb.push(" AND id = ");
        qb.push_bind(id.to_string());
        qb.push(format!(" AND trashed_at IS NULL RETURNING {FOLDER_COLUMNS}"));
        let row: Option<FolderRow> =
            D::fetch_built(&mut qb, &mut *tx).await.map_err(folder_error)?.into_iter().next();
        let folder = Folder::try_from(row.ok_or(Error::NotFound("folder"))?)?;
        tx.commit().await.map_err(db_error)?;
        Ok(folder)
    }

    async fn list_folders(
        &self,
        ws: &WorkspaceId,
        filter: &FolderFilter,
        sort: Sort,
        paging: &Paging,
    ) -> Result<(Vec<Folder>, u64)> {
        // Folders have no size: sorting by size sorts them by name.
        let sort = if sort.key == SortKey::Size { Sort { key: SortKey::Name, ..sort } } else { sort };
        let mut qb = QueryBuilder::<'static, D::Db>::new(format!("SELECT {FOLDER_COLUMNS}"));
        let name = Self::push_page_source(&mut qb, "folders", ws, filter.name_contains.as_deref());
        Self::push_folder_filter(&mut qb, ws, filter, name);
        Self::push_page(&mut qb, "f", sort, paging);
        let rows: Vec<FolderRow> = D::fetch_built(&mut qb, self.read_pool()).await.map_err(db_error)?;
        let folders = rows.into_iter().map(Folder::try_from).collect::<Result<Vec<_>>>()?;
        let mut count = QueryBuilder::<'static, D::Db>::new("SELECT COUNT(*) FROM folders f");
        Self::push_folder_filter(&mut count, ws, filter, NameMatched::NotYet);
        Ok((folders, self.count(count).await?))
    }

    async fn folder_is_empty(&self, ws: &WorkspaceId, id: &FolderId) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(1 AS BIGINT) WHERE EXISTS (SELECT 1 FROM files WHERE workspace_id = $1 AND \
             folder_id = $2 AND trashed_at IS NULL) \
             OR EXISTS (SELECT 1 FROM folders WHERE workspace_id = $1 AND parent_id = $2 AND trashed_at IS \
             NULL)",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .fetch_optional(self.read_pool())
        .await
        .map_err(db_error)?;
        Ok(found.is_none())
    }
}
