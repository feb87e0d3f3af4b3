//! What a workspace holds and may still hold. The ledger itself (`used_bytes`, `reserved_bytes`)
//! is changed only by the store calls that create, finish, fail and delete.

use crate::error::Result;
use crate::model::{Quota, Role, Usage};
use crate::{Cabinet, Caller};

impl Cabinet {
    /// The caller's workspace quota.
    pub async fn quota(&self, caller: &Caller) -> Result<Quota> {
        caller.require(Role::Read)?;
        let workspace = self.store.get_workspace(&caller.workspace_id).await?;
        Ok(Quota {
            used_bytes: workspace.used_bytes,
            reserved_bytes: workspace.reserved_bytes,
            limit_bytes: workspace.limit_bytes,
            max_file_size_bytes: self.max_file_bytes(workspace.max_file_bytes),
        })
    }

    /// The caller's workspace totals.
    pub async fn usage(&self, caller: &Caller) -> Result<Usage> {
        caller.require(Role::Read)?;
        self.store.usage(&caller.workspace_id).await
    }
}
