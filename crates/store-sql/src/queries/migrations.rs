//! Applying each dialect's migrations, once, and the data changes that go with them.

use std::collections::HashSet;

use cabinet_core::names::fold;
use cabinet_core::Result;
use chrono::Utc;
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Type};

use crate::dialect::{Dialect, SqlStore, Value};
use crate::errors::db_error;

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
    /// Applies the migrations not yet applied, in one transaction; `serialize` (with the
    /// lock id as `$1`) keeps nodes that start together from migrating twice.
    pub(crate) async fn apply_migrations(
        &self,
        migrations: &[(i64, &str)],
        serialize: Option<&str>,
    ) -> Result<()> {
        const MIGRATION_LOCK: i64 = 0x0063_6162_696e_6574;
        let mut tx = self.write_pool().begin().await.map_err(db_error)?;
        if let Some(lock) = serialize {
            sqlx::query(lock).bind(MIGRATION_LOCK).execute(&mut *tx).await.map_err(db_error)?;
        }
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS cabinet_migrations (version BIGINT PRIMARY KEY, applied_at \
                     BIGINT NOT NULL)",
        )
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
    pub(super) async fn refold_names(tx: &mut sqlx::Transaction<'_, D::Db>) -> Result<()> {
        use futures::TryStreamExt;
        for table in ["files", "folders"] {
            let mut changed: Vec<(String, String, String)> = Vec::new();
            {
                let select = format!("SELECT workspace_id, id, name, name_folded FROM {table}");
                let mut rows =
                    sqlx::query_as::<_, (String, String, String, String)>(&select).fetch(&mut **tx);
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
                         SELECT COALESCE(f.parent_id, '') FROM folders f WHERE f.workspace_id = $2 AND f.id \
                         = $3))"
            } else {
                "UPDATE files SET name_folded = $1 WHERE workspace_id = $2 AND id = $3"
            };
            for (ws, id, folded) in changed {
                sqlx::query(update)
                    .bind(folded)
                    .bind(ws)
                    .bind(id)
                    .execute(&mut **tx)
                    .await
                    .map_err(db_error)?;
            }
        }
        Ok(())
    }
}
