//! On SQLite metadata (the default) the server keeps the API keys and file details it has read for
//! as long as SQLite's WAL index says nothing has committed since, so a request whose key and file
//! are kept reads nothing from the database. A revocation or any other change still takes effect
//! on the very next request, whoever commits it: the admin CLI in another process, or a statement
//! of a connection of its own.

use crate::process;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use process::{admin_json, http_client, ServerProcess, Tenant};
use reqwest::StatusCode;
use sqlx::{Connection, SqliteConnection};

/// A server on the default SQLite database, a key of the workspace that may write, and one that
/// may only read, both used once (and so kept).
struct Setup {
    dir: tempfile::TempDir,
    server: ServerProcess,
    writer: String,
    reader: Tenant,
}

impl Setup {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = ServerProcess::start(dir.path());
        let writer = server.bootstrap_key.clone().expect("a bootstrap key on first start");
        let workspace = server.bootstrap_workspace.clone().expect("a bootstrap workspace");
        let key =
            admin_json(dir.path(), &["create-key", "--workspace", &workspace, "--role", "read", "--json"]);
        let reader = Tenant {
            workspace_id: workspace,
            key_id: key["id"].as_str().unwrap().to_owned(),
            key: key["key"].as_str().unwrap().to_owned(),
        };
        let setup = Setup { dir, server, writer, reader };
        assert_eq!(setup.quota_status().await, StatusCode::OK, "the key works, and is now kept");
        setup
    }

    /// A connection of the test's own to the server's database.
    async fn sql(&self) -> SqliteConnection {
        let url = format!("sqlite://{}", self.dir.path().join("cabinet.db").display());
        SqliteConnection::connect(&url).await.expect("the server's database")
    }

    async fn quota_status(&self) -> StatusCode {
        let response =
            http_client().get(self.server.at("/v1/quota")).bearer_auth(&self.reader.key).send().await;
        response.expect("GET /v1/quota").status()
    }
}

#[tokio::test]
async fn a_key_revoked_by_the_admin_cli_is_refused_on_the_next_request_by_a_server_that_kept_it() {
    let setup = Setup::start().await;
    assert_eq!(setup.quota_status().await, StatusCode::OK);
    let revoked = admin_json(setup.dir.path(), &["revoke-key", &setup.reader.key_id, "--json"]);
    assert_eq!(revoked["revoked"], true, "{revoked}");
    assert_eq!(setup.quota_status().await, StatusCode::UNAUTHORIZED, "the revoked key is refused at once");
}

#[tokio::test]
async fn a_key_revoked_by_a_statement_of_another_process_is_refused_on_the_next_request() {
    let setup = Setup::start().await;
    let mut sql = setup.sql().await;
    sqlx::query("UPDATE api_keys SET revoked_at = 1 WHERE id = $1")
        .bind(&setup.reader.key_id)
        .execute(&mut sql)
        .await
        .unwrap();
    assert_eq!(setup.quota_status().await, StatusCode::UNAUTHORIZED, "the revoked key is refused at once");
}

#[tokio::test]
async fn a_file_changed_by_a_statement_of_another_process_is_seen_on_the_next_request() {
    let setup = Setup::start().await;
    let id = setup.server.upload_small_file(&setup.writer, "first.txt").await;
    for _ in 0..2 {
        let (status, file) = setup.server.file_details(&setup.reader.key, &id).await;
        assert_eq!((status, file["name"].as_str()), (StatusCode::OK, Some("first.txt")), "{file}");
    }
    let mut sql = setup.sql().await;
    process::changes_to_a_file_are_seen_at_once(
        async |text| {
            sqlx::query(text).bind(&id).execute(&mut sql).await.unwrap();
        },
        async || setup.server.file_details(&setup.reader.key, &id).await.1,
    )
    .await;
    // Gone.
    sqlx::query("DELETE FROM files WHERE id = $1").bind(&id).execute(&mut sql).await.unwrap();
    let (status, file) = setup.server.file_details(&setup.reader.key, &id).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{file}");
}

/// Holds every read lock of a SQLite database's WAL index (the `fcntl` locks a read transaction
/// must take one of), from a process of its own, until dropped: no connection can begin a read.
struct ReadersLockedOut(std::process::Child);

impl ReadersLockedOut {
    fn of(database: &std::path::Path) -> Self {
        // The index's locks are bytes 120 on of the `-shm` file; the readers' five follow the
        // writer's, the checkpointer's and recovery's (https://www.sqlite.org/walformat.html).
        const HOLD: &str = r#"
import fcntl, sys, time
index = open(sys.argv[1], "r+b")
deadline = time.monotonic() + 30
while True:
    try:
        fcntl.lockf(index, fcntl.LOCK_EX | fcntl.LOCK_NB, 5, 123)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.01)
print("locked", flush=True)
sys.stdin.read()
"#;
        let mut shm = database.as_os_str().to_owned();
        shm.push("-shm");
        let mut holder = Command::new("python3")
            .args(["-c", HOLD])
            .arg(shm)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3, which holds the locks");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "locked", "the read locks were not taken");
        Self(holder)
    }
}

impl Drop for ReadersLockedOut {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.0.stdin.take() {
            let _ = stdin.write_all(b"done");
        }
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_kept_key_and_file_are_answered_without_reading_the_database() {
    let setup = Setup::start().await;
    let id = setup.server.upload_small_file(&setup.writer, "kept.txt").await;
    assert_eq!(setup.server.file_details(&setup.reader.key, &id).await.0, StatusCode::OK);
    let locked = ReadersLockedOut::of(&setup.dir.path().join("cabinet.db"));
    for _ in 0..10 {
        let (status, file) = setup.server.file_details(&setup.reader.key, &id).await;
        assert_eq!((status, file["name"].as_str()), (StatusCode::OK, Some("kept.txt")), "{file}");
    }
    drop(locked);
    // The database answers again once the locks are let go.
    assert_eq!(setup.quota_status().await, StatusCode::OK);
}
