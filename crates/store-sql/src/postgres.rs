//! PostgreSQL: the same queries as SQLite over one connection pool. The quota stays exact under
//! concurrency because every ledger change is a single conditional UPDATE, which takes the
//! workspace's row lock and re-checks its condition after waiting for it.

use std::time::Duration;

use cabinet_core::Result;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::errors::db_error;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_spine.sql")),
    (2, include_str!("../migrations/postgres/0002_organising.sql")),
    (3, include_str!("../migrations/postgres/0003_access.sql")),
    (4, include_str!("../migrations/postgres/0004_metering.sql")),
    (5, include_str!("../migrations/postgres/0005_unknown_size.sql")),
    (6, include_str!("../migrations/postgres/0006_live_files.sql")),
    (7, include_str!("../migrations/postgres/0007_multipart.sql")),
    (9, include_str!("../migrations/postgres/0009_live_file_count.sql")),
    (10, include_str!("../migrations/postgres/0010_key_workspaces_in_order.sql")),
    (12, include_str!("../migrations/postgres/0012_names_refolded.sql")),
    (13, include_str!("../migrations/postgres/0013_token_revocations.sql")),
];

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
        self.apply_migrations(MIGRATIONS, Some("SELECT pg_advisory_xact_lock($1)")).await
    }

    fn read_pool(&self) -> &PgPool {
        &self.read
    }

    fn write_pool(&self) -> &PgPool {
        &self.write
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

/// The workspace column a scoped query compares; a name query's page is kept on the trigram
/// index by finding its matches first (`push_page_source`, the `true` below), not by a hint.
fn workspace_column(alias: &str, _name_query: Option<&str>) -> String {
    format!("{alias}.workspace_id")
}

/// Every lookup goes through the pool: a PostgreSQL query is a network round trip either way.
impl crate::InlineRows for PostgresStore {}

crate::queries::impl_metadata_store!(PostgresStore, sqlx::Postgres, push_name_match, workspace_column, true);
