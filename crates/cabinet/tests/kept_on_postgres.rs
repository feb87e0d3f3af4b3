//! On PostgreSQL metadata each node keeps the API keys it has seen in memory, so a request with a
//! key costs no query of its own for it; a revocation still takes effect on the very next request,
//! whoever revokes (the admin CLI in another process, a statement of its own) and even when the
//! node's listening connection was cut just before. The details of the files it was asked for by
//! id are kept the same way: any change to a file or its references, by any writer, is seen by
//! the next request.

use crate::process;

use std::time::{Duration, Instant};

use process::{admin_json, http_client, ServerProcess};
use reqwest::StatusCode;
use sqlx::PgPool;

/// A fresh database on the test server, or `None` (a notice, or a failure when the test script
/// said the server is there) without it.
async fn fresh_database() -> Option<String> {
    let Ok(admin_url) = std::env::var("CABINET_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("CABINET_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "CABINET_REQUIRE_POSTGRES=1 but CABINET_TEST_DATABASE_URL is not set"
        );
        eprintln!("skipping: no PostgreSQL test server (dev/test starts one)");
        return None;
    };
    let name = format!("kept_on_postgres_{}", ulid::Ulid::new().to_string().to_lowercase());
    let admin = PgPool::connect(&admin_url).await.expect("test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    admin.close().await;
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

/// A server on its own PostgreSQL database, a key it has seen and kept, and a connection of the
/// test's own to that database.
struct Setup {
    dir: tempfile::TempDir,
    database: String,
    server: ServerProcess,
    workspace_id: String,
    key_id: String,
    key: String,
    sql: PgPool,
}

impl Setup {
    async fn start() -> Option<Self> {
        let database = fresh_database().await?;
        let dir = tempfile::tempdir().unwrap();
        let flags = ["--database-url", database.as_str()];
        let server = ServerProcess::start_with(dir.path(), &flags);
        let mut create = vec!["create-workspace", "--name", "acme", "--json"];
        create.extend(flags);
        let workspace = admin_json(dir.path(), &create);
        let workspace_id = workspace["id"].as_str().unwrap();
        let mut create_key = vec!["create-key", "--workspace", workspace_id, "--role", "read", "--json"];
        create_key.extend(flags);
        let key = admin_json(dir.path(), &create_key);
        let sql = PgPool::connect(&database).await.unwrap();
        let setup = Setup {
            workspace_id: workspace_id.to_owned(),
            key_id: key["id"].as_str().unwrap().to_owned(),
            key: key["key"].as_str().unwrap().to_owned(),
            dir,
            database,
            server,
            sql,
        };
        // The first request starts the server's listener; a key is kept only once it listens.
        assert_eq!(setup.quota_status().await, StatusCode::OK);
        let started = Instant::now();
        while setup.listener_pid().await.is_none() {
            assert!(started.elapsed() < Duration::from_secs(30), "the server never listened for key changes");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // It is named before it listens; the server keeps keys once its LISTEN is answered.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(setup.quota_status().await, StatusCode::OK, "the key works, and is now kept");
        Some(setup)
    }

    /// A key of the workspace that may write.
    fn writer(&self) -> String {
        let create = [
            "create-key",
            "--workspace",
            &self.workspace_id,
            "--role",
            "write",
            "--json",
            "--database-url",
            &self.database,
        ];
        admin_json(self.dir.path(), &create)["key"].as_str().unwrap().to_owned()
    }

    async fn quota_status(&self) -> StatusCode {
        let response = http_client().get(self.server.at("/v1/quota")).bearer_auth(&self.key).send().await;
        response.expect("GET /v1/quota").status()
    }

    /// The backend of the server's connection listening for key changes.
    async fn listener_pid(&self) -> Option<i32> {
        sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'cabinet cache listener'",
        )
        .fetch_optional(&self.sql)
        .await
        .unwrap()
    }
}

#[tokio::test]
async fn a_key_revoked_by_the_admin_cli_is_refused_on_the_next_request_by_a_server_that_kept_it() {
    let Some(setup) = Setup::start().await else { return };
    let revoke = ["revoke-key", &setup.key_id, "--json", "--database-url", &setup.database];
    let revoked = admin_json(setup.dir.path(), &revoke);
    assert_eq!(revoked["revoked"], true, "{revoked}");
    assert_eq!(setup.quota_status().await, StatusCode::UNAUTHORIZED, "the revoked key is refused at once");
}

#[tokio::test]
async fn a_key_revoked_while_the_servers_listener_was_cut_off_is_refused_on_the_next_request() {
    let Some(setup) = Setup::start().await else { return };
    let listener = setup.listener_pid().await.expect("the server listens");
    // The listener's backend is ended (and gone, waited for up to 5 s) and the key revoked by a
    // statement of another process before the server can notice: no notification reaches it.
    let mut tx = setup.sql.begin().await.unwrap();
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(listener)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(ended, "the listener's backend ended");
    sqlx::query("UPDATE api_keys SET revoked_at = 1 WHERE id = $1")
        .bind(&setup.key_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(setup.quota_status().await, StatusCode::UNAUTHORIZED, "the revoked key is refused at once");
}

#[tokio::test]
async fn a_kept_key_is_not_read_from_postgresql_again() {
    let Some(setup) = Setup::start().await else { return };
    // Anything reading the keys now waits for this transaction to end.
    let mut lock = setup.sql.begin().await.unwrap();
    sqlx::query("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE").execute(&mut *lock).await.unwrap();
    for _ in 0..10 {
        let response = http_client()
            .get(setup.server.at("/v1/quota"))
            .bearer_auth(&setup.key)
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        let status = response.as_ref().map(reqwest::Response::status);
        assert!(
            matches!(status, Ok(StatusCode::OK)),
            "a request with a kept key waited on the keys' table: {response:?}"
        );
    }
    lock.rollback().await.unwrap();
}

#[tokio::test]
async fn a_file_changed_by_a_statement_of_another_process_is_seen_on_the_next_request() {
    let Some(setup) = Setup::start().await else { return };
    let writer = setup.writer();
    let id = setup.server.upload_small_file(&writer, "first.txt").await;
    for _ in 0..2 {
        let (status, file) = setup.server.file_details(&setup.key, &id).await;
        assert_eq!((status, file["name"].as_str()), (StatusCode::OK, Some("first.txt")), "{file}");
    }
    let statement = |sql: &'static str| {
        let (pool, id) = (setup.sql.clone(), id.clone());
        async move { sqlx::query(sql).bind(id).execute(&pool).await.unwrap() }
    };

    process::changes_to_a_file_are_seen_at_once(
        async |sql| {
            statement(sql).await;
        },
        async || setup.server.file_details(&setup.key, &id).await.1,
    )
    .await;

    // One statement over more files than are each named in a notice: the workspace's are forgotten.
    for n in 0..70 {
        setup.server.upload_small_file(&writer, &format!("more {n}.txt")).await;
    }
    let (_, file) = setup.server.file_details(&setup.key, &id).await;
    assert_eq!(file["caption"], serde_json::Value::Null);
    let changed = sqlx::query("UPDATE files SET caption = 'all of them' WHERE workspace_id = $1")
        .bind(&setup.workspace_id)
        .execute(&setup.sql)
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 71);
    let (_, file) = setup.server.file_details(&setup.key, &id).await;
    assert_eq!(file["caption"], "all of them", "{file}");

    // Gone.
    statement("DELETE FROM files WHERE id = $1").await;
    let (status, file) = setup.server.file_details(&setup.key, &id).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{file}");
}

#[tokio::test]
async fn a_kept_file_is_not_read_from_postgresql_again() {
    let Some(setup) = Setup::start().await else { return };
    let id = setup.server.upload_small_file(&setup.writer(), "kept.txt").await;
    assert_eq!(setup.server.file_details(&setup.key, &id).await.0, StatusCode::OK);
    // Anything reading the files now waits for this transaction to end.
    let mut lock = setup.sql.begin().await.unwrap();
    sqlx::query("LOCK TABLE files IN ACCESS EXCLUSIVE MODE").execute(&mut *lock).await.unwrap();
    for _ in 0..10 {
        let (status, file) = setup.server.file_details(&setup.key, &id).await;
        assert_eq!((status, file["name"].as_str()), (StatusCode::OK, Some("kept.txt")), "{file}");
    }
    lock.rollback().await.unwrap();
}
