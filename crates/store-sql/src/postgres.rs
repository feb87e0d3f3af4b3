//! PostgreSQL: the same queries as SQLite over one connection pool. The quota stays exact under
//! concurrency because every ledger change is a single conditional UPDATE, which takes the
//! workspace's row lock and re-checks its condition after waiting for it.

use std::collections::HashSet;
use std::time::Duration;

use cabinet_core::Result;
use chrono::Utc;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::errors::db_error;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_spine.sql")),
    (2, include_str!("../migrations/postgres/0002_organising.sql")),
    (3, include_str!("../migrations/postgres/0003_unknown_size.sql")),
];
/// Serialises migrations when several nodes start at once.
const MIGRATION_LOCK: i64 = 0x0063_6162_696e_6574;

/// The PostgreSQL metadata store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    write: PgPool,
    read: PgPool,
}

impl PostgresStore {
    /// Connects to a `postgres://` URL and migrates the database.
    pub async fn open(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(db_error)?;
        let store = Self { write: pool.clone(), read: pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS cabinet_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
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
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(db_error)?;
            sqlx::query("INSERT INTO cabinet_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(Utc::now().timestamp_millis())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn key_workspaces(&self, key_id: &str) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT workspace_id FROM api_key_workspaces WHERE key_id = $1 ORDER BY position")
            .bind(key_id)
            .fetch_all(&self.read)
            .await
            .map_err(db_error)
    }
}

/// A case-folded substring match on a name, which the pg_trgm GIN index serves.
fn push_name_match(
    qb: &mut sqlx::QueryBuilder<'static, sqlx::Postgres>,
    _table: &str,
    alias: &str,
    folded: &str,
) {
    qb.push(format!("{alias}.name_folded LIKE "));
    qb.push_bind(format!("%{}%", crate::like_escape(folded)));
    qb.push(" ESCAPE '\\'");
}

crate::queries::impl_metadata_store!(PostgresStore, sqlx::Postgres, push_name_match);
