//! Maps database errors onto Cabinet's: uniqueness violations become conflicts named by what the
//! caller was writing, connection trouble and a database held by another process become
//! "unavailable", the rest is internal (and logged with its cause by the caller's layer). A
//! database's errors are told apart by their codes, never by their messages.

use cabinet_core::{Code, Error};

/// SQLite's result code for a full disk (`SQLITE_FULL`).
const SQLITE_FULL: &str = "13";
/// SQLite's primary result codes for a database it could not lock in time: another connection
/// held it past the busy timeout (`SQLITE_BUSY`, `SQLITE_LOCKED`), or the WAL index's read locks
/// could not be taken (`SQLITE_PROTOCOL`). An extended code carries its primary one in its low byte.
const SQLITE_NOT_LOCKED_IN_TIME: [i64; 3] = [5, 6, 15];
/// PostgreSQL's SQLSTATE for a full disk (`disk_full`).
const PG_DISK_FULL: &str = "53100";
/// The class of PostgreSQL's SQLSTATEs for a broken connection (`connection_exception`).
const PG_CONNECTION_EXCEPTION_CLASS: &str = "08";
/// PostgreSQL's SQLSTATEs for a session the server ended as it shut down or restarted
/// (`admin_shutdown`, `crash_shutdown`, `cannot_connect_now`).
const PG_SESSION_ENDED: [&str; 3] = ["57P01", "57P02", "57P03"];

/// Converts a database error.
pub(crate) fn db_error(err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            Error::conflict(Code::AlreadyExists, "that already exists")
        }
        // The database's disk is full: the request was fine, and it may work once there is room.
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some(SQLITE_FULL | PG_DISK_FULL)) => {
            Error::Unavailable(Box::new(err))
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            Error::Unavailable(Box::new(err))
        }
        // Held by another connection (another process): the request was fine, and may work later.
        sqlx::Error::Database(db) if sqlite_not_locked_in_time(db.as_ref()) => {
            Error::Unavailable(Box::new(err))
        }
        // The database went away under a session: nothing wrong with the request, and the pool
        // reconnects once the database is back.
        sqlx::Error::Database(db) if db.code().is_some_and(|code| connection_lost(&code)) => {
            Error::Unavailable(Box::new(err))
        }
        _ => Error::internal(err),
    }
}

/// Whether a SQLite error says the database could not be locked in time.
fn sqlite_not_locked_in_time(db: &dyn sqlx::error::DatabaseError) -> bool {
    let code =
        db.try_downcast_ref::<sqlx::sqlite::SqliteError>().and_then(|_| db.code()?.parse::<i64>().ok());
    code.is_some_and(|code| SQLITE_NOT_LOCKED_IN_TIME.contains(&(code & 0xff)))
}

/// Whether a SQLSTATE says the session to the database was lost, not that the statement failed.
fn connection_lost(sqlstate: &str) -> bool {
    sqlstate.starts_with(PG_CONNECTION_EXCEPTION_CLASS) || PG_SESSION_ENDED.contains(&sqlstate)
}

/// Like `db_error`, for the insert of a workspace: a uniqueness violation means the name is taken.
pub(crate) fn workspace_error(err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            Error::conflict(Code::WorkspaceExists, "a workspace with that name already exists")
        }
        _ => db_error(err),
    }
}

/// Like `db_error`, but a uniqueness violation on folders means a sibling has the name.
pub(crate) fn folder_error(err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            Error::conflict(Code::NameTaken, "a folder with that name already exists here")
        }
        _ => db_error(err),
    }
}

/// Like `db_error`, for a write of a file: a uniqueness violation means another live file has its
/// client-chosen id (the only unique key a file has besides its own id).
pub(crate) fn external_id_error(err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::conflict(
            Code::ExternalIdTaken,
            "that id is already used by another file in this workspace",
        ),
        _ => db_error(err),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::Duration;

    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};

    use super::{connection_lost, db_error};

    #[tokio::test]
    async fn a_database_another_connection_holds_is_unavailable_not_an_internal_error() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("held.db").display());
        let mut holder = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)").execute(&mut holder).await.unwrap();
        sqlx::query("BEGIN EXCLUSIVE").execute(&mut holder).await.unwrap();
        let options = SqliteConnectOptions::from_str(&url).unwrap().busy_timeout(Duration::ZERO);
        let mut other = options.connect().await.unwrap();
        let refused = sqlx::query("INSERT INTO t VALUES (1)").execute(&mut other).await.unwrap_err();
        let mapped = db_error(refused);
        assert!(matches!(mapped, cabinet_core::Error::Unavailable(_)), "{mapped:?}");
    }

    #[test]
    fn a_lost_session_is_told_from_a_failed_statement() {
        for lost in ["57P01", "57P02", "57P03", "08006", "08003", "08000"] {
            assert!(connection_lost(lost), "{lost}");
        }
        for failed in ["23505", "40001", "53100", "57014", "42P01"] {
            assert!(!connection_lost(failed), "{failed}");
        }
    }
}
