//! Maps database errors onto Cabinet's: named constraints become conflicts, connection trouble
//! becomes "unavailable", the rest is internal (and logged with its cause by the caller's layer).

use cabinet_core::Error;

/// Converts a database error, naming what a uniqueness violation was about.
pub(crate) fn db_error(err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            let message = db.message().to_owned();
            if message.contains("workspaces") {
                Error::conflict("workspace_exists", "a workspace with that name already exists")
            } else {
                Error::conflict("already_exists", "that already exists")
            }
        }
        // The database's disk is full (SQLite SQLITE_FULL, PostgreSQL disk_full): the request was
        // fine, and it may work once there is room.
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("13" | "53100")) => {
            Error::Unavailable(Box::new(err))
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            Error::Unavailable(Box::new(err))
        }
        _ => Error::internal(err),
    }
}

/// Like `db_error`, but a uniqueness violation on folders means a sibling has the name.
pub(crate) fn folder_error(err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            Error::conflict("name_taken", "a folder with that name already exists here")
        }
        _ => db_error(err),
    }
}
