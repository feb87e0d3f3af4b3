//! The access rules set on a workspace, a folder or a file.

use std::collections::HashMap;

use cabinet_core::rules::{AccessRules, Audience, RuleTarget};
use cabinet_core::{Result, WorkspaceId};
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Type};

use crate::dialect::{Dialect, SqlStore, Value};
use crate::errors::db_error;
use crate::read_cache::Lookup;
use crate::rows::millis;

/// How a rule target is stored: its kind, and its id (empty for the workspace).
fn rule_target(target: &RuleTarget) -> (&'static str, String) {
    match target {
        RuleTarget::Workspace => ("workspace", String::new()),
        RuleTarget::Folder(id) => ("folder", id.to_string()),
        RuleTarget::File(id) => ("file", id.to_string()),
    }
}

#[async_trait::async_trait]
impl<D: Dialect> cabinet_core::AccessRuleStore for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db> + ColumnIndex<<D::Db as Database>::Row>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
    i64: Value<D::Db>,
    String: Value<D::Db>,
    bool: Value<D::Db>,
    Option<i64>: Value<D::Db>,
    Option<String>: Value<D::Db>,
    Option<bool>: Value<D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
{
    async fn any_public_read(&self, ws: &WorkspaceId) -> Result<bool> {
        const SQL: &str =
            "SELECT CAST(1 AS BIGINT) FROM access_rules WHERE workspace_id = $1 AND read_rule = 'public' LIMIT 1";
        // Asked by every file answer (whether it has a public URL), so kept (`read_cache`), and
        // otherwise a point read on SQLite.
        let cache = self.db.cache();
        let read = match cache {
            Some(cache) => match cache.public_read(ws.as_str()).await {
                Lookup::Kept(kept) => return Ok(kept),
                Lookup::Read(read) => read,
            },
            None => None,
        };
        let found = match self.db.inline_rows::<(i64,)>(SQL, &[ws.as_str()]) {
            Some(rows) => rows?.into_iter().next(),
            None => sqlx::query_as(SQL)
                .bind(ws.as_str())
                .fetch_optional(self.read_pool())
                .await
                .map_err(db_error)?,
        };
        if let (Some(cache), Some(read)) = (cache, read) {
            cache.keep_public_read(read, ws.as_str(), found.is_some());
        }
        Ok(found.is_some())
    }

    async fn access_rules(
        &self,
        ws: &WorkspaceId,
        targets: &[RuleTarget],
    ) -> Result<HashMap<RuleTarget, AccessRules>> {
        let mut found = HashMap::new();
        for target in targets {
            let (kind, id) = rule_target(target);
            let row: Option<(Option<String>, Option<String>, Option<String>, Option<bool>)> = sqlx::query_as(
                "SELECT create_rule, read_rule, delete_rule, track_creator FROM access_rules \
                 WHERE workspace_id = $1 AND target_kind = $2 AND target_id = $3",
            )
            .bind(ws.as_str())
            .bind(kind)
            .bind(id)
            .fetch_optional(self.read_pool())
            .await
            .map_err(db_error)?;
            if let Some((create, read, delete, track_creator)) = row {
                let audience = |raw: Option<String>| raw.and_then(|r| Audience::parse(&r));
                found.insert(
                    target.clone(),
                    AccessRules {
                        create: audience(create),
                        read: audience(read),
                        delete: audience(delete),
                        track_creator,
                    },
                );
            }
        }
        Ok(found)
    }

    async fn put_access_rules(
        &self,
        ws: &WorkspaceId,
        target: &RuleTarget,
        rules: &AccessRules,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let (kind, id) = rule_target(target);
        sqlx::query(
            "INSERT INTO access_rules (workspace_id, target_kind, target_id, create_rule, read_rule, \
             delete_rule, track_creator, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (workspace_id, target_kind, target_id) DO UPDATE SET create_rule = \
             excluded.create_rule, \
             read_rule = excluded.read_rule, delete_rule = excluded.delete_rule, track_creator = \
             excluded.track_creator, \
             updated_at = excluded.updated_at",
        )
        .bind(ws.as_str())
        .bind(kind)
        .bind(id)
        .bind(rules.create.map(Audience::as_str))
        .bind(rules.read.map(Audience::as_str))
        .bind(rules.delete.map(Audience::as_str))
        .bind(rules.track_creator)
        .bind(millis(at))
        .execute(self.write_pool())
        .await
        .map_err(db_error)?;
        Ok(())
    }
}
