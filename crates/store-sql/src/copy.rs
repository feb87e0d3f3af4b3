//! Copying an embedded (SQLite) store's metadata into PostgreSQL, for `cabinet admin
//! migrate-store`: every row of every table the PostgreSQL schema has, ids and all, so the new
//! deployment serves the same ids and signed URLs.
//!
//! The copy makes the target equal to the source rather than appending to it, so it can run any
//! number of times: each table's rows are upserted by primary key, then rows the source no longer
//! has are deleted (children before parents). A run cut short is finished by running it again,
//! and a first run while the old server still serves can be followed by a short final one after
//! it stops. Then each table is read back on both sides, in primary-key order, and compared by
//! row count and a SHA-256 of every row: a copy that differs in one value is an error.
//!
//! The tables and columns come from the PostgreSQL schema (after its migrations), so a table added
//! by a later migration is copied without a change here. Derived state is not copied but made
//! again: SQLite's search tables (PostgreSQL indexes the names itself) and the per-database
//! migration table. What PostgreSQL's triggers write as rows arrive (live-file counts, event
//! numbers, events) is put back as the source has it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use cabinet_core::{Code, Error, Result};
use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::{QueryBuilder, Row};

use crate::errors::db_error;

/// Tables that are each database's own bookkeeping, never copied.
const NOT_COPIED: &[&str] = &["cabinet_migrations"];

/// How many rows one upsert carries (PostgreSQL takes at most 65,535 parameters a statement).
const ROWS_PER_STATEMENT: usize = 500;

/// What one table's copy did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableCopy {
    pub table: String,
    /// Rows in the source (and, verified, in the target).
    pub rows: u64,
    /// Rows the target did not have, or had with other values.
    pub written: u64,
    /// Rows the target had that the source does not.
    pub deleted: u64,
}

/// A column's kind: the only three the schema uses (see `dialect::Value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
    Bool,
}

#[derive(Debug, Clone)]
struct Table {
    name: String,
    columns: Vec<(String, Kind)>,
    /// Indexes into `columns`.
    key: Vec<usize>,
}

/// One value. Keys are never null; their order (integers by value, text by its UTF-8 bytes) is
/// the order both databases sort them in (SQLite's BINARY collation, PostgreSQL's "C").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bool(bool),
}

fn mismatch(message: String) -> Error {
    Error::bad_request(Code::InvalidDatabaseUrl, message)
}

/// Copies the SQLite database at `source` (which nothing else writes: a snapshot) into the
/// PostgreSQL database at `target_url`, migrating it first, then verifies every table. `progress`
/// hears of each table as it is done.
pub async fn copy_sqlite_to_postgres(
    source: &Path,
    target_url: &str,
    mut progress: impl FnMut(&TableCopy),
) -> Result<Vec<TableCopy>> {
    // Both schemas current: opening a store applies its migrations.
    crate::connect(&format!("sqlite://{}", source.display())).await?;
    crate::connect(target_url).await?;
    let source = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(source).read_only(true))
        .await
        .map_err(db_error)?;
    let target = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(30))
        .connect(target_url)
        .await
        .map_err(db_error)?;

    let tables = target_tables(&target).await?;
    for table in &tables {
        check_source_columns(&source, table).await?;
    }
    refuse_a_foreign_target(&source, &target).await?;

    let mut copies = Vec::with_capacity(tables.len());
    for table in &tables {
        copies.push(TableCopy {
            table: table.name.clone(),
            rows: 0,
            written: upsert_all(&source, &target, table).await?,
            deleted: 0,
        });
    }
    for (table, copy) in tables.iter().zip(copies.iter_mut()).rev() {
        copy.deleted = delete_extras(&source, &target, table).await?;
    }
    // The target's triggers wrote to the workspaces as the rows arrived (live-file counts, event
    // numbers) and recorded events of their own, deleted above: the workspaces again, as they are.
    if let Some(workspaces) = tables.iter().find(|t| t.name == "workspaces") {
        upsert_all(&source, &target, workspaces).await?;
    }
    if let Some(events) = tables.iter().find(|t| t.name == "events") {
        delete_extras(&source, &target, events).await?;
    }
    // Sequences go on after the copied numbers.
    for table in &tables {
        for (column, _) in table.columns.iter().filter(|(_, kind)| *kind == Kind::Int) {
            let sequence: Option<String> = sqlx::query_scalar("SELECT pg_get_serial_sequence($1, $2)")
                .bind(&table.name)
                .bind(column)
                .fetch_one(&target)
                .await
                .map_err(db_error)?;
            if let Some(sequence) = sequence {
                sqlx::query(&format!(
                    "SELECT setval($1, GREATEST((SELECT MAX({column}) FROM {}), 1))",
                    table.name
                ))
                .bind(sequence)
                .execute(&target)
                .await
                .map_err(db_error)?;
            }
        }
    }
    for (table, copy) in tables.iter().zip(copies.iter_mut()) {
        let (source_rows, source_digest) = digest_source(&source, table).await?;
        let (target_rows, target_digest) = digest_target(&target, table).await?;
        if (source_rows, source_digest) != (target_rows, target_digest) {
            return Err(Error::internal(format!(
                "table {} differs after the copy: {source_rows} rows in the source, {target_rows} in the target \
                 (run migrate-store again; if it differs again, something else writes to the target)",
                table.name
            )));
        }
        copy.rows = source_rows;
        progress(copy);
    }
    Ok(copies)
}

/// The tables of the PostgreSQL schema, parents before children, with their columns and keys.
async fn target_tables(target: &PgPool) -> Result<Vec<Table>> {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text FROM information_schema.columns c \
         JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
         ORDER BY c.table_name, c.ordinal_position",
    )
    .fetch_all(target)
    .await
    .map_err(db_error)?;
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT tc.table_name::text, k.column_name::text FROM information_schema.table_constraints tc \
         JOIN information_schema.key_column_usage k ON k.constraint_schema = tc.constraint_schema \
           AND k.constraint_name = tc.constraint_name AND k.table_name = tc.table_name \
         WHERE tc.table_schema = current_schema() AND tc.constraint_type = 'PRIMARY KEY' \
         ORDER BY tc.table_name, k.ordinal_position",
    )
    .fetch_all(target)
    .await
    .map_err(db_error)?;
    let references: Vec<(String, String)> = sqlx::query_as(
        "SELECT tc.table_name::text, u.table_name::text FROM information_schema.table_constraints tc \
         JOIN information_schema.constraint_column_usage u ON u.constraint_schema = tc.constraint_schema \
           AND u.constraint_name = tc.constraint_name \
         WHERE tc.table_schema = current_schema() AND tc.constraint_type = 'FOREIGN KEY'",
    )
    .fetch_all(target)
    .await
    .map_err(db_error)?;

    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for (table, column, data_type) in columns {
        if NOT_COPIED.contains(&table.as_str()) {
            continue;
        }
        let kind = match data_type.as_str() {
            "bigint" | "integer" | "smallint" => Kind::Int,
            "text" | "character varying" => Kind::Text,
            "boolean" => Kind::Bool,
            other => {
                return Err(Error::internal(format!(
                    "column {table}.{column} has type {other}, which the copy does not carry"
                )))
            }
        };
        tables
            .entry(table.clone())
            .or_insert_with(|| Table { name: table, columns: Vec::new(), key: Vec::new() })
            .columns
            .push((column, kind));
    }
    for (table, column) in keys {
        if let Some(t) = tables.get_mut(&table) {
            let at = t.columns.iter().position(|(c, _)| *c == column).expect("a key column is a column");
            t.key.push(at);
        }
    }
    if let Some(t) = tables.values().find(|t| t.key.is_empty()) {
        return Err(Error::internal(format!(
            "table {} has no primary key, so it cannot be copied again safely",
            t.name
        )));
    }

    // Parents first: a table comes after every table it references.
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (child, parent) in references {
        if child != parent && tables.contains_key(&child) {
            parents.entry(child).or_default().insert(parent);
        }
    }
    // A workspace's rows come after it even without a foreign key: the triggers that record
    // events number them on the workspace's row.
    for table in tables
        .values()
        .filter(|t| t.name != "workspaces" && t.columns.iter().any(|(c, _)| c == "workspace_id"))
    {
        parents.entry(table.name.clone()).or_default().insert("workspaces".to_owned());
    }
    let mut ordered: Vec<Table> = Vec::with_capacity(tables.len());
    while !tables.is_empty() {
        let ready: Vec<String> = tables
            .keys()
            .filter(|name| parents.get(*name).is_none_or(|p| p.iter().all(|p| !tables.contains_key(p))))
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err(Error::internal("the tables reference each other in a cycle".to_owned()));
        }
        for name in ready {
            ordered.push(tables.remove(&name).expect("listed"));
        }
    }
    Ok(ordered)
}

/// The source must have every column the target has, and no other: the same schema version.
async fn check_source_columns(source: &SqlitePool, table: &Table) -> Result<()> {
    let present: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
        .bind(&table.name)
        .fetch_all(source)
        .await
        .map_err(db_error)?;
    let wanted: BTreeSet<&str> = table.columns.iter().map(|(c, _)| c.as_str()).collect();
    let there: BTreeSet<&str> = present.iter().map(String::as_str).collect();
    if wanted != there {
        return Err(mismatch(format!(
            "table {} has columns {there:?} in the source and {wanted:?} in the target: both must be the same \
             version of Cabinet's schema",
            table.name
        )));
    }
    Ok(())
}

/// A target that holds a workspace the source does not is somebody's live deployment (or another
/// source's copy): the copy would delete it, so it refuses.
async fn refuse_a_foreign_target(source: &SqlitePool, target: &PgPool) -> Result<()> {
    let ours: BTreeSet<String> = sqlx::query_scalar("SELECT id FROM workspaces")
        .fetch_all(source)
        .await
        .map_err(db_error)?
        .into_iter()
        .collect();
    let theirs: Vec<(String, String)> = sqlx::query_as("SELECT id, name FROM workspaces ORDER BY id")
        .fetch_all(target)
        .await
        .map_err(db_error)?;
    if let Some((id, name)) = theirs.iter().find(|(id, _)| !ours.contains(id)) {
        return Err(mismatch(format!(
            "the target database holds workspace {id} ({name}), which the source does not: migrate-store copies \
             into an empty database (or one it copied this source into before), never over another deployment"
        )));
    }
    Ok(())
}

fn column_list(table: &Table) -> String {
    table.columns.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join(", ")
}

/// `ORDER BY` the key, in the order both databases share (text by bytes).
fn key_order(table: &Table, postgres: bool) -> String {
    table
        .key
        .iter()
        .map(|&i| {
            let (column, kind) = &table.columns[i];
            if postgres && *kind == Kind::Text {
                format!("{column} COLLATE \"C\"")
            } else {
                column.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_sqlite(row: &SqliteRow, table: &Table) -> Result<Vec<Cell>> {
    table.columns.iter().enumerate().map(|(i, (_, kind))| cell(row, i, *kind)).collect()
}

fn read_postgres(row: &PgRow, table: &Table) -> Result<Vec<Cell>> {
    table.columns.iter().enumerate().map(|(i, (_, kind))| cell(row, i, *kind)).collect()
}

fn cell<R: Row>(row: &R, i: usize, kind: Kind) -> Result<Cell>
where
    usize: sqlx::ColumnIndex<R>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<bool>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(match kind {
        Kind::Int => row.try_get::<Option<i64>, _>(i).map_err(db_error)?.map_or(Cell::Null, Cell::Int),
        Kind::Text => row.try_get::<Option<String>, _>(i).map_err(db_error)?.map_or(Cell::Null, Cell::Text),
        Kind::Bool => row.try_get::<Option<bool>, _>(i).map_err(db_error)?.map_or(Cell::Null, Cell::Bool),
    })
}

/// Upserts every source row into the target; returns how many the target did not have as they are.
async fn upsert_all(source: &SqlitePool, target: &PgPool, table: &Table) -> Result<u64> {
    let select =
        format!("SELECT {} FROM {} ORDER BY {}", column_list(table), table.name, key_order(table, false));
    let mut rows = sqlx::query(&select).fetch(source);
    let mut batch: Vec<Vec<Cell>> = Vec::with_capacity(ROWS_PER_STATEMENT);
    let mut written = 0;
    while let Some(row) = rows.try_next().await.map_err(db_error)? {
        batch.push(read_sqlite(&row, table)?);
        if batch.len() == ROWS_PER_STATEMENT {
            written += upsert(target, table, &batch).await?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        written += upsert(target, table, &batch).await?;
    }
    Ok(written)
}

async fn upsert(target: &PgPool, table: &Table, rows: &[Vec<Cell>]) -> Result<u64> {
    let mut qb: QueryBuilder<'_, sqlx::Postgres> =
        QueryBuilder::new(format!("INSERT INTO {} ({}) ", table.name, column_list(table)));
    qb.push_values(rows, |mut values, row| {
        for (cell, (_, kind)) in row.iter().zip(&table.columns) {
            // A NULL is bound with its column's type: PostgreSQL takes a parameter's type as sent.
            match (cell, kind) {
                (Cell::Null, Kind::Int) => values.push_bind(None::<i64>),
                (Cell::Null, Kind::Text) => values.push_bind(None::<String>),
                (Cell::Null, Kind::Bool) => values.push_bind(None::<bool>),
                (Cell::Int(v), _) => values.push_bind(*v),
                (Cell::Text(v), _) => values.push_bind(v.clone()),
                (Cell::Bool(v), _) => values.push_bind(*v),
            };
        }
    });
    let key: Vec<&str> = table.key.iter().map(|&i| table.columns[i].0.as_str()).collect();
    let others: Vec<&str> = (0..table.columns.len())
        .filter(|i| !table.key.contains(i))
        .map(|i| table.columns[i].0.as_str())
        .collect();
    qb.push(format!(" ON CONFLICT ({}) DO ", key.join(", ")));
    if others.is_empty() {
        qb.push("NOTHING");
    } else {
        let set: Vec<String> = others.iter().map(|c| format!("{c} = EXCLUDED.{c}")).collect();
        let mine: Vec<String> = others.iter().map(|c| format!("{}.{c}", table.name)).collect();
        let theirs: Vec<String> = others.iter().map(|c| format!("EXCLUDED.{c}")).collect();
        qb.push(format!(
            "UPDATE SET {} WHERE ({}) IS DISTINCT FROM ({})",
            set.join(", "),
            mine.join(", "),
            theirs.join(", ")
        ));
    }
    let done = qb
        .build()
        .execute(target)
        .await
        .map_err(|err| Error::internal(format!("copying into {}: {err}", table.name)))?;
    Ok(done.rows_affected())
}

/// Deletes the target's rows whose key the source does not have: both sides' keys, in the same
/// order, merged.
async fn delete_extras(source: &SqlitePool, target: &PgPool, table: &Table) -> Result<u64> {
    let key_table = Table {
        name: table.name.clone(),
        columns: table.key.iter().map(|&i| table.columns[i].clone()).collect(),
        key: (0..table.key.len()).collect(),
    };
    let select_keys = |postgres: bool| {
        format!(
            "SELECT {} FROM {} ORDER BY {}",
            column_list(&key_table),
            table.name,
            key_order(&key_table, postgres)
        )
    };
    let source_sql = select_keys(false);
    let target_sql = select_keys(true);
    let mut ours = sqlx::query(&source_sql).fetch(source);
    let mut theirs = sqlx::query(&target_sql).fetch(target);
    let mut extras: Vec<Vec<Cell>> = Vec::new();
    let mut next_ours = match ours.try_next().await.map_err(db_error)? {
        Some(row) => Some(read_sqlite(&row, &key_table)?),
        None => None,
    };
    while let Some(row) = theirs.try_next().await.map_err(db_error)? {
        let their_key = read_postgres(&row, &key_table)?;
        while next_ours.as_ref().is_some_and(|k| *k < their_key) {
            next_ours = match ours.try_next().await.map_err(db_error)? {
                Some(row) => Some(read_sqlite(&row, &key_table)?),
                None => None,
            };
        }
        if next_ours.as_ref() != Some(&their_key) {
            extras.push(their_key);
        }
    }
    drop(theirs);
    let mut deleted = 0;
    let mut tx = target.begin().await.map_err(db_error)?;
    // The audit log refuses deletes but the retention prune's (migration 0021): records the source
    // has pruned since the last run go the same way, through the prune's gate.
    let audit_log = table.name == "audit_log" && !extras.is_empty();
    if audit_log {
        sqlx::query("UPDATE audit_prune_gate SET horizon = $1 WHERE only_row = 1")
            .bind(i64::MAX)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    for key in &extras {
        let mut qb: QueryBuilder<'_, sqlx::Postgres> =
            QueryBuilder::new(format!("DELETE FROM {} WHERE ", table.name));
        for (n, (cell, (column, _))) in key.iter().zip(&key_table.columns).enumerate() {
            if n > 0 {
                qb.push(" AND ");
            }
            qb.push(format!("{column} = "));
            match cell {
                Cell::Int(v) => qb.push_bind(*v),
                Cell::Text(v) => qb.push_bind(v.clone()),
                Cell::Bool(v) => qb.push_bind(*v),
                Cell::Null => unreachable!("a key is never null"),
            };
        }
        deleted += qb.build().execute(&mut *tx).await.map_err(db_error)?.rows_affected();
    }
    if audit_log {
        sqlx::query("UPDATE audit_prune_gate SET horizon = 0 WHERE only_row = 1")
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)?;
    Ok(deleted)
}

fn hash_row(hasher: &mut Sha256, row: &[Cell]) {
    for cell in row {
        match cell {
            Cell::Null => hasher.update([0]),
            Cell::Int(v) => {
                hasher.update([1]);
                hasher.update(v.to_le_bytes());
            }
            Cell::Text(v) => {
                hasher.update([2]);
                hasher.update((v.len() as u64).to_le_bytes());
                hasher.update(v.as_bytes());
            }
            Cell::Bool(v) => hasher.update([3, u8::from(*v)]),
        }
    }
}

async fn digest_source(source: &SqlitePool, table: &Table) -> Result<(u64, [u8; 32])> {
    let select =
        format!("SELECT {} FROM {} ORDER BY {}", column_list(table), table.name, key_order(table, false));
    let mut rows = sqlx::query(&select).fetch(source);
    let (mut count, mut hasher) = (0, Sha256::new());
    while let Some(row) = rows.try_next().await.map_err(db_error)? {
        hash_row(&mut hasher, &read_sqlite(&row, table)?);
        count += 1;
    }
    Ok((count, hasher.finalize().into()))
}

async fn digest_target(target: &PgPool, table: &Table) -> Result<(u64, [u8; 32])> {
    let select =
        format!("SELECT {} FROM {} ORDER BY {}", column_list(table), table.name, key_order(table, true));
    let mut rows = sqlx::query(&select).fetch(target);
    let (mut count, mut hasher) = (0, Sha256::new());
    while let Some(row) = rows.try_next().await.map_err(db_error)? {
        hash_row(&mut hasher, &read_postgres(&row, table)?);
        count += 1;
    }
    Ok((count, hasher.finalize().into()))
}
