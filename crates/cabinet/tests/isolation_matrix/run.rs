//! The matrix itself: every operation of the document, refused for every credential but A's,
//! then sent as A as the control.

use super::*;

/// Which statuses a refusal may have; `None` when the credential may succeed (it acts on its
/// own workspace with none of A's ids, or the route is public).
fn refusals(
    guard: Guard,
    credential: Credential,
    call: &Call,
    template: &str,
) -> Option<&'static [StatusCode]> {
    let names_a = call.names_a;
    match guard {
        Guard::Public => None,
        Guard::PublicRule => Some(&[StatusCode::NOT_FOUND]),
        // The signature is the credential; keys neither help nor matter.
        Guard::SignedUrl => Some(&[StatusCode::FORBIDDEN]),
        // B acting on its own workspace, or an end user listing their own (empty) files, may
        // succeed; the leak check is what holds there.
        Guard::ApiKey(_) | Guard::Mavera | Guard::Mavi
            if !names_a
                && matches!(
                    credential,
                    Credential::OtherTenantWithAsIds
                        | Credential::OtherTenantsEndUser
                        | Credential::EndUserOfA
                ) =>
        {
            None
        }
        // An end user of A lists what A's rules let them see (nothing: the rules are closed);
        // the leak check is what holds there.
        Guard::ApiKey(_) | Guard::Mavera | Guard::Mavi
            if credential == Credential::EndUserOfA
                && call.method == Method::GET
                && !template.contains('{') =>
        {
            None
        }
        Guard::ApiKey(_) | Guard::Mavera => {
            Some(&[StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN, StatusCode::NOT_FOUND])
        }
        // MAVI answers an asset that is not the caller's with 400 "Asset not found".
        Guard::Mavi => Some(&[
            StatusCode::BAD_REQUEST,
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::NOT_FOUND,
        ]),
    }
}

async fn run_matrix(server: &TestServer) {
    let a = server.tenant.clone();
    let workspace = a.workspace.to_string();
    let workspace_name = server.cabinet.workspace(&a.workspace).await.unwrap().name;
    let mut secrets = Secrets { a: a.clone(), known: vec![workspace_name] };
    let b = server.tenant(None, Role::Admin).await;
    let revoked = server.cabinet.create_api_key(vec![a.workspace.clone()], Role::Admin, None).await.unwrap();
    server.cabinet.revoke_api_key(&revoked.key.id).await.unwrap();
    let mint = |tenant: &Tenant| {
        let cabinet = server.cabinet.clone();
        let key = tenant.key.clone();
        async move {
            let caller = cabinet.authenticate(&key, None).await.expect("admin key");
            cabinet.mint_end_user_token(&caller, "mallory", Some(600)).expect("token").0
        }
    };
    let keys = Keys {
        a: a.key.clone(),
        b: b.key.clone(),
        a_workspace: a.workspace.to_string(),
        b_workspace: b.workspace.to_string(),
        revoked: revoked.secret,
        garbage: format!("cab_{}", "0".repeat(43)),
        b_user: mint(&b).await,
        a_user: mint(&a).await,
    };
    let on_s3 = server.s3.is_some();

    // Every surface's document, its paths whole: the native API's and each dialect's.
    let doc = crate::support::routes::all_documents(&server.http, &server.url).await;
    let mut unclassified = Vec::new();
    let mut failures = Vec::new();
    let mut calls = 0;
    let mut controls = 0;
    for (template, item) in doc["paths"].as_object().expect("paths") {
        let Some(guard) = classify(template) else {
            unclassified.push(template.clone());
            continue;
        };
        for (method_name, operation) in item.as_object().unwrap() {
            let Ok(method) = method_name.to_ascii_uppercase().parse::<Method>() else { continue };
            if !operation.is_object() || operation.get("responses").is_none() {
                continue;
            }
            let setup = setup_for(&method, template);
            let fixture = fixture(server, &mut secrets, setup).await;
            let mavera_url = match setup {
                Setup::MaveraUploadedUrl => Some(mavera_uploaded_url(server, &a, &fixture).await),
                _ => None,
            };
            match setup {
                Setup::TrashFile => {
                    let path = format!("/v1/files/{}?force=true", fixture.file_id);
                    as_a(server, &a, Method::DELETE, &path, None).await;
                }
                Setup::TrashFolder => {
                    let path = format!("/v1/folders/{}?recursive=true&force=true", fixture.folder_id);
                    as_a(server, &a, Method::DELETE, &path, None).await;
                }
                Setup::SendBytes => {
                    let status =
                        put_bytes(server, &fixture.upload_url, &fixture.upload_headers, UPLOAD_BYTES).await;
                    assert!(status.is_success(), "sending the bytes of A's upload: {status}");
                }
                _ => {}
            }
            let mut call = call_for(
                &method,
                template,
                operation,
                &doc,
                &workspace,
                &fixture,
                mavera_url.as_deref(),
                guard,
            );
            // Cabinet mints no URL for its own storage endpoint when blobs are in S3.
            let signed = guard == Guard::SignedUrl && !on_s3;
            let signed_url =
                if signed { Some(signed_url_for(server, &a, template, &fixture).await) } else { None };
            if let Some(url) = &signed_url {
                // The refusals use A's real signed path, without its signature.
                let (path, _) = url.split_once('?').expect("a signed URL has a query");
                call.url = path.to_owned();
            }
            let case = |credential: Credential, status: StatusCode, text: &str| {
                format!("{method} {template} as {credential:?}: {status} {text}")
            };
            let before = snapshot(server, &a, &fixture).await;
            for credential in REFUSED_CREDENTIALS {
                let (status, text) = send(server, &call, guard, credential, &keys, &workspace).await;
                calls += 1;
                let case = case(credential, status, &text);
                if status.is_server_error() {
                    failures.push(format!("5xx — {case}"));
                }
                if let Some(secret) = secrets.leaked_in(&own_history_removed(template, &text)) {
                    failures.push(format!("leaked {secret:?} — {case}"));
                }
                let Some(expected) = refusals(guard, credential, &call, template) else { continue };
                if !expected.contains(&status) {
                    failures.push(format!("expected one of {expected:?} — {case}"));
                }
                if let Guard::ApiKey(shape) = guard {
                    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if !shape.fits(&body) {
                        failures.push(format!("not in the {shape:?} error shape — {case}"));
                    }
                }
            }
            let after = snapshot(server, &a, &fixture).await;
            for ((path, status_before, body_before), (_, status_after, body_after)) in
                before.iter().zip(&after)
            {
                if (status_before, body_before) != (status_after, body_after) {
                    failures.push(format!(
                        "{method} {template}: refused calls changed A's {path}: \
                         {status_before} {body_before} became {status_after} {body_after}"
                    ));
                }
            }

            // The control: the same request, as A.
            if guard == Guard::SignedUrl && on_s3 {
                continue;
            }
            if guard == Guard::PublicRule {
                let path = format!("/v1/files/{}/access-rules", fixture.file_id);
                as_a(server, &a, Method::PUT, &path, Some(json!({"read": "public"}))).await;
            }
            let control = match &signed_url {
                Some(url) => Call { url: url.clone(), ..call.clone() },
                None => call.clone(),
            };
            let credential = match guard {
                Guard::SignedUrl | Guard::PublicRule => Credential::Anonymous,
                _ => Credential::OwnerOfA,
            };
            let (status, text) = send(server, &control, guard, credential, &keys, &workspace).await;
            controls += 1;
            if !status.is_success() {
                failures.push(format!(
                    "control failed, so its refusals prove nothing — {method} {template} as A: {status} {text}"
                ));
            }
        }
    }
    assert!(unclassified.is_empty(), "routes the isolation matrix cannot classify: {unclassified:?}");
    assert!(
        failures.is_empty(),
        "{} failures in {calls} refused calls and {controls} controls:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(calls >= 7 * 80, "only {calls} calls: did the document lose routes?");
    eprintln!("isolation matrix: {calls} refused calls, {controls} controls that succeeded");
}

/// A URL Mavera's upload-url call handed out, with the bytes already there.
async fn mavera_uploaded_url(server: &TestServer, a: &Tenant, fixture: &Fixture) -> String {
    let body = json!({
        "workspace_id": a.workspace.as_str(),
        "file_name": unique("matrix") + ".txt",
        "file_type": "text/plain",
        "file_size": UPLOAD_BYTES.len(),
        "folder_id": fixture.folder_id,
    });
    let ticket = as_a(server, a, Method::POST, "/compat/mavera/api/v1/files/upload-url", Some(body)).await;
    let url = ticket["upload_url"].as_str().unwrap_or_else(|| panic!("an upload_url in {ticket}"));
    let status = put_bytes(server, url, &ticket_headers(&ticket), UPLOAD_BYTES).await;
    assert!(status.is_success(), "sending the bytes to Mavera's upload URL: {status}");
    url.to_owned()
}

#[tokio::test]
async fn no_foreign_revoked_garbage_or_missing_credential_reaches_workspace_a() {
    run_matrix(&TestServer::spawn().await).await;
}

#[tokio::test]
async fn no_credential_reaches_workspace_a_with_blobs_on_s3() {
    let Some(server) = TestServer::spawn_s3("the isolation matrix on S3").await else { return };
    run_matrix(&server).await;
}

#[test]
fn the_classification_table_covers_the_known_surfaces() {
    assert_eq!(classify("/v1/anything/{id}"), Some(Guard::ApiKey(Shape::Native)));
    assert_eq!(classify("/compat/cms/files/{api_id}/"), Some(Guard::ApiKey(Shape::Drf)));
    assert_eq!(classify("/compat/serenities/api/v1/files/get"), Some(Guard::ApiKey(Shape::Serenities)));
    assert_eq!(classify("/storage/v1/files/{workspace_id}/{file_id}"), Some(Guard::SignedUrl));
    assert_eq!(classify("/healthz"), Some(Guard::Public));
    assert_eq!(classify("/compat/mavera/api/v1/files"), Some(Guard::Mavera));
    assert_eq!(classify("/compat/mavi/serve/api/v2/{asset_id}/metadata"), Some(Guard::Mavi));
    assert_eq!(classify("/compat/elsewhere/files"), None);
}

/// The body with what the caller itself sent taken out, where the route echoes it back: the audit
/// log (`GET /v1/audit`) records the id each request named, so B's log holds the ids of A's that
/// B's own refused requests (earlier rows of this matrix) named. That is B's own history, not A's
/// data; every other field of B's records (and A's workspace id, which a refused request never
/// reaches a log with) is still checked.
fn own_history_removed(template: &str, text: &str) -> String {
    if template != "/v1/audit" {
        return text.to_owned();
    }
    let Ok(mut body) = serde_json::from_str::<Value>(text) else { return text.to_owned() };
    if let Some(records) = body.get_mut("data").and_then(Value::as_array_mut) {
        for record in records {
            record["object_id"] = Value::Null;
        }
    }
    body.to_string()
}
