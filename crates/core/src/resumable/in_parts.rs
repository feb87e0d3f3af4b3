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
/// Parts are at least this large (above S3's 5 MiB least) and at most `LARGEST_PART` (a request's
/// tail, shorter than a part, is held in memory while it is written).
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

    /// Adds a request's `count` bytes (fewer when it is cut short). Each whole part they make is
    /// streamed to the store as it arrives (the old tail first), one part's request in flight
    /// while the next is fed, so memory holds no part; the bytes short of a whole part at the end
    /// are kept as the new tail. Returns the offset reached; on an error (or a cut in the middle
    /// of a part, whose bytes the store then does not keep) the offset is where the parts that
    /// landed end.
    pub(super) async fn append_in_parts(
        &self,
        upload: &Upload,
        in_parts: &InParts,
        mut body: ByteStream<'static>,
        count: u64,
    ) -> Result<u64> {
        let state = self.parts_state(upload, in_parts).await?;
        let upload = with_parts(upload, in_parts);
        let part_size = in_parts.part_size;
        let old_tail = segment_key(&upload, state.parts_bytes);
        // The old tail's bytes not yet in a part, and the body's not yet read.
        let mut tail_left = state.tail;
        let mut body_left = count;
        // What is left of a chunk after the part it ended was fed.
        let mut carry: Option<Bytes> = None;
        let mut next_part = state.parts.len() as u64 + 1;
        let mut landed = state.parts_bytes;
        let mut sending: Option<tokio::task::JoinHandle<Result<PartInfo>>> = None;
        let streamed: Result<()> = async {
            while tail_left + body_left >= part_size {
                if next_part > MOST_PARTS {
                    return Err(too_many_parts(in_parts.part_size));
                }
                // A few chunks between this request's body and the part's request to the store.
                let (mut feed, fed) = futures::channel::mpsc::channel::<std::io::Result<Bytes>>(4);
                let mut part: ByteStream<'static> = fed.boxed();
                if tail_left > 0 {
                    part = self.blobs.open(&old_tail, None).await?.chain(part).boxed();
                }
                let mut wanted = part_size - tail_left;
                let mut cut_short = false;
                let (blobs, number, sent) = (self.blobs.clone(), next_part as u32, upload.clone());
                let request =
                    tokio::spawn(async move { blobs.put_part_stream(&sent, number, part_size, part).await });
                while wanted > 0 {
                    let chunk = match carry.take() {
                        Some(chunk) => Some(chunk),
                        None => body.next().await.transpose()?,
                    };
                    let Some(mut chunk) = chunk else {
                        // Cut short: the part's request fails rather than storing a short part.
                        let cut = std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the request's body ended before the part was whole",
                        );
                        let _ = futures::SinkExt::send(&mut feed, Err(cut)).await;
                        cut_short = true;
                        break;
                    };
                    if chunk.len() as u64 > wanted {
                        carry = Some(chunk.split_off(wanted as usize));
                    }
                    wanted -= chunk.len() as u64;
                    body_left = body_left.saturating_sub(chunk.len() as u64);
                    if futures::SinkExt::send(&mut feed, Ok(chunk)).await.is_err() {
                        // The part's request has ended (failed): its answer says why.
                        break;
                    }
                }
                drop(feed);
                if let Some(previous) = sending.take() {
                    landed += previous.await.map_err(Error::internal)??.size;
                }
                if cut_short {
                    let _ = request.await;
                    return Err(Error::bad_request(Code::IncompleteBody, "the request's body ended early"));
                }
                if wanted > 0 {
                    request.await.map_err(Error::internal)??;
                    return Err(Error::internal(
                        "the store ended a part's request before its bytes were sent",
                    ));
                }
                sending = Some(request);
                tail_left = 0;
                next_part += 1;
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
        match streamed {
            Ok(()) => {}
            // A cut: the parts that landed are kept.
            Err(err) if err.code() == Code::IncompleteBody => {
                if landed != state.parts_bytes && state.tail > 0 {
                    self.delete_blob_quietly(&old_tail).await;
                }
                return Ok(self.parts_state(&upload, in_parts).await?.offset());
            }
            Err(err) => return Err(err),
        }
        // Less than a part is left (the old tail too, when no part was made): the new tail.
        let mut pending: Vec<Bytes> = Vec::new();
        if tail_left > 0 {
            pending = self.blobs.open(&old_tail, None).await?.try_collect().await?;
        }
        pending.extend(carry.take());
        while let Some(chunk) = body.next().await {
            pending.push(chunk?);
        }
        let pending_bytes: u64 = pending.iter().map(|piece| piece.len() as u64).sum();
        if pending_bytes == tail_left && landed == state.parts_bytes {
            return Ok(state.offset());
        }
        if pending_bytes > 0 {
            self.write_pieces(&segment_key(&upload, landed), pending).await?;
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
