//! `RecentReads`, the read cache a node keeps in its memory (`ReadCache`). A short memory of what
//! signed downloads read. A popular file's URL (an avatar, a thumbnail) is
//! fetched thousands of times a second; without this each fetch is a database lookup and a file
//! read, each a round trip to another thread, and those handoffs were most of the cost of serving
//! a small file.
//!
//! Records are kept for [`RECORD_TTL`] and forgotten at once when this process changes files of
//! their workspace, so a change made elsewhere (another node) shows within that window. The bytes
//! of small objects are kept by blob key: an object's bytes never change under its key, and they
//! are only served after a fresh-enough record says the file is still there.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

use cabinet_core::ports::{ReadCache, SMALL_OBJECT_BYTES};
use cabinet_core::{FileId, FileRecord, WorkspaceId};

use crate::lock;

/// How long a looked-up file record is trusted.
pub const RECORD_TTL: Duration = Duration::from_secs(1);
/// At most this many records are kept.
const MAX_RECORDS: usize = 4096;
/// At most this many bytes of small objects are kept.
const MAX_CACHED_BYTES: usize = 32 * 1024 * 1024;

type RecordKey = (WorkspaceId, FileId);

/// Records for [`RECORD_TTL`] and small objects' bytes, in this process's memory, within fixed
/// budgets.
#[derive(Default)]
pub struct RecentReads {
    records: Mutex<HashMap<RecordKey, (Instant, FileRecord)>>,
    objects: Mutex<Objects>,
}

#[derive(Default)]
struct Objects {
    by_key: HashMap<String, Bytes>,
    total: usize,
}

impl ReadCache for RecentReads {
    /// A live file's record, if it was looked up less than [`RECORD_TTL`] ago.
    fn record(&self, ws: &WorkspaceId, id: &FileId) -> Option<FileRecord> {
        let records = lock(&self.records);
        let key = (ws.clone(), id.clone());
        match records.get(&key) {
            Some((at, file)) if at.elapsed() < RECORD_TTL => Some(file.clone()),
            _ => None,
        }
    }

    /// Remembers a live file's record.
    fn keep_record(&self, file: &FileRecord) {
        let mut records = lock(&self.records);
        if records.len() >= MAX_RECORDS {
            records.retain(|_, (at, _)| at.elapsed() < RECORD_TTL);
            if records.len() >= MAX_RECORDS {
                records.clear();
            }
        }
        records.insert((file.workspace_id.clone(), file.id.clone()), (Instant::now(), file.clone()));
    }

    /// Forgets every record of a workspace whose files changed.
    fn forget_workspace(&self, ws: &WorkspaceId) {
        let mut records = lock(&self.records);
        records.retain(|(workspace, _), _| workspace != ws);
    }

    /// A small object's bytes, if kept.
    fn object(&self, blob_key: &str) -> Option<Bytes> {
        let objects = lock(&self.objects);
        objects.by_key.get(blob_key).cloned()
    }

    /// Keeps a small object's bytes; when the budget is spent, starts over.
    fn keep_object(&self, blob_key: &str, bytes: Bytes) {
        if bytes.len() as u64 > SMALL_OBJECT_BYTES {
            return;
        }
        let mut objects = lock(&self.objects);
        if objects.total + bytes.len() > MAX_CACHED_BYTES {
            objects.by_key.clear();
            objects.total = 0;
        }
        objects.total += bytes.len();
        if let Some(previous) = objects.by_key.insert(blob_key.to_owned(), bytes) {
            objects.total -= previous.len();
        }
    }

    /// Forgets an object whose blob is deleted.
    fn forget_object(&self, blob_key: &str) {
        let mut objects = lock(&self.objects);
        if let Some(previous) = objects.by_key.remove(blob_key) {
            objects.total -= previous.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn file(ws: &WorkspaceId) -> FileRecord {
        let id = FileId::generate();
        FileRecord::new(
            ws.clone(),
            id.clone(),
            "a.txt".into(),
            "text/plain".into(),
            3,
            "0".repeat(64),
            None,
            format!("{ws}/{id}"),
            Utc::now(),
        )
    }

    #[test]
    fn records_are_kept_per_workspace_and_forgotten_with_it() {
        let hot = RecentReads::default();
        let (a, b) = (WorkspaceId::generate(), WorkspaceId::generate());
        let (in_a, in_b) = (file(&a), file(&b));
        hot.keep_record(&in_a);
        hot.keep_record(&in_b);
        assert_eq!(hot.record(&a, &in_a.id).map(|f| f.id), Some(in_a.id.clone()));
        assert!(hot.record(&b, &in_a.id).is_none(), "scoped by workspace");
        hot.forget_workspace(&a);
        assert!(hot.record(&a, &in_a.id).is_none());
        assert!(hot.record(&b, &in_b.id).is_some());
    }

    #[test]
    fn records_expire() {
        let hot = RecentReads::default();
        let ws = WorkspaceId::generate();
        let kept = file(&ws);
        hot.records.lock().unwrap().insert(
            (ws.clone(), kept.id.clone()),
            (Instant::now() - RECORD_TTL - Duration::from_millis(1), kept.clone()),
        );
        assert!(hot.record(&ws, &kept.id).is_none());
    }

    #[test]
    fn objects_stay_within_their_budget() {
        let hot = RecentReads::default();
        hot.keep_object("big", Bytes::from(vec![0; SMALL_OBJECT_BYTES as usize + 1]));
        assert!(hot.object("big").is_none(), "large objects are not kept");
        let chunk = Bytes::from(vec![1; SMALL_OBJECT_BYTES as usize]);
        let fits = MAX_CACHED_BYTES / chunk.len();
        for i in 0..=fits {
            hot.keep_object(&format!("k{i}"), chunk.clone());
            assert!(hot.objects.lock().unwrap().total <= MAX_CACHED_BYTES);
        }
        assert!(hot.object(&format!("k{fits}")).is_some(), "the newest is kept");
        hot.forget_object(&format!("k{fits}"));
        assert!(hot.object(&format!("k{fits}")).is_none());
        assert_eq!(hot.objects.lock().unwrap().total, 0);
    }
}
