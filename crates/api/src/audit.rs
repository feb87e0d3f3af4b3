//! The audit log's capture, around every request of every surface: the core notes the caller
//! when a credential resolves to one (`cabinet_core::audit`), and the surface's error notes its
//! code; once the handler has produced its response, a change (any method but GET, HEAD and
//! OPTIONS) or a refusal (4xx) of a caller who authenticated becomes one record. Requests that
//! never authenticated (401, unknown routes, public reads) leave none.
//!
//! The record is appended before the response leaves, so a client that has its answer has its
//! record too; the append is one small insert, on the write pool, after the change committed.
//! Where the handler's answer is settled by its change's commit (a reservation, a direct upload:
//! `cabinet_core::audit::answers_change_with`), the core commits the record with the change
//! instead, from the draft this layer leaves in the note, and this layer appends none.
//! A change that succeeded also wakes this node's webhook worker (its events have committed).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, State};
use axum::http::{Method, Request, Response};
use axum::middleware::Next;
use cabinet_core::audit::{AuditActor, AuditDraft, AuditNote, NewAuditRecord};
use cabinet_core::Cabinet;

use crate::client_address::TrustedProxies;

/// What the capture needs.
#[derive(Clone)]
pub struct AuditCapture {
    pub cabinet: Cabinet,
    pub proxies: TrustedProxies,
    /// Whether requests are S3's: their action is the method and the path's shape, their object
    /// the bucket and key.
    pub s3: bool,
}

/// The middleware: see the module's comment.
pub async fn record(
    State(capture): State<AuditCapture>,
    request: Request<Body>,
    next: Next,
) -> Response<Body> {
    around(&capture, request, |request| next.run(request)).await
}

/// The capture around `next`, the layers inside it and the handler.
pub async fn around<F, Fut>(capture: &AuditCapture, request: Request<Body>, next: F) -> Response<Body>
where
    F: FnOnce(Request<Body>) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    let method = request.method().clone();
    let change = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let (mut parts, body) = request.into_parts();
    // What a record names, kept as it is and written out only for a change (which the core may
    // commit with its record) or for a record: most requests (reads that succeed) append none.
    let uri = parts.uri.clone();
    let template = parts.extensions.get::<MatchedPath>().cloned();
    let params =
        if capture.s3 { None } else { RawPathParams::from_request_parts(&mut parts, &()).await.ok() };
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|peer| capture.proxies.client_of(peer.0.ip(), &parts.headers));
    let draft = || {
        let (action, object_id) = if capture.s3 {
            s3_action(&method, uri.path())
        } else {
            let template = template.as_ref().map_or(uri.path(), MatchedPath::as_str);
            let object = params.as_ref().and_then(|params| {
                let values: Vec<&str> = params.iter().map(|(_, value)| value).collect();
                values
                    .iter()
                    .find(|value| looks_like_id(value))
                    .or(values.first())
                    .map(|value| (*value).to_owned())
            });
            (format!("{method} {template}"), object)
        };
        AuditDraft { action, object_id, client_address: client.map(|address| address.to_string()) }
    };
    let note = Arc::new(Mutex::new(AuditNote { draft: change.then(draft), ..AuditNote::default() }));
    let response = cabinet_core::audit::noting(note.clone(), next(Request::from_parts(parts, body))).await;
    let note = std::mem::take(&mut *note.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    let status = response.status();
    if change && status.is_success() {
        // Its events (if any) have committed: this node's webhook worker sends them now rather
        // than at its next look.
        capture.cabinet.events_may_have_committed();
    }
    let Some(caller) = note.caller else { return response };
    if !change && !status.is_client_error() {
        return response;
    }
    if note.recorded == Some(status.as_u16()) {
        // Committed with the change it records.
        return response;
    }
    let AuditDraft { action, object_id, client_address } = note.draft.unwrap_or_else(draft);
    let record = NewAuditRecord {
        workspace_id: caller.workspace_id.clone(),
        at: capture.cabinet.now(),
        actor: AuditActor::from(&caller.actor),
        action,
        object_id,
        client_address,
        status: status.as_u16(),
        error_code: note.error_code.map(|code| code.as_str().to_owned()),
    };
    // Boxed: few requests append, and inline its future would make every request's larger.
    if let Err(err) = Box::pin(capture.cabinet.append_audit(std::slice::from_ref(&record))).await {
        // The change stands (it committed); the operator hears that its record did not.
        metrics::counter!("cabinet_audit_append_failures_total").increment(1);
        tracing::error!(error = %err, action = %record.action, workspace = %record.workspace_id, "appending an audit record failed");
    }
    response
}

/// Whether a path segment is one of Cabinet's typed ids (`file_…`, a prefix and 26 characters).
fn looks_like_id(value: &str) -> bool {
    value.split_once('_').is_some_and(|(prefix, body)| {
        !prefix.is_empty()
            && prefix.bytes().all(|b| b.is_ascii_lowercase())
            && body.len() == 26
            && body.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    })
}

/// An S3 request's action (`PUT /{bucket}/{key}`) and object (`bucket/key`, or the bucket).
fn s3_action(method: &Method, path: &str) -> (String, Option<String>) {
    let named = path.trim_start_matches('/');
    let shape = match named.split_once('/') {
        _ if named.is_empty() => "/",
        Some((_, key)) if !key.is_empty() => "/{bucket}/{key}",
        _ => "/{bucket}",
    };
    (format!("{method} {shape}"), (!named.is_empty()).then(|| named.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_ids_are_told_from_other_segments() {
        assert!(looks_like_id("file_01jd8x2m3n4p5q6r7s8t9v0w1x"));
        assert!(!looks_like_id("file_short"));
        assert!(!looks_like_id("report.pdf"));
    }

    #[test]
    fn s3_actions_name_the_shape_and_the_object() {
        assert_eq!(
            s3_action(&Method::PUT, "/photos/a/b.jpg"),
            ("PUT /{bucket}/{key}".into(), Some("photos/a/b.jpg".into()))
        );
        assert_eq!(s3_action(&Method::PUT, "/photos"), ("PUT /{bucket}".into(), Some("photos".into())));
        assert_eq!(s3_action(&Method::GET, "/"), ("GET /".into(), None));
    }
}
