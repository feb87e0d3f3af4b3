//! The metadata port over SQL: SQLite (the embedded default, WAL) and, by URL, PostgreSQL. Each
//! dialect has its own migrations; one conformance suite holds them to the same behaviour.

mod errors;
mod postgres;
mod queries;
mod rows;
mod sqlite;

use std::sync::Arc;

use cabinet_core::{MetadataStore, Result};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// The migration after which the store recomputes every non-ASCII `name_folded` in Rust.
pub(crate) const NAMES_REFOLDED_MIGRATION: i64 = 12;

/// Opens the store a database URL names (`postgres://…`, `sqlite://path` or a path), running its
/// migrations.
pub async fn connect(database_url: &str) -> Result<Arc<dyn MetadataStore>> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresStore::open(database_url).await?));
    }
    Ok(Arc::new(SqliteStore::open(database_url).await?))
}

/// The point lookups behind every request (a key, a file, its references) as a dialect may answer
/// them without its pool. `None` sends the caller to the pool.
pub(crate) trait InlineRows {
    /// Runs a read of `sql` with text parameters `$1, $2, …`, decoding each row with `decode`.
    fn inline_rows<T>(
        &self,
        _sql: &str,
        _params: &[&str],
        _decode: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Option<Result<Vec<T>>> {
        None
    }

    /// See `MetadataStore::in_request_scope`.
    fn in_request_scope<'a>(
        &'a self,
        request: futures::future::BoxFuture<'a, ()>,
    ) -> futures::future::BoxFuture<'a, ()> {
        request
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn like_escape(raw: &str) -> String {
    let mut escaped = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
