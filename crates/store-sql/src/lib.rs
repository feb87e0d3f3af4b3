//! The metadata port over SQL: SQLite (the embedded default, WAL) and, by URL, PostgreSQL. Each
//! dialect has its own migrations; one conformance suite holds them to the same behaviour.

mod copy;
mod dialect;
mod errors;
mod postgres;
mod queries;
mod read_cache;
mod rows;
mod sqlite;

use std::sync::Arc;

use cabinet_core::{MetadataStore, Result};

pub use copy::{copy_sqlite_to_postgres, TableCopy};
pub use dialect::SqlStore;
pub use sqlite::{database_path, snapshot, stored_objects, StoredObject};

/// The SQLite metadata store.
pub type SqliteStore = SqlStore<sqlite::SqliteDatabase>;
/// The PostgreSQL metadata store.
pub type PostgresStore = SqlStore<postgres::PostgresDatabase>;

/// The migration after which the store recomputes every non-ASCII `name_folded` in Rust.
pub(crate) const NAMES_REFOLDED_MIGRATION: i64 = 12;

/// Whether a database URL names PostgreSQL (anything else is SQLite: a `sqlite://` URL or a path).
pub fn is_postgres_url(database_url: &str) -> bool {
    database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
}

/// Opens the store a database URL names (`postgres://…`, `sqlite://path` or a path), running its
/// migrations.
pub async fn connect(database_url: &str) -> Result<Arc<dyn MetadataStore>> {
    if is_postgres_url(database_url) {
        return Ok(Arc::new(PostgresStore::open(database_url).await?));
    }
    Ok(Arc::new(SqliteStore::open(database_url).await?))
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
