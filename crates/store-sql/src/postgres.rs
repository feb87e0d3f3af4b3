//! PostgreSQL: the same queries as SQLite over one connection pool. The quota stays exact under
//! concurrency because every ledger change is a single conditional UPDATE, which takes the
//! workspace's row lock and re-checks its condition after waiting for it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cabinet_core::{Result, WorkspaceId};
use futures::future::BoxFuture;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgPool};

use crate::dialect::{Dialect, SqlStore};
use crate::errors::db_error;
use crate::read_cache::ReadCache;
use crate::PostgresStore;

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
    (11, include_str!("../migrations/postgres/0011_search_scoped_by_workspace.sql")),
    (12, include_str!("../migrations/postgres/0012_names_refolded.sql")),
    (13, include_str!("../migrations/postgres/0013_token_revocations.sql")),
    (14, include_str!("../migrations/postgres/0014_signing_keys_and_link_generations.sql")),
    (15, include_str!("../migrations/postgres/0015_recorded_uploads_and_shared_folders.sql")),
    (16, include_str!("../migrations/postgres/0016_external_ids_and_tag_spellings.sql")),
    (17, include_str!("../migrations/postgres/0017_workspace_cors_origins.sql")),
    (18, include_str!("../migrations/postgres/0018_events.sql")),
    (19, include_str!("../migrations/postgres/0019_s3_keys.sql")),
    (20, include_str!("../migrations/postgres/0020_webhooks.sql")),
    (21, include_str!("../migrations/postgres/0021_audit_log.sql")),
    (22, include_str!("../migrations/postgres/0022_s3_objects.sql")),
    (23, include_str!("../migrations/postgres/0023_cache_notices.sql")),
    (24, include_str!("../migrations/postgres/0024_events_pruned_by_number.sql")),
    (25, include_str!("../migrations/postgres/0025_file_details_notices.sql")),
    (26, include_str!("../migrations/postgres/0026_uploads_failed_by_expiry.sql")),
];

/// A PostgreSQL database's pools. Every lookup goes through them, since a PostgreSQL query is a
/// network round trip either way, but for what every request asks (its credentials, whether its
/// workspace opens reading to the public): that is kept in memory while the database notifies
/// every change to it (`read_cache`).
#[derive(Debug, Clone)]
pub struct PostgresDatabase {
    write: PgPool,
    read: PgPool,
    cache: Arc<ReadCache>,
}

/// A pooled connection idle this long is pinged before it is used: one in steady use (taken again
/// sooner) costs no round trip more, and one left idle across a restart of the database is found
/// dead and replaced before a statement fails on it.
const PING_IF_IDLE_FOR: Duration = Duration::from_millis(100);

impl PostgresStore {
    /// Connects to a `postgres://` URL and migrates the database.
    pub async fn open(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            // sqlx pings every connection as it goes back to the pool; pinging it again as it is
            // taken added a round trip to every query. Only one idle for a while is pinged (and
            // closed when the ping fails), so connections left idle across a restart of the server
            // are replaced rather than failing the statements that find them.
            .test_before_acquire(false)
            .before_acquire(|connection, held| {
                Box::pin(async move {
                    if held.idle_for >= PING_IF_IDLE_FOR {
                        connection.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect(url)
            .await
            .map_err(db_error)?;
        let cache = Arc::new(ReadCache::notified(pool.clone()));
        let store = SqlStore { db: PostgresDatabase { write: pool.clone(), read: pool, cache } };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        self.apply_migrations(MIGRATIONS, Some("SELECT pg_advisory_xact_lock($1)")).await
    }
}

impl Dialect for PostgresDatabase {
    type Db = sqlx::Postgres;

    /// A name query's page is kept on the trigram index by finding its matches first.
    const FENCE_NAME_MATCHES: bool = true;

    /// Statements go over the connection's socket, polled by the runtime's own I/O driver.
    const HANDS_STATEMENTS_TO_A_THREAD: bool = false;

    fn read_pool(&self) -> &PgPool {
        &self.read
    }

    fn write_pool(&self) -> &PgPool {
        &self.write
    }

    fn cache(&self) -> Option<&Arc<ReadCache>> {
        Some(&self.cache)
    }

    /// The request's lookups of what is kept share the listener's round trips that started since
    /// it began.
    fn in_request_scope<'a>(&'a self, request: BoxFuture<'a, ()>) -> BoxFuture<'a, ()> {
        Box::pin(self.cache.in_request_scope(request))
    }

    /// A case-folded substring match on a name. From three characters on, the name's trigrams keyed
    /// by its workspace (`name_trigram_keys`, migration 0011) must hold the query's: the GIN index on
    /// them lists only this workspace's rows under each key, so the search costs the same whatever
    /// other workspaces hold. Shorter queries scan the workspace's own rows.
    fn push_name_match(
        qb: &mut sqlx::QueryBuilder<'static, sqlx::Postgres>,
        _table: &str,
        alias: &str,
        ws: &WorkspaceId,
        folded: &str,
    ) {
        if folded.chars().count() >= 3 {
            qb.push(format!(
                "name_trigram_keys({alias}.workspace_id, {alias}.name_folded) @> name_trigram_keys("
            ));
            qb.push_bind(ws.to_string());
            qb.push(", ");
            qb.push_bind(folded.to_owned());
            qb.push(") AND ");
        }
        qb.push(format!("{alias}.name_folded LIKE "));
        qb.push_bind(format!("%{}%", crate::like_escape(folded)));
        qb.push(" ESCAPE '\\'");
    }

    fn fetch_built<'e, T, E>(
        qb: &'e mut sqlx::QueryBuilder<'static, sqlx::Postgres>,
        executor: E,
    ) -> impl Future<Output = sqlx::Result<Vec<T>>> + Send + 'e
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin + 'e,
        E: sqlx::Executor<'e, Database = sqlx::Postgres> + 'e,
    {
        qb.build_query_as().fetch_all(executor)
    }

    fn execute_built<'e, E>(
        qb: &'e mut sqlx::QueryBuilder<'static, sqlx::Postgres>,
        executor: E,
    ) -> impl Future<Output = sqlx::Result<()>> + Send + 'e
    where
        E: sqlx::Executor<'e, Database = sqlx::Postgres> + 'e,
    {
        let query = qb.build();
        async move { query.execute(executor).await.map(drop) }
    }

    fn rows_affected(done: &sqlx::postgres::PgQueryResult) -> u64 {
        done.rows_affected()
    }

    /// The workspace column a scoped query compares; a name query's page is kept on the trigram
    /// index by finding its matches first (`FENCE_NAME_MATCHES`), not by a hint.
    fn workspace_column(alias: &str, _name_query: Option<&str>) -> String {
        format!("{alias}.workspace_id")
    }
}

#[cfg(test)]
mod tests {
    use cabinet_core::listing::FileFilter;

    use super::*;

    /// A fresh database on the test server, or `None` when there is none (and none is required).
    async fn fresh_database() -> Option<String> {
        let Ok(admin_url) = std::env::var("CABINET_TEST_DATABASE_URL") else {
            assert!(
                std::env::var("CABINET_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "CABINET_REQUIRE_POSTGRES=1 but CABINET_TEST_DATABASE_URL is not set"
            );
            eprintln!("skipping: CABINET_TEST_DATABASE_URL is not set");
            return None;
        };
        let name = format!("search_{}", ulid::Ulid::new().to_string().to_lowercase());
        let admin = PgPool::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
        admin.close().await;
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        Some(format!("{base}/{name}"))
    }

    /// Adds `count` files named `{stem} {i}.jpg` to a workspace, creating it first.
    async fn workspace_with_files(pool: &PgPool, ws: &str, stem: &str, count: i64) {
        sqlx::query(
            "INSERT INTO workspaces (id, name, created_at) VALUES ($1, $1, 0) ON CONFLICT DO NOTHING",
        )
        .bind(ws)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO files (workspace_id, id, name, name_folded, mime_type, size, sha256, blob_key, created_at, updated_at) \
             SELECT $1, $1 || '_file_' || i, $2 || ' ' || i || '.jpg', lower($2 || ' ' || i || '.jpg'), 'image/jpeg', 1, '', \
                    $1 || '/' || i, i, i FROM generate_series(1, $3::bigint) AS i",
        )
        .bind(ws)
        .bind(stem)
        .bind(count)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("ANALYZE files").execute(pool).await.unwrap();
    }

    /// The shared buffers (pages) Cabinet's name query for `term` reads as workspace `ws`.
    async fn pages_read(store: &PostgresStore, ws: &WorkspaceId, term: &str) -> u64 {
        let filter = FileFilter { name_contains: Some(term.into()), ..FileFilter::default() };
        let mut query =
            sqlx::QueryBuilder::new("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT f.id FROM files f");
        PostgresStore::push_file_filter(&mut query, ws, &filter, crate::queries::NameMatched::NotYet);
        let lines: Vec<(String,)> = query.build_query_as().fetch_all(store.read_pool()).await.unwrap();
        let plan = lines.into_iter().map(|(line,)| line).collect::<Vec<_>>().join("\n");
        // The top node's line, the first; it counts its children's pages too.
        let buffers = plan.lines().find(|line| line.trim_start().starts_with("Buffers:"));
        let Some(buffers) = buffers else { return 0 };
        let count = |label: &str| {
            buffers
                .split([' ', ','])
                .find_map(|field| field.strip_prefix(label))
                .map_or(0, |n| n.parse::<u64>().unwrap())
        };
        let pages = count("hit=") + count("read=");
        println!("{term} as {ws}: {pages} pages\n{plan}");
        pages
    }

    #[tokio::test]
    async fn a_name_search_reads_a_few_pages_whatever_another_workspace_holds() {
        let Some(url) = fresh_database().await else { return };
        let store = PostgresStore::open(&url).await.unwrap();
        let neighbour = WorkspaceId::generate();
        let large = WorkspaceId::generate();
        workspace_with_files(store.write_pool(), neighbour.as_str(), "Scan", 200).await;
        workspace_with_files(store.write_pool(), large.as_str(), "Quarterly report", 5_000).await;
        // The large workspace's own search reads its 5,000 matches: over a hundred pages.
        let own = pages_read(&store, &large, "quarterly").await;
        assert!(own > 100, "{own} pages");
        // The neighbour's search for the same term reads only its own keys: under the old shared
        // trigram index (or a scan of the table) it read as many pages as the large one's.
        let neighbours = pages_read(&store, &neighbour, "quarterly").await;
        assert!(neighbours < 20, "the neighbour's search read {neighbours} pages");
        let short = pages_read(&store, &neighbour, "qu").await;
        assert!(short < 20, "the neighbour's short search read {short} pages");
    }
}
