//! The pieces of a listing query: the filters on files and folders, the folder scope, and the
//! keyset page.

use cabinet_core::listing::{
    CursorValue, FileFilter, FolderFilter, FolderScope, Paging, Sort, SortKey, Start,
};
use cabinet_core::{FolderId, WorkspaceId};
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, QueryBuilder, Type};

use crate::dialect::{Dialect, SqlStore, Value};
use crate::rows::millis;

/// Whether a query's name match is already in its source (`push_page_source`), or is still for
/// its filter to add.
#[derive(Clone, Copy)]
pub(crate) enum NameMatched {
    Already,
    NotYet,
}

/// `column` for a sort key.
pub(super) fn sort_column(key: SortKey) -> &'static str {
    match key {
        SortKey::Name => "name_folded",
        SortKey::CreatedAt => "created_at",
        SortKey::UpdatedAt => "updated_at",
        SortKey::Size => "size",
    }
}

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
    pub(super) fn push_subtree(qb: &mut QueryBuilder<'static, D::Db>, ws: &WorkspaceId, root: &FolderId) {
        qb.push("(WITH RECURSIVE sub(id) AS (SELECT ");
        qb.push_bind(root.to_string());
        // UNION, not UNION ALL: a set stops growing, so even a cycle ends the walk.
        qb.push(" UNION SELECT c.id FROM folders c JOIN sub ON c.parent_id = sub.id WHERE c.workspace_id = ");
        qb.push_bind(ws.to_string());
        qb.push(") SELECT id FROM sub)");
    }

    pub(super) fn push_scope(
        qb: &mut QueryBuilder<'static, D::Db>,
        ws: &WorkspaceId,
        column: &str,
        scope: &FolderScope,
    ) {
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
    /// 100,000 files), though the page counts every match anyway. Returns whether it matched
    /// the name, so that the filter after it does not match it again (on PostgreSQL, a name's
    /// trigram keys computed again for each of 10,000 matches took 100 ms).
    pub(super) fn push_page_source(
        qb: &mut QueryBuilder<'static, D::Db>,
        table: &str,
        ws: &WorkspaceId,
        name_query: Option<&str>,
    ) -> NameMatched {
        match name_query {
            Some(query) if D::FENCE_NAME_MATCHES => {
                qb.push(format!(" FROM (SELECT * FROM {table} m WHERE m.workspace_id = "));
                qb.push_bind(ws.to_string());
                qb.push(" AND ");
                D::push_name_match(qb, table, "m", ws, query);
                qb.push(" OFFSET 0) f");
                NameMatched::Already
            }
            _ => {
                qb.push(format!(" FROM {table} f"));
                NameMatched::NotYet
            }
        }
    }

    /// `WHERE …` for files, on table alias `f`.
    pub(crate) fn push_file_filter(
        qb: &mut QueryBuilder<'static, D::Db>,
        ws: &WorkspaceId,
        filter: &FileFilter,
        name: NameMatched,
    ) {
        qb.push(format!(" WHERE {} = ", D::workspace_column("f", filter.name_contains.as_deref())));
        qb.push_bind(ws.to_string());
        qb.push(if filter.trashed { " AND f.trashed_at IS NOT NULL" } else { " AND f.trashed_at IS NULL" });
        Self::push_scope(qb, ws, "f.folder_id", &filter.folder);
        if let (Some(query), NameMatched::NotYet) = (&filter.name_contains, name) {
            qb.push(" AND ");
            D::push_name_match(qb, "files", "f", ws, query);
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
            qb.push(
                " AND (SELECT COUNT(*) FROM file_tags t WHERE t.workspace_id = f.workspace_id AND \
                     t.file_id = f.id AND t.tag IN (",
            );
            // One key per tag however it is spelt: the count is of distinct keys.
            let keys: std::collections::BTreeSet<String> =
                filter.tags_all.iter().map(|tag| cabinet_core::metadata::tag_key(tag)).collect();
            let mut list = qb.separated(", ");
            for key in &keys {
                list.push_bind(key.clone());
            }
            qb.push(format!(")) = {}", keys.len()));
        }
        if !filter.tags_any.is_empty() {
            qb.push(
                " AND EXISTS (SELECT 1 FROM file_tags t WHERE t.workspace_id = f.workspace_id AND \
                     t.file_id = f.id AND t.tag IN (",
            );
            let mut list = qb.separated(", ");
            for tag in &filter.tags_any {
                list.push_bind(cabinet_core::metadata::tag_key(tag));
            }
            qb.push("))");
        }
        if let Some((kind, id)) = &filter.referenced_by {
            qb.push(
                " AND EXISTS (SELECT 1 FROM file_references r WHERE r.workspace_id = f.workspace_id AND \
                     r.file_id = f.id AND r.kind = ",
            );
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
    pub(super) fn push_folder_filter(
        qb: &mut QueryBuilder<'static, D::Db>,
        ws: &WorkspaceId,
        filter: &FolderFilter,
        name: NameMatched,
    ) {
        qb.push(format!(" WHERE {} = ", D::workspace_column("f", filter.name_contains.as_deref())));
        qb.push_bind(ws.to_string());
        qb.push(if filter.trashed { " AND f.trashed_at IS NOT NULL" } else { " AND f.trashed_at IS NULL" });
        Self::push_scope(qb, ws, "f.parent_id", &filter.parent);
        if let (Some(query), NameMatched::NotYet) = (&filter.name_contains, name) {
            qb.push(" AND ");
            D::push_name_match(qb, "folders", "f", ws, query);
        }
        if let Some(favorite) = filter.favorite {
            qb.push(" AND f.is_favorite = ");
            qb.push_bind(favorite);
        }
    }

    /// Keyset condition (after a `WHERE …`), ORDER BY and LIMIT/OFFSET, on alias `alias`.
    pub(super) fn push_page(qb: &mut QueryBuilder<'static, D::Db>, alias: &str, sort: Sort, paging: &Paging) {
        let column = sort_column(sort.key);
        let cmp = if sort.descending { "<" } else { ">" };
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
        Self::push_order(qb, alias, sort);
        qb.push(" LIMIT ");
        qb.push_bind(i64::from(paging.limit));
        if let Start::Offset(offset) = paging.start {
            qb.push(" OFFSET ");
            qb.push_bind(offset.min(i64::MAX as u64) as i64);
        }
    }

    /// ` ORDER BY …` of a page, on alias `alias`: the sort column, then the id to break ties.
    pub(super) fn push_order(qb: &mut QueryBuilder<'static, D::Db>, alias: &str, sort: Sort) {
        let column = sort_column(sort.key);
        let dir = if sort.descending { "DESC" } else { "ASC" };
        qb.push(format!(" ORDER BY {alias}.{column} {dir}, {alias}.id {dir}"));
    }

    /// `SELECT columns FROM table` for the rows of a workspace with these ids.
    pub(super) fn rows_by_id(
        columns: &str,
        table: &str,
        ws: &WorkspaceId,
        ids: Vec<String>,
    ) -> QueryBuilder<'static, D::Db> {
        let mut load = QueryBuilder::<'static, D::Db>::new(format!(
            "SELECT {columns} FROM {table} WHERE workspace_id = "
        ));
        load.push_bind(ws.to_string());
        load.push(" AND id IN (");
        let mut list = load.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        load.push(")");
        load
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PostgresStore, SqliteStore};

    /// A page's name query is matched once, by its source or by its filter: matching it again
    /// costs PostgreSQL each match's trigram keys a second time.
    #[test]
    fn a_pages_name_query_is_matched_once() {
        let ws = WorkspaceId::generate();
        let files = FileFilter { name_contains: Some("w0042".into()), ..FileFilter::default() };
        let folders = FolderFilter { name_contains: Some("w0042".into()), ..FolderFilter::default() };

        let mut pg = QueryBuilder::<sqlx::Postgres>::new("SELECT f.id");
        let name = PostgresStore::push_page_source(&mut pg, "files", &ws, files.name_contains.as_deref());
        PostgresStore::push_file_filter(&mut pg, &ws, &files, name);
        assert_eq!(pg.sql().matches(" LIKE ").count(), 1, "{}", pg.sql());
        let mut pg = QueryBuilder::<sqlx::Postgres>::new("SELECT f.id");
        let name = PostgresStore::push_page_source(&mut pg, "folders", &ws, folders.name_contains.as_deref());
        PostgresStore::push_folder_filter(&mut pg, &ws, &folders, name);
        assert_eq!(pg.sql().matches(" LIKE ").count(), 1, "{}", pg.sql());

        let mut sqlite = QueryBuilder::<sqlx::Sqlite>::new("SELECT f.id");
        let name = SqliteStore::push_page_source(&mut sqlite, "files", &ws, files.name_contains.as_deref());
        SqliteStore::push_file_filter(&mut sqlite, &ws, &files, name);
        assert_eq!(sqlite.sql().matches(" MATCH ").count(), 1, "{}", sqlite.sql());
    }
}
