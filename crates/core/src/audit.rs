//! The audit log: who did what to which object, when, from where, and how it ended, for every
//! change and every refusal of a caller that authenticated, on every surface, and for the admin
//! CLI's commands. Append-only: the store offers insert, read and the retention prune, and the
//! database refuses anything else (migration 0021).
//!
//! The HTTP layer runs each request inside `noting`: the one place a caller is resolved
//! (`Credential::caller`, and the S3 surface's key) notes it, and the error a surface answers
//! with notes its code; once the response is produced, the layer turns the note into a record.

use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use crate::access::{Actor, Caller};
use crate::error::{Error, Result};
use crate::ids::WorkspaceId;
use crate::model::Role;
use crate::{Cabinet, Code};

/// The most records one read returns.
pub const MAX_AUDIT_PER_READ: u32 = 500;

/// The longest text filter (`actor`, `action`, `object_id`), in characters.
pub const MAX_FILTER_CHARS: usize = 1024;

/// Days the audit log keeps a record, by default.
pub const DEFAULT_AUDIT_RETENTION_DAYS: i64 = 90;

/// Who acted: the kind, and the key id or end-user `sub` where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditActor {
    Key(String),
    EndUser(String),
    Anonymous,
    /// An operator at the server's command line (`cabinet admin …`).
    AdminCli,
}

impl AuditActor {
    /// The kind as stored and shown: `key`, `end_user`, `anonymous`, `admin_cli`.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditActor::Key(_) => "key",
            AuditActor::EndUser(_) => "end_user",
            AuditActor::Anonymous => "anonymous",
            AuditActor::AdminCli => "admin_cli",
        }
    }

    /// The key id or the end user's `sub`.
    pub fn id(&self) -> Option<&str> {
        match self {
            AuditActor::Key(id) | AuditActor::EndUser(id) => Some(id),
            AuditActor::Anonymous | AuditActor::AdminCli => None,
        }
    }

    /// Back from the stored kind and id.
    pub fn from_stored(kind: &str, id: Option<String>) -> Result<Self> {
        Ok(match (kind, id) {
            ("key", Some(id)) => AuditActor::Key(id),
            ("end_user", Some(id)) => AuditActor::EndUser(id),
            ("anonymous", _) => AuditActor::Anonymous,
            ("admin_cli", _) => AuditActor::AdminCli,
            (other, _) => return Err(Error::internal(format!("unknown audit actor kind {other:?}"))),
        })
    }
}

impl From<&Actor> for AuditActor {
    fn from(actor: &Actor) -> Self {
        match actor {
            Actor::Key { id, .. } => AuditActor::Key(id.to_string()),
            Actor::EndUser { sub } => AuditActor::EndUser(sub.clone()),
            Actor::Anonymous => AuditActor::Anonymous,
        }
    }
}

/// A record about to be appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditRecord {
    pub workspace_id: WorkspaceId,
    pub at: DateTime<Utc>,
    pub actor: AuditActor,
    /// The method and route template (`DELETE /v1/files/{id}`), or the CLI command
    /// (`admin revoke-key`).
    pub action: String,
    /// The file, folder, upload or key the request named, if it named one.
    pub object_id: Option<String>,
    /// The client's address, as the server resolves it (behind trusted proxies, the client's).
    pub client_address: Option<String>,
    /// The HTTP status answered (0 for a CLI command that failed, 200 for one that succeeded).
    pub status: u16,
    /// The error's code when it failed.
    pub error_code: Option<String>,
}

/// A stored record: numbered in the order it was appended (across workspaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: u64,
    pub record: NewAuditRecord,
}

/// Which records to read, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// A key id, an end user's `sub`, or a kind (`anonymous`, `admin_cli`, `key`, `end_user`).
    pub actor: Option<String>,
    /// The action exactly (`POST /v1/files`).
    pub action: Option<String>,
    pub object_id: Option<String>,
    /// The status class: 2, 3, 4 or 5 (`2xx`…).
    pub status_class: Option<u16>,
    /// From this time (inclusive) …
    pub from: Option<DateTime<Utc>>,
    /// … to this one (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Records numbered before this (the cursor: the last id of the page before).
    pub before: Option<u64>,
    pub limit: u32,
}

/// What the layer around one request learns while it runs.
#[derive(Debug, Default)]
pub struct AuditNote {
    /// The caller, once a credential resolved to one.
    pub caller: Option<Caller>,
    /// The code of the error the surface answered with.
    pub error_code: Option<Code>,
    /// What a record of this request names, known before it runs (a change's only).
    pub draft: Option<AuditDraft>,
    /// The status the handler answers if its change commits (`answers_change_with`).
    pub answers: Option<u16>,
    /// The status of the record committed with the request's change, once it committed: the
    /// layer appends none of its own when the request answers with it.
    pub recorded: Option<u16>,
}

/// The parts of a request's record the layer knows before the handler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDraft {
    pub action: String,
    pub object_id: Option<String>,
    pub client_address: Option<String>,
}

tokio::task_local! {
    static AUDIT_NOTE: Arc<Mutex<AuditNote>>;
}

/// Runs `work` (one request's handling) with `note` collecting its caller and error.
pub fn noting<F: Future>(note: Arc<Mutex<AuditNote>>, work: F) -> impl Future<Output = F::Output> {
    // Not an `async fn`: one would hold `work` twice, as its argument and inside the scope.
    AUDIT_NOTE.scope(note, work)
}

/// Notes the caller a credential resolved to (outside a request: nothing).
pub fn note_caller(caller: &Caller) {
    let _ = AUDIT_NOTE.try_with(|note| {
        if let Ok(mut note) = note.lock() {
            note.caller = Some(caller.clone());
        }
    });
}

/// Notes the error a surface answers with (outside a request: nothing).
pub fn note_error(err: &Error) {
    let _ = AUDIT_NOTE.try_with(|note| {
        if let Ok(mut note) = note.lock() {
            note.error_code = Some(err.code());
        }
    });
}

/// Declares the status this request answers once its change commits, so that the change's
/// commit may carry the request's record (`record_of_this_change`) rather than a commit of its own
/// after it. Only for a handler whose answer is settled by that commit: nothing after it may
/// answer otherwise. (Should it, the layer still appends the answer's own record.)
pub fn answers_change_with(status: u16) {
    let _ = AUDIT_NOTE.try_with(|note| {
        if let Ok(mut note) = note.lock() {
            note.answers = Some(status);
        }
    });
}

/// The record of the request under way, to commit with its change: `None` outside a request,
/// before a caller, or where the handler declared no status. Given once a request.
pub(crate) fn record_of_this_change(at: DateTime<Utc>) -> Option<NewAuditRecord> {
    AUDIT_NOTE
        .try_with(|note| {
            let mut note = note.lock().ok()?;
            let caller = note.caller.clone()?;
            let draft = note.draft.clone()?;
            let status = note.answers.take()?;
            Some(NewAuditRecord {
                workspace_id: caller.workspace_id.clone(),
                at,
                actor: AuditActor::from(&caller.actor),
                action: draft.action,
                object_id: draft.object_id,
                client_address: draft.client_address,
                status,
                error_code: None,
            })
        })
        .ok()
        .flatten()
}

/// Notes that the request's record, answering `status`, committed with its change.
pub(crate) fn change_recorded(status: u16) {
    let _ = AUDIT_NOTE.try_with(|note| {
        if let Ok(mut note) = note.lock() {
            note.recorded = Some(status);
        }
    });
}

/// The most records one commit of the audit log writes.
const MOST_RECORDS_PER_COMMIT: usize = 512;

/// The longest an answer waits for its audit record's commit: when the database is away the
/// answer goes (the record follows when the writer can write it), so an outage never holds every
/// answer for the pool's acquire timeout a second time.
const MOST_AUDIT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Appends of many requests at once are written together, in one transaction (group commit):
/// while one commit is under way the next requests' records queue, and the next commit takes
/// them all. Each request still waits for the commit that holds its records, so a client that got
/// an answer has its record, at the cost of one commit however many requests share it.
#[derive(Default)]
pub struct AuditWriter {
    queue: std::sync::OnceLock<tokio::sync::mpsc::Sender<PendingAppend>>,
}

struct PendingAppend {
    records: Vec<NewAuditRecord>,
    written: tokio::sync::oneshot::Sender<std::result::Result<(), String>>,
}

impl AuditWriter {
    fn queue(&self, store: &Arc<dyn crate::MetadataStore>) -> &tokio::sync::mpsc::Sender<PendingAppend> {
        self.queue.get_or_init(|| {
            // Bounded: past it, requests wait for room (their memory is not taken on).
            let (queue, pending) = tokio::sync::mpsc::channel(4096);
            crate::group_commit::spawn_committer(store, write_batches(store.clone(), pending));
            queue
        })
    }
}

async fn write_batches(
    store: Arc<dyn crate::MetadataStore>,
    mut pending: tokio::sync::mpsc::Receiver<PendingAppend>,
) {
    while let Some(first) = pending.recv().await {
        let mut records = first.records.clone();
        let mut batch = vec![first];
        while records.len() < MOST_RECORDS_PER_COMMIT {
            let Ok(next) = pending.try_recv() else { break };
            records.extend(next.records.iter().cloned());
            batch.push(next);
        }
        let written = store.append_audit(&records).await.map_err(|err| err.causes());
        for append in batch {
            let _ = append.written.send(written.clone());
        }
    }
}

impl Cabinet {
    /// Appends records (with those of requests appending at the same moment, in one commit);
    /// returns once they are committed. What is appended is never changed.
    pub async fn append_audit(&self, records: &[NewAuditRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let (written, committed) = tokio::sync::oneshot::channel();
        let append = PendingAppend { records: records.to_vec(), written };
        let queue = self.audit_writer.queue(&self.store);
        let appended = tokio::time::timeout(MOST_AUDIT_WAIT, async {
            queue.send(append).await.ok()?;
            committed.await.ok()
        })
        .await;
        match appended {
            Ok(Some(outcome)) => {
                outcome.map_err(|err| Error::internal(format!("appending to the audit log: {err}")))
            }
            // The database is slow or away: the answer is not held for it (the writer still
            // writes the record when it can).
            Err(_) => Err(Error::Unavailable("the audit log's commit is taking long; still queued".into())),
            // The writer is gone (its runtime ended): this request writes its own.
            Ok(None) => self.store.append_audit(records).await,
        }
    }

    /// The caller's workspace's records, newest first. Needs a key with the admin role.
    pub async fn audit_log(&self, caller: &Caller, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        caller.require(Role::Admin)?;
        self.audit_log_of(&caller.workspace_id, query).await
    }

    /// A workspace's records, newest first (the admin CLI's read).
    pub async fn audit_log_of(
        &self,
        workspace: &WorkspaceId,
        query: &AuditQuery,
    ) -> Result<Vec<AuditRecord>> {
        // Mirrored by `patterns::NO_CONTROL_PATTERN` and the length in the OpenAPI document.
        for filter in [&query.actor, &query.action, &query.object_id].into_iter().flatten() {
            if filter.chars().count() > MAX_FILTER_CHARS || filter.chars().any(char::is_control) {
                return Err(Error::bad_request(
                    Code::InvalidQuery,
                    format!(
                        "actor, action and object_id are at most {MAX_FILTER_CHARS} characters, none a control character"
                    ),
                ));
            }
        }
        let mut query = query.clone();
        query.limit = query.limit.clamp(1, MAX_AUDIT_PER_READ);
        self.store.audit_records(workspace, &query).await
    }

    /// Removes records older than the retention (`Settings::audit_retention`); returns how many.
    pub async fn prune_old_audit(&self) -> Result<u64> {
        self.prune_audit_before(self.clock.now() - self.settings.audit_retention).await
    }

    /// Removes records appended before `before`; returns how many.
    pub async fn prune_audit_before(&self, before: DateTime<Utc>) -> Result<u64> {
        self.store.prune_audit(before).await
    }
}

/// The status class a filter names: `2xx`, `3xx`, `4xx` or `5xx` is 2 to 5.
pub fn status_class(filter: &str) -> Option<u16> {
    match filter {
        "2xx" | "3xx" | "4xx" | "5xx" => filter[..1].parse().ok(),
        _ => None,
    }
}

/// The retention in days as a duration.
pub fn retention_days(days: u64) -> Duration {
    Duration::days(days.min(36_500) as i64)
}
