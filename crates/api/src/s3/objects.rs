//! Objects: keys as folder paths and file names, and the reads and writes of their bytes through
//! the core. A PUT streams into the core's intake while its MD5 (the ETag) and any checksum the
//! client declared are computed; a mismatch ends the body with an error before the end, so the
//! core never commits the bytes.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use base64::Engine;
use bytes::Bytes;
use cabinet_core::files::DirectUpload;
use cabinet_core::names::validate_name;
use cabinet_core::paths::Place;
use cabinet_core::ports::{ByteStream, FileChange};
use cabinet_core::s3_objects::{S3Checksum, S3Headers, S3Object};
use cabinet_core::{ByteRange, Cabinet, Caller, Error as CoreError, FileRecord};
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use s3s::checksum::ChecksumHasher;
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3Result, TrailingHeaders};

use super::{s3_error_of, timestamp};

/// The S3 writes in flight, by workspace. Emptied folders are removed after a delete only when
/// none is running in that workspace on this node: a write may have made the folder it is filling
/// and not committed its file yet.
#[derive(Default)]
pub(super) struct Writes(Mutex<HashMap<cabinet_core::WorkspaceId, u32>>);

/// One write in flight; ends when dropped.
pub(super) struct Writing<'a> {
    writes: &'a Writes,
    workspace: cabinet_core::WorkspaceId,
}

impl Writes {
    fn begin(&self, workspace: &cabinet_core::WorkspaceId) -> Writing<'_> {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(workspace.clone())
            .or_default() += 1;
        Writing { writes: self, workspace: workspace.clone() }
    }

    fn any(&self, workspace: &cabinet_core::WorkspaceId) -> bool {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(workspace).is_some_and(|n| *n > 0)
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let mut writes = self.writes.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(n) = writes.get_mut(&self.workspace) {
            *n -= 1;
            if *n == 0 {
                writes.remove(&self.workspace);
            }
        }
    }
}

/// The largest object one PUT may bring (S3's own limit, 5 GiB).
const MAX_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// The MD5 of no bytes: the ETag of a folder.
const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// A key, split: the folders on the way and the file's name (`None` for a key ending in `/`,
/// which names the folder itself).
pub(super) struct ObjectPath<'a> {
    pub folders: Vec<&'a str>,
    pub name: Option<&'a str>,
}

/// Splits a key, refusing any part that is not a name Cabinet keeps exactly as given.
pub(super) fn parse_key(key: &str) -> S3Result<ObjectPath<'_>> {
    if key.is_empty() {
        return Err(s3_error!(InvalidArgument, "the object key is empty"));
    }
    let (dirs, name) = match key.strip_suffix('/') {
        Some(folder) => (folder, None),
        None => match key.rsplit_once('/') {
            Some((dirs, name)) => (dirs, Some(name)),
            None => ("", Some(key)),
        },
    };
    let folders: Vec<&str> = if dirs.is_empty() { Vec::new() } else { dirs.split('/').collect() };
    for part in folders.iter().chain(name.iter()) {
        check_part(part)?;
    }
    Ok(ObjectPath { folders, name })
}

fn check_part(part: &str) -> S3Result<()> {
    match validate_name(part) {
        Ok(kept) if kept == part => Ok(()),
        Ok(kept) => Err(s3_error!(
            InvalidArgument,
            "the key part {part:?} would be stored as {kept:?} (names are trimmed and in Unicode NFC); Cabinet keeps keys exactly or refuses them"
        )),
        Err(CoreError::BadRequest { code: cabinet_core::Code::NameTooLong, message }) => {
            Err(S3Error::with_message(s3s::S3ErrorCode::KeyTooLongError, format!("the key part {part:?}: {message}")))
        }
        Err(err) => Err(s3_error!(InvalidArgument, "the key part {part:?} is not a name Cabinet accepts: {err}")),
    }
}

/// What a key names.
pub(super) enum Found {
    File(Box<FileRecord>),
    Folder,
}

/// The newest live file a key names, or its folder for a key ending in `/`.
pub(super) async fn find(cabinet: &Cabinet, caller: &Caller, key: &str) -> S3Result<Found> {
    let path = parse_key(key)?;
    let no_such_key = || s3_error!(NoSuchKey);
    let place =
        cabinet.folder_at(caller, &path.folders).await.map_err(s3_error_of)?.ok_or_else(no_such_key)?;
    match path.name {
        None => Ok(Found::Folder),
        Some(name) => {
            let files = cabinet.files_named(caller, &place, name).await.map_err(s3_error_of)?;
            files.into_iter().last().map(|file| Found::File(Box::new(file))).ok_or_else(no_such_key)
        }
    }
}

/// The ETag of a file: the MD5 of its bytes when they came through S3 in one piece, otherwise
/// derived from its sha256 and marked as not an MD5 (`-1`, as a multipart ETag is), so tools
/// that compare MD5s with ETags do not mistake it for one.
pub(super) fn etag_of(file: &FileRecord, md5: Option<&String>) -> String {
    match md5 {
        Some(md5) => md5.clone(),
        None => format!("{}-1", &file.sha256[..32.min(file.sha256.len())]),
    }
}

pub(super) async fn file_etag(cabinet: &Cabinet, caller: &Caller, file: &FileRecord) -> S3Result<String> {
    let listed = cabinet.s3_listed(caller, std::slice::from_ref(&file.id)).await.map_err(s3_error_of)?;
    Ok(etag_of(file, listed.get(&file.id).map(|listed| &listed.etag)))
}

/// What S3 answers about a file besides its record: what the S3 surface kept of it when it stored
/// it, or for a file stored elsewhere its derived ETag alone.
pub(super) async fn described(cabinet: &Cabinet, caller: &Caller, file: &FileRecord) -> S3Result<S3Object> {
    let kept = cabinet.s3_object(caller, &file.id).await.map_err(s3_error_of)?;
    Ok(kept.unwrap_or_else(|| S3Object { etag: etag_of(file, None), ..Default::default() }))
}

/// The headers a write gives its object, kept as given. `aws-chunked` in Content-Encoding names
/// how the request's body was sent, not what the object is: it is not kept, as S3 keeps it not.
pub(super) fn headers_of(
    cache_control: Option<&String>,
    content_disposition: Option<&String>,
    content_encoding: Option<&String>,
    content_language: Option<&String>,
    expires: Option<&Timestamp>,
) -> S3Result<S3Headers> {
    let content_encoding = content_encoding.and_then(|encoding| {
        let kept: Vec<&str> = encoding
            .split(',')
            .map(str::trim)
            .filter(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("aws-chunked"))
            .collect();
        (!kept.is_empty()).then(|| kept.join(", "))
    });
    let expires = match expires {
        None => None,
        Some(at) => {
            let mut date = Vec::new();
            at.format(TimestampFormat::HttpDate, &mut date)
                .map_err(|_| s3_error!(InvalidArgument, "Expires is not a date that can be kept"))?;
            Some(String::from_utf8_lossy(&date).into_owned())
        }
    };
    Ok(S3Headers {
        cache_control: cache_control.cloned(),
        content_disposition: content_disposition.cloned(),
        content_encoding,
        content_language: content_language.cloned(),
        expires,
    })
}

/// The kept Expires, as the timestamp s3s answers with (a date that no longer parses is left out).
fn expires_of(headers: &S3Headers) -> Option<Timestamp> {
    headers.expires.as_deref().and_then(|date| Timestamp::parse(TimestampFormat::HttpDate, date).ok())
}

fn user_metadata(file: &FileRecord) -> Option<HashMap<String, String>> {
    if file.metadata.is_empty() {
        return None;
    }
    let shown = file
        .metadata
        .iter()
        .map(|(key, value)| {
            let text = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            (key.clone(), text)
        })
        .collect();
    Some(shown)
}

fn sha256_base64(file: &FileRecord) -> Option<String> {
    hex::decode(&file.sha256).ok().map(|raw| base64::engine::general_purpose::STANDARD.encode(raw))
}

/// What `x-amz-checksum-mode: ENABLED` answers for a read of all of an object or of one part: the
/// object's own checksum, or the part's (with the object's type) when one of several is read;
/// none for a part whose checksum was not kept.
fn read_checksum(
    file: &FileRecord,
    object: &S3Object,
    number: Option<i32>,
    part: Option<&PartRead>,
) -> Checksum {
    if part.is_none_or(|part| part.span.is_none()) {
        return own_checksum(file, object);
    }
    let index = number.and_then(|number| usize::try_from(number - 1).ok());
    match (&object.checksum, index.and_then(|index| object.part_checksums.get(index))) {
        (Some(checksum), Some(value)) => {
            checksum_answer(&S3Checksum { value: value.clone(), ..checksum.clone() })
        }
        _ => Checksum::default(),
    }
}

/// What `x-amz-checksum-mode: ENABLED` answers for a whole object: the checksum it was written
/// with, or the sha256 Cabinet keeps of every file.
fn own_checksum(file: &FileRecord, object: &S3Object) -> Checksum {
    match &object.checksum {
        Some(checksum) => checksum_answer(checksum),
        None => Checksum {
            checksum_sha256: sha256_base64(file),
            checksum_type: Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT)),
            ..Default::default()
        },
    }
}

/// The conditional headers of a read, in S3's order of precedence: 412 or 304, or go on.
fn check_read_conditions(
    etag: &str,
    last_modified: chrono::DateTime<chrono::Utc>,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let ours = ETag::Strong(etag.to_owned());
    // HTTP dates have whole seconds.
    let modified = last_modified.timestamp();
    let seconds = |at: &Timestamp| time::OffsetDateTime::from(at.clone()).unix_timestamp();
    match if_match {
        Some(ETagCondition::Any) => {}
        Some(ETagCondition::ETag(theirs)) if ours.strong_cmp(theirs) => {}
        Some(_) => return Err(s3_error!(PreconditionFailed, "If-Match does not match the object's ETag")),
        None => {
            if if_unmodified_since.is_some_and(|at| modified > seconds(at)) {
                return Err(s3_error!(
                    PreconditionFailed,
                    "the object was modified since If-Unmodified-Since"
                ));
            }
        }
    }
    match if_none_match {
        Some(ETagCondition::Any) => return Err(not_modified(etag, last_modified)),
        Some(ETagCondition::ETag(theirs)) if ours.weak_cmp(theirs) => {
            return Err(not_modified(etag, last_modified))
        }
        Some(_) => {}
        None => {
            if if_modified_since.is_some_and(|at| modified <= seconds(at)) {
                return Err(not_modified(etag, last_modified));
            }
        }
    }
    Ok(())
}

/// What a read of one part (`partNumber`) reads: its first byte and length (`None`: the whole
/// object), and the parts count to answer with.
struct PartRead {
    span: Option<(u64, u64)>,
    count: Option<i32>,
}

/// A read of one part (`partNumber`). Part 1 of an object stored in one piece is the whole of it;
/// an object completed from parts says how many in its ETag (`md5-N`), and their sizes are kept
/// with it. One completed from several parts before their sizes were kept cannot be read by part
/// (`NotImplemented`).
fn part_read(
    part_number: Option<i32>,
    object: &S3Object,
    size: u64,
    ranged: bool,
) -> S3Result<Option<PartRead>> {
    let Some(number) = part_number else { return Ok(None) };
    if ranged {
        return Err(s3_error!(InvalidRequest, "Range and partNumber cannot both be given"));
    }
    if !(1..=10_000).contains(&number) {
        return Err(s3_error!(InvalidArgument, "partNumber runs from 1 to 10000"));
    }
    let parts = object.etag.rsplit_once('-').and_then(|(_, count)| count.parse::<i32>().ok());
    if number > parts.unwrap_or(1) {
        return Err(s3_error!(InvalidPart, "the object has no part {number}"));
    }
    let Some(count) = parts.filter(|count| *count > 1) else {
        return Ok(Some(PartRead { span: None, count: parts }));
    };
    if object.part_sizes.len() != count as usize || object.part_sizes.iter().sum::<u64>() != size {
        return Err(s3_error!(
            NotImplemented,
            "reading one part of an object completed from several parts before their sizes were kept"
        ));
    }
    let index = number as usize - 1;
    let first: u64 = object.part_sizes[..index].iter().sum();
    Ok(Some(PartRead { span: Some((first, object.part_sizes[index])), count: Some(count) }))
}

/// A 304 names the object's ETag and Last-Modified, as S3's does (a cache revalidates with them).
fn not_modified(etag: &str, last_modified: chrono::DateTime<chrono::Utc>) -> S3Error {
    let mut error = s3_error!(NotModified);
    let mut headers = axum::http::HeaderMap::new();
    if let Ok(value) = axum::http::HeaderValue::from_str(&format!("\"{etag}\"")) {
        headers.insert(axum::http::header::ETAG, value);
    }
    let date = last_modified.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    if let Ok(value) = axum::http::HeaderValue::from_str(&date) {
        headers.insert(axum::http::header::LAST_MODIFIED, value);
    }
    error.set_headers(headers);
    error
}

pub(super) async fn head(
    cabinet: &Cabinet,
    caller: &Caller,
    input: HeadObjectInput,
) -> S3Result<HeadObjectOutput> {
    let file = match find(cabinet, caller, &input.key).await? {
        Found::Folder => {
            return Ok(HeadObjectOutput {
                content_length: Some(0),
                e_tag: Some(ETag::Strong(EMPTY_MD5.to_owned())),
                content_type: Some("application/x-directory".to_owned()),
                ..Default::default()
            })
        }
        Found::File(file) => file,
    };
    let file = cabinet.readable_file(caller, &file.id).await.map_err(s3_error_of)?;
    let object = described(cabinet, caller, &file).await?;
    check_read_conditions(
        &object.etag,
        file.created_at,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )?;
    let part = part_read(input.part_number, &object, file.size, input.range.is_some())?;
    let length = part.as_ref().and_then(|part| part.span).map_or(file.size, |(_, length)| length);
    let checksums = match &input.checksum_mode {
        Some(mode) if mode.as_str() == ChecksumMode::ENABLED => {
            read_checksum(&file, &object, input.part_number, part.as_ref())
        }
        _ => Checksum::default(),
    };
    let expires = expires_of(&object.headers);
    let headers = object.headers;
    Ok(HeadObjectOutput {
        parts_count: part.and_then(|part| part.count),
        content_length: Some(length as i64),
        content_type: Some(file.mime_type.clone()),
        cache_control: headers.cache_control,
        content_disposition: headers.content_disposition,
        content_encoding: headers.content_encoding,
        content_language: headers.content_language,
        expires,
        last_modified: Some(timestamp(file.created_at)),
        e_tag: Some(ETag::Strong(object.etag)),
        metadata: user_metadata(&file),
        checksum_crc32: checksums.checksum_crc32,
        checksum_crc32c: checksums.checksum_crc32c,
        checksum_crc64nvme: checksums.checksum_crc64nvme,
        checksum_sha1: checksums.checksum_sha1,
        checksum_sha256: checksums.checksum_sha256,
        checksum_type: checksums.checksum_type,
        accept_ranges: Some("bytes".to_owned()),
        ..Default::default()
    })
}

pub(super) async fn get(
    cabinet: &Cabinet,
    caller: &Caller,
    input: GetObjectInput,
) -> S3Result<GetObjectOutput> {
    let file = match find(cabinet, caller, &input.key).await? {
        Found::Folder => {
            let empty = futures::stream::empty::<Result<Bytes, std::io::Error>>();
            return Ok(GetObjectOutput {
                body: Some(StreamingBlob::wrap(empty)),
                content_length: Some(0),
                e_tag: Some(ETag::Strong(EMPTY_MD5.to_owned())),
                content_type: Some("application/x-directory".to_owned()),
                ..Default::default()
            });
        }
        Found::File(file) => file,
    };
    let file = cabinet.readable_file(caller, &file.id).await.map_err(s3_error_of)?;
    let object = described(cabinet, caller, &file).await?;
    check_read_conditions(
        &object.etag,
        file.created_at,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )?;
    let part = part_read(input.part_number, &object, file.size, input.range.is_some())?;
    // The bytes to read (first and length), when not all of them.
    let span = match (&input.range, part.as_ref().and_then(|part| part.span)) {
        (Some(range), _) => {
            let span = range.check(file.size).map_err(|_| s3_error!(InvalidRange))?;
            Some((span.start, span.end - span.start))
        }
        (None, span) => span,
    };
    let content_range = span.map(|(first, length)| match length {
        // An empty part of a larger object: S3's form for no bytes of it.
        0 => format!("bytes */{}", file.size),
        _ => format!("bytes {first}-{}/{}", first + length - 1, file.size),
    });
    let length = span.map_or(file.size, |(_, length)| length);
    let stream: ByteStream<'static> = match span {
        Some((_, 0)) => Box::pin(futures::stream::empty()),
        Some((first, length)) => cabinet
            .read_file(&file, Some(ByteRange { first, last: first + length - 1 }))
            .await
            .map_err(s3_error_of)?,
        None => cabinet.read_file(&file, None).await.map_err(s3_error_of)?,
    };
    let checksums = match &input.checksum_mode {
        Some(mode) if mode.as_str() == ChecksumMode::ENABLED && input.range.is_none() => {
            read_checksum(&file, &object, input.part_number, part.as_ref())
        }
        _ => Checksum::default(),
    };
    // The response-* parameters of a (signed) request override what is kept, as S3's do.
    let expires = input.response_expires.clone().or_else(|| expires_of(&object.headers));
    let headers = object.headers;
    Ok(GetObjectOutput {
        parts_count: part.and_then(|part| part.count),
        body: Some(StreamingBlob::wrap(sync_wrapper::SyncStream::new(stream))),
        content_length: Some(length as i64),
        content_range,
        content_type: Some(input.response_content_type.unwrap_or_else(|| file.mime_type.clone())),
        cache_control: input.response_cache_control.or(headers.cache_control),
        content_disposition: input.response_content_disposition.or(headers.content_disposition),
        content_encoding: input.response_content_encoding.or(headers.content_encoding),
        content_language: input.response_content_language.or(headers.content_language),
        expires,
        last_modified: Some(timestamp(file.created_at)),
        e_tag: Some(ETag::Strong(object.etag)),
        metadata: user_metadata(&file),
        checksum_crc32: checksums.checksum_crc32,
        checksum_crc32c: checksums.checksum_crc32c,
        checksum_crc64nvme: checksums.checksum_crc64nvme,
        checksum_sha1: checksums.checksum_sha1,
        checksum_sha256: checksums.checksum_sha256,
        checksum_type: checksums.checksum_type,
        accept_ranges: Some("bytes".to_owned()),
        ..Default::default()
    })
}

/// The most parts GetObjectAttributes lists at once (S3's default and limit).
const MOST_PARTS_LISTED: i32 = 1000;

/// GetObjectAttributes: what HEAD tells of an object, and its parts (sizes and, when kept,
/// checksums) `max-parts` at a time after `part-number-marker`, for an object completed from
/// parts whose sizes were kept.
pub(super) async fn attributes(
    cabinet: &Cabinet,
    caller: &Caller,
    input: GetObjectAttributesInput,
) -> S3Result<GetObjectAttributesOutput> {
    // One header, its names separated by commas (s3s takes it as one).
    let wants = |name: &str| {
        input
            .object_attributes
            .iter()
            .flat_map(|asked| asked.as_str().split(','))
            .any(|asked| asked.trim() == name)
    };
    let (file, object) = match find(cabinet, caller, &input.key).await? {
        Found::Folder => {
            return Ok(GetObjectAttributesOutput {
                e_tag: wants(ObjectAttributes::ETAG).then(|| ETag::Strong(EMPTY_MD5.to_owned())),
                object_size: wants(ObjectAttributes::OBJECT_SIZE).then_some(0),
                storage_class: wants(ObjectAttributes::STORAGE_CLASS)
                    .then(|| StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            })
        }
        Found::File(file) => {
            let file = cabinet.readable_file(caller, &file.id).await.map_err(s3_error_of)?;
            let object = described(cabinet, caller, &file).await?;
            (file, object)
        }
    };
    let object_parts = (wants(ObjectAttributes::OBJECT_PARTS) && !object.part_sizes.is_empty()).then(|| {
        let most = input.max_parts.unwrap_or(MOST_PARTS_LISTED).clamp(0, MOST_PARTS_LISTED);
        let after = input.part_number_marker.unwrap_or(0).max(0);
        let algorithm = object.checksum.as_ref().map(|checksum| checksum.algorithm.as_str());
        let numbered = (1..).zip(&object.part_sizes).skip(after as usize);
        let parts: Vec<ObjectPart> = numbered
            .take(most as usize)
            .map(|(number, size)| {
                let value = object.part_checksums.get(number as usize - 1).cloned();
                let mut part =
                    ObjectPart { part_number: Some(number), size: Some(*size as i64), ..Default::default() };
                match (algorithm, value) {
                    (Some("CRC32"), value) => part.checksum_crc32 = value,
                    (Some("CRC32C"), value) => part.checksum_crc32c = value,
                    (Some("SHA1"), value) => part.checksum_sha1 = value,
                    (Some("SHA256"), value) => part.checksum_sha256 = value,
                    (Some("CRC64NVME"), value) => part.checksum_crc64nvme = value,
                    _ => {}
                }
                part
            })
            .collect();
        let count = object.part_sizes.len() as i32;
        let last = parts.last().and_then(|part| part.part_number).unwrap_or(after);
        let truncated = last < count;
        GetObjectAttributesParts {
            total_parts_count: Some(count),
            part_number_marker: input.part_number_marker,
            max_parts: Some(most),
            is_truncated: Some(truncated),
            next_part_number_marker: truncated.then_some(last),
            parts: Some(parts),
        }
    });
    Ok(GetObjectAttributesOutput {
        checksum: wants(ObjectAttributes::CHECKSUM).then(|| own_checksum(&file, &object)),
        e_tag: wants(ObjectAttributes::ETAG).then(|| ETag::Strong(object.etag.clone())),
        last_modified: Some(timestamp(file.created_at)),
        object_parts,
        object_size: wants(ObjectAttributes::OBJECT_SIZE).then_some(file.size as i64),
        storage_class: wants(ObjectAttributes::STORAGE_CLASS)
            .then(|| StorageClass::from_static(StorageClass::STANDARD)),
        ..Default::default()
    })
}

/// The digests a client declared for a body, base64 as S3 sends them.
#[derive(Default, Clone)]
pub(super) struct Declared {
    pub(super) content_md5: Option<String>,
    pub(super) checksums: Checksum,
    pub(super) algorithm: Option<String>,
    /// A multipart object's parts' checksums, computed as they stream.
    pub(super) parts: Option<PartSums>,
}

/// S3's checksum algorithms, in the order an object's own is chosen when a write declared several.
pub(super) const ALGORITHMS: [&str; 5] = ["CRC64NVME", "CRC32C", "CRC32", "SHA1", "SHA256"];

/// The value of one algorithm's checksum.
pub(super) fn checksum_of<'a>(checksums: &'a Checksum, algorithm: &str) -> Option<&'a String> {
    match algorithm {
        "CRC32" => checksums.checksum_crc32.as_ref(),
        "CRC32C" => checksums.checksum_crc32c.as_ref(),
        "SHA1" => checksums.checksum_sha1.as_ref(),
        "SHA256" => checksums.checksum_sha256.as_ref(),
        "CRC64NVME" => checksums.checksum_crc64nvme.as_ref(),
        _ => None,
    }
}

/// Checksums of one algorithm, as S3 answers them.
pub(super) fn checksum_answer(checksum: &S3Checksum) -> Checksum {
    let value = Some(checksum.value.clone());
    let mut answer =
        Checksum { checksum_type: Some(ChecksumType::from(checksum.kind.clone())), ..Default::default() };
    match checksum.algorithm.as_str() {
        "CRC32" => answer.checksum_crc32 = value,
        "CRC32C" => answer.checksum_crc32c = value,
        "SHA1" => answer.checksum_sha1 = value,
        "SHA256" => answer.checksum_sha256 = value,
        "CRC64NVME" => answer.checksum_crc64nvme = value,
        _ => {}
    }
    answer
}

/// A hasher of one algorithm.
pub(super) fn hasher_of(algorithm: &str) -> ChecksumHasher {
    let mut hasher = ChecksumHasher::default();
    match algorithm {
        "CRC32" => hasher.crc32 = Some(Default::default()),
        "CRC32C" => hasher.crc32c = Some(Default::default()),
        "SHA1" => hasher.sha1 = Some(Default::default()),
        "SHA256" => hasher.sha256 = Some(Default::default()),
        _ => hasher.crc64nvme = Some(Default::default()),
    }
    hasher
}

/// The raw digest one hasher of `algorithm` ends with.
pub(super) fn digest_of(hasher: ChecksumHasher, algorithm: &str) -> Vec<u8> {
    let checksums = hasher.finalize();
    checksum_of(&checksums, algorithm)
        .and_then(|value| base64::engine::general_purpose::STANDARD.decode(value).ok())
        .unwrap_or_default()
}

/// The checksums of a multipart object's parts, computed as they stream into the object at its
/// completion (each part of one algorithm), checked against those the completion listed, and
/// kept. The object's own checksum is made of them when it is a COMPOSITE: the checksum of their
/// raw digests, in order, then `-` and the parts count.
#[derive(Clone)]
pub(super) struct PartSums {
    pub(super) algorithm: String,
    /// Whether the object's own checksum is their composite (else of all the bytes).
    pub(super) composite: bool,
    pub(super) part_numbers: Vec<u32>,
    pub(super) part_sizes: Vec<u64>,
    /// What the completion declared for the whole composite (with or without its `-N`).
    pub(super) declared: Option<String>,
    /// What it listed for each part, by the part's place in the object.
    pub(super) declared_parts: Vec<Option<String>>,
}

/// The parts' checksums, and their composite, once all the bytes went by.
#[derive(Default)]
pub(super) struct Summed {
    pub(super) parts: Vec<String>,
    pub(super) composite: Option<String>,
}

/// Part checksums under way.
pub(super) struct Summing {
    sums: PartSums,
    part: usize,
    left: u64,
    hasher: ChecksumHasher,
    digests: Vec<Vec<u8>>,
    /// A part whose bytes do not match the checksum listed for it.
    mismatch: Option<usize>,
}

impl Summing {
    fn new(sums: PartSums) -> Self {
        let left = sums.part_sizes.first().copied().unwrap_or(0);
        let hasher = hasher_of(&sums.algorithm);
        Summing { sums, part: 0, left, hasher, digests: Vec::new(), mismatch: None }
    }

    fn end_part(&mut self) {
        let algorithm = &self.sums.algorithm;
        let hasher = std::mem::replace(&mut self.hasher, hasher_of(algorithm));
        let digest = digest_of(hasher, algorithm);
        let listed = self.sums.declared_parts.get(self.part).cloned().flatten();
        if listed.is_some_and(|listed| {
            base64::engine::general_purpose::STANDARD.decode(listed).ok() != Some(digest.clone())
        }) {
            self.mismatch.get_or_insert(self.part);
        }
        self.digests.push(digest);
        self.part += 1;
        self.left = self.sums.part_sizes.get(self.part).copied().unwrap_or(u64::MAX);
    }

    fn update(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            while self.left == 0 && self.part < self.sums.part_sizes.len() {
                self.end_part();
            }
            let take = chunk.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
            self.hasher.update(&chunk[..take]);
            self.left -= take as u64;
            chunk = &chunk[take..];
        }
    }

    /// The parts' checksums and their composite, or why the bytes are refused.
    fn finish(mut self) -> Result<Summed, String> {
        while self.part < self.sums.part_sizes.len() {
            self.end_part();
        }
        let header = format!("x-amz-checksum-{}", self.sums.algorithm.to_lowercase());
        if let Some(part) = self.mismatch {
            let number = self.sums.part_numbers.get(part).copied().unwrap_or_default();
            return Err(format!("part {number} does not match its listed {header}"));
        }
        let engine = &base64::engine::general_purpose::STANDARD;
        let parts = self.digests.iter().map(|digest| engine.encode(digest)).collect();
        if !self.sums.composite {
            return Ok(Summed { parts, composite: None });
        }
        let mut whole = hasher_of(&self.sums.algorithm);
        whole.update(&self.digests.concat());
        let value = format!(
            "{}-{}",
            engine.encode(digest_of(whole, &self.sums.algorithm)),
            self.sums.part_sizes.len()
        );
        if let Some(declared) = &self.sums.declared {
            if *declared != value
                && Some(declared.as_str()) != value.rsplit_once('-').map(|(digest, _)| digest)
            {
                return Err(format!("the parts do not match the declared {header}"));
            }
        }
        Ok(Summed { parts, composite: Some(value) })
    }
}

impl Declared {
    /// A Content-MD5 that is not the base64 of 16 bytes is refused before a byte is read:
    /// `InvalidDigest`, as S3 answers it (a well-formed one that does not match is `BadDigest`).
    pub(super) fn check(&self) -> S3Result<()> {
        if let Some(content_md5) = &self.content_md5 {
            let decoded = base64::engine::general_purpose::STANDARD.decode(content_md5.trim());
            if !decoded.is_ok_and(|raw| raw.len() == 16) {
                return Err(s3_error!(InvalidDigest, "Content-MD5 is not the base64 of an MD5 digest"));
            }
        }
        Ok(())
    }
}

/// What a body turned out to be once read to its end.
#[derive(Default)]
pub(super) struct Measured {
    pub md5_hex: Option<String>,
    pub checksums: Checksum,
    /// A multipart object's parts' checksums and their composite.
    pub summed: Summed,
    /// Why the bytes were refused, when a declared digest did not match.
    pub mismatch: Option<String>,
}

/// A body that computes its MD5 and the declared checksums as it streams, and ends in an error
/// instead of its end when one does not match: the core then fails the upload and keeps nothing.
pub(super) struct Verifying {
    pub(super) inner: ByteStream<'static>,
    pub(super) md5: Option<Md5>,
    pub(super) hasher: Option<ChecksumHasher>,
    pub(super) summing: Option<Summing>,
    pub(super) declared: Declared,
    pub(super) trailers: Option<TrailingHeaders>,
    pub(super) measured: Arc<Mutex<Measured>>,
}

impl Verifying {
    fn finish(&mut self) -> Option<String> {
        let md5 = self.md5.take()?.finalize();
        let checksums = self.hasher.take().map(ChecksumHasher::finalize).unwrap_or_default();
        let mut declared = self.declared.checksums.clone();
        if let Some(trailers) = self.trailers.as_ref().and_then(TrailingHeaders::take) {
            let text =
                |name: &str| trailers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
            declared.checksum_crc32 = declared.checksum_crc32.or_else(|| text("x-amz-checksum-crc32"));
            declared.checksum_crc32c = declared.checksum_crc32c.or_else(|| text("x-amz-checksum-crc32c"));
            declared.checksum_sha1 = declared.checksum_sha1.or_else(|| text("x-amz-checksum-sha1"));
            declared.checksum_sha256 = declared.checksum_sha256.or_else(|| text("x-amz-checksum-sha256"));
            declared.checksum_crc64nvme =
                declared.checksum_crc64nvme.or_else(|| text("x-amz-checksum-crc64nvme"));
        }
        let mut mismatch = None;
        if let Some(content_md5) = &self.declared.content_md5 {
            if base64::engine::general_purpose::STANDARD.encode(md5) != *content_md5 {
                mismatch = Some("the bytes do not match Content-MD5".to_owned());
            }
        }
        let pairs = [
            ("CRC32", &declared.checksum_crc32, &checksums.checksum_crc32),
            ("CRC32C", &declared.checksum_crc32c, &checksums.checksum_crc32c),
            ("SHA1", &declared.checksum_sha1, &checksums.checksum_sha1),
            ("SHA256", &declared.checksum_sha256, &checksums.checksum_sha256),
            ("CRC64NVME", &declared.checksum_crc64nvme, &checksums.checksum_crc64nvme),
        ];
        for (name, declared, computed) in pairs {
            if let Some(declared) = declared {
                if computed.as_ref() != Some(declared) {
                    mismatch = Some(format!(
                        "the bytes do not match the declared x-amz-checksum-{}",
                        name.to_lowercase()
                    ));
                }
            }
        }
        let summed = match self.summing.take().map(Summing::finish) {
            Some(Ok(summed)) => summed,
            Some(Err(why)) => {
                mismatch = Some(why);
                Summed::default()
            }
            None => Summed::default(),
        };
        let mut measured = self.measured.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        measured.md5_hex = Some(hex::encode(md5));
        measured.summed = summed;
        measured.checksums = checksums;
        measured.mismatch = mismatch.clone();
        mismatch
    }
}

impl Stream for Verifying {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(md5) = &mut self.md5 {
                    md5.update(&chunk);
                }
                if let Some(hasher) = &mut self.hasher {
                    hasher.update(&chunk);
                }
                if let Some(summing) = &mut self.summing {
                    summing.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => match self.finish() {
                Some(mismatch) => Poll::Ready(Some(Err(std::io::Error::other(mismatch)))),
                None => Poll::Ready(None),
            },
            other => other,
        }
    }
}

pub(super) fn hasher_for(declared: &Declared) -> S3Result<ChecksumHasher> {
    let mut hasher = ChecksumHasher::default();
    let sums = &declared.checksums;
    let wants = |name: &str| {
        declared.algorithm.as_deref().is_some_and(|algorithm| algorithm.eq_ignore_ascii_case(name))
    };
    if sums.checksum_crc32.is_some() || wants("CRC32") {
        hasher.crc32 = Some(Default::default());
    }
    if sums.checksum_crc32c.is_some() || wants("CRC32C") {
        hasher.crc32c = Some(Default::default());
    }
    if sums.checksum_sha1.is_some() || wants("SHA1") {
        hasher.sha1 = Some(Default::default());
    }
    if sums.checksum_sha256.is_some() || wants("SHA256") {
        hasher.sha256 = Some(Default::default());
    }
    if sums.checksum_crc64nvme.is_some() || wants("CRC64NVME") {
        hasher.crc64nvme = Some(Default::default());
    }
    if let Some(algorithm) = &declared.algorithm {
        if !["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"]
            .iter()
            .any(|known| algorithm.eq_ignore_ascii_case(known))
        {
            return Err(s3_error!(InvalidArgument, "unknown checksum algorithm {algorithm}"));
        }
    }
    Ok(hasher)
}

/// What a write brings besides its bytes.
pub(super) struct NewObject {
    pub content_length: Option<u64>,
    /// The ETag to record instead of the bytes' MD5 (S3's multipart form).
    pub etag: Option<String>,
    pub content_type: Option<String>,
    pub metadata: Option<HashMap<String, String>>,
    pub headers: S3Headers,
    /// The sizes of the parts it is completed from (none for one PUT).
    pub part_sizes: Vec<u64>,
    pub if_match: Option<ETagCondition>,
    pub if_none_match: Option<ETagCondition>,
}

/// A stored object.
pub(super) struct Stored {
    pub etag: String,
    /// Every checksum computed of its bytes.
    pub checksums: Checksum,
    /// Its own checksum (with its type), as HEAD answers it.
    pub own: Checksum,
}

/// A write's `If-Match` and `If-None-Match` against the object it would replace (`None`: the key
/// holds none): 412, or `NoSuchKey` for If-Match where there is no object, as S3 answers.
pub(super) async fn check_write_conditions(
    cabinet: &Cabinet,
    caller: &Caller,
    current: Option<&FileRecord>,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<()> {
    match (if_none_match, current) {
        (Some(ETagCondition::Any), Some(_)) => {
            return Err(s3_error!(PreconditionFailed, "the object exists (If-None-Match: *)"));
        }
        (Some(ETagCondition::ETag(theirs)), Some(current)) => {
            let ours = ETag::Strong(file_etag(cabinet, caller, current).await?);
            if ours.strong_cmp(theirs) {
                return Err(s3_error!(PreconditionFailed, "the object's ETag matches If-None-Match"));
            }
        }
        _ => {}
    }
    if let Some(condition) = if_match {
        let Some(current) = current else {
            return Err(s3_error!(NoSuchKey, "the object does not exist (If-Match)"));
        };
        if let ETagCondition::ETag(theirs) = condition {
            let ours = ETag::Strong(file_etag(cabinet, caller, current).await?);
            if !ours.strong_cmp(theirs) {
                return Err(s3_error!(PreconditionFailed, "If-Match does not match the object's ETag"));
            }
        }
    }
    Ok(())
}

/// Stores bytes under a key: folders made as needed, the bytes through the core's intake (quota,
/// staging, verification), the older files of that name then moved to the trash.
#[allow(clippy::too_many_arguments)]
pub(super) async fn store(
    cabinet: &Cabinet,
    writes: &Writes,
    caller: &Caller,
    key: &str,
    body: ByteStream<'static>,
    object: NewObject,
    declared: Declared,
    trailers: Option<TrailingHeaders>,
) -> S3Result<Stored> {
    let path = parse_key(key)?;
    let _writing = writes.begin(&caller.workspace_id);
    let Some(name) = path.name else {
        if object.content_length.is_some_and(|length| length > 0) {
            return Err(s3_error!(InvalidArgument, "a key ending in / is a folder and takes no bytes"));
        }
        cabinet.make_folders(caller, &path.folders).await.map_err(s3_error_of)?;
        return Ok(Stored {
            etag: EMPTY_MD5.to_owned(),
            checksums: Checksum::default(),
            own: Checksum::default(),
        });
    };
    let metadata: Option<serde_json::Map<String, serde_json::Value>> = object
        .metadata
        .map(|pairs| pairs.into_iter().map(|(key, value)| (key, serde_json::Value::String(value))).collect());
    if let Some(metadata) = &metadata {
        cabinet_core::metadata::validate_custom(metadata).map_err(s3_error_of)?;
    }
    // Before a byte is read: the conditions, and whether the file it would replace may go.
    let existing = match cabinet.folder_at(caller, &path.folders).await.map_err(s3_error_of)? {
        Some(place) => cabinet.files_named(caller, &place, name).await.map_err(s3_error_of)?,
        None => Vec::new(),
    };
    check_write_conditions(
        cabinet,
        caller,
        existing.last(),
        object.if_match.as_ref(),
        object.if_none_match.as_ref(),
    )
    .await?;
    for file in &existing {
        let used = cabinet.list_references(caller, &file.id).await.map_err(s3_error_of)?;
        if !used.is_empty() {
            let mut error = S3Error::with_message(
                s3s::S3ErrorCode::Custom("FileInUse".into()),
                format!("{key} is in use ({} references) and cannot be replaced", used.len()),
            );
            error.set_status_code(axum::http::StatusCode::CONFLICT);
            return Err(error);
        }
    }
    let place: Place = cabinet.make_folders(caller, &path.folders).await.map_err(s3_error_of)?;
    let measured = Arc::new(Mutex::new(Measured::default()));
    let asked = declared.algorithm.as_deref().map(str::to_ascii_uppercase);
    let composite_algorithm =
        declared.parts.as_ref().filter(|sums| sums.composite).map(|sums| sums.algorithm.clone());
    let verifying = Verifying {
        inner: body,
        md5: Some(Md5::new()),
        hasher: Some(hasher_for(&declared)?),
        summing: declared.parts.clone().map(Summing::new),
        declared,
        trailers,
        measured: measured.clone(),
    };
    let upload = DirectUpload {
        name: name.to_owned(),
        mime_type: object.content_type,
        folder_id: place,
        max_bytes: Some(MAX_PUT_BYTES),
    };
    let stored =
        cabinet.upload_direct_of_length(caller, upload, object.content_length, Box::pin(verifying)).await;
    let mut measured = std::mem::take(&mut *measured.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    let file = match stored {
        Ok(file) => file,
        Err(err) => {
            if let Some(mismatch) = measured.mismatch {
                return Err(S3Error::with_message(s3s::S3ErrorCode::BadDigest, mismatch));
            }
            if matches!(err, CoreError::NotFound("folder")) {
                // Removed by a delete between its making and the upload's start: try again.
                return Err(s3_error!(SlowDown, "the object's folder was removed meanwhile; retry"));
            }
            return Err(s3_error_of(err));
        }
    };
    // A delete on another node may have removed the folder while the bytes streamed: the file
    // goes back where its key says.
    let now_at = cabinet.make_folders(caller, &path.folders).await.map_err(s3_error_of)?;
    if now_at != file.folder_id {
        let change = FileChange { folder: Some(now_at), ..Default::default() };
        cabinet.update_file(caller, &file.id, change).await.map_err(s3_error_of)?;
    }
    let etag = object.etag.unwrap_or_else(|| measured.md5_hex.unwrap_or_default());
    // The object's own checksum: a multipart upload's composite, or the one the write asked for
    // (or the first it declared) of all its bytes.
    let checksum = match (composite_algorithm, measured.summed.composite.clone()) {
        (Some(algorithm), Some(value)) => {
            Some(S3Checksum { algorithm, kind: ChecksumType::COMPOSITE.to_owned(), value })
        }
        _ => asked.iter().map(String::as_str).chain(ALGORITHMS).find_map(|algorithm| {
            checksum_of(&measured.checksums, algorithm).map(|value| S3Checksum {
                algorithm: algorithm.to_owned(),
                kind: ChecksumType::FULL_OBJECT.to_owned(),
                value: value.clone(),
            })
        }),
    };
    let answered = checksum.as_ref().map(checksum_answer).unwrap_or_default();
    let kept = S3Object {
        etag: etag.clone(),
        headers: object.headers,
        part_sizes: object.part_sizes,
        checksum,
        part_checksums: std::mem::take(&mut measured.summed.parts),
    };
    cabinet.set_s3_object(caller, &file.id, &kept).await.map_err(s3_error_of)?;
    if let Some(metadata) = metadata.filter(|metadata| !metadata.is_empty()) {
        let change = FileChange { metadata: Some(metadata), ..Default::default() };
        cabinet.update_file(caller, &file.id, change).await.map_err(s3_error_of)?;
    }
    for old in existing {
        if let Err(err) = cabinet.delete_file(caller, &old.id, false, false).await {
            tracing::warn!(error = %err, file = %old.id, "the file an S3 PUT replaced could not be moved to the trash");
        }
    }
    Ok(Stored { etag, checksums: measured.checksums, own: answered })
}

pub(super) async fn put(
    cabinet: &Cabinet,
    writes: &Writes,
    caller: &Caller,
    input: PutObjectInput,
    trailers: Option<TrailingHeaders>,
) -> S3Result<PutObjectOutput> {
    let body: ByteStream<'static> = match input.body {
        Some(body) => Box::pin(body.map(|chunk| chunk.map_err(std::io::Error::other))),
        None => Box::pin(futures::stream::empty()),
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
    let object = NewObject {
        content_length: input.content_length.and_then(|length| u64::try_from(length).ok()),
        etag: None,
        content_type: input.content_type.clone(),
        metadata: input.metadata.clone(),
        headers: headers_of(
            input.cache_control.as_ref(),
            input.content_disposition.as_ref(),
            input.content_encoding.as_ref(),
            input.content_language.as_ref(),
            input.expires.as_ref(),
        )?,
        part_sizes: Vec::new(),
        if_match: input.if_match.clone(),
        if_none_match: input.if_none_match.clone(),
    };
    let stored = store(cabinet, writes, caller, &input.key, body, object, declared, trailers).await?;
    Ok(PutObjectOutput {
        e_tag: Some(ETag::Strong(stored.etag)),
        checksum_crc32: stored.checksums.checksum_crc32,
        checksum_crc32c: stored.checksums.checksum_crc32c,
        checksum_sha1: stored.checksums.checksum_sha1,
        checksum_sha256: stored.checksums.checksum_sha256,
        checksum_crc64nvme: stored.checksums.checksum_crc64nvme,
        ..Default::default()
    })
}

/// Copies an object: its bytes read through the core and stored anew (verified like any upload).
pub(super) async fn copy(
    cabinet: &Cabinet,
    writes: &Writes,
    source_caller: &Caller,
    source_key: &str,
    caller: &Caller,
    input: CopyObjectInput,
) -> S3Result<CopyObjectOutput> {
    let conditions = CopyConditions {
        if_match: input.copy_source_if_match.as_ref(),
        if_none_match: input.copy_source_if_none_match.as_ref(),
        if_modified_since: input.copy_source_if_modified_since.as_ref(),
        if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
    };
    let source = copy_source(cabinet, source_caller, source_key, conditions).await?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|directive| directive.as_str() == MetadataDirective::REPLACE);
    let kept = described(cabinet, source_caller, &source).await?;
    // The copy has a checksum of its own of the algorithm asked for, or of the source's (of all
    // its bytes, whatever the source's type), as S3 gives it.
    let algorithm = input
        .checksum_algorithm
        .as_ref()
        .map(|algorithm| algorithm.as_str().to_owned())
        .or_else(|| kept.checksum.as_ref().map(|checksum| checksum.algorithm.clone()));
    let (content_type, metadata, headers) = if replace {
        let headers = headers_of(
            input.cache_control.as_ref(),
            input.content_disposition.as_ref(),
            input.content_encoding.as_ref(),
            input.content_language.as_ref(),
            input.expires.as_ref(),
        )?;
        (input.content_type.clone(), input.metadata.clone(), headers)
    } else {
        (Some(source.mime_type.clone()), user_metadata(&source), kept.headers)
    };
    let body = cabinet.read_file(&source, None).await.map_err(s3_error_of)?;
    let object = NewObject {
        content_length: Some(source.size),
        etag: None,
        content_type,
        metadata,
        headers,
        part_sizes: Vec::new(),
        if_match: None,
        if_none_match: None,
    };
    let declared = Declared { algorithm, ..Default::default() };
    let stored = store(cabinet, writes, caller, &input.key, body, object, declared, None).await?;
    let own = stored.own;
    Ok(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(ETag::Strong(stored.etag)),
            last_modified: Some(timestamp(cabinet.now())),
            checksum_crc32: own.checksum_crc32,
            checksum_crc32c: own.checksum_crc32c,
            checksum_crc64nvme: own.checksum_crc64nvme,
            checksum_sha1: own.checksum_sha1,
            checksum_sha256: own.checksum_sha256,
            checksum_type: own.checksum_type,
        }),
        ..Default::default()
    })
}

/// A copy's `x-amz-copy-source-if-*` headers.
pub(super) struct CopyConditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

/// The file a copy reads, once its conditions hold (a failed one is 412, never 304).
pub(super) async fn copy_source(
    cabinet: &Cabinet,
    source_caller: &Caller,
    source_key: &str,
    conditions: CopyConditions<'_>,
) -> S3Result<FileRecord> {
    let Found::File(source) = find(cabinet, source_caller, source_key).await? else {
        return Err(s3_error!(InvalidRequest, "a folder cannot be copied"));
    };
    let source = cabinet.readable_file(source_caller, &source.id).await.map_err(s3_error_of)?;
    let etag = file_etag(cabinet, source_caller, &source).await?;
    check_read_conditions(
        &etag,
        source.created_at,
        conditions.if_match,
        conditions.if_none_match,
        conditions.if_modified_since,
        conditions.if_unmodified_since,
    )
    .map_err(|err| {
        if *err.code() == s3s::S3ErrorCode::NotModified {
            s3_error!(PreconditionFailed)
        } else {
            err
        }
    })?;
    Ok(source)
}

/// What a delete may require of the object first (`If-Match`, `x-amz-if-match-last-modified-time`,
/// `x-amz-if-match-size`, or the same per key in DeleteObjects).
#[derive(Default)]
pub(super) struct DeleteConditions<'a> {
    pub etag: Option<ETagCondition>,
    pub last_modified: Option<&'a Timestamp>,
    pub size: Option<i64>,
}

/// A delete's conditions: an object that does not meet them stays (412). A key that names no
/// object is deleted already, whatever they say.
pub(super) async fn check_delete_conditions(
    cabinet: &Cabinet,
    caller: &Caller,
    key: &str,
    conditions: DeleteConditions<'_>,
) -> S3Result<()> {
    if conditions.etag.is_none() && conditions.last_modified.is_none() && conditions.size.is_none() {
        return Ok(());
    }
    let file = match find(cabinet, caller, key).await {
        Ok(Found::File(file)) => file,
        Ok(Found::Folder) => return Ok(()),
        Err(err) if *err.code() == s3s::S3ErrorCode::NoSuchKey => return Ok(()),
        Err(err) => return Err(err),
    };
    let failed = |what: &str| Err(s3_error!(PreconditionFailed, "the object's {what} does not match"));
    if let Some(ETagCondition::ETag(theirs)) = &conditions.etag {
        if !ETag::Strong(file_etag(cabinet, caller, &file).await?).strong_cmp(theirs) {
            return failed("ETag");
        }
    }
    if let Some(at) = conditions.last_modified {
        if time::OffsetDateTime::from(at.clone()).unix_timestamp() != file.created_at.timestamp() {
            return failed("last modification time");
        }
    }
    if conditions.size.is_some_and(|size| u64::try_from(size).ok() != Some(file.size)) {
        return failed("size");
    }
    Ok(())
}

/// Deletes what a key names: its files to the trash, or its folder when empty; the folders
/// above left empty are removed too (S3 has no folders: an emptied prefix disappears). A key
/// that names nothing is deleted already.
pub(super) async fn delete(cabinet: &Cabinet, writes: &Writes, caller: &Caller, key: &str) -> S3Result<()> {
    let path = parse_key(key)?;
    let Some(place) = gone_is_none(cabinet.folder_at(caller, &path.folders).await)?.flatten() else {
        return Ok(());
    };
    match path.name {
        None => {}
        Some(name) => {
            let files = gone_is_none(cabinet.files_named(caller, &place, name).await)?.unwrap_or_default();
            for file in files {
                match cabinet.delete_file(caller, &file.id, false, false).await {
                    Ok(_) | Err(CoreError::NotFound(_)) => {}
                    Err(err) => return Err(s3_error_of(err)),
                }
            }
        }
    }
    if writes.any(&caller.workspace_id) {
        return Ok(());
    }
    remove_empty_folders(cabinet, caller, place).await
}

/// What another request removed meanwhile is as good as never there.
fn gone_is_none<T>(result: cabinet_core::Result<T>) -> S3Result<Option<T>> {
    match result {
        Ok(found) => Ok(Some(found)),
        Err(CoreError::NotFound(_)) => Ok(None),
        Err(err) => Err(s3_error_of(err)),
    }
}

async fn remove_empty_folders(cabinet: &Cabinet, caller: &Caller, mut place: Place) -> S3Result<()> {
    while let Some(folder) = place {
        if !gone_is_none(cabinet.folder_is_empty(caller, &folder).await)?.unwrap_or(false) {
            break;
        }
        let Some(details) = gone_is_none(cabinet.get_folder(caller, &folder).await)? else { break };
        match cabinet.delete_folder(caller, &folder, false, false, true).await {
            Ok(_) | Err(CoreError::NotFound(_)) => {}
            // Something arrived in it meanwhile.
            Err(CoreError::Conflict { .. }) => break,
            Err(err) => return Err(s3_error_of(err)),
        }
        place = details.folder.parent_id;
    }
    Ok(())
}
