//! What a workspace holds and may still hold. The ledger itself (`used_bytes`, `reserved_bytes`)
//! is changed only by the store calls that create, finish, fail and delete.

use crate::error::Result;
use crate::model::{Quota, Role, Usage, Workspace};
use crate::{Cabinet, Caller, Code};

impl Cabinet {
    /// The caller's workspace quota.
    pub async fn quota(&self, caller: &Caller) -> Result<Quota> {
        caller.require(Role::Read)?;
        let workspace = self.store.get_workspace(&caller.workspace_id).await?;
        Ok(self.quota_of(&workspace))
    }

    /// A workspace's ledger and limits: the one place the quota arithmetic reads them from.
    pub(crate) fn quota_of(&self, workspace: &Workspace) -> Quota {
        Quota {
            used_bytes: workspace.used_bytes,
            reserved_bytes: workspace.reserved_bytes,
            limit_bytes: workspace.limit_bytes,
            max_file_size_bytes: self.max_file_bytes(workspace.max_file_bytes),
        }
    }

    /// The largest file a workspace may hold: its own cap, within the server's.
    pub(crate) fn max_file_bytes(&self, workspace_max: Option<u64>) -> u64 {
        workspace_max.map_or(self.settings.max_file_bytes, |max| max.min(self.settings.max_file_bytes))
    }

    /// The caller's workspace totals.
    pub async fn usage(&self, caller: &Caller) -> Result<Usage> {
        caller.require(Role::Read)?;
        self.store.usage(&caller.workspace_id).await
    }
}

/// Storage over a time range, for billing by storage per day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metering {
    pub from: chrono::DateTime<chrono::Utc>,
    pub to: chrono::DateTime<chrono::Utc>,
    /// The integral of `used_bytes` over the range (saturating at `u64::MAX`).
    pub byte_seconds: u64,
    /// The same in GB-days (10^9 bytes for 86,400 s).
    pub gb_days: f64,
}

/// Integrates a step function: `start` from `from`, then each (at, value) change, until `to`.
pub fn byte_seconds(
    start: u64,
    changes: &[(chrono::DateTime<chrono::Utc>, u64)],
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> u64 {
    let mut total: u128 = 0;
    let (mut value, mut since) = (start, from);
    for &(at, next) in changes.iter().filter(|(at, _)| *at > from && *at < to) {
        total += u128::from(value) * (at - since).num_milliseconds().max(0) as u128;
        (value, since) = (next, at);
    }
    total += u128::from(value) * (to - since).num_milliseconds().max(0) as u128;
    u64::try_from(total / 1000).unwrap_or(u64::MAX)
}

impl Cabinet {
    /// Byte-seconds and GB-days stored over `[from, to)`: by default the last 30 days.
    pub async fn metering(
        &self,
        caller: &Caller,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Metering> {
        caller.require(Role::Read)?;
        // Storage not yet had is not billed: a `to` in the future ends the range now.
        let now = self.clock.now();
        let to = to.map_or(now, |to| to.min(now));
        let from = from.unwrap_or(to - chrono::Duration::days(30));
        if from >= to {
            return Err(crate::Error::bad_request(
                Code::InvalidRange,
                "from must be before to, and before now",
            ));
        }
        let (start, changes) = self.store.usage_history(&caller.workspace_id, from, to).await?;
        let byte_seconds = byte_seconds(start, &changes, from, to);
        Ok(Metering { from, to, byte_seconds, gb_days: byte_seconds as f64 / (1e9 * 86_400.0) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    #[test]
    fn byte_seconds_integrate_the_steps_inside_the_range() {
        let t0 = Utc.timestamp_opt(1_000_000, 0).unwrap();
        let at = |s: i64| t0 + Duration::seconds(s);
        // 100 B for 10 s, 300 B for 5 s, 0 B for 5 s.
        let changes = [(at(10), 300), (at(15), 0), (at(99), 7)];
        assert_eq!(byte_seconds(100, &changes, t0, at(20)), 100 * 10 + 300 * 5);
        assert_eq!(byte_seconds(5, &[], t0, at(2)), 10);
        assert_eq!(byte_seconds(u64::MAX, &[], t0, at(10_000)), u64::MAX);
    }
}
