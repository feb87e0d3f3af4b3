//! How many uploads each workspace and each API key may be receiving at once. A tenant that opens
//! many slow uploads fills its own slots, never the service's: past its cap it is refused with
//! `too_many_uploads` (429) before any byte of the body is read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::access::Actor;
use crate::error::{Error, Result};
use crate::ids::WorkspaceId;
use crate::{Caller, Code};

/// What a refused client is told to wait before trying again, in seconds.
pub const UPLOAD_RETRY_AFTER_SECS: u64 = 2;

/// The uploads being received, counted per workspace and per key.
#[derive(Debug, Default)]
pub struct TransferSlots {
    counts: Mutex<HashMap<String, u32>>,
}

/// One upload's hold on its slots, released when dropped (however the upload ends).
#[derive(Debug)]
pub struct TransferSlot {
    slots: Arc<TransferSlots>,
    holders: Vec<String>,
}

impl TransferSlots {
    /// Takes a slot for the workspace and, when the caller is a key, for the key; refuses when
    /// either is at its cap (0: no cap), taking neither.
    pub fn acquire(
        self: &Arc<Self>,
        workspace: &WorkspaceId,
        caller: Option<&Caller>,
        per_workspace: u32,
        per_key: u32,
    ) -> Result<TransferSlot> {
        let mut wanted = vec![(format!("ws:{workspace}"), per_workspace, "workspace")];
        if let Some(Caller { actor: Actor::Key { id, .. }, .. }) = caller {
            wanted.push((format!("key:{id}"), per_key, "API key"));
        }
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (holder, cap, what) in &wanted {
            let held = counts.get(holder).copied().unwrap_or(0);
            if *cap > 0 && held >= *cap {
                return Err(Error::TooManyRequests {
                    code: Code::TooManyUploads,
                    message: format!(
                        "this {what} already has {held} uploads in progress, the most allowed at once; \
                         retry when one has finished"
                    ),
                    retry_after_secs: UPLOAD_RETRY_AFTER_SECS,
                });
            }
        }
        let holders: Vec<String> = wanted.into_iter().map(|(holder, ..)| holder).collect();
        for holder in &holders {
            *counts.entry(holder.clone()).or_insert(0) += 1;
        }
        Ok(TransferSlot { slots: self.clone(), holders })
    }
}

impl Drop for TransferSlot {
    fn drop(&mut self) {
        let mut counts = self.slots.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for holder in &self.holders {
            if let Some(count) = counts.get_mut(holder) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(holder);
                }
            }
        }
    }
}

impl crate::Cabinet {
    /// A slot for one upload of `workspace` (and of the caller's key, when there is one), held
    /// while its bytes arrive; `too_many_uploads` (429) when the deployment's caps are reached.
    pub(crate) fn transfer_slot(
        &self,
        workspace: &WorkspaceId,
        caller: Option<&Caller>,
    ) -> Result<TransferSlot> {
        self.transfers.acquire(
            workspace,
            caller,
            self.settings.max_uploads_per_workspace,
            self.settings.max_uploads_per_key,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_past_its_cap_is_refused_until_a_slot_is_released() {
        let slots = Arc::new(TransferSlots::default());
        let (a, b) = (WorkspaceId::generate(), WorkspaceId::generate());
        let first = slots.acquire(&a, None, 2, 0).unwrap();
        let _second = slots.acquire(&a, None, 2, 0).unwrap();
        let refused = slots.acquire(&a, None, 2, 0).unwrap_err();
        assert_eq!(refused.code(), Code::TooManyUploads);
        assert!(slots.acquire(&b, None, 2, 0).is_ok(), "another workspace has its own slots");
        drop(first);
        assert!(slots.acquire(&a, None, 2, 0).is_ok());
    }
}
