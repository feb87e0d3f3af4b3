//! Access rules and end-user tokens.
//!
//! An app's backend (an admin key) mints short-lived tokens for its users (`sub`). For each of
//! `create`, `read` and `delete`, a file says who may: `public` (anyone, even without credentials),
//! `authenticated` (any end user of the workspace), `creator` (only the end user who uploaded it),
//! or `admin` (API keys only). A file's rule comes from the file itself, else its nearest folder
//! that sets one, else the workspace default, else `admin`: closed unless opened. API keys are
//! governed by their roles, not by these rules.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, TimeZone, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::access::Actor;
use crate::error::{Error, Result};
use crate::ids::{FileId, FolderId, WorkspaceId};
use crate::model::{FileRecord, Role};
use crate::{Cabinet, Caller, Code};

/// The prefix of every end-user token.
pub const TOKEN_PREFIX: &str = "cet_";
/// The longest an end-user token may live.
pub const MAX_TOKEN_TTL_SECS: u64 = 24 * 3600;
/// An end-user token's life when the backend does not say.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 3600;

/// Who may do something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    Public,
    Authenticated,
    Creator,
    Admin,
}

impl Audience {
    /// The audience as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Public => "public",
            Audience::Authenticated => "authenticated",
            Audience::Creator => "creator",
            Audience::Admin => "admin",
        }
    }

    /// Parses a stored audience.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "public" => Audience::Public,
            "authenticated" => Audience::Authenticated,
            "creator" => Audience::Creator,
            "admin" => Audience::Admin,
            _ => return None,
        })
    }
}

/// What a rule governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Read,
    Delete,
}

/// Rules as set on one file, folder or workspace; `None` inherits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessRules {
    pub create: Option<Audience>,
    pub read: Option<Audience>,
    pub delete: Option<Audience>,
    /// Record the uploading end user as the file's creator (on by default).
    pub track_creator: Option<bool>,
}

/// Rules after inheritance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveRules {
    pub create: Audience,
    pub read: Audience,
    pub delete: Audience,
    pub track_creator: bool,
}

impl EffectiveRules {
    fn audience(&self, operation: Operation) -> Audience {
        match operation {
            Operation::Create => self.create,
            Operation::Read => self.read,
            Operation::Delete => self.delete,
        }
    }
}

/// What carries rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleTarget {
    Workspace,
    Folder(FolderId),
    File(FileId),
}

/// Rules of a target: as set there, and in effect.
#[derive(Debug, Clone)]
pub struct RuleView {
    pub own: AccessRules,
    pub effective: EffectiveRules,
}

/// Layers rules, nearest first, over the closed default.
pub(crate) fn resolve(layers: &[AccessRules]) -> EffectiveRules {
    let pick =
        |get: fn(&AccessRules) -> Option<Audience>| layers.iter().find_map(get).unwrap_or(Audience::Admin);
    EffectiveRules {
        create: pick(|r| r.create),
        read: pick(|r| r.read),
        delete: pick(|r| r.delete),
        track_creator: layers.iter().find_map(|r| r.track_creator).unwrap_or(true),
    }
}

/// Whether `actor` may do what `audience` allows, on something created by `created_by`.
pub fn allows(audience: Audience, actor: &Actor, created_by: Option<&str>) -> bool {
    match (audience, actor) {
        (_, Actor::Key { .. }) => true,
        (Audience::Public, _) => true,
        (Audience::Authenticated, Actor::EndUser { .. }) => true,
        (Audience::Creator, Actor::EndUser { sub }) => created_by == Some(sub.as_str()),
        _ => false,
    }
}

#[derive(Serialize, Deserialize)]
struct TokenClaims {
    ws: String,
    sub: String,
    exp: i64,
    /// When it was minted, in milliseconds: a revocation ends every token minted up to then.
    iat: i64,
    /// The API key that minted it: revoking the key ends its tokens.
    key: String,
}

/// What a token's standing depends on besides its signature and expiry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenStanding {
    /// The minting key exists and is not revoked.
    pub key_live: bool,
    /// The latest revocation that covers the token's `sub` (for that sub, or for every sub).
    pub revoked_up_to: Option<DateTime<Utc>>,
}

type HmacSha256 = Hmac<Sha256>;

impl Cabinet {
    fn token_mac(&self) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(self.signer.secret()).expect("HMAC takes any key length");
        mac.update(b"cabinet-end-user-token-v1\0");
        mac
    }

    /// Mints a token for one of the app's users; needs an admin key.
    pub fn mint_end_user_token(
        &self,
        caller: &Caller,
        sub: &str,
        ttl_secs: Option<u64>,
    ) -> Result<(String, DateTime<Utc>)> {
        caller.require(Role::Admin)?;
        let Actor::Key { id: key, .. } = &caller.actor else {
            return Err(Error::Forbidden("only an API key mints end-user tokens".to_owned()));
        };
        let sub = sub.trim();
        if sub.is_empty() || sub.chars().count() > 200 || sub.chars().any(char::is_control) {
            return Err(Error::bad_request(
                Code::InvalidSub,
                "sub must be 1 to 200 characters without control characters",
            ));
        }
        let ttl = ttl_secs.unwrap_or(DEFAULT_TOKEN_TTL_SECS);
        if !(1..=MAX_TOKEN_TTL_SECS).contains(&ttl) {
            return Err(Error::bad_request(
                Code::InvalidTtl,
                format!("ttl must be between 1 and {MAX_TOKEN_TTL_SECS} seconds"),
            ));
        }
        let now = self.clock.now();
        let expires_at = now + Duration::seconds(ttl as i64);
        let claims = TokenClaims {
            ws: caller.workspace_id.to_string(),
            sub: sub.to_owned(),
            exp: expires_at.timestamp(),
            iat: now.timestamp_millis(),
            key: key.to_string(),
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).map_err(Error::internal)?);
        let mut mac = self.token_mac();
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let at = Utc.timestamp_opt(claims.exp, 0).single().unwrap_or(expires_at);
        Ok((format!("{TOKEN_PREFIX}{payload}.{signature}"), at))
    }

    /// Ends end-user tokens of the caller's workspace minted up to now: those of one `sub`, or
    /// (without one) every token. Tokens minted afterwards work. Needs an admin key.
    pub async fn revoke_end_user_tokens(&self, caller: &Caller, sub: Option<&str>) -> Result<DateTime<Utc>> {
        caller.require(Role::Admin)?;
        self.revoke_workspace_tokens(&caller.workspace_id, sub).await
    }

    /// The same, for the operator (`cabinet admin revoke-tokens`), who holds no key.
    pub async fn revoke_workspace_tokens(
        &self,
        ws: &WorkspaceId,
        sub: Option<&str>,
    ) -> Result<DateTime<Utc>> {
        let sub = sub.map(str::trim);
        if sub.is_some_and(|sub| sub.is_empty() || sub.chars().count() > 200) {
            return Err(Error::bad_request(Code::InvalidSub, "sub must be 1 to 200 characters"));
        }
        self.store.get_workspace(ws).await?;
        let at = self.clock.now();
        self.store.revoke_tokens(ws, sub.unwrap_or(""), at).await?;
        tracing::info!(workspace = %ws, every_sub = sub.is_none(), "end-user tokens revoked");
        Ok(at)
    }

    /// Checks an end-user token: signature (constant-time), expiry, workspace, and then that
    /// neither its key nor it was revoked (one lookup, so revocation is immediate).
    pub(crate) async fn verify_end_user_token(&self, token: &str) -> Result<Caller> {
        let invalid = || Error::Unauthenticated("invalid or expired end-user token");
        let (caller, claims) = self.read_end_user_token(token)?;
        let standing = self.store.token_standing(&caller.workspace_id, &claims.key, &claims.sub).await?;
        let revoked = standing.revoked_up_to.is_some_and(|cutoff| claims.iat <= cutoff.timestamp_millis());
        if !standing.key_live || revoked {
            return Err(invalid());
        }
        Ok(caller)
    }

    /// The end user a token names, when its signature and expiry hold (no lookup: it may still
    /// have been revoked).
    pub(crate) fn end_user_of_token(&self, token: &str) -> Option<Caller> {
        self.read_end_user_token(token).ok().map(|(caller, _)| caller)
    }

    /// A token's signature, expiry and claims, before any lookup.
    fn read_end_user_token(&self, token: &str) -> Result<(Caller, TokenClaims)> {
        let invalid = || Error::Unauthenticated("invalid or expired end-user token");
        let body = token.strip_prefix(TOKEN_PREFIX).ok_or_else(invalid)?;
        let (payload, signature) = body.split_once('.').ok_or_else(invalid)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| invalid())?;
        let mut mac = self.token_mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).map_err(|_| invalid())?;
        let claims: TokenClaims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?)
                .map_err(|_| invalid())?;
        if self.clock.now().timestamp() >= claims.exp {
            return Err(invalid());
        }
        let caller = Caller {
            workspace_id: WorkspaceId::parse(&claims.ws).map_err(|_| invalid())?,
            actor: Actor::EndUser { sub: claims.sub.clone() },
        };
        Ok((caller, claims))
    }

    /// The rules in effect for a file in `folder` (or a new file going there): the file's own
    /// (when given), then each folder up to the root, then the workspace's.
    pub(crate) async fn effective_rules(
        &self,
        ws: &WorkspaceId,
        file: Option<&FileId>,
        folder: Option<&FolderId>,
    ) -> Result<EffectiveRules> {
        let mut targets = Vec::new();
        if let Some(file) = file {
            targets.push(RuleTarget::File(file.clone()));
        }
        if let Some(folder) = folder {
            // A folder that is gone has no rules; any other failure (a path that cannot be read
            // whole) refuses rather than skipping the rules of the folders above.
            match self.store.folder_path(ws, folder).await {
                Ok(path) => targets.extend(path.into_iter().rev().map(|f| RuleTarget::Folder(f.id))),
                Err(Error::NotFound(_)) => {}
                Err(err) => return Err(err),
            }
        }
        targets.push(RuleTarget::Workspace);
        let set = self.store.access_rules(ws, &targets).await?;
        let layers: Vec<AccessRules> =
            targets.iter().map(|t| set.get(t).copied().unwrap_or_default()).collect();
        Ok(resolve(&layers))
    }

    /// Refuses (404 for reads, so nothing leaks; 403 otherwise) unless the caller may do
    /// `operation` to `file`.
    pub(crate) async fn authorize_file(
        &self,
        caller: &Caller,
        file: &FileRecord,
        operation: Operation,
    ) -> Result<()> {
        if let Actor::Key { role, .. } = &caller.actor {
            let needed = if operation == Operation::Read { Role::Read } else { Role::Write };
            return if *role >= needed { Ok(()) } else { caller.require(needed) };
        }
        let rules =
            self.effective_rules(&caller.workspace_id, Some(&file.id), file.folder_id.as_ref()).await?;
        if allows(rules.audience(operation), &caller.actor, file.created_by.as_deref()) {
            Ok(())
        } else if operation == Operation::Read {
            Err(Error::NotFound("file"))
        } else {
            Err(Error::Forbidden("the access rules do not allow this".to_owned()))
        }
    }

    /// Checks the caller may create a file in `folder`; returns who to record as its creator.
    pub(crate) async fn authorize_create(
        &self,
        caller: &Caller,
        folder: Option<&FolderId>,
    ) -> Result<Option<String>> {
        match &caller.actor {
            Actor::Key { .. } => {
                caller.require(Role::Write)?;
                Ok(None)
            }
            actor => {
                let rules = self.effective_rules(&caller.workspace_id, None, folder).await?;
                // Whoever creates a file is its creator: `creator` admits any end user here.
                let audience =
                    if rules.create == Audience::Creator { Audience::Authenticated } else { rules.create };
                if !allows(audience, actor, None) {
                    return Err(Error::Forbidden(
                        "the access rules do not allow creating files here".to_owned(),
                    ));
                }
                Ok(if rules.track_creator { caller.end_user().map(str::to_owned) } else { None })
            }
        }
    }

    /// The rules set on a target and those in effect there.
    pub async fn access_rules(&self, caller: &Caller, target: &RuleTarget) -> Result<RuleView> {
        caller.require(Role::Read)?;
        let ws = &caller.workspace_id;
        let effective = match target {
            RuleTarget::Workspace => self.effective_rules(ws, None, None).await?,
            RuleTarget::Folder(id) => {
                self.store.get_folder(ws, id).await?;
                self.effective_rules(ws, None, Some(id)).await?
            }
            RuleTarget::File(id) => {
                let file = self.store.get_file(ws, id).await?;
                self.effective_rules(ws, Some(id), file.folder_id.as_ref()).await?
            }
        };
        let own = self
            .store
            .access_rules(ws, std::slice::from_ref(target))
            .await?
            .remove(target)
            .unwrap_or_default();
        Ok(RuleView { own, effective })
    }

    /// Sets the rules of a target (fields left `None` inherit); needs an admin key.
    pub async fn set_access_rules(
        &self,
        caller: &Caller,
        target: &RuleTarget,
        rules: AccessRules,
    ) -> Result<RuleView> {
        caller.require(Role::Admin)?;
        let ws = &caller.workspace_id;
        match target {
            RuleTarget::Workspace => {}
            RuleTarget::Folder(id) => {
                self.store.get_folder(ws, id).await?;
            }
            RuleTarget::File(id) => {
                self.store.get_file(ws, id).await?;
            }
        }
        self.store.put_access_rules(ws, target, &rules, self.clock.now()).await?;
        self.access_rules(caller, target).await
    }

    /// A file anyone may read (its effective read rule is `public`), for the public URL.
    pub async fn public_file(&self, ws: &str, file: &str) -> Result<FileRecord> {
        let ws = WorkspaceId::parse(ws)?;
        let file = self.live_file(&ws, &FileId::parse(file)?).await?;
        let caller = Caller { workspace_id: ws, actor: Actor::Anonymous };
        self.authorize_file(&caller, &file, Operation::Read).await?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(read: Option<Audience>) -> AccessRules {
        AccessRules { read, ..Default::default() }
    }

    #[test]
    fn the_nearest_layer_that_sets_a_rule_wins_and_the_default_is_closed() {
        let effective =
            resolve(&[rules(None), rules(Some(Audience::Public)), rules(Some(Audience::Creator))]);
        assert_eq!(effective.read, Audience::Public);
        assert_eq!(effective.create, Audience::Admin);
        assert!(effective.track_creator);
        assert_eq!(resolve(&[]).delete, Audience::Admin);
    }

    #[test]
    fn each_audience_admits_exactly_its_callers() {
        let key = Actor::Key { id: crate::ApiKeyId::generate(), role: Role::Read };
        let alice = Actor::EndUser { sub: "alice".into() };
        let bob = Actor::EndUser { sub: "bob".into() };
        let nobody = Actor::Anonymous;
        let table = [
            (Audience::Public, [true, true, true, true]),
            (Audience::Authenticated, [true, true, true, false]),
            (Audience::Creator, [true, true, false, false]),
            (Audience::Admin, [true, false, false, false]),
        ];
        for (audience, expected) in table {
            let got = [&key, &alice, &bob, &nobody].map(|actor| allows(audience, actor, Some("alice")));
            assert_eq!(got, expected, "{audience:?}");
        }
    }
}
