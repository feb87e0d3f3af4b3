//! Multipart uploads over the core's staged parts: each part is reserved against the quota as it
//! arrives, verified (Content-MD5, checksums) and kept under a name made of its number and MD5,
//! so completing with a part's ETag finds exactly the bytes that ETag names. Completion streams
//! the parts, in order, through the same path as a PUT; the object's ETag is S3's multipart form
//! (the MD5 of the parts' MD5s, `-`, their count).

use std::sync::{Arc, Mutex};

use cabinet_core::{Cabinet, Caller, Error as CoreError, UploadId};
use futures::StreamExt;
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3Result, TrailingHeaders};

use super::objects::{hasher_for, parse_key, store, Declared, Measured, NewObject, Verifying, Writes};
use super::s3_error_of;

/// S3's most parts in one upload.
const MAX_PARTS: i32 = 10_000;

fn upload_id(raw: &str) -> S3Result<UploadId> {
    UploadId::parse(raw).map_err(|_| s3_error!(NoSuchUpload))
}

fn no_such_upload(err: CoreError) -> S3Error {
    match err {
        CoreError::NotFound(_) => s3_error!(NoSuchUpload),
        other => s3_error_of(other),
    }
}

fn part_name(number: i32, md5_hex: &str) -> String {
    format!("{number:05}-{md5_hex}")
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
    let upload =
        cabinet.begin_staged_parts(caller, name, input.content_type.as_deref()).await.map_err(s3_error_of)?;
    Ok(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload.id.to_string()),
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
    };
    let body: cabinet_core::ByteStream<'static> = match input.body {
        Some(body) => Box::pin(body.map(|chunk| chunk.map_err(std::io::Error::other))),
        None => Box::pin(futures::stream::empty()),
    };
    let measured = Arc::new(Mutex::new(Measured::default()));
    let verifying = Verifying {
        inner: body,
        md5: Some(Md5::new()),
        hasher: Some(hasher_for(&declared)?),
        declared,
        trailers,
        measured: measured.clone(),
    };
    let number = input.part_number;
    let named = measured.clone();
    let name = move || {
        let measured = named.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        part_name(number, measured.md5_hex.as_deref().unwrap_or_default())
    };
    let staged = cabinet.stage_part(caller, &id, length, Box::pin(verifying), &name).await;
    let measured = std::mem::take(&mut *measured.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    if let Err(err) = staged {
        if let Some(mismatch) = measured.mismatch {
            return Err(S3Error::with_message(s3s::S3ErrorCode::BadDigest, mismatch));
        }
        return Err(no_such_upload(err));
    }
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

pub(super) async fn complete(
    cabinet: &Cabinet,
    writes: &Writes,
    caller: &Caller,
    input: CompleteMultipartUploadInput,
) -> S3Result<CompleteMultipartUploadOutput> {
    let id = upload_id(&input.upload_id)?;
    let upload = cabinet.staged_parts_upload(caller, &id).await.map_err(no_such_upload)?;
    let path = parse_key(&input.key)?;
    if path.name != Some(upload.name.as_str()) {
        return Err(s3_error!(NoSuchUpload, "this upload was started for another key"));
    }
    let parts = input.multipart_upload.and_then(|upload| upload.parts).unwrap_or_default();
    if parts.is_empty() {
        return Err(s3_error!(MalformedXML, "a multipart upload is completed with at least one part"));
    }
    let mut names = Vec::with_capacity(parts.len());
    let mut digests = Md5::new();
    let mut previous = 0;
    for part in &parts {
        let number = part.part_number.unwrap_or(0);
        if number <= previous {
            return Err(s3_error!(InvalidPartOrder, "parts must be listed in ascending order of number"));
        }
        previous = number;
        let etag = part.e_tag.as_ref().map(|etag| etag.value().to_ascii_lowercase()).unwrap_or_default();
        let Some(md5) = hex::decode(&etag).ok().filter(|md5| md5.len() == 16) else {
            return Err(s3_error!(InvalidPart, "part {number}: {etag:?} is not an ETag this service gave"));
        };
        digests.update(&md5);
        names.push(part_name(number, &etag));
    }
    let etag = format!("{}-{}", hex::encode(digests.finalize()), parts.len());
    let key = input.key.clone();
    let content_type = upload.declared_mime.clone();
    let recorded = etag.clone();
    let stored = cabinet
        .complete_staged_parts(caller, &id, &names, |body, total| async move {
            let object = NewObject {
                content_length: Some(total),
                etag: Some(recorded),
                content_type,
                metadata: None,
                if_match: None,
                if_none_match: None,
            };
            store(cabinet, writes, caller, &key, body, object, Declared::default(), None).await
        })
        .await;
    match stored {
        Ok(stored) => stored?,
        Err(CoreError::PartsMissing { missing }) => {
            let numbers: Vec<String> = missing
                .iter()
                .filter_map(|index| parts.get(*index as usize - 1))
                .map(|part| part.part_number.unwrap_or(0).to_string())
                .collect();
            return Err(s3_error!(
                InvalidPart,
                "no part matches parts {} with their ETags",
                numbers.join(", ")
            ));
        }
        Err(err) => return Err(no_such_upload(err)),
    };
    Ok(CompleteMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        e_tag: Some(ETag::Strong(etag)),
        ..Default::default()
    })
}

pub(super) async fn abort(
    cabinet: &Cabinet,
    caller: &Caller,
    input: AbortMultipartUploadInput,
) -> S3Result<()> {
    let id = upload_id(&input.upload_id)?;
    cabinet.abort_staged_parts(caller, &id).await.map_err(no_such_upload)
}
