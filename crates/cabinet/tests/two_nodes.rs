//! Two `cabinet serve` processes sharing one PostgreSQL database and one S3 bucket behave as one
//! service: an upload started on A completes through B and is listed by both; the sweepers and
//! reconcilers of both nodes run at once and each upload still ends exactly once.

use crate::process;

use std::time::{Duration, Instant};

use process::{admin_json, http_client, ServerProcess};
use serde_json::{json, Value};

/// A fresh database and a fresh bucket prefix, or `None` (a notice, or a failure when the test
/// script said the servers are there) without the test servers.
async fn shared_stores() -> Option<(String, String)> {
    let (Ok(database), Ok(s3)) =
        (std::env::var("CABINET_TEST_DATABASE_URL"), std::env::var("CABINET_TEST_S3_URL"))
    else {
        if std::env::var("CABINET_REQUIRE_POSTGRES").as_deref() == Ok("1")
            || std::env::var("CABINET_REQUIRE_S3").as_deref() == Ok("1")
        {
            panic!("the two-node test needs CABINET_TEST_DATABASE_URL and CABINET_TEST_S3_URL (dev/test sets them)");
        }
        eprintln!("skipping the two-node test: no PostgreSQL or S3 test server (dev/test starts them)");
        return None;
    };
    let name = format!("two_nodes_{}", ulid::Ulid::new().to_string().to_lowercase());
    let admin = sqlx::PgPool::connect(&database).await.expect("test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    admin.close().await;
    let (base, _) = database.rsplit_once('/').unwrap();
    let (bucket_part, query) = s3.split_once('?').unwrap_or((&s3, ""));
    let storage = format!("{}/{name}?{query}", bucket_part.trim_end_matches('/'));
    Some((format!("{base}/{name}"), storage))
}

async fn put_to_s3(ticket: &Value, bytes: &[u8]) -> reqwest::StatusCode {
    let mut request = http_client().put(ticket["upload_url"].as_str().unwrap()).body(bytes.to_vec());
    for (name, value) in ticket["headers"].as_object().unwrap() {
        request = request.header(name.as_str(), value.as_str().unwrap());
    }
    request.send().await.unwrap().status()
}

async fn eventually(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "{what} did not happen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn two_nodes_on_one_database_and_bucket_behave_as_one_service() {
    let Some((database, storage)) = shared_stores().await else { return };
    let secret = "a-shared-signing-secret-of-at-least-32-bytes";
    let shared = ["--database-url", &database, "--storage", &storage];
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let mut create = vec!["create-workspace", "--name", "shared", "--quota-bytes", "100000", "--json"];
    create.extend(shared);
    let ws = admin_json(dir_a.path(), &create);
    let ws_id = ws["id"].as_str().unwrap();
    let mut key_args = vec!["create-key", "--workspace", ws_id, "--role", "admin", "--json"];
    key_args.extend(shared);
    let key = admin_json(dir_a.path(), &key_args)["key"].as_str().unwrap().to_owned();
    let mut serve = vec!["--signing-secret", secret, "--sweep-interval", "1"];
    serve.extend(shared);
    let a = ServerProcess::start_with(dir_a.path(), &serve);
    let b = ServerProcess::start_with(dir_b.path(), &serve);
    assert!(
        a.bootstrap_key.is_none() && b.bootstrap_key.is_none(),
        "the shared database already has a workspace"
    );
    let http = http_client();
    let get = |server: &ServerProcess, path: &str| http.get(server.at(path)).bearer_auth(&key).send();

    // Started on A, bytes straight to S3, completed through B.
    let bytes = b"written once, seen everywhere".to_vec();
    let ticket: Value = http
        .post(a.at("/v1/uploads"))
        .bearer_auth(&key)
        .json(&json!({"name": "shared.txt", "size": bytes.len()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!ticket["upload_url"].as_str().unwrap().starts_with(&a.url), "bytes go to S3, not to Cabinet");
    assert!(put_to_s3(&ticket, &bytes).await.is_success());
    let upload_id = ticket["id"].as_str().unwrap();
    let done: Value = http
        .post(b.at(&format!("/v1/uploads/{upload_id}/complete")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "SUCCESS", "{done}");
    let file_id = done["file"]["id"].as_str().unwrap().to_owned();
    for server in [&a, &b] {
        let listing: Value = get(server, "/v1/files").await.unwrap().json().await.unwrap();
        assert_eq!(listing["data"][0]["id"], file_id.as_str());
        let content =
            get(server, &format!("/v1/files/{file_id}/content")).await.unwrap().bytes().await.unwrap();
        assert_eq!(content.as_ref(), bytes.as_slice());
    }

    // Nobody completes this one: one of the two reconcilers does, once.
    let abandoned: Value = http
        .post(b.at("/v1/uploads"))
        .bearer_auth(&key)
        .json(&json!({"name": "abandoned.txt", "size": 5}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(put_to_s3(&abandoned, b"hello").await.is_success());
    let abandoned_id = abandoned["id"].as_str().unwrap().to_owned();
    eventually("a reconciler completing the abandoned upload", Duration::from_secs(15), async || {
        let state: Value =
            get(&a, &format!("/v1/uploads/{abandoned_id}")).await.unwrap().json().await.unwrap();
        state["status"] == "SUCCESS"
    })
    .await;

    // This one expires: both sweepers see it; it fails once and its reservation comes back once.
    let expiring: Value = http
        .post(a.at("/v1/uploads"))
        .bearer_auth(&key)
        .json(&json!({"name": "late.txt", "size": 1000, "expires_in": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expiring_id = expiring["id"].as_str().unwrap().to_owned();
    eventually("a sweeper failing the expired upload", Duration::from_secs(15), async || {
        let state: Value =
            get(&b, &format!("/v1/uploads/{expiring_id}")).await.unwrap().json().await.unwrap();
        state["status"] == "FAILED"
    })
    .await;
    let quota: Value = get(&a, "/v1/quota").await.unwrap().json().await.unwrap();
    assert_eq!(quota["reserved_bytes"], 0, "{quota}");
    assert_eq!(quota["used_bytes"], bytes.len() + 5, "{quota}");
    let listing: Value = get(&b, "/v1/files").await.unwrap().json().await.unwrap();
    assert_eq!(listing["total"], 2, "each upload became exactly one file: {listing}");
}

#[tokio::test]
async fn a_rotated_signing_key_signs_on_both_nodes_and_old_links_work_until_retired() {
    let Some((database, storage)) = shared_stores().await else { return };
    let secret = "a-shared-signing-secret-of-at-least-32-bytes";
    let shared = ["--database-url", &database, "--storage", &storage];
    let admin_with = |dir: &std::path::Path, args: &[&str]| {
        let mut args = args.to_vec();
        args.extend(shared);
        admin_json(dir, &args)
    };
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let ws = admin_with(dir_a.path(), &["create-workspace", "--name", "rotating", "--json"]);
    let ws_id = ws["id"].as_str().unwrap();
    let key = admin_with(dir_a.path(), &["create-key", "--workspace", ws_id, "--role", "admin", "--json"])
        ["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // B reads the keys every second; A only every minute, so what A knows early it learns from
    // the URLs it is shown.
    let serve = |refresh: &'static str| {
        let mut args = vec!["--signing-secret", secret, "--signing-key-refresh", refresh];
        args.extend(shared);
        args
    };
    let a = ServerProcess::start_with(dir_a.path(), &serve("60"));
    let b = ServerProcess::start_with(dir_b.path(), &serve("1"));
    let http = http_client();
    let created: Value = http
        .post(a.at("/v1/files"))
        .bearer_auth(&key)
        .json(&json!({"name": "kept.txt", "content_base64": "a2VwdA=="}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let file = created["id"].as_str().unwrap().to_owned();
    let permalink = |server: &ServerProcess| {
        let request =
            http.get(server.at(&format!("/v1/files/{file}/download-url?lasting=true"))).bearer_auth(&key);
        async move {
            request.send().await.unwrap().json::<Value>().await.unwrap()["url"].as_str().unwrap().to_owned()
        }
    };
    let status = |url: String| {
        let request = http.get(url);
        async move { request.send().await.unwrap().status() }
    };
    // Rebased on a node: a URL names its path and query, whichever node signed it.
    let on = |server: &ServerProcess, url: &str| server.at(&url[url.find("/storage/").unwrap()..]);

    let key0 = permalink(&a).await;
    assert!(!key0.contains("key="), "{key0}");
    let rotated = admin_with(dir_a.path(), &["rotate-signing-key", "--json"]);
    assert_eq!(rotated["key_id"], 1);
    eventually("B signing with key 1", Duration::from_secs(10), async || {
        permalink(&b).await.contains("&key=1&")
    })
    .await;
    let key1 = permalink(&b).await;
    // A has not read the keys since it started: the URL that names key 1 teaches it.
    for server in [&a, &b] {
        assert_eq!(status(on(server, &key1)).await, reqwest::StatusCode::OK, "key 1 on {}", server.url);
        assert_eq!(status(on(server, &key0)).await, reqwest::StatusCode::OK, "key 0 on {}", server.url);
    }
    assert!(permalink(&a).await.contains("&key=1&"), "A signs with the key it learned");

    // Retired: key 0's and key 1's links end on both nodes; key 2's work.
    let retired = admin_with(dir_a.path(), &["rotate-signing-key", "--retire", "--json"]);
    assert_eq!((retired["key_id"].clone(), retired["retired"].clone()), (json!(2), json!(2)));
    eventually("B refusing key 0", Duration::from_secs(10), async || {
        status(on(&b, &key0)).await == reqwest::StatusCode::FORBIDDEN
    })
    .await;
    let key2 = permalink(&b).await;
    assert!(key2.contains("&key=2&"), "{key2}");
    // A learns of key 2 (and of the retirement) from key 2's URL; at most once a second.
    eventually("A accepting key 2", Duration::from_secs(10), async || {
        status(on(&a, &key2)).await == reqwest::StatusCode::OK
    })
    .await;
    for server in [&a, &b] {
        assert_eq!(
            status(on(server, &key0)).await,
            reqwest::StatusCode::FORBIDDEN,
            "key 0 on {}",
            server.url
        );
        assert_eq!(
            status(on(server, &key1)).await,
            reqwest::StatusCode::FORBIDDEN,
            "key 1 on {}",
            server.url
        );
    }
}
