//! The metadata port's queries, written once in SQL that SQLite and PostgreSQL both accept
//! (`$N` parameters, `RETURNING`, row-value comparison). Each dialect supplies its pools and
//! migrations and instantiates this implementation; the conformance suite holds both to it.

/// A key and its workspaces in order, by the hash of its secret: behind every request.
pub(crate) const FIND_API_KEY: &str = "SELECT k.id, k.name, k.role, k.hint, k.created_at, k.revoked_at, \
     w.workspace_id FROM api_keys k LEFT JOIN api_key_workspaces w ON w.key_id = k.id \
     WHERE k.secret_hash = $1 ORDER BY w.position";

/// Implements `MetadataStore` for a store type with `write` and `read` pools of database `$db`.
macro_rules! impl_metadata_store {
    ($store:ty, $db:ty, $name_match:path, $workspace_column:path, $fence_name_matches:expr) => {
        const _: () = {
        use std::collections::{HashMap, HashSet};

        use cabinet_core::folders::{too_deep, MAX_FOLDER_DEPTH};
        use cabinet_core::rules::{AccessRules, Audience, RuleTarget, TokenStanding};

        use cabinet_core::listing::{CursorValue, FileFilter, FolderFilter, FolderScope, Paging, Sort, SortKey, Start};
        use cabinet_core::names::fold;
        use cabinet_core::ports::{FileChange, FolderChange, SearchHit, TrashEntry};
        use cabinet_core::{
            ApiKey, ApiKeyId, Error, FailureReason, FileId, FileRecord, FileReference, Folder, FolderId, Result,
            Upload, UploadId, Usage, Workspace, WorkspaceId,
        };
        use sqlx::QueryBuilder;
        use chrono::{DateTime, Utc};
        use sqlx::Row;

        use crate::errors::db_error;
        use crate::rows::{
            bytes, millis, ApiKeyRow, FileRow, FolderRow, ReferenceRow, UploadRow, WorkspaceRow, FILE_COLUMNS,
            FILE_INSERT_COLUMNS, FOLDER_COLUMNS, UPLOAD_COLUMNS, WORKSPACE_COLUMNS,
        };

        impl $store {
            fn quota_error(available: Option<i64>, requested: u64) -> Error {
                Error::QuotaExceeded { requested, available: available.unwrap_or(0).max(0) as u64 }
            }

            async fn insert_file(tx: &mut sqlx::Transaction<'_, $db>, file: &FileRecord) -> Result<()> {
                sqlx::query(&format!(
                    "INSERT INTO files ({FILE_INSERT_COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
                ))
                .bind(file.workspace_id.as_str())
                .bind(file.id.as_str())
                .bind(&file.name)
                .bind(&file.mime_type)
                .bind(bytes(file.size)?)
                .bind(&file.sha256)
                .bind(file.folder_id.as_ref().map(|id| id.as_str()))
                .bind(&file.blob_key)
                .bind(millis(file.created_at))
                .bind(millis(file.updated_at))
                .bind(file.is_favorite)
                .bind(&file.alt_text)
                .bind(&file.caption)
                .bind(&file.copyright)
                .bind(serde_json::to_string(&file.metadata).map_err(Error::internal)?)
                .bind(serde_json::to_string(&file.tags).map_err(Error::internal)?)
                .bind(file.trashed_at.map(millis))
                .bind(&file.created_by)
                .bind(fold(&file.name))
                .execute(&mut **tx)
                .await
                .map_err(db_error)?;
                Self::replace_tags(tx, &file.workspace_id, &file.id, &file.tags).await
            }

            async fn replace_tags(
                tx: &mut sqlx::Transaction<'_, $db>,
                ws: &WorkspaceId,
                file: &FileId,
                tags: &[String],
            ) -> Result<()> {
                sqlx::query("DELETE FROM file_tags WHERE workspace_id = $1 AND file_id = $2")
                    .bind(ws.as_str())
                    .bind(file.as_str())
                    .execute(&mut **tx)
                    .await
                    .map_err(db_error)?;
                for tag in tags {
                    sqlx::query("INSERT INTO file_tags (workspace_id, file_id, tag) VALUES ($1, $2, $3)")
                        .bind(ws.as_str())
                        .bind(file.as_str())
                        .bind(tag)
                        .execute(&mut **tx)
                        .await
                        .map_err(db_error)?;
                }
                Ok(())
            }

            /// `column` for a sort key.
            fn sort_column(key: SortKey) -> &'static str {
                match key {
                    SortKey::Name => "name_folded",
                    SortKey::CreatedAt => "created_at",
                    SortKey::UpdatedAt => "updated_at",
                    SortKey::Size => "size",
                }
            }

            fn push_subtree(qb: &mut QueryBuilder<'static, $db>, ws: &WorkspaceId, root: &FolderId) {
                qb.push("(WITH RECURSIVE sub(id) AS (SELECT ");
                qb.push_bind(root.to_string());
                // UNION, not UNION ALL: a set stops growing, so even a cycle ends the walk.
                qb.push(" UNION SELECT c.id FROM folders c JOIN sub ON c.parent_id = sub.id WHERE c.workspace_id = ");
                qb.push_bind(ws.to_string());
                qb.push(") SELECT id FROM sub)");
            }

            fn push_scope(qb: &mut QueryBuilder<'static, $db>, ws: &WorkspaceId, column: &str, scope: &FolderScope) {
                match scope {
                    FolderScope::Anywhere => {}
                    FolderScope::Root => {
                        qb.push(format!(" AND {column} IS NULL"));
                    }
                    FolderScope::In(folder) => {
                        qb.push(format!(" AND {column} = "));
                        qb.push_bind(folder.to_string());
                    }
                    FolderScope::Subtree(folder) => {
                        qb.push(format!(" AND {column} IN "));
                        Self::push_subtree(qb, ws, folder);
                    }
                }
            }

            /// ` FROM {table} f` for a page query (one with ORDER BY and LIMIT). Where the dialect
            /// asks for it, a name query first finds its matches in a subquery the planner cannot
            /// merge: otherwise PostgreSQL, when its sampled statistics overestimate the matches,
            /// walks the workspace's newest-first index probing every name (49 ms instead of 5 at
            /// 100,000 files), though the page counts every match anyway.
            fn push_page_source(qb: &mut QueryBuilder<'static, $db>, table: &str, ws: &WorkspaceId, name_query: Option<&str>) {
                match name_query {
                    Some(query) if $fence_name_matches => {
                        qb.push(format!(" FROM (SELECT * FROM {table} m WHERE m.workspace_id = "));
                        qb.push_bind(ws.to_string());
                        qb.push(" AND ");
                        $name_match(qb, table, "m", ws, query);
                        qb.push(" OFFSET 0) f");
                    }
                    _ => {
                        qb.push(format!(" FROM {table} f"));
                    }
                }
            }

            /// `WHERE …` for files, on table alias `f`.
            fn push_file_filter(qb: &mut QueryBuilder<'static, $db>, ws: &WorkspaceId, filter: &FileFilter) {
                qb.push(format!(" WHERE {} = ", $workspace_column("f", filter.name_contains.as_deref())));
                qb.push_bind(ws.to_string());
                qb.push(if filter.trashed { " AND f.trashed_at IS NOT NULL" } else { " AND f.trashed_at IS NULL" });
                Self::push_scope(qb, ws, "f.folder_id", &filter.folder);
                if let Some(query) = &filter.name_contains {
                    qb.push(" AND ");
                    $name_match(qb, "files", "f", ws, query);
                }
                if let Some(prefix) = &filter.mime_prefix {
                    qb.push(" AND f.mime_type LIKE ");
                    qb.push_bind(format!("{}%", crate::like_escape(prefix)));
                    qb.push(" ESCAPE '\\'");
                }
                if let Some(favorite) = filter.favorite {
                    qb.push(" AND f.is_favorite = ");
                    qb.push_bind(favorite);
                }
                if !filter.tags_all.is_empty() {
                    qb.push(" AND (SELECT COUNT(*) FROM file_tags t WHERE t.workspace_id = f.workspace_id AND t.file_id = f.id AND t.tag IN (");
                    let mut list = qb.separated(", ");
                    for tag in &filter.tags_all {
                        list.push_bind(tag.clone());
                    }
                    qb.push(format!(")) = {}", filter.tags_all.len()));
                }
                if !filter.tags_any.is_empty() {
                    qb.push(" AND EXISTS (SELECT 1 FROM file_tags t WHERE t.workspace_id = f.workspace_id AND t.file_id = f.id AND t.tag IN (");
                    let mut list = qb.separated(", ");
                    for tag in &filter.tags_any {
                        list.push_bind(tag.clone());
                    }
                    qb.push("))");
                }
                if let Some((kind, id)) = &filter.referenced_by {
                    qb.push(" AND EXISTS (SELECT 1 FROM file_references r WHERE r.workspace_id = f.workspace_id AND r.file_id = f.id AND r.kind = ");
                    qb.push_bind(kind.clone());
                    qb.push(" AND r.ref_id = ");
                    qb.push_bind(id.clone());
                    qb.push(")");
                }
                if let Some(from) = filter.created_from {
                    qb.push(" AND f.created_at >= ");
                    qb.push_bind(millis(from));
                }
                if let Some(to) = filter.created_to {
                    qb.push(" AND f.created_at < ");
                    qb.push_bind(millis(to));
                }
                if let Some(min) = filter.min_size {
                    qb.push(" AND f.size >= ");
                    qb.push_bind(min.min(i64::MAX as u64) as i64);
                }
                if let Some(max) = filter.max_size {
                    qb.push(" AND f.size <= ");
                    qb.push_bind(max.min(i64::MAX as u64) as i64);
                }
                if let Some(creator) = &filter.created_by {
                    qb.push(" AND f.created_by = ");
                    qb.push_bind(creator.clone());
                }
            }

            /// `WHERE …` for folders, on table alias `f`.
            fn push_folder_filter(qb: &mut QueryBuilder<'static, $db>, ws: &WorkspaceId, filter: &FolderFilter) {
                qb.push(format!(" WHERE {} = ", $workspace_column("f", filter.name_contains.as_deref())));
                qb.push_bind(ws.to_string());
                qb.push(if filter.trashed { " AND f.trashed_at IS NOT NULL" } else { " AND f.trashed_at IS NULL" });
                Self::push_scope(qb, ws, "f.parent_id", &filter.parent);
                if let Some(query) = &filter.name_contains {
                    qb.push(" AND ");
                    $name_match(qb, "folders", "f", ws, query);
                }
                if let Some(favorite) = filter.favorite {
                    qb.push(" AND f.is_favorite = ");
                    qb.push_bind(favorite);
                }
            }

            /// Keyset condition (after a `WHERE …`), ORDER BY and LIMIT/OFFSET, on alias `alias`.
            fn push_page(qb: &mut QueryBuilder<'static, $db>, alias: &str, sort: Sort, paging: &Paging) {
                let column = Self::sort_column(sort.key);
                let (cmp, dir) = if sort.descending { ("<", "DESC") } else { (">", "ASC") };
                if let Start::After(cursor) = &paging.start {
                    qb.push(format!(" AND ({alias}.{column}, {alias}.id) {cmp} ("));
                    match &cursor.value {
                        CursorValue::Text(text) => qb.push_bind(text.clone()),
                        CursorValue::Number(n) => qb.push_bind(*n),
                    };
                    qb.push(", ");
                    qb.push_bind(cursor.id.clone());
                    qb.push(")");
                }
                qb.push(format!(" ORDER BY {alias}.{column} {dir}, {alias}.id {dir} LIMIT "));
                qb.push_bind(i64::from(paging.limit));
                if let Start::Offset(offset) = paging.start {
                    qb.push(" OFFSET ");
                    qb.push_bind(offset.min(i64::MAX as u64) as i64);
                }
            }

            /// `SELECT columns FROM table` for the rows of a workspace with these ids.
            fn rows_by_id(
                columns: &str,
                table: &str,
                ws: &WorkspaceId,
                ids: Vec<String>,
            ) -> QueryBuilder<'static, $db> {
                let mut load = QueryBuilder::<'static, $db>::new(format!("SELECT {columns} FROM {table} WHERE workspace_id = "));
                load.push_bind(ws.to_string());
                load.push(" AND id IN (");
                let mut list = load.separated(", ");
                for id in ids {
                    list.push_bind(id);
                }
                load.push(")");
                load
            }

            async fn count(&self, mut qb: QueryBuilder<'static, $db>) -> Result<u64> {
                let n: i64 = qb.build_query_scalar().fetch_one(self.read_pool()).await.map_err(db_error)?;
                Ok(n.max(0) as u64)
            }

            /// Locks the workspace's row for the rest of the transaction, so tree changes in one
            /// workspace happen one at a time.
            async fn lock_workspace(tx: &mut sqlx::Transaction<'_, $db>, ws: &WorkspaceId) -> Result<()> {
                sqlx::query("UPDATE workspaces SET used_bytes = used_bytes WHERE id = $1")
                    .bind(ws.as_str())
                    .execute(&mut **tx)
                    .await
                    .map_err(db_error)?;
                Ok(())
            }

            /// Moves an upload from status `from` to `to`; false when it was not in `from`.
            async fn move_upload(
                &self,
                ws: &WorkspaceId,
                id: &UploadId,
                at: DateTime<Utc>,
                from: &'static str,
                to: &'static str,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE uploads SET status = $1, updated_at = $2 \
                     WHERE workspace_id = $3 AND id = $4 AND status = $5",
                )
                .bind(to)
                .bind(millis(at))
                .bind(ws.as_str())
                .bind(id.as_str())
                .bind(from)
                .execute(self.write_pool())
                .await
                .map_err(db_error)?;
                Ok(done.rows_affected() == 1)
            }

            /// Refuses to put a folder under `parent` — a new one, or `moving` with everything below
            /// it — where that would close a cycle or nest deeper than `MAX_FOLDER_DEPTH`. Both walks
            /// are bounded, so a chain that an older version let grow too deep (or into a cycle) is
            /// refused, never walked for ever. Runs in the transaction that makes the change.
            async fn check_placement(
                tx: &mut sqlx::Transaction<'_, $db>,
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
                        return Err(Error::conflict("folder_cycle", "a folder cannot be moved into its own subtree"));
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

            /// Appends the workspace's `used_bytes` as of `at` to the metering ledger, in the
            /// transaction that changed it.
            async fn record_usage(tx: &mut sqlx::Transaction<'_, $db>, ws: &WorkspaceId, at: DateTime<Utc>) -> Result<()> {
                sqlx::query("INSERT INTO usage_ledger (workspace_id, at, used_bytes) SELECT id, $2, used_bytes FROM workspaces WHERE id = $1")
                    .bind(ws.as_str())
                    .bind(millis(at))
                    .execute(&mut **tx)
                    .await
                    .map_err(db_error)?;
                Ok(())
            }

            /// Applies the migrations not yet applied, in one transaction; `serialize` (with the
            /// lock id as `$1`) keeps nodes that start together from migrating twice.
            async fn apply_migrations(&self, migrations: &[(i64, &str)], serialize: Option<&str>) -> Result<()> {
                const MIGRATION_LOCK: i64 = 0x0063_6162_696e_6574;
                let mut tx = self.write_pool().begin().await.map_err(db_error)?;
                if let Some(lock) = serialize {
                    sqlx::query(lock).bind(MIGRATION_LOCK).execute(&mut *tx).await.map_err(db_error)?;
                }
                sqlx::query("CREATE TABLE IF NOT EXISTS cabinet_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                let applied: HashSet<i64> = sqlx::query_scalar("SELECT version FROM cabinet_migrations")
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .collect();
                for (version, sql) in migrations {
                    if applied.contains(version) {
                        continue;
                    }
                    sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(db_error)?;
                    if *version == crate::NAMES_REFOLDED_MIGRATION {
                        Self::refold_names(&mut tx).await?;
                    }
                    sqlx::query("INSERT INTO cabinet_migrations (version, applied_at) VALUES ($1, $2)")
                        .bind(version)
                        .bind(Utc::now().timestamp_millis())
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                }
                tx.commit().await.map_err(db_error)
            }

            /// Recomputes `name_folded` with today's `fold` for every name that is not plain ASCII
            /// (ASCII folds as it always did). A live folder whose new form would equal a live
            /// sibling's keeps its old one: both were made before the rule, and neither is lost.
            async fn refold_names(tx: &mut sqlx::Transaction<'_, $db>) -> Result<()> {
                use futures::TryStreamExt;
                for table in ["files", "folders"] {
                    let mut changed: Vec<(String, String, String)> = Vec::new();
                    {
                        let select = format!("SELECT workspace_id, id, name, name_folded FROM {table}");
                        let mut rows = sqlx::query_as::<_, (String, String, String, String)>(&select).fetch(&mut **tx);
                        while let Some((ws, id, name, folded)) = rows.try_next().await.map_err(db_error)? {
                            if !name.is_ascii() && fold(&name) != folded {
                                changed.push((ws, id, fold(&name)));
                            }
                        }
                    }
                    let update = if table == "folders" {
                        "UPDATE folders SET name_folded = $1 WHERE workspace_id = $2 AND id = $3 AND NOT EXISTS ( \
                             SELECT 1 FROM folders s WHERE s.workspace_id = $2 AND s.id <> $3 AND s.name_folded = $1 \
                             AND s.trashed_at IS NULL AND COALESCE(s.parent_id, '') = ( \
                                 SELECT COALESCE(f.parent_id, '') FROM folders f WHERE f.workspace_id = $2 AND f.id = $3))"
                    } else {
                        "UPDATE files SET name_folded = $1 WHERE workspace_id = $2 AND id = $3"
                    };
                    for (ws, id, folded) in changed {
                        sqlx::query(update).bind(folded).bind(ws).bind(id).execute(&mut **tx).await.map_err(db_error)?;
                    }
                }
                Ok(())
            }

            async fn key_workspaces(&self, key_id: &str) -> Result<Vec<String>> {
                sqlx::query_scalar("SELECT workspace_id FROM api_key_workspaces WHERE key_id = $1 ORDER BY position")
                    .bind(key_id)
                    .fetch_all(self.read_pool())
                    .await
                    .map_err(db_error)
            }

            fn rule_target(target: &RuleTarget) -> (&'static str, String) {
                match target {
                    RuleTarget::Workspace => ("workspace", String::new()),
                    RuleTarget::Folder(id) => ("folder", id.to_string()),
                    RuleTarget::File(id) => ("file", id.to_string()),
                }
            }

            fn trash_entry(kind: &str, id: &str) -> Result<TrashEntry> {
                Ok(match kind {
                    "folder" => TrashEntry::Folder(id.parse()?),
                    _ => TrashEntry::File(id.parse()?),
                })
            }

            fn id_pairs(rows: Vec<<$db as sqlx::Database>::Row>) -> Result<Vec<(WorkspaceId, UploadId)>> {
                rows.into_iter()
                    .map(|row| {
                        let ws: String = row.try_get("workspace_id").map_err(db_error)?;
                        let id: String = row.try_get("id").map_err(db_error)?;
                        Ok((ws.parse()?, id.parse()?))
                    })
                    .collect()
            }
        }

        #[async_trait::async_trait]
        impl cabinet_core::MetadataStore for $store {
            fn in_request_scope<'a>(
                &'a self,
                request: futures::future::BoxFuture<'a, ()>,
            ) -> futures::future::BoxFuture<'a, ()> {
                crate::InlineRows::in_request_scope(self, request)
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(self.read_pool()).await.map_err(|err| Error::Unavailable(Box::new(err)))?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl cabinet_core::WorkspaceStore for $store {
            async fn create_workspace(&self, ws: &Workspace) -> Result<()> {
                sqlx::query(
                    "INSERT INTO workspaces (id, name, limit_bytes, max_file_bytes, used_bytes, reserved_bytes, created_at) \
                     VALUES ($1, $2, $3, $4, 0, 0, $5)",
                )
                .bind(ws.id.as_str())
                .bind(&ws.name)
                .bind(ws.limit_bytes.map(bytes).transpose()?)
                .bind(ws.max_file_bytes.map(bytes).transpose()?)
                .bind(millis(ws.created_at))
                .execute(self.write_pool())
                .await
                .map_err(db_error)?;
                Ok(())
            }

            async fn get_workspace(&self, id: &WorkspaceId) -> Result<Workspace> {
                sqlx::query_as::<_, WorkspaceRow>(&format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1"))
                    .bind(id.as_str())
                    .fetch_optional(self.read_pool())
                    .await
                    .map_err(db_error)?
                    .ok_or(Error::NotFound("workspace"))?
                    .try_into()
            }

            async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
                sqlx::query_as::<_, WorkspaceRow>(&format!(
                    "SELECT {WORKSPACE_COLUMNS} FROM workspaces ORDER BY created_at, id"
                ))
                .fetch_all(self.read_pool())
                .await
                .map_err(db_error)?
                .into_iter()
                .map(Workspace::try_from)
                .collect()
            }
        }

        #[async_trait::async_trait]
        impl cabinet_core::KeyStore for $store {
            async fn create_api_key(&self, key: &ApiKey, secret_hash: &str) -> Result<()> {
                let mut tx = self.write_pool().begin().await.map_err(db_error)?;
                sqlx::query(
                    "INSERT INTO api_keys (id, secret_hash, name, role, hint, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(key.id.as_str())
                .bind(secret_hash)
                .bind(&key.name)
                .bind(key.role.as_str())
                .bind(&key.hint)
                .bind(millis(key.created_at))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                for (position, ws) in key.workspaces.iter().enumerate() {
                    sqlx::query("INSERT INTO api_key_workspaces (key_id, workspace_id, position) VALUES ($1, $2, $3)")
                        .bind(key.id.as_str())
                        .bind(ws.as_str())
                        .bind(position as i64)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                }
                tx.commit().await.map_err(db_error)
            }

            async fn find_api_key(&self, secret_hash: &str) -> Result<Option<ApiKey>> {
                const SQL: &str = crate::queries::FIND_API_KEY;
                let inline = crate::InlineRows::inline_rows(
                    self, SQL, &[secret_hash], crate::rows::ApiKeyWorkspaceRow::from_rusqlite,
                );
                let rows = match inline {
                    Some(rows) => rows?,
                    None => sqlx::query_as::<_, crate::rows::ApiKeyWorkspaceRow>(SQL)
                        .bind(secret_hash)
                        .fetch_all(self.read_pool())
                        .await
                        .map_err(db_error)?,
                };
                let workspaces: Vec<String> = rows.iter().filter_map(|row| row.workspace_id.clone()).collect();
                match rows.into_iter().next() {
                    None => Ok(None),
                    Some(row) => row.key.into_key(workspaces).map(Some),
                }
            }

            async fn list_api_keys(&self, ws: &WorkspaceId) -> Result<Vec<ApiKey>> {
                let rows = sqlx::query_as::<_, ApiKeyRow>(
                    "SELECT k.id, k.name, k.role, k.hint, k.created_at, k.revoked_at FROM api_keys k \
                     JOIN api_key_workspaces w ON w.key_id = k.id WHERE w.workspace_id = $1 ORDER BY k.created_at, k.id",
                )
                .bind(ws.as_str())
                .fetch_all(self.read_pool())
                .await
                .map_err(db_error)?;
                let mut keys = Vec::with_capacity(rows.len());
                for row in rows {
                    let workspaces = self.key_workspaces(&row.id).await?;
                    keys.push(row.into_key(workspaces)?);
                }
                Ok(keys)
            }

            async fn revoke_tokens(&self, ws: &WorkspaceId, sub: &str, at: DateTime<Utc>) -> Result<()> {
                sqlx::query(
                    "INSERT INTO token_revocations (workspace_id, sub, revoked_up_to) VALUES ($1, $2, $3) \
                     ON CONFLICT (workspace_id, sub) DO UPDATE SET revoked_up_to = \
                     CASE WHEN excluded.revoked_up_to > token_revocations.revoked_up_to \
                     THEN excluded.revoked_up_to ELSE token_revocations.revoked_up_to END",
                )
                .bind(ws.as_str())
                .bind(sub)
                .bind(millis(at))
                .execute(self.write_pool())
                .await
                .map_err(db_error)?;
                Ok(())
            }

            async fn token_standing(&self, ws: &WorkspaceId, key_id: &str, sub: &str) -> Result<TokenStanding> {
                let (live, cutoff): (i64, Option<i64>) = sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM api_keys WHERE id = $1 AND revoked_at IS NULL), \
                     (SELECT MAX(revoked_up_to) FROM token_revocations WHERE workspace_id = $2 AND sub IN ('', $3))",
                )
                .bind(key_id)
                .bind(ws.as_str())
                .bind(sub)
                .fetch_one(self.read_pool())
                .await
                .map_err(db_error)?;
                Ok(TokenStanding {
                    key_live: live > 0,
                    revoked_up_to: cutoff.and_then(chrono::DateTime::from_timestamp_millis),
                })
            }

            async fn revoke_api_key(&self, id: &ApiKeyId, at: DateTime<Utc>) -> Result<()> {
                let done = sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
                    .bind(millis(at))
                    .bind(id.as_str())
                    .execute(self.write_pool())
                    .await
                    .map_err(db_error)?;
                if done.rows_affected() == 0 {
                    return Err(Error::NotFound("api key"));
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl cabinet_core::UploadStore for $store {
            async fn insert_upload_reserving(&self, upload: &Upload) -> Result<()> {
                let size = bytes(upload.size)?;
                let mut tx = self.write_pool().begin().await.map_err(db_error)?;
                let reserved = sqlx::query(
                    "UPDATE workspaces SET reserved_bytes = reserved_bytes + $1 \
                     WHERE id = $2 AND (limit_bytes IS NULL OR used_bytes + reserved_bytes + $1 <= limit_bytes)",
                )
                .bind(size)
                .bind(upload.workspace_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                if reserved.rows_affected() == 0 {
                    let available: Option<i64> = sqlx::query_scalar(
                        "SELECT limit_bytes - used_bytes - reserved_bytes FROM workspaces WHERE id = $1",
                    )
                    .bind(upload.workspace_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .ok_or(Error::NotFound("workspace"))?;
                    return Err(Self::quota_error(available, upload.size));
                }
                sqlx::query(&format!(
                    "INSERT INTO uploads ({UPLOAD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
                ))
                .bind(upload.workspace_id.as_str())
                .bind(upload.id.as_str())
                .bind(&upload.name)
                .bind(size)
                .bind(&upload.declared_mime)
                .bind(&upload.sha256)
                .bind(upload.folder_id.as_ref().map(|id| id.as_str()))
                .bind(upload.status.as_str())
                .bind(upload.failure_reason.map(FailureReason::as_str))
                .bind(upload.file_id.as_str())
                .bind(&upload.blob_key)
                .bind(millis(upload.created_at))
                .bind(millis(upload.updated_at))
                .bind(millis(upload.expires_at))
                .bind(&upload.created_by)
                .bind(upload.size_known)
                .bind(upload.part_size.map(bytes).transpose()?)
                .bind(&upload.multipart_id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                tx.commit().await.map_err(db_error)
            }

            async fn get_upload(&self, ws: &WorkspaceId, id: &UploadId) -> Result<Upload> {
                sqlx::query_as::<_, UploadRow>(&format!(
                    "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE workspace_id = $1 AND id = $2"
                ))
                .bind(ws.as_str())
                .bind(id.as_str())
                .fetch_optional(self.read_pool())
                .await
                .map_err(db_error)?
                .ok_or(Error::NotFound("upload"))?
                .try_into()
            }

            async fn begin_receiving(&self, ws: &WorkspaceId, id: &UploadId, at: DateTime<Utc>) -> Result<bool> {
                self.move_upload(ws, id, at, "WAITING", "UPLOADING").await
            }

            async fn begin_receiving_reserving(
                &self,
                ws: &WorkspaceId,
                id: &UploadId,
                at: DateTime<Utc>,
                most: u64,
            ) -> Result<Option<u64>> {
                let mut tx = self.write_pool().begin().await.map_err(db_error)?;
                // A write first: it locks the workspace's row (PostgreSQL) or the database
                // (SQLite), so the ledger read next stays true until this transaction commits.
                sqlx::query("UPDATE workspaces SET reserved_bytes = reserved_bytes WHERE id = $1")
                    .bind(ws.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                let (limit, used, reserved): (Option<i64>, i64, i64) = sqlx::query_as(
                    "SELECT limit_bytes, used_bytes, reserved_bytes FROM workspaces WHERE id = $1",
                )
                .bind(ws.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?
                .ok_or(Error::NotFound("workspace"))?;
                let most = bytes(most)?;
                let grant = limit.map_or(most, |limit| most.min((limit - used - reserved).max(0)));
                let begun = sqlx::query(
                    "UPDATE uploads SET status = 'UPLOADING', updated_at = $1, size = $2 \
                     WHERE workspace_id = $3 AND id = $4 AND status = 'WAITING' AND size_known = $5",
                )
                .bind(millis(at))
                .bind(grant)
                .bind(ws.as_str())
                .bind(id.as_str())
                .bind(false)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                if begun.rows_affected() == 0 {
                    return Ok(None);
                }
                sqlx::query("UPDATE workspaces SET reserved_bytes = reserved_bytes + $1 WHERE id = $2")
                    .bind(grant)
                    .bind(ws.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
                Ok(Some(grant.max(0) as u64))
            }

            async fn finish_upload(&self, ws: &WorkspaceId, id: &UploadId, file: &FileRecord) -> Result<bool> {
                let mut tx = self.write_pool().begin().await.map_err(db_error)?;
                // What the upload holds reserved: its declared size, or for one of unknown size
                // what was reserved while its bytes streamed. The upload then records the file's size.
                let reserved: Option<i64> = sqlx::query_scalar(
                    "SELECT size FROM uploads WHERE workspace_id = $1 AND id = $2 AND status IN ('WAITING', 'UPLOADING')",
                )
                .bind(ws.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
                let Some(reserved) = reserved else {
                    return Ok(false);
                };
                let finished = sqlx::query(
                    "UPDATE uploads SET status = 'SUCCESS', updated_at = $1, size = $2 \
                     WHERE workspace_id = $3 AND id = $4 AND status IN ('WAITING', 'UPLOADING') AND size = $5",
                )
                .bind(millis(file.created_at))
                .bind(bytes(file.size)?)
                .bind(ws.as_str())
                .bind(id.as_str())
                .bind(reserved)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                if finished.rows_affected() == 0 {
                    return Ok(false);
                }
                Self::insert_file(&mut tx, file).await?;
                // Bytes beyond the reservation (an upload of unknown size reserved nothing) must
                // still fit the limit, checked in this same statement.
                let charged = sqlx::query(
                    "UPDATE workspaces SET reserved_bytes = reserved_bytes - $1, used_bytes = used_bytes + $2 \
                     WHERE id = $3 AND ($2 <= $1 OR limit_bytes IS NULL OR used_bytes + reserved_bytes - $1 + $2 <= limit_bytes)",
                )
                .bind(reserved)
                .bind(bytes(file.size)?)
                .bind(ws.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                if charged.rows_affected() == 0 {
                    let available: Option<i64> = sqlx::query_scalar(
                        "SELECT limit_bytes - used_bytes - reserved_bytes + $1 FROM workspaces WHERE id = $2",
                    )
                    .bind(reserved)
                    .bind(ws.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .flatten();
                    return Err(Self::quota_error(available, file.size));
                }
                Self::record_usage(&mut tx, ws, file.created_at).await?;
                tx.commit().await.map_err(db_error)?;
                Ok(true)
            }

            async fn fail_upload(
                &self,
                ws: &WorkspaceId,
                id: &UploadId,
                reason: FailureReason,
                at: DateTime<Utc>,
            ) -> Result<bool> {
                let mut tx = self.write_pool().begin().await.map_err(db_error)?;
                let reserved: Option<i64> = sqlx::query_scalar(
                    "UPDATE uploads SET status = 'FAILED', failure_reason = $1, updated_at = $2 \
                     WHERE workspace_id = $3 AND id = $4 AND status IN ('WAITING', 'UPLOADING') RETURNING size",
                )
                .bind(reason.as_str())
                .bind(millis(at))
                .bind(ws.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
                let Some(reserved) = reserved else {
                    return Ok(false);
                };
                sqlx::query("UPDATE workspaces SET reserved_bytes = reserved_bytes - $1 WHERE id = $2")
                    .bind(reserved)
                    .bind(ws.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
                Ok(true)
            }

            async fn expired_uploads(
                &self,
                waiting_before: DateTime<Utc>,
                uploading_before: DateTime<Utc>,
                limit: u32,
            ) -> Result<Vec<(WorkspaceId, UploadId)>> {
                let rows = sqlx::query(
                    "SELECT workspace_id, id FROM uploads \
                     WHERE (status = 'WAITING' AND expires_at <= $1) OR (status = 'UPLOADING' AND expires_at <= $2) LIMIT $3",
                )
                .bind(millis(waiting_before))
                .bind(millis(uploading_before))
                .bind(i64::from(limit))
                .fetch_all(self.read_pool())
                .await
                .map_err(db_error)?;
                Self::id_pairs(rows)
            }

            async fn reopen_upload(&self, ws: &WorkspaceId, id: &UploadId, at: DateTime<Utc>) -> Result<bool> {
                self.move_upload(ws, id, at, "UPLOADING", "WAITING").await
            }

            async fn receiving_uploads(&self, limit: u32) -> Result<Vec<(WorkspaceId, UploadId)>> {
                let rows = sqlx::query("SELECT workspace_id, id FROM uploads WHERE status = 'UPLOADING' LIMIT $1")
                    .bind(i64::from(limit))
                    .fetch_all(self.read_pool())
                    .await
                    .map_err(db_error)?;
                Self::id_pairs(rows)
            }

            async fn waiting_uploads(&self, after: Option<&UploadId>, limit: u32) -> Result<Vec<Upload>> {
                let rows = sqlx::query_as::<_, UploadRow>(&format!(
                    "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE status = 'WAITING' AND id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(after.map_or("", |id| id.as_str()))
                .bind(i64::from(limit))
                .fetch_all(self.read_pool())
                .await
                .map_err(db_error)?;
                rows.into_iter().map(Upload::try_from).collect()
            }
        }

        #[async_trait::async_trait]
        impl cabinet_core::FileStore for $store {
            async fn insert_file_charging(&self, file: &FileRecord) -> Result<()> {
                let size = bytes(file.size)?;
                let mut tx = self.write_pool().begin().await.map_err(db_error)?;
                let charged = sqlx::query(
                    "UPDATE workspaces SET used_bytes = used_bytes + $1 \
                     WHERE id = $2 AND (limit_bytes IS NULL OR used_bytes + reserved_bytes + $1 <= limit_bytes)",
                )
                .bind(size)
                .bind(file.workspace_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                Self::record_usage(&mut tx, &file.workspace_id, file.created_at).await?;
                if charged.rows_affected() == 0 {
                    let available: Option<i64> = sqlx::query_scalar(
                        "SELECT limit_bytes - used_bytes - reserved_bytes FROM workspaces WHERE id = $1",
                    )
                    .bind(file.workspace_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .ok_or(Error::NotFound("workspace"))?;
                    return Err(Self::quota_error(available, file.size));
                }
                Self::insert_file(&mut tx, file).await?;
                tx.commit().await.map_err(db_error)
            }

            async fn get_file(&self, ws: &WorkspaceId, id: &FileId) -> Result<FileRecord> {
                let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE workspace_id = $1 AND id = $2");
                let row = match crate::InlineRows::inline_rows(self, &sql, &[ws.as_str(), id.as_str()], FileRow::from_rusqlite) {
                    Some(rows) => rows?.into_iter().next(),
                    None => sqlx::query_as::<_, FileRow>(&sql)
                        .bind(ws.as_str())
                        .bind(id.as_str())
                        .fetch_optional(self.read_pool())
                        .await
                        .map_err(db_error)?,
                };
                row.ok_or(Error::NotFound("file"))?.try_into()
            }

            async fn list_files(
                &self,
                ws: &WorkspaceId,
                filter: &FileFilter,
                sort: Sort,
                paging: &Paging,
            ) -> Result<(Vec<FileRecord>, u64)> {
                // A name match is the costly part of a filtered list: count its matches in the
                // same pass (a window over them) rather than matching twice. A cursor page needs
                // every match counted, not only those after the cursor, so it counts apart.
                let count_in_page = filter.name_contains.is_some() && !matches!(paging.start, Start::After(_));
                // The window would read every live file of an unfiltered list: its total is the
                // workspace's counter, read in the same statement (one round trip, not two).
                let every_live_file = filter.is_every_live_file();
                let mut qb = QueryBuilder::<'static, $db>::new(format!("SELECT {FILE_COLUMNS}, "));
                if count_in_page {
                    qb.push("COUNT(*) OVER ()");
                } else if every_live_file {
                    qb.push("CAST((SELECT live_files FROM workspaces WHERE id = ");
                    qb.push_bind(ws.to_string());
                    qb.push(") AS BIGINT)");
                } else {
                    qb.push("CAST(0 AS BIGINT)");
                }
                qb.push(" AS total_matches");
                Self::push_page_source(&mut qb, "files", ws, filter.name_contains.as_deref());
                Self::push_file_filter(&mut qb, ws, filter);
                Self::push_page(&mut qb, "f", sort, paging);
                let rows: Vec<crate::rows::CountedFileRow> =
                    qb.build_query_as().fetch_all(self.read_pool()).await.map_err(db_error)?;
                let counted = rows.first().map(|row| row.total_matches.max(0) as u64);
                let files = rows.into_iter().map(|row| FileRecord::try_from(row.file)).collect::<Result<Vec<_>>>()?;
                let total = match counted {
                    Some(total) if count_in_page || every_live_file => total,
                    // An empty page (an offset past the end) carries no total.
                    _ if every_live_file => {
                        let mut count = QueryBuilder::<'static, $db>::new("SELECT live_files FROM workspaces WHERE id = ");
                        count.push_bind(ws.to_string());
                        self.count(count).await?
                    }
                    _ => {
                        let mut count = QueryBuilder::<'static, $db>::new("SELECT COUNT(*) FROM files f");
                        Self::push_file_filter(&mut count, ws, filter);
                        self.count(count).await?
                    }
                };
                Ok((files, total))
            }

            async fn update_file(
                &self,
                ws: &WorkspaceId,
                id: &FileId,
                change: &FileChange,
                at: DateTime<Utc>,
            ) -> Result<FileRecord> {
                let mut tx = self.write_pool().begin().await.map_err(db_error)?;
                let mut qb = QueryBuilder::<'static, $db>::new("UPDATE files SET updated_at = ");
                qb.push_bind(millis(at));
                if let Some(name) = &change.name {
                    qb.push(", name = ");
                    qb.push_bind(name.clone());
                    qb.push(", name_folded = ");
                    qb.push_bind(fold(name));
                }
                if let Some(folder) = &change.folder {
                    qb.push(", folder_id = ");
                    qb.push_bind(folder.as_ref().map(|id| id.to_string()));
                }
                if let Some(favorite) = change.is_favorite {
                    qb.push(", is_favorite = ");
                    qb.push_bind(favorite);
                }
                for (column, value) in [("alt_text", &change.alt_text), ("caption", &change.caption), ("copyright", &change.copyright)] {
                    if let Some(value) = value {
                        qb.push(format!(", {column} = "));
                        qb.push_bind(value.clone());
                    }
                }
                if let Some(metadata) = &change.metadata {
                    qb.push(", metadata = ");
                    qb.push_bind(serde_json::to_string(metadata).map_err(Error::internal)?);
                }
                if let Some(tags) = &change.tags {
                    qb.push(", tags = ");
                    qb.push_bind(serde_json::to_string(tags).map_err(Error::internal)?);
                }
                qb.push(" WHERE workspace_id = ");
                qb.push_bind(ws.to_string());
                qb.push(" AND id = ");
                qb.push_bind(id.to_string());
                qb.push(format!(" AND trashed_at IS NULL RETURNING {FILE_COLUMNS}"));
                let row: Option<FileRow> = qb.build_query_as().fetch_optional(&mut *tx).await.map_err(db_error)?;
                let file = FileRecord::try_from(row.ok_or(Error::NotFound("file"))?)?;
                if let Some(tags) = &change.tags {
                    Self::replace_tags(&mut tx, ws, id, tags).await?;
                }
                tx.commit().await.map_err(db_error)?;
                Ok(file)
            }

            async fn delete_file(&self, ws: &WorkspaceId, id: &FileId, at: DateTime<Utc>) -> Result<FileRecord> {
                let mut tx = self.write_pool().begin().await.map_err(db_error)?;
                Self::lock_workspace(&mut tx, ws).await?;
                let file: FileRecord = sqlx::query_as::<_, FileRow>(&format!(
                    "DELETE FROM files WHERE workspace_id = $1 AND id = $2 RETURNING {FILE_COLUMNS}"
                ))
                .bind(ws.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?
                .ok_or(Error::NotFound("file"))?
                .try_into()?;
                for table in ["file_tags", "file_references"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE workspace_id = $1 AND file_id = $2"))
                        .bind(ws.as_str())
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                }
                sqlx::query("UPDATE workspaces SET used_bytes = used_bytes - $1 WHERE id = $2")
                    .bind(bytes(file.size)?)
                    .bind(ws.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                Self::record_usage(&mut tx, ws, at).await?;
                tx.commit().await.map_err(db_error)?;
                Ok(file)
            }

            async fn tag_counts(&self, ws: &WorkspaceId) -> Result<Vec<(String, u64)>> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT t.tag, COUNT(*) FROM file_tags t JOIN files f ON f.workspace_id = t.workspace_id AND f.id = t.file_id \
                     WHERE t.workspace_id = $1 AND f.trashed_at IS NULL GROUP BY t.tag ORDER BY t.tag",
                )
                .bind(ws.as_str())
                .fetch_all(self.read_pool())
                .await
                .map_err(db_error)?;
                Ok(rows.into_iter().map(|(tag, n)| (tag, n.max(0) as u64)).collect())
            }

            async fn add_reference(&self, ws: &WorkspaceId, file: &FileId, reference: &FileReference) -> Result<()> {
                sqlx::query(
                    "INSERT INTO file_references (workspace_id, file_id, kind, ref_id, label, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (workspace_id, file_id, kind, ref_id) DO UPDATE SET label = excluded.label",
                )
                .bind(ws.as_str())
                .bind(file.as_str())
                .bind(&reference.kind)
                .bind(&reference.id)
                .bind(&reference.label)
                .bind(millis(reference.created_at))
                .execute(self.write_pool())
                .await
                .map_err(db_error)?;
                Ok(())
            }

            async fn list_references(&self, ws: &WorkspaceId, file: &FileId) -> Result<Vec<FileReference>> {
                const SQL: &str = "SELECT kind, ref_id, label, created_at FROM file_references \
                     WHERE workspace_id = $1 AND file_id = $2 ORDER BY created_at, kind, ref_id";
                let rows = match crate::InlineRows::inline_rows(self, SQL, &[ws.as_str(), file.as_str()], ReferenceRow::from_rusqlite) {
                    Some(rows) => rows?,
                    None => sqlx::query_as::<_, ReferenceRow>(SQL)
                        .bind(ws.as_str())
                        .bind(file.as_str())
                        .fetch_all(self.read_pool())
                        .await
                        .map_err(db_error)?,
                };
                rows.into_iter().map(FileReference::try_from).collect()
            }

            async fn get_file_with_references(&self, ws: &WorkspaceId, id: &FileId) -> Result<(FileRecord, Vec<FileReference>)> {
                static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                    let columns =
                        FILE_COLUMNS.split(',').map(|column| format!("f.{}", column.trim())).collect::<Vec<_>>().join(", ");
                    format!(
                        "SELECT {columns}, r.kind, r.ref_id, r.label, r.created_at AS ref_created_at FROM files f \
                         LEFT JOIN file_references r ON r.workspace_id = f.workspace_id AND r.file_id = f.id \
                         WHERE f.workspace_id = $1 AND f.id = $2 ORDER BY r.created_at, r.kind, r.ref_id"
                    )
                });
                let inline = crate::InlineRows::inline_rows(
                    self, &SQL, &[ws.as_str(), id.as_str()], crate::rows::FileReferenceRow::from_rusqlite,
                );
                let rows = match inline {
                    Some(rows) => rows?,
                    None => sqlx::query_as::<_, crate::rows::FileReferenceRow>(SQL.as_str())
                        .bind(ws.as_str())
                        .bind(id.as_str())
                        .fetch_all(self.read_pool())
                        .await
                        .map_err(db_error)?,
                };
                let references = rows.iter().filter_map(crate::rows::FileReferenceRow::reference).collect::<Result<Vec<_>>>()?;
                let first = rows.into_iter().next().ok_or(Error::NotFound("file"))?;
                Ok((first.file.try_into()?, references))
            }

            async fn remove_reference(&self, ws: &WorkspaceId, file: &FileId, kind: &str, id: &str) -> Result<()> {
                let done = sqlx::query(
                    "DELETE FROM file_references WHERE workspace_id = $1 AND file_id = $2 AND kind = $3 AND ref_id = $4",
                )
                .bind(ws.as_str())
                .bind(file.as_str())
                .bind(kind)
                .bind(id)
                .execute(self.write_pool())
                .await
                .map_err(db_error)?;
                if done.rows_affected() == 0 {
                    return Err(Error::NotFound("reference"));
                }
                Ok(())
            }

            async fn references_in_folder(&self, ws: &WorkspaceId, folder: &FolderId) -> Result<Vec<FileReference>> {
                let mut qb = QueryBuilder::<'static, $db>::new(
                    "SELECT r.kind, r.ref_id, r.label, r.created_at FROM file_references r \
                     JOIN files f ON f.workspace_id = r.workspace_id AND f.id = r.file_id WHERE r.workspace_id = ",
                );
                qb.push_bind(ws.to_string());
                qb.push(" AND f.trashed_at IS NULL AND f.folder_id IN ");
                Self::push_subtree(&mut qb, ws, folder);
                qb.push(" ORDER BY r.created_at");
                let rows: Vec<ReferenceRow> = qb.build_query_as().fetch_all(self.read_pool()).await.map_err(db_error)?;
                rows.into_iter().map(FileReference::try_from).collect()
            }
        }

        #[async_trait::async_trait]
        impl cabinet_core::FolderStore for $store {
            async fn insert_folder(&self, folder: &Folder) -> Result<()> {
                let mut tx = self.write_pool().begin().await.map_err(db_error)?;
                if let Some(parent) = &folder.parent_id {
                    Self::lock_workspace(&mut tx, &folder.workspace_id).await?;
                    Self::check_placement(&mut tx, &folder.workspace_id, None, parent).await?;
                }
                sqlx::query(
                    "INSERT INTO folders (workspace_id, id, parent_id, name, name_folded, is_favorite, trashed_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
                .execute(&mut *tx)
                .await
                .map_err(crate::errors::folder_error)?;
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
                     SELECT {cols} FROM folders f JOIN up ON f.id = up.id WHERE f.workspace_id = $1 ORDER BY up.depth DESC",
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
                let mut qb = QueryBuilder::<'static, $db>::new("UPDATE folders SET updated_at = ");
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
                qb.push(" WHERE workspace_id = ");
                qb.push_bind(ws.to_string());
                qb.push(" AND id = ");
                qb.push_bind(id.to_string());
                qb.push(format!(" AND trashed_at IS NULL RETURNING {FOLDER_COLUMNS}"));
                let row: Option<FolderRow> =
                    qb.build_query_as().fetch_optional(&mut *tx).await.map_err(crate::errors::folder_error)?;
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
                let mut qb = QueryBuilder::<'static, $db>::new(format!("SELECT {FOLDER_COLUMNS}"));
                Self::push_page_source(&mut qb, "folders", ws, filter.name_contains.as_deref());
                Self::push_folder_filter(&mut qb, ws, filter);
                Self::push_page(&mut qb, "f", sort, paging);
                let rows: Vec<FolderRow> = qb.build_query_as().fetch_all(self.read_pool()).await.map_err(db_error)?;
                let folders = rows.into_iter().map(Folder::try_from).collect::<Result<Vec<_>>>()?;
                let mut count = QueryBuilder::<'static, $db>::new("SELECT COUNT(*) FROM folders f");
                Self::push_folder_filter(&mut count, ws, filter);
                Ok((folders, self.count(count).await?))
            }

            async fn folder_is_empty(&self, ws: &WorkspaceId, id: &FolderId) -> Result<bool> {
                let found: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(1 AS BIGINT) WHERE EXISTS (SELECT 1 FROM files WHERE workspace_id = $1 AND folder_id = $2 AND trashed_at IS NULL) \
                     OR EXISTS (SELECT 1 FROM folders WHERE workspace_id = $1 AND parent_id = $2 AND trashed_at IS NULL)",
                )
                .bind(ws.as_str())
                .bind(id.as_str())
                .fetch_optional(self.read_pool())
                .await
                .map_err(db_error)?;
                Ok(found.is_none())
            }
        }

        #[async_trait::async_trait]
        impl cabinet_core::TrashStore for $store {
            async fn trash_file(&self, ws: &WorkspaceId, id: &FileId, at: DateTime<Utc>) -> Result<FileRecord> {
                // The live-file counter (a trigger) writes the workspace row after the file's;
                // taking the workspace first keeps the lock order of folder trashing.
                let mut tx = self.write_pool().begin().await.map_err(db_error)?;
                Self::lock_workspace(&mut tx, ws).await?;
                let file = sqlx::query_as::<_, FileRow>(&format!(
                    "UPDATE files SET trashed_at = $1, trash_root = NULL, updated_at = $1 \
                     WHERE workspace_id = $2 AND id = $3 AND trashed_at IS NULL RETURNING {FILE_COLUMNS}"
                ))
                .bind(millis(at))
                .bind(ws.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?
                .ok_or(Error::NotFound("file"))?
                .try_into()?;
                tx.commit().await.map_err(db_error)?;
                Ok(file)
            }

            async fn restore_file(
                &self,
                ws: &WorkspaceId,
                id: &FileId,
                folder: Option<&FolderId>,
                at: DateTime<Utc>,
            ) -> Result<FileRecord> {
                let mut tx = self.write_pool().begin().await.map_err(db_error)?;
                Self::lock_workspace(&mut tx, ws).await?;
                let file = sqlx::query_as::<_, FileRow>(&format!(
                    "UPDATE files SET trashed_at = NULL, trash_root = NULL, folder_id = $1, updated_at = $2 \
                     WHERE workspace_id = $3 AND id = $4 AND trashed_at IS NOT NULL RETURNING {FILE_COLUMNS}"
                ))
                .bind(folder.map(|f| f.as_str()))
                .bind(millis(at))
                .bind(ws.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?
                .ok_or(Error::NotFound("file"))?
                .try_into()?;
                tx.commit().await.map_err(db_error)?;
                Ok(file)
            }

            async fn trash_folder(&self, ws: &WorkspaceId, id: &FolderId, at: DateTime<Utc>) -> Result<Folder> {
                const LIVE_SUBTREE: &str = "WITH RECURSIVE sub (id) AS ( \
                     SELECT id FROM folders WHERE workspace_id = $1 AND id = $2 AND trashed_at IS NULL \
                     UNION SELECT c.id FROM folders c JOIN sub ON c.parent_id = sub.id \
                     WHERE c.workspace_id = $1 AND c.trashed_at IS NULL) ";
                let mut tx = self.write_pool().begin().await.map_err(db_error)?;
                Self::lock_workspace(&mut tx, ws).await?;
                sqlx::query(&format!(
                    "{LIVE_SUBTREE} UPDATE files SET trashed_at = $3, trash_root = $2 \
                     WHERE workspace_id = $1 AND trashed_at IS NULL AND folder_id IN (SELECT id FROM sub)"
                ))
                .bind(ws.as_str())
                .bind(id.as_str())
                .bind(millis(at))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                sqlx::query(&format!(
                    "{LIVE_SUBTREE} UPDATE folders SET trashed_at = $3, \
                     trash_root = CASE WHEN id = $2 THEN NULL ELSE $2 END \
                     WHERE workspace_id = $1 AND id IN (SELECT id FROM sub)"
                ))
                .bind(ws.as_str())
                .bind(id.as_str())
                .bind(millis(at))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                let folder: Folder = sqlx::query_as::<_, FolderRow>(&format!(
                    "SELECT {FOLDER_COLUMNS} FROM folders WHERE workspace_id = $1 AND id = $2 AND trashed_at = $3"
                ))
                .bind(ws.as_str())
                .bind(id.as_str())
                .bind(millis(at))
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?
                .ok_or(Error::NotFound("folder"))?
                .try_into()?;
                tx.commit().await.map_err(db_error)?;
                Ok(folder)
            }

            async fn restore_folder(
                &self,
                ws: &WorkspaceId,
                id: &FolderId,
                parent: Option<&FolderId>,
                name: &str,
                with_contents: bool,
                at: DateTime<Utc>,
            ) -> Result<Folder> {
                let mut tx = self.write_pool().begin().await.map_err(db_error)?;
                Self::lock_workspace(&mut tx, ws).await?;
                if let Some(parent) = parent {
                    Self::check_placement(&mut tx, ws, Some(id), parent).await?;
                }
                let row: Option<FolderRow> = sqlx::query_as(&format!(
                    "UPDATE folders SET trashed_at = NULL, trash_root = NULL, parent_id = $1, name = $2, name_folded = $3, \
                     updated_at = $4 WHERE workspace_id = $5 AND id = $6 AND trashed_at IS NOT NULL RETURNING {FOLDER_COLUMNS}"
                ))
                .bind(parent.map(|p| p.as_str()))
                .bind(name)
                .bind(fold(name))
                .bind(millis(at))
                .bind(ws.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(crate::errors::folder_error)?;
                let folder = Folder::try_from(row.ok_or(Error::NotFound("folder"))?)?;
                if with_contents {
                    for table in ["folders", "files"] {
                        sqlx::query(&format!(
                            "UPDATE {table} SET trashed_at = NULL, trash_root = NULL WHERE workspace_id = $1 AND trash_root = $2"
                        ))
                        .bind(ws.as_str())
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(crate::errors::folder_error)?;
                    }
                }
                tx.commit().await.map_err(db_error)?;
                Ok(folder)
            }

            async fn purge_folder(&self, ws: &WorkspaceId, id: &FolderId, at: DateTime<Utc>) -> Result<Vec<FileRecord>> {
                const SUBTREE: &str = "WITH RECURSIVE sub (id) AS ( \
                     SELECT id FROM folders WHERE workspace_id = $1 AND id = $2 \
                     UNION SELECT c.id FROM folders c JOIN sub ON c.parent_id = sub.id WHERE c.workspace_id = $1) ";
                let mut tx = self.write_pool().begin().await.map_err(db_error)?;
                Self::lock_workspace(&mut tx, ws).await?;
                let rows: Vec<FileRow> = sqlx::query_as(&format!(
                    "{SUBTREE} DELETE FROM files WHERE workspace_id = $1 AND folder_id IN (SELECT id FROM sub) RETURNING {FILE_COLUMNS}"
                ))
                .bind(ws.as_str())
                .bind(id.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?;
                let files = rows.into_iter().map(FileRecord::try_from).collect::<Result<Vec<_>>>()?;
                let mut freed: i64 = 0;
                for file in &files {
                    freed += bytes(file.size)?;
                    for table in ["file_tags", "file_references"] {
                        sqlx::query(&format!("DELETE FROM {table} WHERE workspace_id = $1 AND file_id = $2"))
                            .bind(ws.as_str())
                            .bind(file.id.as_str())
                            .execute(&mut *tx)
                            .await
                            .map_err(db_error)?;
                    }
                }
                sqlx::query("UPDATE workspaces SET used_bytes = used_bytes - $1 WHERE id = $2")
                    .bind(freed)
                    .bind(ws.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                Self::record_usage(&mut tx, ws, at).await?;
                let removed = sqlx::query(&format!(
                    "{SUBTREE} DELETE FROM folders WHERE workspace_id = $1 AND id IN (SELECT id FROM sub)"
                ))
                .bind(ws.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                if removed.rows_affected() == 0 {
                    return Err(Error::NotFound("folder"));
                }
                tx.commit().await.map_err(db_error)?;
                Ok(files)
            }

            async fn expired_trash(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<(WorkspaceId, TrashEntry)>> {
                let rows: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT workspace_id, 'file', id FROM files WHERE trashed_at < $1 AND trash_root IS NULL \
                     UNION ALL SELECT workspace_id, 'folder', id FROM folders WHERE trashed_at < $1 AND trash_root IS NULL \
                     LIMIT $2",
                )
                .bind(millis(before))
                .bind(i64::from(limit))
                .fetch_all(self.read_pool())
                .await
                .map_err(db_error)?;
                rows.into_iter().map(|(ws, kind, id)| Ok((ws.parse()?, Self::trash_entry(&kind, &id)?))).collect()
            }

            async fn trash_entries(&self, ws: &WorkspaceId, limit: u32) -> Result<Vec<TrashEntry>> {
                let rows: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT kind, id, trashed_at FROM ( \
                         SELECT 'file' AS kind, id, trashed_at FROM files \
                         WHERE workspace_id = $1 AND trashed_at IS NOT NULL AND trash_root IS NULL \
                         UNION ALL SELECT 'folder' AS kind, id, trashed_at FROM folders \
                         WHERE workspace_id = $1 AND trashed_at IS NOT NULL AND trash_root IS NULL) AS entries \
                     ORDER BY trashed_at DESC, id DESC LIMIT $2",
                )
                .bind(ws.as_str())
                .bind(i64::from(limit))
                .fetch_all(self.read_pool())
                .await
                .map_err(db_error)?;
                rows.into_iter().map(|(kind, id, _)| Self::trash_entry(&kind, &id)).collect()
            }
        }

        #[async_trait::async_trait]
        impl cabinet_core::AccessRuleStore for $store {
            async fn access_rules(
                &self,
                ws: &WorkspaceId,
                targets: &[RuleTarget],
            ) -> Result<HashMap<RuleTarget, AccessRules>> {
                let mut found = HashMap::new();
                for target in targets {
                    let (kind, id) = Self::rule_target(target);
                    let row: Option<(Option<String>, Option<String>, Option<String>, Option<bool>)> = sqlx::query_as(
                        "SELECT create_rule, read_rule, delete_rule, track_creator FROM access_rules \
                         WHERE workspace_id = $1 AND target_kind = $2 AND target_id = $3",
                    )
                    .bind(ws.as_str())
                    .bind(kind)
                    .bind(id)
                    .fetch_optional(self.read_pool())
                    .await
                    .map_err(db_error)?;
                    if let Some((create, read, delete, track_creator)) = row {
                        let audience = |raw: Option<String>| raw.and_then(|r| Audience::parse(&r));
                        found.insert(
                            target.clone(),
                            AccessRules { create: audience(create), read: audience(read), delete: audience(delete), track_creator },
                        );
                    }
                }
                Ok(found)
            }

            async fn put_access_rules(
                &self,
                ws: &WorkspaceId,
                target: &RuleTarget,
                rules: &AccessRules,
                at: DateTime<Utc>,
            ) -> Result<()> {
                let (kind, id) = Self::rule_target(target);
                sqlx::query(
                    "INSERT INTO access_rules (workspace_id, target_kind, target_id, create_rule, read_rule, delete_rule, track_creator, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (workspace_id, target_kind, target_id) DO UPDATE SET create_rule = excluded.create_rule, \
                     read_rule = excluded.read_rule, delete_rule = excluded.delete_rule, track_creator = excluded.track_creator, \
                     updated_at = excluded.updated_at",
                )
                .bind(ws.as_str())
                .bind(kind)
                .bind(id)
                .bind(rules.create.map(Audience::as_str))
                .bind(rules.read.map(Audience::as_str))
                .bind(rules.delete.map(Audience::as_str))
                .bind(rules.track_creator)
                .bind(millis(at))
                .execute(self.write_pool())
                .await
                .map_err(db_error)?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl cabinet_core::SearchStore for $store {
            async fn search(
                &self,
                ws: &WorkspaceId,
                files: &FileFilter,
                folders: &FolderFilter,
                sort: Sort,
                paging: &Paging,
            ) -> Result<(Vec<SearchHit>, u64)> {
                let union = |qb: &mut QueryBuilder<'static, $db>| {
                    qb.push("(SELECT 'folder' AS kind, f.id, f.name_folded, f.created_at, f.updated_at, CAST(0 AS BIGINT) AS size");
                    Self::push_page_source(qb, "folders", ws, folders.name_contains.as_deref());
                    Self::push_folder_filter(qb, ws, folders);
                    qb.push(" UNION ALL SELECT 'file' AS kind, f.id, f.name_folded, f.created_at, f.updated_at, f.size");
                    Self::push_page_source(qb, "files", ws, files.name_contains.as_deref());
                    Self::push_file_filter(qb, ws, files);
                    qb.push(") AS hits");
                };
                // Counted in the same pass as the page, as in `list_files`.
                let count_in_page = !matches!(paging.start, Start::After(_));
                let mut qb =
                    QueryBuilder::<'static, $db>::new("SELECT hits.kind, hits.id, COUNT(*) OVER () AS total_matches FROM ");
                union(&mut qb);
                qb.push(" WHERE 1 = 1");
                Self::push_page(&mut qb, "hits", sort, paging);
                let rows: Vec<(String, String, i64)> =
                    qb.build_query_as().fetch_all(self.read_pool()).await.map_err(db_error)?;
                let counted = rows.first().map(|(_, _, total)| (*total).max(0) as u64);
                // Load the page's folders and files with one query each, then keep the page's order.
                let ids_of = |wanted: &str| -> Vec<String> {
                    rows.iter().filter(|(kind, _, _)| kind == wanted).map(|(_, id, _)| id.clone()).collect()
                };
                let (folder_ids, file_ids) = (ids_of("folder"), ids_of("file"));
                let mut folders_by_id = HashMap::new();
                if !folder_ids.is_empty() {
                    let mut load = Self::rows_by_id(FOLDER_COLUMNS, "folders", ws, folder_ids);
                    let loaded: Vec<FolderRow> = load.build_query_as().fetch_all(self.read_pool()).await.map_err(db_error)?;
                    for row in loaded {
                        let folder = Folder::try_from(row)?;
                        folders_by_id.insert(folder.id.to_string(), folder);
                    }
                }
                let mut files_by_id = HashMap::new();
                if !file_ids.is_empty() {
                    let mut load = Self::rows_by_id(FILE_COLUMNS, "files", ws, file_ids);
                    let loaded: Vec<FileRow> = load.build_query_as().fetch_all(self.read_pool()).await.map_err(db_error)?;
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
                    _ => {
                        let mut count = QueryBuilder::<'static, $db>::new("SELECT COUNT(*) FROM ");
                        union(&mut count);
                        self.count(count).await?
                    }
                };
                Ok((hits, total))
            }
        }

        #[async_trait::async_trait]
        impl cabinet_core::LedgerStore for $store {
            async fn usage(&self, ws: &WorkspaceId) -> Result<Usage> {
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS total FROM files WHERE workspace_id = $1",
                )
                .bind(ws.as_str())
                .fetch_one(self.read_pool())
                .await
                .map_err(db_error)?;
                let count: i64 = row.try_get("n").map_err(db_error)?;
                let total: i64 = row.try_get("total").map_err(db_error)?;
                Ok(Usage { file_count: count.max(0) as u64, total_size: total.max(0) as u64 })
            }

            async fn reconcile_ledger(&self, ws: &WorkspaceId, repair: bool, at: DateTime<Utc>) -> Result<cabinet_core::ports::LedgerCheck> {
                const ACTUAL_USED: &str = "(SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM files WHERE workspace_id = $1)";
                const ACTUAL_RESERVED: &str = "(SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM uploads \
                     WHERE workspace_id = $1 AND status IN ('WAITING', 'UPLOADING'))";
                let mut tx = self.write_pool().begin().await.map_err(db_error)?;
                let (used, reserved, actual_used, actual_reserved): (i64, i64, i64, i64) = sqlx::query_as(&format!(
                    "SELECT used_bytes, reserved_bytes, {ACTUAL_USED}, {ACTUAL_RESERVED} FROM workspaces WHERE id = $1"
                ))
                .bind(ws.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?
                .ok_or(Error::NotFound("workspace"))?;
                if repair && (used != actual_used || reserved != actual_reserved) {
                    // One statement, so the sums and the ledger cannot drift apart while it runs.
                    sqlx::query(&format!(
                        "UPDATE workspaces SET used_bytes = {ACTUAL_USED}, reserved_bytes = {ACTUAL_RESERVED} WHERE id = $1"
                    ))
                    .bind(ws.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                    Self::record_usage(&mut tx, ws, at).await?;
                }
                tx.commit().await.map_err(db_error)?;
                let unsigned = |n: i64| n.max(0) as u64;
                Ok(cabinet_core::ports::LedgerCheck {
                    recorded_used: unsigned(used),
                    recorded_reserved: unsigned(reserved),
                    actual_used: unsigned(actual_used),
                    actual_reserved: unsigned(actual_reserved),
                })
            }

            async fn usage_history(
                &self,
                ws: &WorkspaceId,
                from: DateTime<Utc>,
                to: DateTime<Utc>,
            ) -> Result<(u64, Vec<(DateTime<Utc>, u64)>)> {
                let before: Option<i64> = sqlx::query_scalar(
                    "SELECT used_bytes FROM usage_ledger WHERE workspace_id = $1 AND at <= $2 ORDER BY at DESC, seq DESC LIMIT 1",
                )
                .bind(ws.as_str())
                .bind(millis(from))
                .fetch_optional(self.read_pool())
                .await
                .map_err(db_error)?;
                let rows: Vec<(i64, i64)> = sqlx::query_as(
                    "SELECT at, used_bytes FROM usage_ledger WHERE workspace_id = $1 AND at > $2 AND at < $3 ORDER BY at, seq",
                )
                .bind(ws.as_str())
                .bind(millis(from))
                .bind(millis(to))
                .fetch_all(self.read_pool())
                .await
                .map_err(db_error)?;
                let changes = rows
                    .into_iter()
                    .map(|(at, used)| Ok((crate::rows::from_millis(at)?, used.max(0) as u64)))
                    .collect::<Result<Vec<_>>>()?;
                Ok((before.unwrap_or(0).max(0) as u64, changes))
            }

            async fn file_blobs(&self, after: Option<&FileId>, limit: u32) -> Result<Vec<(WorkspaceId, FileId, String, u64)>> {
                let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
                    "SELECT workspace_id, id, blob_key, size FROM files WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after.map_or("", |id| id.as_str()))
                .bind(i64::from(limit))
                .fetch_all(self.read_pool())
                .await
                .map_err(db_error)?;
                rows.into_iter()
                    .map(|(ws, id, key, size)| Ok((ws.parse()?, id.parse()?, key, size.max(0) as u64)))
                    .collect()
            }

            async fn blob_keys_in_use(&self, keys: &[String]) -> Result<HashSet<String>> {
                let mut owned = HashSet::new();
                for key in keys {
                    let found: Option<i64> = sqlx::query_scalar(
                        "SELECT CAST(1 AS BIGINT) WHERE EXISTS (SELECT 1 FROM files WHERE blob_key = $1) \
                         OR EXISTS (SELECT 1 FROM uploads WHERE blob_key = $1 AND status IN ('WAITING', 'UPLOADING'))",
                    )
                    .bind(key)
                    .fetch_optional(self.read_pool())
                    .await
                    .map_err(db_error)?;
                    if found.is_some() {
                        owned.insert(key.clone());
                    }
                }
                Ok(owned)
            }
        }
        };
    };
}

pub(crate) use impl_metadata_store;
