//! Maps database errors onto Cabinet's: named constraints become conflicts, connection trouble
//! becomes "unavailable", the rest is internal (and logged with its cause by the caller's layer).

use cabinet_core::Code;
use cabinet_core::Error;

/// Converts a database error, naming what a uniqueness violation was about.
pub(crate) fn db_error(err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            let message = db.message().to_owned();
            if message.contains("workspaces") {
                Error::conflict(Code::WorkspaceExists, "a workspace with that name already exists")
            } else {
                Error::conflict(Code::AlreadyExists, "that already exists")
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
        // The database went away under a session (PostgreSQL shutting down or restarting ends
        // its sessions with 57P01–57P03; class 08 is a broken connection): nothing wrong with
        // the request, and the pool reconnects once the database is back.
        sqlx::Error::Database(db) if db.code().is_some_and(|code| connection_lost(&code)) => {
            Error::Unavailable(Box::new(err))
        }
        _ => Error::internal(err),
    }
}

/// Whether a SQLSTATE says the session to the database was lost, not that the statement failed.
fn connection_lost(sqlstate: &str) -> bool {
    sqlstate.starts_with("08") || matches!(sqlstate, "57P01" | "57P02" | "57P03")
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

#[cfg(test)]
mod tests {
    use super::connection_lost;

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
