//! `cabinet admin …`: workspaces and keys, against the same data folder or database as the
//! server, also while it runs. `--json` prints one JSON document for scripts.

use std::sync::Arc;

use anyhow::anyhow;
use cabinet_core::admin::NewWorkspace;
use cabinet_core::audit::{AuditActor, AuditQuery, NewAuditRecord};
use cabinet_core::cors::CorsOrigins;
use cabinet_core::{ApiKey, ApiKeyId, Cabinet, Role, Settings, SystemClock, Workspace, WorkspaceId};
use clap::Subcommand;
use serde_json::{json, Value};

use crate::config::StoreConfig;
use crate::server::assemble;

/// The admin commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a workspace.
    CreateWorkspace {
        #[arg(long)]
        name: String,
        /// Total bytes the workspace may hold, or `10GiB` (default: unlimited).
        #[arg(long, value_parser = crate::config::human::bytes_arg::<u64>)]
        quota_bytes: Option<u64>,
        /// Largest single file, in bytes or `1GiB` (default: the server's limit).
        #[arg(long, value_parser = crate::config::human::bytes_arg::<u64>)]
        max_file_bytes: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// List workspaces with their quota ledger.
    ListWorkspaces {
        #[arg(long)]
        json: bool,
    },
    /// Delete a workspace with everything of its own (its trash purged, its uploads ended, keys
    /// of no other workspace revoked); refused while it holds files or folders out of the trash.
    DeleteWorkspace {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Create an API key; its secret is printed once and stored only as a hash.
    CreateKey {
        /// A workspace the key may act on; repeat for several.
        #[arg(long = "workspace", required = true)]
        workspaces: Vec<String>,
        #[arg(long, default_value = "write")]
        role: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Create an S3 access key for a workspace's bucket (or, with --operator, for every bucket and
    /// creating buckets); the access key id and secret are printed once. The secret is stored
    /// sealed with the S3 secret key (<data-dir>/s3-secret.key, or CABINET_S3_SECRET_KEY).
    CreateS3Key {
        #[arg(long, required_unless_present = "operator", conflicts_with = "operator")]
        workspace: Option<String>,
        /// An operator key: every bucket, and CreateBucket.
        #[arg(long)]
        operator: bool,
        #[arg(long, default_value = "write")]
        role: String,
        #[arg(long)]
        name: Option<String>,
        /// The key sealing S3 secrets (64 hex characters), as given to `serve`.
        #[arg(long, env = "CABINET_S3_SECRET_KEY", hide_env_values = true)]
        s3_secret_key: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the S3 keys of a workspace, or the operator keys (never their secrets).
    ListS3Keys {
        #[arg(long, required_unless_present = "operator", conflicts_with = "operator")]
        workspace: Option<String>,
        #[arg(long)]
        operator: bool,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an S3 key by its access key id.
    RevokeS3Key {
        access_key_id: String,
        #[arg(long)]
        json: bool,
    },
    /// List a workspace's keys (never their secrets).
    ListKeys {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        json: bool,
    },
    /// Apply the database migrations (serve does this too) and exit.
    Migrate {
        #[arg(long)]
        json: bool,
    },
    /// Check the stores against each other: orphan objects, files without objects, quota ledger
    /// drift. Exits 1 when anything is wrong (after repairing, with --repair).
    Check {
        /// Remove orphan objects and recompute drifted ledgers (missing objects are only reported).
        #[arg(long)]
        repair: bool,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key (the end-user tokens it minted end with it).
    RevokeKey {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// End every permalink of a workspace (links asked for afterwards work).
    RevokeLinks {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        json: bool,
    },
    /// Add a signing key: it signs every URL from now on (each server reads it within its
    /// --signing-key-refresh-secs); older keys keep verifying the URLs they signed until retired.
    RotateSigningKey {
        /// Retire every older key at once: every URL they signed, permalinks too, stops working.
        #[arg(long)]
        retire: bool,
        #[arg(long)]
        json: bool,
    },
    /// Retire every signing key but the newest: every URL they signed stops working.
    RetireSigningKeys {
        #[arg(long)]
        json: bool,
    },
    /// List the signing keys (never their secrets) and which one signs.
    ListSigningKeys {
        #[arg(long)]
        json: bool,
    },
    /// Copy the embedded store (SQLite and the local folder) to DIR while it runs: a consistent
    /// snapshot of the database, the signing key, and each object not already in DIR, verified.
    Backup {
        /// The backup folder (made if missing); each backup adds a snapshot beside the last.
        #[arg(long)]
        to: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup made by `backup` into an empty data folder (then `cabinet admin check`).
    Restore {
        #[arg(long)]
        from: std::path::PathBuf,
        /// Which snapshot (a name under DIR/snapshots); the newest by default.
        #[arg(long)]
        snapshot: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Move this deployment (SQLite and a local folder) to PostgreSQL and S3, keeping every id: each
    /// workspace, key, file, folder, rule, reference, trash entry and ledger row, and every object,
    /// read back from the bucket and checked against its SHA-256. Safe to run again: a run cut short
    /// is finished by the next, and a run after the old server stops carries what changed since.
    MigrateStore {
        /// The new deployment's database (`postgres://…`); migrated first, and it must hold no
        /// workspace this deployment lacks.
        #[arg(long)]
        to_database_url: String,
        /// The new deployment's bucket (`s3://bucket/prefix?endpoint=…&region=…`).
        #[arg(long)]
        to_storage: String,
        /// The new deployment's data folder, when not this one: the signing key and the S3 secret
        /// key are put there, so signed URLs, permalinks and S3 access keys keep working.
        #[arg(long)]
        to_data_dir: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Set the web origins browsers may call a workspace's signed and public URLs from (CORS),
    /// in place of the server's --cors-origins; or with --inherit go back to the server's.
    SetCors {
        #[arg(long)]
        workspace: String,
        /// Origins, comma-separated (`https://app.example.com,http://localhost:3000`), `*` for
        /// any, or `none`.
        #[arg(long, required_unless_present = "inherit", conflicts_with = "inherit")]
        origins: Option<String>,
        /// Drop the workspace's own list: the server's --cors-origins applies again.
        #[arg(long)]
        inherit: bool,
        #[arg(long)]
        json: bool,
    },
    /// Read a workspace's audit log, newest first: every change and refusal of an authenticated
    /// caller on every surface, and these admin commands.
    Audit {
        #[arg(long)]
        workspace: String,
        /// A key id, an end user's `sub`, or a kind: key, end_user, anonymous, admin_cli.
        #[arg(long)]
        actor: Option<String>,
        /// The action exactly (`POST /v1/files`, `admin revoke-key`).
        #[arg(long)]
        action: Option<String>,
        /// The file, folder, upload or key named.
        #[arg(long)]
        object: Option<String>,
        /// The status class: 2xx, 3xx, 4xx or 5xx.
        #[arg(long)]
        status: Option<String>,
        /// Records at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Records before this time (RFC 3339).
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// The next_cursor of the page before.
        #[arg(long)]
        cursor: Option<u64>,
        /// At most this many (1 to 500).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// End a workspace's end-user tokens minted until now: one user's (--sub), or all of them.
    RevokeTokens {
        #[arg(long)]
        workspace: String,
        /// Only this user's tokens.
        #[arg(long)]
        sub: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn workspace_json(ws: &Workspace) -> Value {
    json!({
        "id": ws.id, "name": ws.name, "limit_bytes": ws.limit_bytes, "max_file_bytes": ws.max_file_bytes,
        "used_bytes": ws.used_bytes, "reserved_bytes": ws.reserved_bytes, "created_at": ws.created_at,
    })
}

fn key_json(key: &ApiKey) -> Value {
    json!({
        "id": key.id, "name": key.name, "role": key.role.as_str(), "workspaces": key.workspaces,
        "hint": key.hint, "created_at": key.created_at, "revoked_at": key.revoked_at,
    })
}

fn s3_key_json(key: &cabinet_core::s3_keys::S3Key) -> Value {
    json!({
        "access_key_id": key.access_key_id, "name": key.name, "role": key.role.as_str(),
        "workspace": key.workspace_id, "operator": key.is_operator(),
        "created_at": key.created_at, "revoked_at": key.revoked_at,
    })
}

fn core(err: cabinet_core::Error) -> anyhow::Error {
    anyhow!("{err}")
}

/// Appends the audit record of a command that changed `workspaces` (actor `admin_cli`): the
/// change has happened, so a record that cannot be written fails the command, saying so.
async fn audit(
    cabinet: &Cabinet,
    workspaces: &[WorkspaceId],
    command: &str,
    object: Option<String>,
) -> anyhow::Result<()> {
    let at = cabinet.now();
    let records: Vec<NewAuditRecord> = workspaces
        .iter()
        .map(|ws| NewAuditRecord {
            workspace_id: ws.clone(),
            at,
            actor: AuditActor::AdminCli,
            action: format!("admin {command}"),
            object_id: object.clone(),
            client_address: None,
            status: 200,
            error_code: None,
        })
        .collect();
    cabinet
        .append_audit(&records)
        .await
        .map_err(|err| anyhow!("{command} was done, but its audit record was not written: {err}"))
}

/// The workspaces an API key may act on (for its audit records).
async fn workspaces_of_key(cabinet: &Cabinet, id: &ApiKeyId) -> anyhow::Result<Vec<WorkspaceId>> {
    for ws in cabinet.list_workspaces().await.map_err(core)? {
        if let Some(key) =
            cabinet.list_api_keys(&ws.id).await.map_err(core)?.into_iter().find(|key| &key.id == id)
        {
            return Ok(key.workspaces);
        }
    }
    Ok(Vec::new())
}

/// The workspace of an S3 key (none for an operator key or an unknown one).
async fn workspace_of_s3_key(cabinet: &Cabinet, access_key_id: &str) -> anyhow::Result<Vec<WorkspaceId>> {
    for ws in cabinet.list_workspaces().await.map_err(core)? {
        let keys = cabinet.list_s3_keys(Some(&ws.id)).await.map_err(core)?;
        if keys.iter().any(|key| key.access_key_id == access_key_id) {
            return Ok(vec![ws.id]);
        }
    }
    Ok(Vec::new())
}

/// Runs one admin command.
pub async fn run(store: &StoreConfig, command: AdminCommand) -> anyhow::Result<()> {
    // Before the store is opened: a restore needs the data folder empty, and neither needs more
    // than its files.
    match command {
        AdminCommand::Backup { to, json } => {
            let store = store.clone();
            let report = tokio::task::spawn_blocking(move || crate::backup::backup(&store, &to)).await??;
            if json {
                println!("{}", serde_json::to_value(&report)?);
            } else {
                println!(
                    "backup {}: {} files; {} objects copied ({} bytes), {} already in the backup",
                    report.snapshot,
                    report.files,
                    report.objects_copied,
                    report.bytes_copied,
                    report.objects_already_there
                );
            }
            return Ok(());
        }
        AdminCommand::Restore { from, snapshot, json } => {
            let store = store.clone();
            let report = tokio::task::spawn_blocking(move || {
                crate::backup::restore(&store, &from, snapshot.as_deref())
            })
            .await??;
            if json {
                println!("{}", serde_json::to_value(&report)?);
            } else {
                println!(
                    "restored backup {}: {} files ({} bytes); run `cabinet admin check` to confirm",
                    report.snapshot, report.files, report.bytes_restored
                );
            }
            return Ok(());
        }
        AdminCommand::MigrateStore { to_database_url, to_storage, to_data_dir, json } => {
            let target = crate::migrate_store::Target {
                database_url: to_database_url,
                storage: to_storage,
                data_dir: to_data_dir,
            };
            // Progress on stderr, so --json leaves stdout one document.
            let report =
                crate::migrate_store::migrate(store, &target, |line| eprintln!("migrate-store: {line}"))
                    .await?;
            if json {
                println!("{}", serde_json::to_value(&report)?);
            } else {
                let rows: u64 = report.tables.iter().map(|t| t.rows).sum();
                println!(
                    "migrated {} tables ({rows} rows) and {} objects ({} copied, {} bytes; {} already there), all verified",
                    report.tables.len(),
                    report.objects,
                    report.objects_copied,
                    report.bytes_copied,
                    report.objects_already_there
                );
                if report.key_files.is_empty() {
                    println!(
                        "keys: start the new deployment with this data folder's signing.key and s3-secret.key (or \
                         the same --signing-secret and --s3-secret-key), or signed URLs, permalinks and S3 keys stop \
                         working"
                    );
                }
                for path in &report.key_files {
                    println!("key file: {}", path.display());
                }
                println!(
                    "next: start the new deployment on the new stores, then run `cabinet admin check` there"
                );
            }
            return Ok(());
        }
        _ => {}
    }
    let cabinet: Cabinet = assemble(store, None, None, Settings::default(), Arc::new(SystemClock)).await?;
    match command {
        AdminCommand::CreateWorkspace { name, quota_bytes, max_file_bytes, json } => {
            let ws = cabinet
                .create_workspace(NewWorkspace { name, limit_bytes: quota_bytes, max_file_bytes })
                .await
                .map_err(core)?;
            audit(&cabinet, std::slice::from_ref(&ws.id), "create-workspace", Some(ws.id.to_string()))
                .await?;
            if json {
                println!("{}", workspace_json(&ws));
            } else {
                println!("created workspace {} ({})", ws.name, ws.id);
            }
        }
        AdminCommand::ListWorkspaces { json } => {
            let all = cabinet.list_workspaces().await.map_err(core)?;
            if json {
                println!("{}", Value::Array(all.iter().map(workspace_json).collect()));
            } else {
                for ws in all {
                    let limit = ws.limit_bytes.map_or("unlimited".to_owned(), |n| n.to_string());
                    println!(
                        "{}  {}  used {} reserved {} limit {limit}",
                        ws.id, ws.name, ws.used_bytes, ws.reserved_bytes
                    );
                }
            }
        }
        AdminCommand::DeleteWorkspace { id, json } => {
            let ws = WorkspaceId::parse(&id).map_err(core)?;
            let deleted = cabinet.delete_workspace(&ws).await.map_err(core)?;
            audit(&cabinet, std::slice::from_ref(&ws), "delete-workspace", Some(ws.to_string())).await?;
            if json {
                println!("{}", json!({"id": deleted.id, "name": deleted.name, "deleted": true}));
            } else {
                println!("deleted workspace {} ({})", deleted.id, deleted.name);
            }
        }
        AdminCommand::CreateKey { workspaces, role, name, json } => {
            let workspaces = workspaces
                .iter()
                .map(|ws| WorkspaceId::parse(ws))
                .collect::<Result<Vec<_>, _>>()
                .map_err(core)?;
            let role: Role = role.parse().map_err(core)?;
            let issued = cabinet.create_api_key(workspaces, role, name).await.map_err(core)?;
            audit(&cabinet, &issued.key.workspaces, "create-key", Some(issued.key.id.to_string())).await?;
            if json {
                let mut value = key_json(&issued.key);
                value["key"] = Value::String(issued.secret);
                println!("{value}");
            } else {
                println!(
                    "created key {} ({}); its secret, shown only this once:\n{}",
                    issued.key.id,
                    role.as_str(),
                    issued.secret
                );
            }
        }
        AdminCommand::ListKeys { workspace, json } => {
            let keys =
                cabinet.list_api_keys(&WorkspaceId::parse(&workspace).map_err(core)?).await.map_err(core)?;
            if json {
                println!("{}", Value::Array(keys.iter().map(key_json).collect()));
            } else {
                for key in keys {
                    let state = if key.revoked_at.is_some() { "revoked" } else { "active" };
                    println!(
                        "{}  {}  …{}  {state}  {}",
                        key.id,
                        key.role.as_str(),
                        key.hint,
                        key.name.unwrap_or_default()
                    );
                }
            }
        }
        AdminCommand::Migrate { json } => {
            // Opening the store migrated it.
            if json {
                println!("{}", json!({"migrated": true}));
            } else {
                println!("the database is migrated");
            }
        }
        AdminCommand::Check { repair, json } => {
            let report = cabinet.check_consistency(repair).await.map_err(core)?;
            if json {
                println!("{}", serde_json::to_value(&report)?);
            } else {
                println!(
                    "orphan objects: {}\nfiles without objects: {}\nworkspaces with ledger drift: {}{}",
                    report.orphan_objects.len(),
                    report.files_without_objects.len(),
                    report.ledger_drift.len(),
                    if repair { " (repaired: orphans removed, ledgers recomputed)" } else { "" }
                );
                for (file, key) in &report.files_without_objects {
                    println!("  missing object {key} of {file}");
                }
                for drift in &report.ledger_drift {
                    println!(
                        "  {}: used {} (actual {}), reserved {} (actual {})",
                        drift.workspace_id,
                        drift.recorded_used,
                        drift.actual_used,
                        drift.recorded_reserved,
                        drift.actual_reserved
                    );
                }
            }
            // With --repair, only missing objects (which cannot be repaired) remain wrong.
            let consistent_now = report.is_clean() || (repair && report.files_without_objects.is_empty());
            if !consistent_now {
                std::process::exit(1);
            }
        }
        AdminCommand::Backup { .. } | AdminCommand::Restore { .. } | AdminCommand::MigrateStore { .. } => {
            unreachable!("backup, restore and migrate-store ran before the store was opened")
        }
        AdminCommand::Audit { workspace, actor, action, object, status, from, to, cursor, limit, json } => {
            let ws = WorkspaceId::parse(&workspace).map_err(core)?;
            if !(1..=cabinet_core::audit::MAX_AUDIT_PER_READ).contains(&limit) {
                return Err(anyhow!("--limit is 1 to {}", cabinet_core::audit::MAX_AUDIT_PER_READ));
            }
            let status_class = status
                .map(|filter| {
                    cabinet_core::audit::status_class(&filter)
                        .ok_or_else(|| anyhow!("--status is 2xx, 3xx, 4xx or 5xx"))
                })
                .transpose()?;
            // A deleted workspace's records outlive it (until the retention prunes them).
            let workspace = cabinet.workspace(&ws).await;
            let query = AuditQuery {
                actor,
                action,
                object_id: object,
                status_class,
                from,
                to,
                before: cursor,
                limit,
            };
            let records = cabinet.audit_log_of(&ws, &query).await.map_err(core)?;
            if records.is_empty() {
                workspace.map_err(core)?;
            }
            let next_cursor =
                (records.len() == limit as usize).then(|| records.last().map(|r| r.id)).flatten();
            let records: Vec<cabinet_api::v1::audit::AuditRecordJson> =
                records.into_iter().map(Into::into).collect();
            if json {
                println!("{}", json!({"data": records, "next_cursor": next_cursor.map(|id| id.to_string())}));
            } else {
                for record in &records {
                    let actor = match &record.actor.id {
                        Some(id) => format!("{}:{id}", record.actor.kind),
                        None => record.actor.kind.clone(),
                    };
                    println!(
                        "{}  {}  {actor}  {}  {}  {}{}  {}",
                        record.id,
                        record.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        record.action,
                        record.object_id.as_deref().unwrap_or("-"),
                        record.status,
                        record.error_code.as_deref().map(|code| format!(" {code}")).unwrap_or_default(),
                        record.client_address.as_deref().unwrap_or("-"),
                    );
                }
                if let Some(cursor) = next_cursor {
                    println!("more: --cursor {cursor}");
                }
            }
        }
        AdminCommand::RevokeTokens { workspace, sub, json } => {
            let ws = WorkspaceId::parse(&workspace).map_err(core)?;
            let at = cabinet.revoke_workspace_tokens(&ws, sub.as_deref()).await.map_err(core)?;
            audit(&cabinet, std::slice::from_ref(&ws), "revoke-tokens", sub.clone()).await?;
            if json {
                println!("{}", json!({"workspace_id": ws, "sub": sub, "revoked_up_to": at}));
            } else {
                let whose =
                    sub.map_or("every end-user token".to_owned(), |sub| format!("the tokens of {sub}"));
                println!("revoked {whose} of {ws} minted up to {at}");
            }
        }
        AdminCommand::SetCors { workspace, origins, inherit: _, json } => {
            let ws = WorkspaceId::parse(&workspace).map_err(core)?;
            let origins = origins
                .map(|raw| CorsOrigins::parse(&raw).map_err(|err| anyhow!("--origins: {err}")))
                .transpose()?;
            cabinet.set_workspace_cors_origins(&ws, origins.as_ref()).await.map_err(core)?;
            audit(&cabinet, std::slice::from_ref(&ws), "set-cors", None).await?;
            let setting = origins.as_ref().map(CorsOrigins::to_setting);
            if json {
                println!("{}", json!({"workspace_id": ws, "cors_origins": setting}));
            } else {
                match setting {
                    Some(setting) => println!("CORS origins of {ws}: {setting}"),
                    None => println!("{ws} goes by the server's --cors-origins again"),
                }
            }
        }
        AdminCommand::RevokeLinks { workspace, json } => {
            let ws = WorkspaceId::parse(&workspace).map_err(core)?;
            let generation = cabinet.revoke_workspace_links(&ws).await.map_err(core)?;
            audit(&cabinet, std::slice::from_ref(&ws), "revoke-links", None).await?;
            if json {
                println!("{}", json!({"workspace_id": ws, "link_generation": generation}));
            } else {
                println!("revoked every permalink of {ws} (link generation now {generation})");
            }
        }
        AdminCommand::RotateSigningKey { retire, json } => {
            let rotation = cabinet.rotate_signing_key(retire).await.map_err(core)?;
            if json {
                println!("{}", json!({"key_id": rotation.key_id, "retired": rotation.retired}));
            } else {
                println!(
                    "signing key {} signs from now on; {} older key(s) retired",
                    rotation.key_id, rotation.retired
                );
            }
        }
        AdminCommand::RetireSigningKeys { json } => {
            let retired = cabinet.retire_old_signing_keys().await.map_err(core)?;
            if json {
                println!("{}", json!({"retired": retired}));
            } else {
                println!("{retired} older signing key(s) retired");
            }
        }
        AdminCommand::ListSigningKeys { json } => {
            let keys = cabinet.signing_keys().await.map_err(core)?;
            let signing = keys.iter().filter(|key| key.retired_at.is_none()).map(|key| key.id).max();
            if json {
                let keys: Vec<Value> = keys
                    .iter()
                    .map(|key| {
                        json!({
                            "id": key.id, "created_at": key.created_at, "retired_at": key.retired_at,
                            "signing": Some(key.id) == signing,
                        })
                    })
                    .collect();
                println!("{}", json!({ "keys": keys }));
            } else {
                for key in &keys {
                    let state = match (key.retired_at, Some(key.id) == signing) {
                        (Some(at), _) => format!("retired {at}"),
                        (None, true) => "signs".to_owned(),
                        (None, false) => "verifies".to_owned(),
                    };
                    println!("key {}\tcreated {}\t{state}", key.id, key.created_at);
                }
            }
        }
        AdminCommand::CreateS3Key { workspace, operator: _, role, name, s3_secret_key, json } => {
            let sealer = crate::server::s3_sealer(&store.data_dir, s3_secret_key.as_deref())?;
            let workspace = workspace.map(|ws| WorkspaceId::parse(&ws)).transpose().map_err(core)?;
            let role: Role = role.parse().map_err(core)?;
            let issued = cabinet.create_s3_key(&sealer, workspace, role, name).await.map_err(core)?;
            let scope: Vec<WorkspaceId> = issued.key.workspace_id.iter().cloned().collect();
            audit(&cabinet, &scope, "create-s3-key", Some(issued.key.access_key_id.clone())).await?;
            if json {
                let mut value = s3_key_json(&issued.key);
                value["secret_access_key"] = Value::String(issued.secret);
                println!("{value}");
            } else {
                println!(
                    "created S3 key ({}); shown only this once:\naws_access_key_id = {}\naws_secret_access_key = {}",
                    if issued.key.is_operator() { "operator" } else { issued.key.role.as_str() },
                    issued.key.access_key_id,
                    issued.secret
                );
            }
        }
        AdminCommand::ListS3Keys { workspace, operator: _, json } => {
            let workspace = workspace.map(|ws| WorkspaceId::parse(&ws)).transpose().map_err(core)?;
            let keys = cabinet.list_s3_keys(workspace.as_ref()).await.map_err(core)?;
            if json {
                println!("{}", Value::Array(keys.iter().map(s3_key_json).collect()));
            } else {
                for key in keys {
                    let state = if key.revoked_at.is_some() { "revoked" } else { "active" };
                    println!(
                        "{}  {}  {state}  {}",
                        key.access_key_id,
                        key.role.as_str(),
                        key.name.unwrap_or_default()
                    );
                }
            }
        }
        AdminCommand::RevokeS3Key { access_key_id, json } => {
            let scope = workspace_of_s3_key(&cabinet, &access_key_id).await?;
            cabinet.revoke_s3_key(&access_key_id).await.map_err(core)?;
            audit(&cabinet, &scope, "revoke-s3-key", Some(access_key_id.clone())).await?;
            if json {
                println!("{}", json!({"access_key_id": access_key_id, "revoked": true}));
            } else {
                println!("revoked S3 key {access_key_id}");
            }
        }
        AdminCommand::RevokeKey { id, json } => {
            let id = ApiKeyId::parse(&id).map_err(core)?;
            let scope = workspaces_of_key(&cabinet, &id).await?;
            cabinet.revoke_api_key(&id).await.map_err(core)?;
            audit(&cabinet, &scope, "revoke-key", Some(id.to_string())).await?;
            if json {
                println!("{}", json!({"id": id, "revoked": true}));
            } else {
                println!("revoked key {id}");
            }
        }
    }
    Ok(())
}
