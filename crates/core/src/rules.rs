//! MINIMAL STAND-IN for per-file access rules, until the core's own access rules (issue 3, item
//! 9: rules inherited file → folder → workspace default, enforced for end-user tokens) land on
//! main. It only records and reports a file's rules; nothing enforces them yet, and there are no
//! folder rules, so a file inherits straight from the workspace default (`admin` for all three
//! operations: only API keys; `track_creator` on). The rules are kept in the file's custom
//! metadata under [`RULES_KEY`], so they persist and every process sees them without a schema
//! change. Replace this module with the real one, keeping `set_file_access_rules` and
//! `file_access_rules`' shapes if possible.

use std::str::FromStr;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::ids::FileId;
use crate::model::Role;
use crate::ports::FileChange;
use crate::{Cabinet, Caller};

/// Where the stand-in keeps a file's own rules, inside its custom metadata.
pub const RULES_KEY: &str = "cabinet_access_rules";

/// Who may do an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Anyone, even without a token.
    Public,
    /// Any end user of the workspace.
    Authenticated,
    /// The end user who uploaded the file.
    Creator,
    /// API keys only.
    Admin,
}

impl Audience {
    /// The audience's name as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Public => "public",
            Audience::Authenticated => "authenticated",
            Audience::Creator => "creator",
            Audience::Admin => "admin",
        }
    }
}

impl FromStr for Audience {
    type Err = Error;

    fn from_str(raw: &str) -> Result<Self> {
        Ok(match raw {
            "public" => Audience::Public,
            "authenticated" => Audience::Authenticated,
            "creator" => Audience::Creator,
            "admin" => Audience::Admin,
            _ => {
                return Err(Error::bad_request(
                    "invalid_audience",
                    "an access rule is public, authenticated, creator or admin",
                ))
            }
        })
    }
}

/// A file's effective rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileAccessRules {
    pub create: Audience,
    pub read: Audience,
    pub delete: Audience,
    pub track_creator: bool,
}

/// The workspace default every file inherits until it has rules of its own.
pub const WORKSPACE_DEFAULT: FileAccessRules = FileAccessRules {
    create: Audience::Admin,
    read: Audience::Admin,
    delete: Audience::Admin,
    track_creator: true,
};

/// What to change; `None` keeps the current (possibly inherited) value.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessRulesChange {
    pub create: Option<Audience>,
    pub read: Option<Audience>,
    pub delete: Option<Audience>,
    pub track_creator: Option<bool>,
}

fn stored(metadata: &serde_json::Map<String, Value>) -> FileAccessRules {
    let mut rules = WORKSPACE_DEFAULT;
    let Some(Value::Object(own)) = metadata.get(RULES_KEY) else { return rules };
    let pick = |name: &str, inherited: Audience| {
        own.get(name).and_then(Value::as_str).and_then(|raw| raw.parse().ok()).unwrap_or(inherited)
    };
    rules.create = pick("create", rules.create);
    rules.read = pick("read", rules.read);
    rules.delete = pick("delete", rules.delete);
    rules.track_creator = own.get("track_creator").and_then(Value::as_bool).unwrap_or(rules.track_creator);
    rules
}

impl Cabinet {
    /// A live file's effective access rules.
    pub async fn file_access_rules(&self, caller: &Caller, id: &FileId) -> Result<FileAccessRules> {
        caller.require(Role::Read)?;
        let file = self.live_file(&caller.workspace_id, id).await?;
        Ok(stored(&file.metadata))
    }

    /// Sets a live file's own rules; needs an admin key, since rules decide who else may act.
    pub async fn set_file_access_rules(
        &self,
        caller: &Caller,
        id: &FileId,
        change: AccessRulesChange,
    ) -> Result<FileAccessRules> {
        caller.require(Role::Admin)?;
        let ws = &caller.workspace_id;
        let file = self.live_file(ws, id).await?;
        let current = stored(&file.metadata);
        let rules = FileAccessRules {
            create: change.create.unwrap_or(current.create),
            read: change.read.unwrap_or(current.read),
            delete: change.delete.unwrap_or(current.delete),
            track_creator: change.track_creator.unwrap_or(current.track_creator),
        };
        let mut metadata = file.metadata;
        metadata.insert(
            RULES_KEY.to_owned(),
            json!({
                "create": rules.create.as_str(),
                "read": rules.read.as_str(),
                "delete": rules.delete.as_str(),
                "track_creator": rules.track_creator,
            }),
        );
        let change = FileChange { metadata: Some(metadata), ..FileChange::default() };
        self.store.update_file(ws, id, &change, self.clock.now()).await?;
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_rules_inherits_the_workspace_default() {
        assert_eq!(stored(&serde_json::Map::new()), WORKSPACE_DEFAULT);
    }

    #[test]
    fn own_rules_override_only_what_they_name() {
        let metadata = json!({RULES_KEY: {"read": "public", "track_creator": false}});
        let rules = stored(metadata.as_object().unwrap());
        assert_eq!(rules.read, Audience::Public);
        assert_eq!(rules.create, Audience::Admin);
        assert!(!rules.track_creator);
    }

    #[test]
    fn audiences_parse_and_print_alike() {
        for name in ["public", "authenticated", "creator", "admin"] {
            assert_eq!(name.parse::<Audience>().unwrap().as_str(), name);
        }
        assert!("everyone".parse::<Audience>().is_err());
    }
}
