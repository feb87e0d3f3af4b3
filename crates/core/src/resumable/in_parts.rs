//! Resumable uploads on a store that joins parts where the file will be (S3): the bytes go to the
//! store as the parts of its own multipart upload at the file's key, so they are written once and
//! the completion is CompleteMultipartUpload, with no copy and no 5 GiB CopyObject limit.
//!
//! Every part but the last has the same size (S3 wants at least 5 MiB but for the last), while a
//! request may bring any number of bytes: what a request leaves short of a whole part is kept as
//! the *tail*, an ordinary segment at the offset where the parts end, and a later request's bytes
//! are added to it until a part is full. Durable state is therefore:
//!
//! - `incoming/{ws}/{upload}/parts`: the store's multipart upload id and the part size, written
//!   before the first part;
//! - parts `1..n`, which S3 lists (each exists whole or not at all);
//! - the tail: the segment at the sum of the parts' sizes, if any.
//!
//! The offset is the parts' sizes plus the tail's. A part made of an old tail and new bytes lands
//! before the new tail is written and the old one removed, so a crash in between leaves the old
//! tail at an offset the parts have passed: it is ignored (and removed with the upload). A part
//! that fails leaves the offset at the parts before it. After CompleteMultipartUpload no parts
//! are listed and the object is at the file's key: the offset is its size until the file exists.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::segment_key;
use crate::error::{Error, Result};
use crate::model::{FileRecord, Upload};
use crate::ports::{Assembled, ByteStream, PartInfo};
use crate::{Cabinet, Code};

/// S3's most parts per multipart upload.
const MOST_PARTS: u64 = 10_000;
const MIB: u64 = 1024 * 1024;
/// Parts are at least this large (above S3's 5 MiB least) and at most `LARGEST_PART` (the memory
/// one appending request holds is about two parts).
const SMALLEST_PART: u64 = 8 * MIB;
const LARGEST_PART: u64 = 64 * MIB;

/// An upload whose bytes go to the store as parts.
#[derive(Debug, Clone)]
pub(super) struct InParts {
    multipart_id: String,
    part_size: u64,
}

/// Where an upload in parts stands.
#[derive(Debug)]
pub(super) struct PartsState {
    parts: Vec<PartInfo>,
    /// The parts' sizes together: where the tail starts.
    parts_bytes: u64,
    /// The tail's size (0: none).
    tail: u64,
    /// The object's size once the store has joined the parts (they are then no longer listed).
    assembled: Option<u64>,
}

impl PartsState {
    pub(super) fn offset(&self) -> u64 {
        self.assembled.unwrap_or(self.parts_bytes + self.tail)
    }
}

fn parts_key(upload: &Upload) -> String {
    format!("{}/parts", super::upload_folder(upload))
}

/// The part size for an upload of this length (unknown: the smallest, so up to 78 GiB).
fn part_size_for(length: Option<u64>) -> u64 {
    let wanted = length.map_or(SMALLEST_PART, |length| length.div_ceil(MOST_PARTS).next_multiple_of(MIB));
    wanted.clamp(SMALLEST_PART, LARGEST_PART)
}

fn with_parts(upload: &Upload, in_parts: &InParts) -> Upload {
    Upload { multipart_id: Some(in_parts.multipart_id.clone()), ..upload.clone() }
}

fn too_many_parts(part_size: u64) -> Error {
    Error::TooLarge {
        code: Code::FileTooLarge,
        message: format!("a resumable upload holds at most {} bytes on this store", MOST_PARTS * part_size),
    }
}

impl Cabinet {
    /// The upload's multipart upload, when its bytes go to the store as parts.
    pub(super) async fn in_parts(&self, upload: &Upload) -> Result<Option<InParts>> {
        if !self.blobs.joins_parts_in_place() {
            return Ok(None);
        }
        if let Some(known) = self.sessions.multipart.lock().expect("sessions lock").get(&upload.id) {
            return Ok(Some(known.clone()));
        }
        let key = parts_key(upload);
        if self.blobs.head(&key).await?.is_none() {
            return Ok(None);
        }
        let text = self.read_small_object(&key).await?;
        let (id, size) =
            text.trim().rsplit_once(' ').ok_or_else(|| Error::internal("a malformed parts record"))?;
        let part_size = size.parse().map_err(Error::internal)?;
        let in_parts = InParts { multipart_id: id.to_owned(), part_size };
        self.remember_in_parts(upload, &in_parts);
        Ok(Some(in_parts))
    }

    fn remember_in_parts(&self, upload: &Upload, in_parts: &InParts) {
        super::remember_bounded(&self.sessions.multipart, &upload.id, in_parts.clone());
    }

    /// Begins the store's multipart upload for a resumable upload that has no byte yet.
    pub(super) async fn begin_in_parts(&self, upload: &Upload, length: Option<u64>) -> Result<InParts> {
        let multipart_id = self
            .blobs
            .begin_parts(upload)
            .await?
            .ok_or_else(|| Error::internal("the store began no multipart upload"))?;
        let in_parts = InParts { multipart_id, part_size: part_size_for(length) };
        self.write_small_object(
            &parts_key(upload),
            &format!("{} {}", in_parts.multipart_id, in_parts.part_size),
        )
        .await?;
        self.remember_in_parts(upload, &in_parts);
        Ok(in_parts)
    }

    pub(super) async fn parts_state(&self, upload: &Upload, in_parts: &InParts) -> Result<PartsState> {
        let upload = with_parts(upload, in_parts);
        let parts = self.blobs.list_parts(&upload).await?;
        if parts.iter().enumerate().any(|(index, part)| part.part_number as usize != index + 1) {
            return Err(Error::internal(format!("upload {}: its parts are not numbered 1 to n", upload.id)));
        }
        if parts.is_empty() {
            if let Some(object) = self.blobs.head(&upload.blob_key).await? {
                return Ok(PartsState { parts, parts_bytes: 0, tail: 0, assembled: Some(object.size) });
            }
        }
        let parts_bytes = parts.iter().map(|part| part.size).sum();
        let tail = self.blobs.head(&segment_key(&upload, parts_bytes)).await?.map_or(0, |tail| tail.size);
        Ok(PartsState { parts, parts_bytes, tail, assembled: None })
    }

    /// Adds a request's bytes: each part sent as it fills (one in flight while the next fills),
    /// what is left kept as the new tail. Returns the offset reached; on an error the offset is
    /// where the parts that landed end.
    pub(super) async fn append_in_parts(
        &self,
        upload: &Upload,
        in_parts: &InParts,
        mut body: ByteStream<'static>,
    ) -> Result<u64> {
        let state = self.parts_state(upload, in_parts).await?;
        let upload = with_parts(upload, in_parts);
        let part_size = in_parts.part_size as usize;
        let old_tail = segment_key(&upload, state.parts_bytes);
        // The next part's bytes, as they arrived (never copied into one buffer).
        let mut pending: Vec<Bytes> = Vec::new();
        let mut pending_bytes = 0;
        if state.tail > 0 {
            pending = self.blobs.open(&old_tail, None).await?.try_collect().await?;
            pending_bytes = pending.iter().map(Bytes::len).sum();
        }
        let mut next_part = state.parts.len() as u64 + 1;
        let mut landed = state.parts_bytes;
        let mut sending: Option<tokio::task::JoinHandle<Result<PartInfo>>> = None;
        let mut arrived = false;
        let streamed: Result<()> = async {
            while let Some(chunk) = body.next().await {
                let mut chunk = chunk?;
                arrived |= !chunk.is_empty();
                while !chunk.is_empty() {
                    let piece = chunk.split_to((part_size - pending_bytes).min(chunk.len()));
                    pending_bytes += piece.len();
                    pending.push(piece);
                    if pending_bytes < part_size {
                        continue;
                    }
                    if next_part > MOST_PARTS {
                        return Err(too_many_parts(in_parts.part_size));
                    }
                    if let Some(previous) = sending.take() {
                        landed += previous.await.map_err(Error::internal)??.size;
                    }
                    let (blobs, upload, number, part) =
                        (self.blobs.clone(), upload.clone(), next_part as u32, std::mem::take(&mut pending));
                    pending_bytes = 0;
                    sending = Some(tokio::spawn(async move { blobs.put_part(&upload, number, part).await }));
                    next_part += 1;
                }
            }
            if let Some(last) = sending.take() {
                landed += last.await.map_err(Error::internal)??.size;
            }
            Ok(())
        }
        .await;
        if let Some(abandoned) = sending.take() {
            // It may still land: the offset then counts it, as it counts every listed part.
            let _ = abandoned.await;
        }
        streamed?;
        if !arrived {
            return Ok(state.offset());
        }
        if pending_bytes > 0 {
            self.write_object(&segment_key(&upload, landed), pending.concat().into()).await?;
        }
        if landed != state.parts_bytes && state.tail > 0 {
            // Its bytes are in a part now.
            self.delete_blob_quietly(&old_tail).await;
        }
        Ok(self.parts_state(&upload, in_parts).await?.offset())
    }

    /// Joins the parts (the tail sent as the last one) into the object at the file's key and
    /// verifies it (read back and hashed) into the file; `upload` is claimed (UPLOADING).
    pub(super) async fn complete_in_parts(&self, upload: &Upload, in_parts: &InParts) -> Result<FileRecord> {
        let state = self.parts_state(upload, in_parts).await?;
        let joined = with_parts(upload, in_parts);
        let size = match state.assembled {
            Some(size) => size,
            None => {
                let mut parts = state.parts;
                let tail_key = segment_key(upload, state.parts_bytes);
                if state.tail > 0 {
                    let tail: Vec<Bytes> = self.blobs.open(&tail_key, None).await?.try_collect().await?;
                    let number = parts.len() as u32 + 1;
                    parts.push(self.blobs.put_part(&joined, number, tail).await?);
                }
                let size = match self.blobs.assemble_parts(&joined, &parts).await? {
                    Assembled::InPlace { size } => size,
                    Assembled::Staged(staged) => {
                        self.blobs.discard(&staged.temp_key).await;
                        return Err(Error::internal("the store joined the parts elsewhere than in place"));
                    }
                };
                if state.tail > 0 {
                    // Its bytes are the object's last part now (a crash before this leaves it to
                    // the orphan sweep, once the upload has ended).
                    self.delete_blob_quietly(&tail_key).await;
                }
                size
            }
        };
        self.finish_in_place(upload, size).await
    }

    /// Aborts the store's multipart upload (its parts go); the tail and the record are removed
    /// with the rest of the upload's folder.
    pub(super) async fn abort_in_parts(&self, upload: &Upload, in_parts: &InParts) {
        if let Err(err) = self.blobs.remove_parts(&with_parts(upload, in_parts)).await {
            tracing::warn!(error = %err, upload = %upload.id, "could not abort an upload's multipart upload");
        }
    }

    /// Whether the upload's bytes go to the store as parts (its record exists).
    pub(super) async fn has_parts_record(&self, upload: &Upload) -> Result<bool> {
        Ok(self.blobs.joins_parts_in_place() && self.blobs.head(&parts_key(upload)).await?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_large_enough_for_s3_and_few_enough() {
        assert_eq!(part_size_for(None), SMALLEST_PART);
        assert_eq!(part_size_for(Some(1)), SMALLEST_PART);
        assert_eq!(part_size_for(Some(5 * 1024 * MIB)), SMALLEST_PART);
        let large = 200 * 1024 * MIB;
        let size = part_size_for(Some(large));
        assert!(large.div_ceil(size) <= MOST_PARTS && size.is_multiple_of(MIB), "{size}");
        assert_eq!(part_size_for(Some(u64::MAX / 2)), LARGEST_PART);
    }
}
