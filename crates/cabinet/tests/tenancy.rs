//! Tenant isolation and credentials: a key of workspace A can neither see nor change anything of
//! workspace B, and every id of another tenant answers exactly like an unknown one.

use crate::support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{assert_error, TestServer};

#[tokio::test]
async fn another_workspaces_ids_are_not_found() {
    let server = TestServer::spawn().await;
    let done = server.upload(&server.tenant, "secret.txt", b"top secret").await;
    let file_id = done["file"]["id"].as_str().unwrap().to_owned();
    let upload_id = done["id"].as_str().unwrap().to_owned();
    let intruder = server.tenant(None, cabinet_core::Role::Admin).await;
    let paths = [
        (Method::GET, format!("/v1/files/{file_id}")),
        (Method::DELETE, format!("/v1/files/{file_id}")),
        (Method::GET, format!("/v1/files/{file_id}/content")),
        (Method::GET, format!("/v1/files/{file_id}/download-url")),
        (Method::GET, format!("/v1/uploads/{upload_id}")),
        (Method::POST, format!("/v1/uploads/{upload_id}/complete")),
        (Method::DELETE, format!("/v1/uploads/{upload_id}")),
    ];
    for (method, path) in paths {
        let (status, body) = server.send(server.request(method.clone(), &path, &intruder.key)).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
        assert!(!body.to_string().contains("secret"), "{method} {path} leaked: {body}");
    }
    let (_, listing) = server.send(server.request(Method::GET, "/v1/files", &intruder.key)).await;
    assert_eq!(listing["data"].as_array().unwrap().len(), 0);
    // Naming the other workspace explicitly does not help either.
    let (status, body) = server
        .send(server.request(
            Method::GET,
            &format!("/v1/files?workspace_id={}", server.tenant.workspace),
            &intruder.key,
        ))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, _) = server
        .send(
            server
                .request(Method::GET, "/v1/files", &intruder.key)
                .header("x-cabinet-workspace", server.tenant.workspace.as_str()),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The file is untouched.
    let (status, _) = server.send(server.get(&format!("/v1/files/{file_id}"))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_upload_url_of_one_workspace_cannot_be_aimed_at_another() {
    let server = TestServer::spawn().await;
    let other = server.tenant(None, cabinet_core::Role::Write).await;
    let (_, ticket) = server.start_upload(&server.tenant, json!({"name": "x", "size": 3})).await;
    let url = ticket["upload_url"].as_str().unwrap();
    let retargeted = url.replace(server.tenant.workspace.as_str(), other.workspace.as_str());
    let (status, body) = server.send(server.http.put(retargeted).body("abc")).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "invalid_signature");
}

#[tokio::test]
async fn missing_malformed_unknown_and_revoked_keys_are_unauthorized() {
    let server = TestServer::spawn().await;
    let url = format!("{}/v1/files", server.url);
    let (status, body) = server.send(server.http.get(&url)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    for header in ["Basic abc", "Bearer", "Bearer cab_nope", "cab_raw_without_scheme"] {
        let (status, body) = server.send(server.http.get(&url).header("authorization", header)).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let (status, _) = server.send(server.http.get(&url).bearer_auth("x".repeat(10_000))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let key = server
        .cabinet
        .create_api_key(vec![server.tenant.workspace.clone()], cabinet_core::Role::Read, None)
        .await
        .unwrap();
    let (status, _) = server.send(server.http.get(&url).bearer_auth(&key.secret)).await;
    assert_eq!(status, StatusCode::OK);
    server.cabinet.revoke_api_key(&key.key.id).await.unwrap();
    let (status, body) = server.send(server.http.get(&url).bearer_auth(&key.secret)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn a_key_for_several_workspaces_must_name_one() {
    let server = TestServer::spawn().await;
    let second = server.tenant(None, cabinet_core::Role::Write).await;
    let both = server
        .cabinet
        .create_api_key(
            vec![server.tenant.workspace.clone(), second.workspace.clone()],
            cabinet_core::Role::Write,
            None,
        )
        .await
        .unwrap()
        .secret;
    let (status, body) = server.send(server.request(Method::GET, "/v1/files", &both)).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "workspace_required");
    server.upload(&second, "in-second.txt", b"2").await;
    let (status, listing) = server
        .send(server.request(Method::GET, &format!("/v1/files?workspace_id={}", second.workspace), &both))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listing["data"][0]["name"], "in-second.txt");
    let (status, listing) = server
        .send(
            server
                .request(Method::GET, "/v1/files", &both)
                .header("x-cabinet-workspace", server.tenant.workspace.as_str()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listing["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn malformed_ids_answer_like_unknown_ones() {
    let server = TestServer::spawn().await;
    for id in [
        "nope",
        "file_",
        "upl_01jdq4x7m2c8v5n3k9w6r1t0ya",
        "file_..%2F..%2Fetc%2Fpasswd",
        "file_01JDQ4X7M2C8V5N3K9W6R1T0YA",
    ] {
        let (status, body) = server.send(server.get(&format!("/v1/files/{id}"))).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
}

/// SECURITY.md: a key's secret is `cab_` and 40 random characters, shown once and stored only as
/// its SHA-256 (a database that leaks gives no usable key).
#[tokio::test]
async fn key_secrets_are_forty_random_characters_stored_only_as_their_sha256() {
    let server = TestServer::spawn().await;
    let mut secrets = std::collections::HashSet::new();
    for _ in 0..20 {
        let secret = server.key_for(&server.tenant.workspace, cabinet_core::Role::Read).await;
        let random = secret.strip_prefix("cab_").unwrap_or_else(|| panic!("{secret} lacks the cab_ prefix"));
        assert_eq!(random.len(), 40, "{secret}");
        assert!(random.chars().all(|c| c.is_ascii_alphanumeric()), "{secret}");
        assert!(secrets.insert(secret), "a secret came out twice");
    }
    // Every stored row of every key, as text: each secret's hash is there, the secret never is.
    let rows: Vec<String> = if server.database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&server.database_url).await.unwrap();
        let rows = sqlx::query_scalar("SELECT id || ' ' || secret_hash || ' ' || hint FROM api_keys")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(&server.database_url).await.unwrap();
        let rows = sqlx::query_scalar("SELECT k::text FROM api_keys k").fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    };
    for secret in &secrets {
        let hash = support::sha256_hex(secret.as_bytes());
        assert!(rows.iter().any(|row| row.contains(&hash)), "the hash of a secret is not stored");
        assert!(!rows.iter().any(|row| row.contains(&secret[4..])), "a secret is stored as it is");
    }
}
