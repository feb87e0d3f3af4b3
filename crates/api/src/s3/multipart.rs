//! Multipart uploads over the core's staged parts: each part is reserved against the quota as it
//! arrives, verified (Content-MD5, checksums) and kept under its number and MD5 (a part sent
//! again replaces the earlier), so completing with a part's ETag finds exactly the bytes that
//! ETag names. The upload keeps a note of its key and user metadata, for ListMultipartUploads and
//! the completion. Completion streams the parts, in order, through the same path as a PUT; the
//! object's ETag is S3's multipart form (the MD5 of the parts' MD5s, `-`, their count).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;

use cabinet_core::s3_objects::{S3Checksum, S3Headers};
use cabinet_core::{Cabinet, Caller, Error as CoreError, UploadId};
use futures::StreamExt;
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3Result, TrailingHeaders};

use super::listing::{encoded, is_url};
use super::objects::{
    check_write_conditions, checksum_answer, checksum_of, copy_source, described, digest_of, find,
    hasher_for, hasher_of, headers_of, parse_key, store, CopyConditions, Declared, Found, Measured,
    NewObject, PartSums, Verifying, Writes, ALGORITHMS,
};
use super::{s3_error_of, timestamp};

/// S3's most parts in one upload.
const MAX_PARTS: i32 = 10_000;
/// The smallest a part may be but the last, S3's limit.
const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// The most parts (or uploads) one listing returns, S3's default and limit.
const MOST_LISTED: i32 = 1000;

/// What an upload keeps of its creation until it completes.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Note {
    key: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    metadata: HashMap<String, String>,
    #[serde(default)]
    headers: S3Headers,
    /// The object's own checksum asked for at creation: its algorithm and type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checksum: Option<(String, String)>,
}

/// The algorithm and type of a multipart object's own checksum, as S3 takes them: COMPOSITE by
/// default, but CRC64NVME's, which is only FULL_OBJECT; SHA1 and SHA256 are only COMPOSITE.
fn checksum_kind(algorithm: &str, kind: Option<&str>) -> S3Result<(String, String)> {
    let algorithm = algorithm.to_ascii_uppercase();
    if !ALGORITHMS.contains(&algorithm.as_str()) {
        return Err(s3_error!(InvalidRequest, "unknown checksum algorithm {algorithm}"));
    }
    let default = if algorithm == "CRC64NVME" { ChecksumType::FULL_OBJECT } else { ChecksumType::COMPOSITE };
    let kind = kind.map_or(default.to_owned(), str::to_ascii_uppercase);
    let allowed = match kind.as_str() {
        ChecksumType::COMPOSITE => algorithm != "CRC64NVME",
        ChecksumType::FULL_OBJECT => !algorithm.starts_with("SHA"),
        _ => false,
    };
    if !allowed {
        return Err(s3_error!(InvalidRequest, "the checksum type {kind} is not one {algorithm} can be"));
    }
    Ok((algorithm, kind))
}

fn upload_id(raw: &str) -> S3Result<UploadId> {
    UploadId::parse(raw).map_err(|_| s3_error!(NoSuchUpload))
}

fn no_such_upload(err: CoreError) -> S3Error {
    match err {
        CoreError::NotFound(_) => s3_error!(NoSuchUpload),
        other => s3_error_of(other),
    }
}

pub(super) async fn create(
    cabinet: &Cabinet,
    caller: &Caller,
    input: CreateMultipartUploadInput,
) -> S3Result<CreateMultipartUploadOutput> {
    let path = parse_key(&input.key)?;
    let Some(name) = path.name else {
        return Err(s3_error!(InvalidArgument, "a key ending in / is a folder and takes no bytes"));
    };
    let metadata = input.metadata.clone().unwrap_or_default();
    if !metadata.is_empty() {
        let custom =
            metadata.iter().map(|(key, value)| (key.clone(), serde_json::Value::String(value.clone())));
        cabinet_core::metadata::validate_custom(&custom.collect()).map_err(s3_error_of)?;
    }
    let headers = headers_of(
        input.cache_control.as_ref(),
        input.content_disposition.as_ref(),
        input.content_encoding.as_ref(),
        input.content_language.as_ref(),
        input.expires.as_ref(),
    )?;
    let checksum = match (&input.checksum_algorithm, &input.checksum_type) {
        (Some(algorithm), kind) => {
            Some(checksum_kind(algorithm.as_str(), kind.as_ref().map(ChecksumType::as_str))?)
        }
        (None, Some(_)) => {
            return Err(s3_error!(InvalidRequest, "x-amz-checksum-type needs x-amz-checksum-algorithm"))
        }
        (None, None) => None,
    };
    let answered = checksum.clone();
    let note = serde_json::to_string(&Note { key: input.key.clone(), metadata, headers, checksum })
        .map_err(|err| S3Error::with_message(s3s::S3ErrorCode::InternalError, err.to_string()))?;
    let upload = cabinet
        .begin_staged_parts(caller, name, &note, input.content_type.as_deref())
        .await
        .map_err(s3_error_of)?;
    Ok(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload.id.to_string()),
        checksum_algorithm: answered
            .as_ref()
            .map(|(algorithm, _)| ChecksumAlgorithm::from(algorithm.clone())),
        checksum_type: answered.map(|(_, kind)| ChecksumType::from(kind)),
        ..Default::default()
    })
}

pub(super) async fn upload_part(
    cabinet: &Cabinet,
    caller: &Caller,
    input: UploadPartInput,
    trailers: Option<TrailingHeaders>,
) -> S3Result<UploadPartOutput> {
    let id = upload_id(&input.upload_id)?;
    if !(1..=MAX_PARTS).contains(&input.part_number) {
        return Err(s3_error!(InvalidArgument, "part numbers run from 1 to {MAX_PARTS}"));
    }
    let Some(length) = input.content_length.and_then(|length| u64::try_from(length).ok()) else {
        return Err(s3_error!(MissingContentLength));
    };
    let declared = Declared {
        content_md5: input.content_md5.clone(),
        checksums: Checksum {
            checksum_crc32: input.checksum_crc32.clone(),
            checksum_crc32c: input.checksum_crc32c.clone(),
            checksum_sha1: input.checksum_sha1.clone(),
            checksum_sha256: input.checksum_sha256.clone(),
            checksum_crc64nvme: input.checksum_crc64nvme.clone(),
            ..Default::default()
        },
        algorithm: input.checksum_algorithm.as_ref().map(|algorithm| algorithm.as_str().to_owned()),
        parts: None,
    };
    declared.check()?;
    let body: cabinet_core::ByteStream<'static> = match input.body {
        Some(body) => Box::pin(body.map(|chunk| chunk.map_err(std::io::Error::other))),
        None => Box::pin(futures::stream::empty()),
    };
    let measured =
        stage_verified(cabinet, caller, &id, input.part_number, length, body, declared, trailers).await?;
    let checksums = measured.checksums;
    Ok(UploadPartOutput {
        e_tag: Some(ETag::Strong(measured.md5_hex.unwrap_or_default())),
        checksum_crc32: checksums.checksum_crc32,
        checksum_crc32c: checksums.checksum_crc32c,
        checksum_sha1: checksums.checksum_sha1,
        checksum_sha256: checksums.checksum_sha256,
        checksum_crc64nvme: checksums.checksum_crc64nvme,
        ..Default::default()
    })
}

/// Stages part `number` of `length` bytes, verified as it streams (its MD5 always, and what the
/// client declared): what was measured, or why it was refused.
#[allow(clippy::too_many_arguments)]
async fn stage_verified(
    cabinet: &Cabinet,
    caller: &Caller,
    id: &UploadId,
    number: i32,
    length: u64,
    body: cabinet_core::ByteStream<'static>,
    declared: Declared,
    trailers: Option<TrailingHeaders>,
) -> S3Result<Measured> {
    let measured = Arc::new(Mutex::new(Measured::default()));
    let verifying = Verifying {
        inner: body,
        md5: Some(Md5::new()),
        hasher: Some(hasher_for(&declared)?),
        summing: None,
        declared,
        trailers,
        measured: measured.clone(),
    };
    let named = measured.clone();
    let tag = move || {
        let measured = named.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        measured.md5_hex.clone().unwrap_or_default()
    };
    let staged = cabinet.stage_part(caller, id, number as u32, length, Box::pin(verifying), &tag).await;
    let measured = std::mem::take(&mut *measured.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    if let Err(err) = staged {
        if let Some(mismatch) = measured.mismatch {
            return Err(S3Error::with_message(s3s::S3ErrorCode::BadDigest, mismatch));
        }
        return Err(no_such_upload(err));
    }
    Ok(measured)
}

/// `bytes=first-last` (both inclusive, S3's only form for a copy source range). A range not of
/// that form is `InvalidArgument` (400); one of that form outside the source `InvalidRange`
/// (416), as S3 answers them.
fn copy_range(range: &str, size: u64) -> S3Result<cabinet_core::ByteRange> {
    let malformed =
        || s3_error!(InvalidArgument, "x-amz-copy-source-range must be of the form bytes=first-last");
    let (first, last) =
        range.strip_prefix("bytes=").and_then(|span| span.split_once('-')).ok_or_else(malformed)?;
    let (first, last): (u64, u64) =
        (first.parse().map_err(|_| malformed())?, last.parse().map_err(|_| malformed())?);
    if first > last || last >= size {
        return Err(s3_error!(InvalidRange, "x-amz-copy-source-range must lie within the source"));
    }
    Ok(cabinet_core::ByteRange { first, last })
}

/// UploadPartCopy: part `number` made of an existing object's bytes (all, or a range), read and
/// staged like any part (reserved, hashed: its ETag is its MD5).
pub(super) async fn upload_part_copy(
    cabinet: &Cabinet,
    source_caller: &Caller,
    source_key: &str,
    caller: &Caller,
    input: UploadPartCopyInput,
) -> S3Result<UploadPartCopyOutput> {
    let id = upload_id(&input.upload_id)?;
    if !(1..=MAX_PARTS).contains(&input.part_number) {
        return Err(s3_error!(InvalidArgument, "part numbers run from 1 to {MAX_PARTS}"));
    }
    // The upload first: a part for an upload that is not there reads nothing. One begun with a
    // checksum algorithm answers each copied part's checksum of it, as S3 does (the client lists
    // it at completion).
    let note = note_of(&cabinet.staged_parts_note(caller, &id).await.map_err(no_such_upload)?);
    let declared =
        Declared { algorithm: note.checksum.map(|(algorithm, _)| algorithm), ..Default::default() };
    let conditions = CopyConditions {
        if_match: input.copy_source_if_match.as_ref(),
        if_none_match: input.copy_source_if_none_match.as_ref(),
        if_modified_since: input.copy_source_if_modified_since.as_ref(),
        if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
    };
    let source = copy_source(cabinet, source_caller, source_key, conditions).await?;
    let range = input.copy_source_range.as_deref().map(|range| copy_range(range, source.size)).transpose()?;
    let length = range.map_or(source.size, |range| range.last - range.first + 1);
    let body = cabinet.read_file(&source, range).await.map_err(s3_error_of)?;
    let measured =
        stage_verified(cabinet, caller, &id, input.part_number, length, body, declared, None).await?;
    let checksums = measured.checksums;
    Ok(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(measured.md5_hex.unwrap_or_default())),
            last_modified: Some(timestamp(cabinet.now())),
            checksum_crc32: checksums.checksum_crc32,
            checksum_crc32c: checksums.checksum_crc32c,
            checksum_sha1: checksums.checksum_sha1,
            checksum_sha256: checksums.checksum_sha256,
            checksum_crc64nvme: checksums.checksum_crc64nvme,
        }),
        ..Default::default()
    })
}

/// Completions under way on this node, by upload: a retry of one waits for it rather than find
/// the upload ended.
#[derive(Default)]
pub(super) struct Completing(Mutex<HashMap<UploadId, tokio::sync::watch::Receiver<bool>>>);

impl Completing {
    /// Registers a completion; it is removed (and its waiters woken) when the guard drops.
    fn begin(self: &Arc<Self>, id: &UploadId) -> CompletingGuard {
        let (done, waiting) = tokio::sync::watch::channel(false);
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(id.clone(), waiting);
        CompletingGuard { completing: self.clone(), id: id.clone(), _done: done }
    }

    /// Waits for a completion of this upload under way, if there is one.
    async fn wait_for(&self, id: &UploadId) {
        let waiting = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(id).cloned();
        if let Some(mut waiting) = waiting {
            let _ = waiting.wait_for(|done| *done).await;
        }
    }
}

struct CompletingGuard {
    completing: Arc<Completing>,
    id: UploadId,
    _done: tokio::sync::watch::Sender<bool>,
}

impl Drop for CompletingGuard {
    fn drop(&mut self) {
        self.completing.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&self.id);
    }
}

/// The parts a CompleteMultipartUpload names, checked for order and form, with the ETag S3 gives
/// the object they make (the MD5 of their MD5s, then `-` and their count). A number listed more
/// than once (a client that sent a part again and kept both answers) counts once, with the ETag
/// listed last, as S3 takes it.
fn numbered_parts(parts: &[CompletedPart]) -> S3Result<(Vec<(u32, String)>, String)> {
    if parts.is_empty() {
        return Err(s3_error!(MalformedXML, "a multipart upload is completed with at least one part"));
    }
    let mut numbered: Vec<(u32, String)> = Vec::with_capacity(parts.len());
    for part in parts {
        let number = part.part_number.unwrap_or(0);
        let previous = numbered.last().map_or(0, |(previous, _)| *previous as i32);
        if number < previous || number < 1 {
            return Err(s3_error!(InvalidPartOrder, "parts must be listed in ascending order of number"));
        }
        let etag = part.e_tag.as_ref().map(|etag| etag.value().to_ascii_lowercase()).unwrap_or_default();
        if hex::decode(&etag).ok().filter(|md5| md5.len() == 16).is_none() {
            return Err(s3_error!(InvalidPart, "part {number}: {etag:?} is not an ETag this service gave"));
        }
        if number == previous {
            numbered.pop();
        }
        numbered.push((number as u32, etag));
    }
    let mut digests = Md5::new();
    for (_, etag) in &numbered {
        digests.update(hex::decode(etag).unwrap_or_default());
    }
    let etag = format!("{}-{}", hex::encode(digests.finalize()), numbered.len());
    Ok((numbered, etag))
}

/// Completes a multipart upload. The parts become the file on a task of its own, so a client that
/// stops waiting (a read timeout: a large object takes a while) does not stop it halfway; its
/// retry waits for that completion, and is answered as the first would have been once the key
/// holds the object these parts made.
pub(super) async fn complete(
    cabinet: &Cabinet,
    writes: &Arc<Writes>,
    completing: &Arc<Completing>,
    caller: &Caller,
    input: CompleteMultipartUploadInput,
) -> S3Result<CompleteMultipartUploadOutput> {
    let id = upload_id(&input.upload_id)?;
    let parts = input.multipart_upload.as_ref().and_then(|upload| upload.parts.clone()).unwrap_or_default();
    let (numbered, etag) = numbered_parts(&parts)?;
    let completed = |own: Checksum| CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        e_tag: Some(ETag::Strong(etag.clone())),
        checksum_crc32: own.checksum_crc32,
        checksum_crc32c: own.checksum_crc32c,
        checksum_crc64nvme: own.checksum_crc64nvme,
        checksum_sha1: own.checksum_sha1,
        checksum_sha256: own.checksum_sha256,
        checksum_type: own.checksum_type,
        ..Default::default()
    };
    completing.wait_for(&id).await;
    let upload = match cabinet.staged_parts_upload(caller, &id).await {
        Ok(upload) => upload,
        Err(err) => {
            if let Some(own) = completed_as(cabinet, caller, &input.key, &etag).await {
                return Ok(completed(own));
            }
            return Err(no_such_upload(err));
        }
    };
    let path = parse_key(&input.key)?;
    if path.name != Some(upload.name.as_str()) {
        return Err(s3_error!(NoSuchUpload, "this upload was started for another key"));
    }
    // The conditions are checked before the parts are taken (and once more as the object is
    // stored), so a completion refused by them leaves the upload as it was, to retry or abort.
    if input.if_match.is_some() || input.if_none_match.is_some() {
        let current = match find(cabinet, caller, &input.key).await {
            Ok(Found::File(file)) => Some(file),
            Ok(Found::Folder) => None,
            Err(err) if *err.code() == s3s::S3ErrorCode::NoSuchKey => None,
            Err(err) => return Err(err),
        };
        check_write_conditions(
            cabinet,
            caller,
            current.as_deref(),
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
        )
        .await?;
    }
    // Every part but the last is at least 5 MiB, as S3 requires. A part that is not there (or not
    // with that ETag) is left to the completion to name.
    let sizes = cabinet.staged_part_sizes(caller, &id, &numbered).await.map_err(no_such_upload)?;
    let part_sizes: Vec<u64> = sizes.iter().flatten().copied().collect();
    if part_sizes.len() == numbered.len() {
        if let Some(index) = part_sizes[..part_sizes.len() - 1].iter().position(|size| *size < MIN_PART_BYTES)
        {
            return Err(s3_error!(
                EntityTooSmall,
                "part {} is {} bytes: every part but the last must be at least 5 MiB",
                numbered[index].0,
                part_sizes[index]
            ));
        }
    }
    let note = note_of(&cabinet.staged_parts_note(caller, &id).await.map_err(no_such_upload)?);
    let declared = whole_checksum(&input, &parts, &numbered, note.checksum.clone(), part_sizes.clone())?;
    let metadata = (!note.metadata.is_empty()).then_some(note.metadata);
    let headers = note.headers;
    let listed: Vec<u32> = numbered.iter().map(|(number, _)| *number).collect();
    let task = {
        let (cabinet, writes, caller) = (cabinet.clone(), writes.clone(), caller.clone());
        let (key, content_type, recorded) = (input.key.clone(), upload.declared_mime.clone(), etag.clone());
        let (if_match, if_none_match) = (input.if_match.clone(), input.if_none_match.clone());
        let guard = completing.begin(&id);
        tokio::spawn(async move {
            let _guard = guard;
            let (cabinet, writes, caller) = (&cabinet, &writes, &caller);
            cabinet
                .complete_staged_parts(caller, &id, &numbered, |body, total| async move {
                    let object = NewObject {
                        content_length: Some(total),
                        etag: Some(recorded),
                        content_type,
                        metadata,
                        headers,
                        part_sizes,
                        if_match,
                        if_none_match,
                    };
                    store(cabinet, writes, caller, &key, body, object, declared, None).await
                })
                .await
                .map(|stored| stored.map(|stored| stored.own))
        })
    };
    let stored = task.await.map_err(|err| s3_error_of(CoreError::internal(err)))?;
    let own = match stored {
        Ok(stored) => stored?,
        Err(CoreError::PartsMissing { missing }) => {
            let numbers: Vec<String> = missing
                .iter()
                .filter_map(|index| listed.get(*index as usize - 1))
                .map(u32::to_string)
                .collect();
            return Err(s3_error!(
                InvalidPart,
                "no part matches parts {} with their ETags",
                numbers.join(", ")
            ));
        }
        Err(err) => return Err(no_such_upload(err)),
    };
    Ok(completed(own))
}

/// The raw length of one algorithm's digest.
fn digest_len(algorithm: &str) -> usize {
    match algorithm {
        "CRC32" | "CRC32C" => 4,
        "CRC64NVME" => 8,
        "SHA1" => 20,
        _ => 32,
    }
}

/// How the object a completion makes is verified and given its own checksum: the algorithm and
/// type asked for at creation (or, when none was, those of the checksum the completion declares),
/// with what the completion declares for the whole and lists for each part. What cannot be right
/// (a malformed value, another parts count, the listed parts' checksums not making the declared
/// whole) is `BadDigest` before the parts are taken, so the upload is left to complete again.
fn whole_checksum(
    input: &CompleteMultipartUploadInput,
    parts: &[CompletedPart],
    numbered: &[(u32, String)],
    asked: Option<(String, String)>,
    part_sizes: Vec<u64>,
) -> S3Result<Declared> {
    let given = Checksum {
        checksum_crc32: input.checksum_crc32.clone(),
        checksum_crc32c: input.checksum_crc32c.clone(),
        checksum_sha1: input.checksum_sha1.clone(),
        checksum_sha256: input.checksum_sha256.clone(),
        checksum_crc64nvme: input.checksum_crc64nvme.clone(),
        ..Default::default()
    };
    let declared_algorithm =
        ALGORITHMS.into_iter().find(|algorithm| checksum_of(&given, algorithm).is_some());
    let (algorithm, kind) = match (asked, declared_algorithm) {
        (Some((algorithm, kind)), declared) => {
            if declared.is_some_and(|declared| declared != algorithm) {
                return Err(s3_error!(
                    InvalidRequest,
                    "the upload was begun with the checksum algorithm {algorithm}, not {}",
                    declared.unwrap_or_default()
                ));
            }
            (algorithm, kind)
        }
        (None, Some(algorithm)) => {
            let composite = checksum_of(&given, algorithm).is_some_and(|value| value.contains('-'));
            let kind =
                input.checksum_type.as_ref().map(ChecksumType::as_str).map(str::to_owned).or_else(|| {
                    Some(
                        if composite { ChecksumType::COMPOSITE } else { ChecksumType::FULL_OBJECT }
                            .to_owned(),
                    )
                });
            checksum_kind(algorithm, kind.as_deref())?
        }
        (None, None) => return Ok(Declared::default()),
    };
    let whole = checksum_of(&given, &algorithm).cloned();
    let bad = |why: String| Err(S3Error::with_message(s3s::S3ErrorCode::BadDigest, why));
    let decodes = |value: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(value)
            .is_ok_and(|raw| raw.len() == digest_len(&algorithm))
    };
    let header = format!("x-amz-checksum-{}", algorithm.to_lowercase());
    // A part's listed checksum: the one listed last for its number, as its ETag is.
    let mut listed: HashMap<i32, Option<String>> = HashMap::new();
    for part in parts {
        listed.insert(part.part_number.unwrap_or(0), checksum_of(&part_checksums(part), &algorithm).cloned());
    }
    let declared_parts: Vec<Option<String>> =
        numbered.iter().map(|(number, _)| listed.get(&(*number as i32)).cloned().flatten()).collect();
    if let Some(part) =
        declared_parts.iter().position(|value| value.as_deref().is_some_and(|value| !decodes(value)))
    {
        return bad(format!("part {}: its {header} is not a {algorithm} checksum", numbered[part].0));
    }
    let mut sums = PartSums {
        algorithm: algorithm.clone(),
        composite: kind == ChecksumType::COMPOSITE,
        part_numbers: numbered.iter().map(|(number, _)| *number).collect(),
        part_sizes,
        declared: None,
        declared_parts,
    };
    if kind == ChecksumType::FULL_OBJECT {
        if let Some(whole) = whole.as_deref().filter(|whole| !decodes(whole)) {
            return bad(format!("{header} {whole:?} is not a {algorithm} checksum"));
        }
        let checksums = match whole {
            Some(value) => Checksum {
                checksum_type: None,
                ..checksum_answer(&S3Checksum { algorithm: algorithm.clone(), kind, value })
            },
            None => Checksum::default(),
        };
        return Ok(Declared {
            algorithm: Some(algorithm),
            checksums,
            parts: Some(sums),
            ..Default::default()
        });
    }
    if let Some(whole) = &whole {
        let (digest, count) = match whole.rsplit_once('-') {
            Some((digest, count)) => (digest, Some(count)),
            None => (whole.as_str(), None),
        };
        if !decodes(digest) || count.is_some_and(|count| count != numbered.len().to_string()) {
            return bad(format!(
                "{header} {whole:?} is not the {algorithm} composite of {} parts",
                numbered.len()
            ));
        }
        if sums.declared_parts.iter().all(Option::is_some) {
            let mut of_parts = hasher_of(&algorithm);
            for value in sums.declared_parts.iter().flatten() {
                of_parts.update(&base64::engine::general_purpose::STANDARD.decode(value).unwrap_or_default());
            }
            let made = base64::engine::general_purpose::STANDARD.encode(digest_of(of_parts, &algorithm));
            if made != digest {
                return bad(format!("the parts' listed checksums do not make the declared {header}"));
            }
        }
    }
    sums.declared = whole;
    Ok(Declared { parts: Some(sums), ..Default::default() })
}

/// The checksums a CompleteMultipartUpload lists for one part.
fn part_checksums(part: &CompletedPart) -> Checksum {
    Checksum {
        checksum_crc32: part.checksum_crc32.clone(),
        checksum_crc32c: part.checksum_crc32c.clone(),
        checksum_sha1: part.checksum_sha1.clone(),
        checksum_sha256: part.checksum_sha256.clone(),
        checksum_crc64nvme: part.checksum_crc64nvme.clone(),
        ..Default::default()
    }
}

/// The object's own checksum when the key holds the object a completion with this ETag made.
async fn completed_as(cabinet: &Cabinet, caller: &Caller, key: &str, etag: &str) -> Option<Checksum> {
    let Ok(Found::File(file)) = find(cabinet, caller, key).await else { return None };
    let object = described(cabinet, caller, &file).await.ok()?;
    (object.etag.trim_matches('"') == etag)
        .then(|| object.checksum.as_ref().map(checksum_answer).unwrap_or_default())
}

pub(super) async fn abort(
    cabinet: &Cabinet,
    caller: &Caller,
    input: AbortMultipartUploadInput,
) -> S3Result<()> {
    let id = upload_id(&input.upload_id)?;
    cabinet.abort_staged_parts(caller, &id).await.map_err(no_such_upload)
}

/// An upload's note; an upload begun before notes were kept has none.
fn note_of(text: &str) -> Note {
    serde_json::from_str(text).unwrap_or_default()
}

/// ListParts: the parts received, by number, `max_parts` at a time after `part_number_marker`.
pub(super) async fn list_parts(
    cabinet: &Cabinet,
    caller: &Caller,
    input: ListPartsInput,
) -> S3Result<ListPartsOutput> {
    let id = upload_id(&input.upload_id)?;
    let note = note_of(&cabinet.staged_parts_note(caller, &id).await.map_err(no_such_upload)?);
    if !note.key.is_empty() && note.key != input.key {
        return Err(s3_error!(NoSuchUpload, "this upload was started for another key"));
    }
    let most = input.max_parts.unwrap_or(MOST_LISTED).clamp(0, MOST_LISTED);
    let after = input.part_number_marker.unwrap_or(0);
    let all = cabinet.staged_parts(caller, &id).await.map_err(no_such_upload)?;
    let mut parts: Vec<_> = all.into_iter().filter(|part| part.number as i64 > i64::from(after)).collect();
    let truncated = parts.len() > most as usize;
    parts.truncate(most as usize);
    let next = parts.last().map(|part| part.number as i32);
    Ok(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        max_parts: Some(most),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: if truncated { next } else { None },
        is_truncated: Some(truncated),
        parts: Some(
            parts
                .into_iter()
                .map(|part| Part {
                    part_number: Some(part.number as i32),
                    e_tag: Some(ETag::Strong(part.tag)),
                    size: Some(part.size as i64),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    })
}

/// ListMultipartUploads: the bucket's uploads in progress, by key and then upload id (the order
/// they were begun in), filtered by prefix, `max_uploads` at a time after the markers. With a
/// delimiter, the uploads whose key goes on past the prefix to a delimiter are rolled up into that
/// common prefix, listed once and counted as one entry, as ListObjects does.
pub(super) async fn list_uploads(
    cabinet: &Cabinet,
    caller: &Caller,
    input: ListMultipartUploadsInput,
) -> S3Result<ListMultipartUploadsOutput> {
    let most = input.max_uploads.unwrap_or(MOST_LISTED).clamp(0, MOST_LISTED) as usize;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().filter(|delimiter| !delimiter.is_empty());
    let mut open = Vec::new();
    let mut after: Option<UploadId> = None;
    // Uploads in progress are few (each expires within a day): all are read, then sorted by key.
    loop {
        let page = cabinet.open_staged_parts(caller, after.as_ref(), 500).await.map_err(s3_error_of)?;
        let Some(last) = page.last() else { break };
        after = Some(last.upload.id.clone());
        open.extend(page.into_iter().filter_map(|upload| {
            let note = note_of(&upload.note);
            note.key.starts_with(&prefix).then_some((note.key, upload.upload))
        }));
        if open.len() > 100_000 {
            return Err(s3_error!(InternalError, "too many uploads in progress to list"));
        }
    }
    open.sort_by(|(a, upload_a), (b, upload_b)| {
        a.cmp(b).then_with(|| upload_a.id.as_str().cmp(upload_b.id.as_str()))
    });
    // The common prefix a key is rolled up into: the prefix and the key's rest up to and with the
    // first delimiter.
    let rolled_up = |key: &str| -> Option<String> {
        let delimiter = delimiter.as_deref()?;
        let rest = &key[prefix.len()..];
        rest.find(delimiter).map(|at| key[..prefix.len() + at + delimiter.len()].to_owned())
    };
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let id_marker = input.upload_id_marker.clone().unwrap_or_default();
    let past_markers = |key: &str, upload: &cabinet_core::Upload| {
        if key_marker.is_empty() {
            return true;
        }
        // A marker that is a common prefix (the last entry of a page) passes all of its keys.
        if rolled_up(key).as_deref() == Some(key_marker.as_str()) {
            return false;
        }
        key > key_marker.as_str()
            || (key == key_marker && !id_marker.is_empty() && upload.id.as_str() > id_marker.as_str())
    };
    let mut uploads = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    // The last entry listed: a key and its upload, or a common prefix.
    let mut last: Option<(String, Option<UploadId>)> = None;
    let mut truncated = false;
    for (key, upload) in open.into_iter().filter(|(key, upload)| past_markers(key, upload)) {
        let common = rolled_up(&key);
        if let (Some(common), Some((listed, None))) = (&common, &last) {
            if common == listed {
                continue;
            }
        }
        if uploads.len() + prefixes.len() == most {
            truncated = true;
            break;
        }
        match common {
            Some(common) => {
                last = Some((common.clone(), None));
                prefixes.push(common);
            }
            None => {
                last = Some((key.clone(), Some(upload.id.clone())));
                uploads.push((key, upload));
            }
        }
    }
    let (next_key, next_id) = match last {
        Some((key, id)) if truncated => (Some(key), id.map(|id| id.to_string())),
        _ => (None, None),
    };
    let url = is_url(input.encoding_type.as_ref());
    Ok(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: encoded(url, input.prefix),
        key_marker: encoded(url, input.key_marker),
        upload_id_marker: input.upload_id_marker,
        max_uploads: Some(most as i32),
        is_truncated: Some(truncated),
        next_key_marker: encoded(url, next_key),
        next_upload_id_marker: next_id,
        delimiter: encoded(url, input.delimiter),
        encoding_type: input.encoding_type,
        common_prefixes: (!prefixes.is_empty()).then(|| {
            prefixes.into_iter().map(|prefix| CommonPrefix { prefix: encoded(url, Some(prefix)) }).collect()
        }),
        uploads: Some(
            uploads
                .into_iter()
                .map(|(key, upload)| MultipartUpload {
                    key: encoded(url, Some(key)),
                    upload_id: Some(upload.id.to_string()),
                    initiated: Some(timestamp(upload.created_at)),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    })
}
