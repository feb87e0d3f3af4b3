//! The event feed: what changed in a workspace, in the order it committed, for apps that pull.
//! The database writes each event in the transaction of its change (the outbox, see
//! `EventStore`), so a reader that keeps the number of the last event it saw misses none and
//! sees none of a change that rolled back.

use std::time::Duration;

use crate::access::Caller;
use crate::model::Role;
use crate::{Cabinet, EventRecord, Result};

/// The most events one read returns.
pub const MAX_EVENTS_PER_READ: u32 = 500;

/// The longest a read waits for the first new event.
pub const MAX_EVENT_WAIT: Duration = Duration::from_secs(60);

/// How often a waiting read looks again: each look is one indexed lookup, and another node's
/// change shows up within it.
const LOOK_AGAIN_EVERY: Duration = Duration::from_millis(200);

/// One read of the feed.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<EventRecord>,
    /// The number to read after next time: the last event's, or `after` when there was none.
    pub last: u64,
}

impl Cabinet {
    /// The caller's workspace's events numbered after `after` (at most `limit`, clamped to
    /// `MAX_EVENTS_PER_READ`); when there are none yet, waits up to `wait` (clamped to
    /// `MAX_EVENT_WAIT`) for the first (a long poll). Needs a key with the read role.
    pub async fn events(&self, caller: &Caller, after: u64, limit: u32, wait: Duration) -> Result<EventPage> {
        caller.require(Role::Read)?;
        let limit = limit.clamp(1, MAX_EVENTS_PER_READ);
        let deadline = tokio::time::Instant::now() + wait.min(MAX_EVENT_WAIT);
        loop {
            let events = self.store.events_after(&caller.workspace_id, after, limit).await?;
            let now = tokio::time::Instant::now();
            if !events.is_empty() || now >= deadline {
                let last = events.last().map_or(after, |event| event.seq);
                return Ok(EventPage { events, last });
            }
            tokio::time::sleep(LOOK_AGAIN_EVERY.min(deadline - now)).await;
        }
    }

    /// Removes events older than the retention (`Settings::event_retention`); returns how many.
    pub async fn prune_old_events(&self) -> Result<u64> {
        self.store.prune_events(self.clock.now() - self.settings.event_retention).await
    }

    /// The number of the caller's workspace's newest event: where a reader that wants only what
    /// happens from now on starts.
    pub async fn newest_event(&self, caller: &Caller) -> Result<u64> {
        caller.require(Role::Read)?;
        self.store.newest_event(&caller.workspace_id).await
    }
}
