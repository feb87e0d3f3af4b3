//! Access rules and end-user tokens: the whole matrix of 4 audiences × 3 operations × {key, the
//! end user who created the file, another end user, nobody}, with rules inherited from a folder.

use crate::support;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use support::{assert_error, TestServer};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Key,
    Creator,
    OtherUser,
    Nobody,
}

struct World {
    server: TestServer,
    alice: String,
    bob: String,
    staging: String,
}

impl World {
    async fn new() -> Self {
        let server = TestServer::spawn().await;
        let alice = token(&server, "alice").await;
        let bob = token(&server, "bob").await;
        // Where alice may upload, so every file under test has her as creator.
        let (_, staging) =
            call(&server, Method::POST, "/v1/folders", &server.tenant.key, Some(json!({"name": "staging"})))
                .await;
        let staging = staging["id"].as_str().unwrap().to_owned();
        let rules = json!({"create": "authenticated", "read": "creator", "delete": "creator"});
        let (status, _) = call(
            &server,
            Method::PUT,
            &format!("/v1/folders/{staging}/access-rules"),
            &server.tenant.key,
            Some(rules),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        World { server, alice, bob, staging }
    }

    fn credential(&self, who: Who) -> Option<&str> {
        match who {
            Who::Key => Some(&self.server.tenant.key),
            Who::Creator => Some(&self.alice),
            Who::OtherUser => Some(&self.bob),
            Who::Nobody => None,
        }
    }

    /// A file alice uploaded, moved (by the key) into `folder`.
    async fn alices_file_in(&self, folder: &str) -> String {
        let (status, file) = upload_as(&self.server, Some(&self.alice), &self.staging, "photo.txt").await;
        assert_eq!(status, StatusCode::CREATED, "{file}");
        assert_eq!(file["created_by"], "alice");
        let id = file["id"].as_str().unwrap().to_owned();
        let (status, _) = call(
            &self.server,
            Method::PATCH,
            &format!("/v1/files/{id}"),
            &self.server.tenant.key,
            Some(json!({"folder_id": folder})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        id
    }
}

fn with(request: RequestBuilder, credential: Option<&str>) -> RequestBuilder {
    match credential {
        Some(secret) => request.bearer_auth(secret),
        None => request,
    }
}

async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = server.request(method, path, key);
    server
        .send(match body {
            Some(body) => request.json(&body),
            None => request,
        })
        .await
}

async fn token(server: &TestServer, sub: &str) -> String {
    let (status, body) =
        call(server, Method::POST, "/v1/tokens", &server.tenant.key, Some(json!({"sub": sub, "ttl": 600})))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn upload_as(
    server: &TestServer,
    credential: Option<&str>,
    folder: &str,
    name: &str,
) -> (StatusCode, Value) {
    let form = reqwest::multipart::Form::new()
        .text("folder_id", folder.to_owned())
        .part("file", reqwest::multipart::Part::bytes(b"hey".to_vec()).file_name(name.to_owned()));
    let request = with(server.http.post(format!("{}/v1/files", server.url)), credential).multipart(form);
    server.send(request).await
}

async fn read_as(world: &World, who: Who, file: &str) -> StatusCode {
    let server = &world.server;
    let url = match who {
        Who::Nobody => format!("{}/public/v1/files/{}/{file}", server.url, server.tenant.workspace),
        _ => format!("{}/v1/files/{file}/content", server.url),
    };
    server.send(with(server.http.get(url), world.credential(who))).await.0
}

async fn delete_as(world: &World, who: Who, file: &str) -> StatusCode {
    let server = &world.server;
    let url = format!("{}/v1/files/{file}", server.url);
    server.send(with(server.http.delete(url), world.credential(who))).await.0
}

#[tokio::test]
async fn every_audience_admits_exactly_its_callers_for_every_operation() {
    let world = World::new().await;
    let server = &world.server;
    let who_all = [Who::Key, Who::Creator, Who::OtherUser, Who::Nobody];
    // Expected for each audience, by [key, creator, other user, nobody].
    let table = [
        ("public", [true, true, true, true]),
        ("authenticated", [true, true, true, false]),
        ("creator", [true, true, false, false]),
        ("admin", [true, false, false, false]),
    ];
    for (audience, expected) in table {
        let (_, folder) =
            call(server, Method::POST, "/v1/folders", &server.tenant.key, Some(json!({"name": audience})))
                .await;
        let folder = folder["id"].as_str().unwrap().to_owned();
        let rules = json!({"create": audience, "read": audience, "delete": audience});
        call(
            server,
            Method::PUT,
            &format!("/v1/folders/{folder}/access-rules"),
            &server.tenant.key,
            Some(rules),
        )
        .await;
        for (who, allowed) in who_all.iter().zip(expected) {
            // Read.
            let file = world.alices_file_in(&folder).await;
            let status = read_as(&world, *who, &file).await;
            assert_eq!(status == StatusCode::OK, allowed, "read {audience} as {who:?}: {status}");
            if !allowed {
                assert!(
                    matches!(status, StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED),
                    "read {audience} as {who:?}: {status}"
                );
            }
            // Delete (to the trash). Nobody has no way to delete, whatever the rule.
            let allowed_delete = allowed && *who != Who::Nobody;
            let status = delete_as(&world, *who, &file).await;
            assert_eq!(status == StatusCode::OK, allowed_delete, "delete {audience} as {who:?}: {status}");
            // Create. The creator row means "an end user": the one who creates is the creator.
            let allowed_create = allowed || (audience == "creator" && *who == Who::OtherUser);
            let allowed_create = allowed_create && *who != Who::Nobody;
            let (status, body) = upload_as(server, world.credential(*who), &folder, "new.txt").await;
            assert_eq!(
                status == StatusCode::CREATED,
                allowed_create,
                "create {audience} as {who:?}: {status} {body}"
            );
        }
    }
}

#[tokio::test]
async fn rules_inherit_from_file_to_folder_to_workspace_and_default_closed() {
    let world = World::new().await;
    let server = &world.server;
    let file = world.alices_file_in(&world.staging).await;
    let path = format!("/v1/files/{file}/access-rules");
    let (_, rules) = call(server, Method::GET, &path, &server.tenant.key, None).await;
    assert_eq!(rules["effective"]["read"], "creator", "{rules}");
    assert_eq!(rules["rules"]["read"], Value::Null);
    call(server, Method::PUT, &path, &server.tenant.key, Some(json!({"read": "public"}))).await;
    assert_eq!(read_as(&world, Who::Nobody, &file).await, StatusCode::OK);
    let (_, workspace) = call(server, Method::GET, "/v1/access-rules", &server.tenant.key, None).await;
    assert_eq!(
        workspace["effective"],
        json!({"create": "admin", "read": "admin", "delete": "admin", "track_creator": true})
    );
    let (_, root_file) = server
        .send(
            server
                .request(Method::POST, "/v1/files", &server.tenant.key)
                .json(&json!({"name": "r.txt", "content_base64": "aGk="})),
        )
        .await;
    let root_file = root_file["id"].as_str().unwrap().to_owned();
    assert_eq!(read_as(&world, Who::OtherUser, &root_file).await, StatusCode::NOT_FOUND);
    call(server, Method::PUT, "/v1/access-rules", &server.tenant.key, Some(json!({"read": "authenticated"})))
        .await;
    assert_eq!(read_as(&world, Who::OtherUser, &root_file).await, StatusCode::OK);
}

#[tokio::test]
async fn end_users_see_their_own_files_and_uploads_and_nothing_that_needs_a_key() {
    let world = World::new().await;
    let server = &world.server;
    world.alices_file_in(&world.staging).await;
    let list = |credential: String| async move {
        server.send(server.http.get(format!("{}/v1/files", server.url)).bearer_auth(credential)).await
    };
    let (_, alices) = list(world.alice.clone()).await;
    assert_eq!(alices["total"], 1);
    let (_, bobs) = list(world.bob.clone()).await;
    assert_eq!(bobs["total"], 0);
    for (method, path, request) in [
        (Method::GET, "/v1/quota", json!({})),
        (Method::GET, "/v1/trash", json!({})),
        (Method::POST, "/v1/folders", json!({"name": "x"})),
        (Method::POST, "/v1/tokens", json!({"sub": "x"})),
    ] {
        let (status, body) = server
            .send(
                server
                    .http
                    .request(method, format!("{}{path}", server.url))
                    .bearer_auth(&world.bob)
                    .json(&request),
            )
            .await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    let (status, ticket) = server
        .send(
            server
                .http
                .post(format!("{}/v1/uploads", server.url))
                .bearer_auth(&world.alice)
                .json(&json!({"name": "signed.txt", "size": 2, "folder_id": world.staging})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    let upload = ticket["id"].as_str().unwrap();
    let (status, _) = server
        .send(server.http.get(format!("{}/v1/uploads/{upload}", server.url)).bearer_auth(&world.bob))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.send(server.http.put(ticket["upload_url"].as_str().unwrap()).body("ok")).await;
    let (_, done) = server
        .send(server.http.get(format!("{}/v1/uploads/{upload}", server.url)).bearer_auth(&world.alice))
        .await;
    assert_eq!(done["file"]["created_by"], "alice");
}

#[tokio::test]
async fn tokens_are_minted_by_admin_keys_only_and_expire() {
    let world = World::new().await;
    let server = &world.server;
    let writer = server.key_for(&server.tenant.workspace, cabinet_core::Role::Write).await;
    let (status, body) = call(server, Method::POST, "/v1/tokens", &writer, Some(json!({"sub": "x"}))).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    for bad in [json!({"sub": ""}), json!({"sub": "x", "ttl": 0}), json!({"sub": "x", "ttl": 90000})] {
        let (status, _) = call(server, Method::POST, "/v1/tokens", &server.tenant.key, Some(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let file = world.alices_file_in(&world.staging).await;
    assert_eq!(read_as(&world, Who::Creator, &file).await, StatusCode::OK);
    server.clock.advance(chrono::Duration::seconds(601));
    let (status, body) = server
        .send(server.http.get(format!("{}/v1/files/{file}/content", server.url)).bearer_auth(&world.alice))
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    let tampered = format!("{}x", world.bob);
    let (status, _) =
        server.send(server.http.get(format!("{}/v1/files", server.url)).bearer_auth(tampered)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tokens_end_when_revoked_for_their_user_for_the_workspace_or_with_their_key() {
    let world = World::new().await;
    let server = &world.server;
    let lists = |token: String| async move {
        server.send(server.http.get(format!("{}/v1/files", server.url)).bearer_auth(token)).await.0
    };
    let revoke =
        |body: Value| call(server, Method::POST, "/v1/tokens/revoke", &server.tenant.key, Some(body));
    let writer = server.key_for(&server.tenant.workspace, cabinet_core::Role::Write).await;
    let (status, body) = call(server, Method::POST, "/v1/tokens/revoke", &writer, Some(json!({}))).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(lists(world.alice.clone()).await, StatusCode::OK);

    // One user's tokens.
    let (status, body) = revoke(json!({"sub": "alice"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sub"], "alice");
    let (status, body) =
        server.send(server.http.get(format!("{}/v1/files", server.url)).bearer_auth(&world.alice)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(lists(world.bob.clone()).await, StatusCode::OK, "another user's token still works");
    server.clock.advance(chrono::Duration::seconds(1));
    assert_eq!(lists(token(server, "alice").await).await, StatusCode::OK, "one minted afterwards works");

    // Every token of the workspace.
    let (status, _) = revoke(json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lists(world.bob.clone()).await, StatusCode::UNAUTHORIZED);

    // The key that minted a token.
    server.clock.advance(chrono::Duration::seconds(1));
    let second_admin = server
        .cabinet
        .create_api_key(vec![server.tenant.workspace.clone()], cabinet_core::Role::Admin, None)
        .await
        .unwrap();
    let carol = token_with(server, &second_admin.secret, "carol").await;
    let dave = token(server, "dave").await;
    assert_eq!(lists(carol.clone()).await, StatusCode::OK);
    server.cabinet.revoke_api_key(&second_admin.key.id).await.unwrap();
    assert_eq!(lists(carol).await, StatusCode::UNAUTHORIZED, "its key was revoked");
    assert_eq!(lists(dave).await, StatusCode::OK, "another key's token still works");
}

async fn token_with(server: &TestServer, key: &str, sub: &str) -> String {
    let (status, body) = call(server, Method::POST, "/v1/tokens", key, Some(json!({"sub": sub}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_owned()
}
