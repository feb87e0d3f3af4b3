//! What sets one SQL database apart under the shared queries (`queries/`): its pools, how it
//! matches a name, and whether it answers point lookups without its pool. The queries are written
//! once over `SqlStore<D>`; each database is a `Dialect`.

use std::future::Future;

use cabinet_core::{Result, WorkspaceId};
use futures::future::BoxFuture;
use sqlx::{Database, Decode, Encode, Executor, FromRow, Pool, QueryBuilder, Type};

use crate::rows::InlineRow;

/// The metadata store over one SQL database.
#[derive(Debug, Clone)]
pub struct SqlStore<D> {
    pub(crate) db: D,
}

/// One SQL database's side of the shared queries. (Public, in a private module, because the
/// public `SqlStore` names it in its bounds.)
pub trait Dialect: Send + Sync + 'static {
    /// The sqlx database.
    type Db: Database;

    /// Whether a page query finds its name matches first, in a subquery the planner cannot merge
    /// (see `SqlStore::push_page_source`).
    const FENCE_NAME_MATCHES: bool;

    /// Whether each statement is handed to a thread of the connection's own and its answer waited
    /// for (`MetadataStore::hands_statements_to_a_thread`).
    const HANDS_STATEMENTS_TO_A_THREAD: bool;

    /// The pool for reads (everything but the inline lookups).
    fn read_pool(&self) -> &Pool<Self::Db>;

    /// The pool for writes.
    fn write_pool(&self) -> &Pool<Self::Db>;

    /// Pushes a case-folded substring match of `folded` on the name of `table` (as `alias`), in
    /// workspace `ws`.
    fn push_name_match(
        qb: &mut QueryBuilder<'static, Self::Db>,
        table: &str,
        alias: &str,
        ws: &WorkspaceId,
        folded: &str,
    );

    /// Runs a query built with a `QueryBuilder`, reading every row. Only a concrete database can:
    /// the builder's arguments are typed to live for `'static`, and the shorter life the query
    /// needs is known from the database's own argument type, not from `Database::Arguments`.
    fn fetch_built<'e, T, E>(
        qb: &'e mut QueryBuilder<'static, Self::Db>,
        executor: E,
    ) -> impl Future<Output = sqlx::Result<Vec<T>>> + Send + 'e
    where
        T: for<'r> FromRow<'r, <Self::Db as Database>::Row> + Send + Unpin + 'e,
        E: Executor<'e, Database = Self::Db> + 'e;

    /// Runs a statement built with a `QueryBuilder` for its effect alone (as `fetch_built`), so no
    /// row comes back: on SQLite each row returned is a message from its writer thread.
    fn execute_built<'e, E>(
        qb: &'e mut QueryBuilder<'static, Self::Db>,
        executor: E,
    ) -> impl Future<Output = sqlx::Result<()>> + Send + 'e
    where
        E: Executor<'e, Database = Self::Db> + 'e;

    /// How many rows a statement changed.
    fn rows_affected(done: &<Self::Db as Database>::QueryResult) -> u64;

    /// The workspace column a scoped query on `alias` compares, given its name query.
    fn workspace_column(alias: &str, name_query: Option<&str>) -> String;

    /// Runs a point lookup of `sql` with text parameters `$1, $2, …` without the pool, or `None`
    /// to send the caller to the pool.
    fn inline_rows<T: InlineRow>(&self, _sql: &str, _params: &[&str]) -> Option<Result<Vec<T>>> {
        None
    }

    /// Where this database keeps what every request asks it, if anywhere (`read_cache`).
    fn cache(&self) -> Option<&std::sync::Arc<crate::read_cache::ReadCache>> {
        None
    }

    /// See `MetadataStore::in_request_scope`.
    fn in_request_scope<'a>(&'a self, request: BoxFuture<'a, ()>) -> BoxFuture<'a, ()> {
        request
    }
}

/// A value both databases bind and read: integers, text and booleans.
pub trait Value<DB: Database>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> {}

impl<DB: Database, T> Value<DB> for T where T: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> {}

impl<D: Dialect> SqlStore<D> {
    pub(crate) fn read_pool(&self) -> &Pool<D::Db> {
        self.db.read_pool()
    }

    pub(crate) fn write_pool(&self) -> &Pool<D::Db> {
        self.db.write_pool()
    }
}
