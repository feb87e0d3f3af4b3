//! The admin CLI, through the real binary: what it prints, what it refuses, and that what it does
//! to the data folder takes effect on a server running on that folder at the same time.

use crate::process;

use process::{admin, admin_json, api_key_in, http_client, ServerProcess, Tenant};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn get_quota(server: &ServerProcess, key: &str) -> (StatusCode, Value) {
    let response =
        http_client().get(server.at("/v1/quota")).bearer_auth(key).send().await.expect("GET /v1/quota");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn created_workspace_and_key_are_printed_as_json_and_the_key_works_on_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());

    let workspace = admin_json(
        dir.path(),
        &[
            "create-workspace",
            "--name",
            "acme",
            "--quota-bytes",
            "10000000",
            "--max-file-bytes",
            "250000",
            "--json",
        ],
    );
    let workspace_id = workspace["id"].as_str().expect("an id").to_owned();
    assert!(workspace_id.starts_with("ws_"), "{workspace}");
    assert_eq!(workspace["name"], "acme");
    assert_eq!(workspace["limit_bytes"], 10_000_000);
    assert_eq!(workspace["max_file_bytes"], 250_000);
    assert_eq!(workspace["used_bytes"], 0);
    assert_eq!(workspace["reserved_bytes"], 0);
    assert!(workspace["created_at"].is_string(), "{workspace}");

    let key = admin_json(
        dir.path(),
        &["create-key", "--workspace", &workspace_id, "--role", "write", "--name", "ci", "--json"],
    );
    let secret = key["key"].as_str().expect("the secret").to_owned();
    assert!(key["id"].as_str().is_some_and(|id| id.starts_with("key_")), "{key}");
    assert!(secret.starts_with("cab_"), "{key}");
    assert_eq!(key["role"], "write");
    assert_eq!(key["name"], "ci");
    assert_eq!(key["workspaces"], json!([workspace_id]));
    assert_eq!(key["hint"].as_str(), Some(&secret[secret.len() - 4..]), "the hint is the secret's tail");
    assert_eq!(key["revoked_at"], Value::Null);

    let (status, quota) = get_quota(&server, &secret).await;
    assert_eq!(status, StatusCode::OK, "{quota}");
    assert_eq!(quota["limit_bytes"], 10_000_000);
    assert_eq!(quota["max_file_size_bytes"], 250_000);
    assert_eq!(quota["used_bytes"], 0);
    assert_eq!(quota["available_bytes"], 10_000_000);

    let listed = admin_json(dir.path(), &["list-workspaces", "--json"]);
    let acme = listed
        .as_array()
        .expect("an array")
        .iter()
        .find(|ws| ws["id"] == workspace_id.as_str())
        .unwrap_or_else(|| panic!("list-workspaces shows the new workspace: {listed}"));
    assert_eq!(acme["limit_bytes"], 10_000_000);
    assert_eq!(acme["used_bytes"], 0);
    assert_eq!(acme["reserved_bytes"], 0);
}

#[test]
fn listed_keys_show_their_hint_but_never_their_secret() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::create(dir.path(), "acme", None, "admin");

    let as_json = admin(dir.path(), &["list-keys", "--workspace", &tenant.workspace_id, "--json"]);
    assert!(as_json.status.success(), "{}", as_json.stderr);
    assert!(!as_json.stdout.contains(&tenant.key), "list-keys --json printed a secret:\n{}", as_json.stdout);
    let keys: Value = serde_json::from_str(as_json.stdout.trim()).expect("JSON");
    let keys = keys.as_array().expect("an array");
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0]["id"], tenant.key_id.as_str());
    assert_eq!(keys[0]["hint"].as_str(), Some(&tenant.key[tenant.key.len() - 4..]));
    assert_eq!(keys[0]["role"], "admin");
    assert_eq!(keys[0]["revoked_at"], Value::Null);
    assert!(keys[0].get("key").is_none(), "no field holds the secret: {}", keys[0]);

    let as_text = admin(dir.path(), &["list-keys", "--workspace", &tenant.workspace_id]);
    assert!(as_text.status.success(), "{}", as_text.stderr);
    assert!(!as_text.stdout.contains(&tenant.key), "list-keys printed a secret:\n{}", as_text.stdout);
    assert!(as_text.stdout.contains(&tenant.key_id), "{}", as_text.stdout);
}

#[tokio::test]
async fn a_revoked_key_is_refused_by_the_server_that_is_already_running() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::create(dir.path(), "acme", None, "write");
    let server = ServerProcess::start(dir.path());
    let (status, _) = get_quota(&server, &tenant.key).await;
    assert_eq!(status, StatusCode::OK, "the key works before it is revoked");

    let revoked = admin_json(dir.path(), &["revoke-key", &tenant.key_id, "--json"]);
    assert_eq!(revoked, json!({"id": tenant.key_id, "revoked": true}));

    let (status, body) = get_quota(&server, &tenant.key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated", "{body}");
    let keys = admin_json(dir.path(), &["list-keys", "--workspace", &tenant.workspace_id, "--json"]);
    assert!(keys[0]["revoked_at"].is_string(), "list-keys shows when it was revoked: {keys}");
}

#[tokio::test]
async fn a_read_key_may_look_but_not_start_an_upload() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::create(dir.path(), "acme", None, "read");
    let server = ServerProcess::start(dir.path());

    let (status, _) = get_quota(&server, &tenant.key).await;
    assert_eq!(status, StatusCode::OK);
    let response = http_client()
        .post(server.at("/v1/uploads"))
        .bearer_auth(&tenant.key)
        .json(&json!({"name": "notes.txt", "size": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden", "{body}");
}

#[test]
fn an_unknown_role_is_refused_with_a_message_naming_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::create(dir.path(), "acme", None, "admin");

    let run =
        admin(dir.path(), &["create-key", "--workspace", &tenant.workspace_id, "--role", "owner", "--json"]);
    assert!(!run.status.success(), "exit status {}", run.status);
    assert!(run.stderr.contains("role must be one of read, write, admin"), "stderr:\n{}", run.stderr);
    assert!(run.stdout.trim().is_empty(), "nothing is printed as if it worked:\n{}", run.stdout);
    let keys = admin_json(dir.path(), &["list-keys", "--workspace", &tenant.workspace_id, "--json"]);
    assert_eq!(keys.as_array().map(Vec::len), Some(1), "no key was created: {keys}");
}

#[test]
fn a_key_for_an_unknown_workspace_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    Tenant::create(dir.path(), "acme", None, "admin");
    let nobody = format!("ws_{}", ulid::Ulid::new().to_string().to_ascii_lowercase());

    let run = admin(dir.path(), &["create-key", "--workspace", &nobody, "--json"]);
    assert!(!run.status.success(), "exit status {}", run.status);
    assert!(run.stderr.contains("workspace not found"), "stderr:\n{}", run.stderr);
    assert!(run.stdout.trim().is_empty(), "nothing is printed as if it worked:\n{}", run.stdout);

    let malformed = admin(dir.path(), &["create-key", "--workspace", "acme", "--json"]);
    assert!(!malformed.status.success(), "exit status {}", malformed.status);
    assert!(malformed.stderr.contains("workspace not found"), "stderr:\n{}", malformed.stderr);
}

#[tokio::test]
async fn the_first_start_prints_a_working_bootstrap_key_and_a_restart_prints_none() {
    let dir = tempfile::tempdir().unwrap();

    let first = ServerProcess::start(dir.path());
    let key = first.bootstrap_key.clone().unwrap_or_else(|| {
        panic!("the first start makes a bootstrap key; stdout was:\n{}", first.stdout_lines().join("\n"))
    });
    let printed = first.stdout_lines().join("\n");
    assert_eq!(
        api_key_in(&printed),
        Some(key.clone()),
        "the first start prints its key; stdout was:\n{printed}"
    );
    let (status, body) = get_quota(&first, &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let upload = http_client()
        .post(first.at("/v1/uploads"))
        .bearer_auth(&key)
        .json(&json!({"name": "hello.txt", "size": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), StatusCode::CREATED, "the bootstrap key is an admin key");
    first.kill();

    let second = ServerProcess::start(dir.path());
    let printed = second.stdout_lines().join("\n");
    assert_eq!(second.bootstrap_key, None, "a restart prints no new key; stdout was:\n{printed}");
    assert!(!printed.contains("cab_"), "stdout was:\n{printed}");
    let (status, body) = get_quota(&second, &key).await;
    assert_eq!(status, StatusCode::OK, "the bootstrap key still works after a restart: {body}");
}

#[tokio::test]
async fn the_ready_file_names_the_address_and_only_the_first_start_names_a_workspace_and_key() {
    let dir = tempfile::tempdir().unwrap();

    let first = ServerProcess::start(dir.path());
    let key = first.bootstrap_key.clone().expect("the first start's ready file holds its key");
    let workspaces = admin_json(dir.path(), &["list-workspaces", "--json"]);
    assert_eq!(
        first.bootstrap_workspace.as_deref(),
        workspaces[0]["id"].as_str(),
        "the ready file names the workspace the first start made: {workspaces}"
    );
    let (status, body) = get_quota(&first, &key).await;
    assert_eq!(status, StatusCode::OK, "the ready file's url and key work: {body}");
    first.kill();

    let second = ServerProcess::start(dir.path());
    assert_eq!(second.bootstrap_key, None, "a restart's ready file holds no key");
    assert_eq!(second.bootstrap_workspace, None, "a restart's ready file names no workspace");
    let (status, body) = get_quota(&second, &key).await;
    assert_eq!(status, StatusCode::OK, "the ready file's url is the restarted server's: {body}");
}

#[test]
fn the_ready_file_is_readable_by_its_owner_only_and_a_stale_one_is_replaced() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let ready_path = dir.path().join("ready.json");
    std::fs::write(&ready_path, "left by an earlier run").unwrap();
    let mut child = cabinet_harness::cabinet_command(process::cabinet_binary())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["serve", "--listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawning cabinet serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let ready: Value = loop {
        let text = std::fs::read_to_string(&ready_path).unwrap_or_default();
        if let Ok(ready) = serde_json::from_str(&text) {
            break ready;
        }
        assert!(child.try_wait().unwrap().is_none(), "cabinet serve exited before it was ready");
        assert!(std::time::Instant::now() < deadline, "no ready file within a minute; it holds {text:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mode = std::fs::metadata(&ready_path).unwrap().permissions().mode();
    child.kill().unwrap();
    child.wait().unwrap();

    assert_eq!(mode & 0o777, 0o600, "the ready file may hold a key");
    assert!(ready["url"].as_str().is_some_and(|url| url.starts_with("http://127.0.0.1:")), "{ready}");
    assert_eq!(ready["public_url"], ready["url"], "no --public-url: clients use the address itself");
    assert!(ready["key"].as_str().is_some_and(|key| key.starts_with("cab_")), "{ready}");
    assert!(ready["workspace"].as_str().is_some_and(|id| id.starts_with("ws_")), "{ready}");
    let leftovers: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no temporary file is left beside it: {leftovers:?}");
}

/// Uploads a small file with the key through the API and returns its id.
async fn small_file(server: &ServerProcess, key: &str) -> String {
    let response = http_client()
        .post(server.at("/v1/files"))
        .bearer_auth(key)
        .json(&json!({"name": "kept.txt", "content_base64": "a2VwdA=="}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

async fn link(server: &ServerProcess, key: &str, file: &str, query: &str) -> String {
    let url = server.at(&format!("/v1/files/{file}/download-url{query}"));
    let body: Value = http_client().get(url).bearer_auth(key).send().await.unwrap().json().await.unwrap();
    body["url"].as_str().unwrap().to_owned()
}

async fn status_of(url: &str) -> StatusCode {
    http_client().get(url).send().await.unwrap().status()
}

/// Polls until `check` holds, for at most 10 s.
async fn within_seconds(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "{what} did not happen within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn revoking_links_and_rotating_signing_keys_take_effect_on_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::create(dir.path(), "acme", None, "write");
    let server = ServerProcess::start_with(dir.path(), &["--signing-key-refresh", "1"]);
    let file = small_file(&server, &tenant.key).await;

    // revoke-links ends the workspace's permalinks at once.
    let permalink = link(&server, &tenant.key, &file, "?lasting=true").await;
    assert_eq!(status_of(&permalink).await, StatusCode::OK);
    let revoked = admin_json(dir.path(), &["revoke-links", "--workspace", &tenant.workspace_id, "--json"]);
    assert_eq!(revoked, json!({"workspace_id": tenant.workspace_id, "link_generation": 1}));
    assert_eq!(status_of(&permalink).await, StatusCode::NOT_FOUND);
    let unknown = admin(dir.path(), &["revoke-links", "--workspace", "ws_00000000000000000000000000"]);
    assert!(!unknown.status.success(), "an unknown workspace is refused");

    // Before any rotation, key 0 (the deployment secret) signs and URLs do not name it.
    let keys = admin_json(dir.path(), &["list-signing-keys", "--json"]);
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");
    assert_eq!((keys["keys"][0]["id"].clone(), keys["keys"][0]["signing"].clone()), (json!(0), json!(true)));
    let old_permalink = link(&server, &tenant.key, &file, "?lasting=true").await;
    let old_expiring = link(&server, &tenant.key, &file, "").await;
    assert!(!old_permalink.contains("key="), "{old_permalink}");

    // Rotation: the server signs with key 1 within its refresh, and still accepts key 0's URLs.
    let rotated = admin_json(dir.path(), &["rotate-signing-key", "--json"]);
    assert_eq!(rotated, json!({"key_id": 1, "retired": 0}));
    within_seconds("signing with key 1", async || {
        link(&server, &tenant.key, &file, "?lasting=true").await.contains("&key=1&")
    })
    .await;
    let new_permalink = link(&server, &tenant.key, &file, "?lasting=true").await;
    for url in [&old_permalink, &old_expiring, &new_permalink] {
        assert_eq!(status_of(url).await, StatusCode::OK, "{url}");
    }

    // Retiring the older keys ends what they signed, and only that.
    assert_eq!(admin_json(dir.path(), &["retire-signing-keys", "--json"]), json!({"retired": 1}));
    within_seconds("refusing key 0", async || status_of(&old_permalink).await == StatusCode::FORBIDDEN).await;
    assert_eq!(status_of(&old_expiring).await, StatusCode::FORBIDDEN);
    assert_eq!(status_of(&new_permalink).await, StatusCode::OK);
    let keys = admin_json(dir.path(), &["list-signing-keys", "--json"]);
    let states: Vec<(Value, bool, Value)> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| (key["id"].clone(), key["retired_at"].is_string(), key["signing"].clone()))
        .collect();
    assert_eq!(states, [(json!(0), true, json!(false)), (json!(1), false, json!(true))]);
    let human = admin(dir.path(), &["rotate-signing-key", "--retire"]);
    assert!(human.status.success(), "{}", human.stderr);
    assert!(
        human.stdout.contains("signing key 2 signs from now on; 1 older key(s) retired"),
        "{}",
        human.stdout
    );
}

/// `Access-Control-Allow-Origin` of a GET of `url` sent from `origin`.
async fn allowed_origin(url: &str, origin: &str) -> Option<String> {
    let response = http_client().get(url).header("origin", origin).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    response.headers().get("access-control-allow-origin").map(|value| value.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn set_cors_gives_a_workspace_its_own_origins_on_the_running_server_and_inherit_drops_them() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::create(dir.path(), "acme", None, "write");
    let server = ServerProcess::start_with(dir.path(), &["--cors-origins", "https://app.example.com"]);
    let file = small_file(&server, &tenant.key).await;
    let url = link(&server, &tenant.key, &file, "").await;
    assert_eq!(
        allowed_origin(&url, "https://app.example.com").await.as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(allowed_origin(&url, "https://shop.example.com").await, None);

    let set = admin_json(
        dir.path(),
        &[
            "set-cors",
            "--workspace",
            &tenant.workspace_id,
            "--origins",
            "HTTPS://Shop.example.com:443",
            "--json",
        ],
    );
    assert_eq!(set, json!({"workspace_id": tenant.workspace_id, "cors_origins": "https://shop.example.com"}));
    // Read on each request: no restart, no wait.
    assert_eq!(
        allowed_origin(&url, "https://shop.example.com").await.as_deref(),
        Some("https://shop.example.com")
    );
    assert_eq!(
        allowed_origin(&url, "https://app.example.com").await,
        None,
        "the workspace's list replaces the server's"
    );

    let human = admin(dir.path(), &["set-cors", "--workspace", &tenant.workspace_id, "--inherit"]);
    assert!(human.status.success(), "{}", human.stderr);
    assert!(human.stdout.contains("goes by the server's --cors-origins again"), "{}", human.stdout);
    assert_eq!(
        allowed_origin(&url, "https://app.example.com").await.as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(allowed_origin(&url, "https://shop.example.com").await, None);

    let bad = admin(
        dir.path(),
        &["set-cors", "--workspace", &tenant.workspace_id, "--origins", "shop.example.com/x"],
    );
    assert!(
        !bad.status.success() && bad.stderr.contains("--origins") && bad.stderr.contains("not an origin"),
        "{}",
        bad.stderr
    );
    let neither = admin(dir.path(), &["set-cors", "--workspace", &tenant.workspace_id]);
    assert!(!neither.status.success(), "--origins or --inherit is needed");
    let both =
        admin(dir.path(), &["set-cors", "--workspace", &tenant.workspace_id, "--origins", "*", "--inherit"]);
    assert!(!both.status.success(), "--origins and --inherit exclude each other");
    let unknown =
        admin(dir.path(), &["set-cors", "--workspace", "ws_00000000000000000000000000", "--origins", "*"]);
    assert!(
        !unknown.status.success() && unknown.stderr.contains("workspace not found"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test]
async fn admin_commands_are_audited_and_admin_audit_reads_the_log_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::create(dir.path(), "acme", None, "admin");
    let server = ServerProcess::start(dir.path());
    // A change through the API, and a refusal.
    let response = http_client()
        .post(server.at("/v1/folders"))
        .bearer_auth(&tenant.key)
        .json(&json!({"name": "Docs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let reader = admin_json(
        dir.path(),
        &["create-key", "--workspace", &tenant.workspace_id, "--role", "read", "--json"],
    );
    let response = http_client()
        .post(server.at("/v1/folders"))
        .bearer_auth(reader["key"].as_str().unwrap())
        .json(&json!({"name": "Nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    admin_json(dir.path(), &["revoke-key", reader["id"].as_str().unwrap(), "--json"]);

    let log = admin_json(dir.path(), &["audit", "--workspace", &tenant.workspace_id, "--json"]);
    let actions: Vec<(&str, &str, u64)> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["actor"]["kind"].as_str().unwrap(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    // Newest first; the workspace and the first key were made by the admin CLI too.
    assert_eq!(
        actions,
        [
            ("admin revoke-key", "admin_cli", 200),
            ("POST /v1/folders", "key", 403),
            ("admin create-key", "admin_cli", 200),
            ("POST /v1/folders", "key", 201),
            ("admin create-key", "admin_cli", 200),
            ("admin create-workspace", "admin_cli", 200),
        ],
        "{log}"
    );
    assert_eq!(log["data"][0]["object_id"], reader["id"], "{log}");
    assert_eq!(log["data"][1]["error_code"], "forbidden", "{log}");
    assert_eq!(log["data"][1]["actor"]["id"], reader["id"], "{log}");

    // Filters and the cursor, as on GET /v1/audit.
    let cli = admin_json(
        dir.path(),
        &["audit", "--workspace", &tenant.workspace_id, "--actor", "admin_cli", "--json"],
    );
    assert_eq!(cli["data"].as_array().unwrap().len(), 4, "{cli}");
    let refused =
        admin_json(dir.path(), &["audit", "--workspace", &tenant.workspace_id, "--status", "4xx", "--json"]);
    assert_eq!(refused["data"].as_array().unwrap().len(), 1, "{refused}");
    let first =
        admin_json(dir.path(), &["audit", "--workspace", &tenant.workspace_id, "--limit", "4", "--json"]);
    let cursor = first["next_cursor"].as_str().expect("a next page").to_owned();
    let rest = admin_json(
        dir.path(),
        &["audit", "--workspace", &tenant.workspace_id, "--limit", "4", "--cursor", &cursor, "--json"],
    );
    assert_eq!(rest["data"].as_array().unwrap().len(), 2, "{rest}");
    assert_eq!(rest["next_cursor"], Value::Null);
    // The text form: one line a record.
    let text =
        admin(dir.path(), &["audit", "--workspace", &tenant.workspace_id, "--action", "POST /v1/folders"]);
    assert!(text.status.success(), "{}", text.stderr);
    assert_eq!(text.stdout.lines().count(), 2, "{}", text.stdout);
    assert!(text.stdout.contains(" 403 forbidden "), "{}", text.stdout);
    let bad = admin(dir.path(), &["audit", "--workspace", &tenant.workspace_id, "--status", "404"]);
    assert!(!bad.status.success() && bad.stderr.contains("2xx"), "{}", bad.stderr);
}

/// The files under a folder, at any depth (none when it is not there).
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                files_under(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

#[tokio::test]
async fn delete_workspace_refuses_one_holding_files_and_takes_its_trash_and_keys_once_they_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Tenant::create(dir.path(), "acme", None, "write");
    let server = ServerProcess::start(dir.path());
    let file = small_file(&server, &tenant.key).await;
    let blobs = dir.path().join("blobs").join("objects").join(&tenant.workspace_id);
    assert_eq!(files_under(&blobs).len(), 1, "the file's blob is under {}", blobs.display());

    let refused = admin(dir.path(), &["delete-workspace", &tenant.workspace_id, "--json"]);
    assert!(!refused.status.success(), "exit status {}", refused.status);
    assert!(refused.stderr.contains("holds files or folders"), "stderr:\n{}", refused.stderr);
    assert!(refused.stdout.trim().is_empty(), "nothing is printed as if it worked:\n{}", refused.stdout);
    let (status, _) = get_quota(&server, &tenant.key).await;
    assert_eq!(status, StatusCode::OK, "a refusal changes nothing");

    let trashed = http_client()
        .delete(server.at(&format!("/v1/files/{file}")))
        .bearer_auth(&tenant.key)
        .send()
        .await
        .unwrap();
    assert!(trashed.status().is_success(), "{}", trashed.status());
    let deleted = admin_json(dir.path(), &["delete-workspace", &tenant.workspace_id, "--json"]);
    assert_eq!(deleted, json!({"id": tenant.workspace_id, "name": "acme", "deleted": true}));

    assert!(
        files_under(&blobs).is_empty(),
        "the trashed file's blob went with it: {:?}",
        files_under(&blobs)
    );
    let (status, body) = get_quota(&server, &tenant.key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "its only key is revoked: {body}");
    let workspaces = admin_json(dir.path(), &["list-workspaces", "--json"]);
    assert!(
        workspaces.as_array().unwrap().iter().all(|ws| ws["id"] != tenant.workspace_id.as_str()),
        "{workspaces}"
    );
    let again = admin(dir.path(), &["delete-workspace", &tenant.workspace_id, "--json"]);
    assert!(
        !again.status.success() && again.stderr.contains("workspace not found"),
        "stderr:\n{}",
        again.stderr
    );
    // Its audit records outlive it.
    let log = admin_json(dir.path(), &["audit", "--workspace", &tenant.workspace_id, "--json"]);
    assert!(
        log["data"].as_array().unwrap().iter().any(|record| record["action"] == "admin delete-workspace"),
        "{log}"
    );
}
