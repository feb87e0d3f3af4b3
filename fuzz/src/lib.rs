//! The input format of the `signed_url` fuzz target, shared with the seed-corpus generator.
//!
//! An input is a fixed header followed by text:
//!
//! | bytes  | meaning                                                                     |
//! |--------|-----------------------------------------------------------------------------|
//! | 0      | bit 0: download; bit 1: attachment; bits 2-3: edit; bit 4: upload part;    |
//! |        | bit 5: thumbnail (bits 0, 4, 5 all clear: upload)                          |
//! | 1..9   | `expires`, i64 little-endian                                                |
//! | 9..17  | `max_bytes`, u64 little-endian                                              |
//! | 17..19 | edit position, u16 little-endian                                            |
//! | 19     | edit byte                                                                   |
//! | 20..   | `workspace \n object \n query`, as (lossy) UTF-8                            |
//!
//! A shorter input is padded with zeros, so every input means something.

use cabinet_core::signing::{SignedOperation, SignedParams, UrlSigner};
use chrono::{DateTime, TimeZone, Utc};

/// The secret every input is signed and verified with.
pub const SECRET: [u8; 32] = *b"cabinet-fuzz-fixed-signing-key!!";

/// The instant every input is verified at (2027-01-15T08:00:00Z).
pub const NOW: i64 = 1_800_000_000;

const HEADER: usize = 20;

/// A byte-level change of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// Replace the byte at `at` with `byte`.
    Replace,
    /// Insert `byte` before position `at`.
    Insert,
    /// Remove the byte at `at`.
    Remove,
    /// Keep only the first `at` bytes.
    Truncate,
}

/// One decoded fuzz input.
#[derive(Debug, Clone)]
pub struct Input {
    pub op: SignedOperation,
    pub params: SignedParams,
    pub edit: Edit,
    pub edit_at: usize,
    pub edit_byte: u8,
    pub workspace: String,
    pub object: String,
    pub query: String,
}

impl Input {
    pub fn decode(data: &[u8]) -> Input {
        let mut header = [0u8; HEADER];
        let n = data.len().min(HEADER);
        header[..n].copy_from_slice(&data[..n]);
        let text = String::from_utf8_lossy(&data[n..]);
        let mut parts = text.splitn(3, '\n');
        let mut next = || parts.next().unwrap_or("").to_owned();
        let (workspace, object, query) = (next(), next(), next());
        Input {
            op: match (header[0] & 1, header[0] & 16, header[0] & 32) {
                (1, _, _) => SignedOperation::Download,
                (_, 16, _) => SignedOperation::UploadPart,
                (_, _, 32) => SignedOperation::Thumbnail,
                _ => SignedOperation::Upload,
            },
            params: SignedParams {
                expires: i64::from_le_bytes(header[1..9].try_into().unwrap()),
                max_bytes: u64::from_le_bytes(header[9..17].try_into().unwrap()),
                attachment: header[0] & 2 != 0,
            },
            edit: [Edit::Replace, Edit::Insert, Edit::Remove, Edit::Truncate]
                [usize::from(header[0] >> 2 & 3)],
            edit_at: usize::from(u16::from_le_bytes([header[17], header[18]])),
            edit_byte: header[19],
            workspace,
            object,
            query,
        }
    }

    /// The bytes that decode to this input (the inverse of `decode` for text without `\n` in
    /// the workspace or object).
    pub fn encode(&self) -> Vec<u8> {
        let edit = match self.edit {
            Edit::Replace => 0,
            Edit::Insert => 1,
            Edit::Remove => 2,
            Edit::Truncate => 3,
        };
        let mut out = vec![
            u8::from(self.op == SignedOperation::Download)
                | u8::from(self.params.attachment) << 1
                | edit << 2
                | u8::from(self.op == SignedOperation::UploadPart) << 4
                | u8::from(self.op == SignedOperation::Thumbnail) << 5,
        ];
        out.extend_from_slice(&self.params.expires.to_le_bytes());
        out.extend_from_slice(&self.params.max_bytes.to_le_bytes());
        out.extend_from_slice(&u16::try_from(self.edit_at).unwrap_or(u16::MAX).to_le_bytes());
        out.push(self.edit_byte);
        out.extend_from_slice(format!("{}\n{}\n{}", self.workspace, self.object, self.query).as_bytes());
        out
    }

    /// `query` with this input's edit applied (positions wrap around the query's length).
    pub fn edited(&self, query: &str) -> Vec<u8> {
        let mut bytes = query.as_bytes().to_vec();
        let len = bytes.len();
        match self.edit {
            Edit::Replace if len > 0 => bytes[self.edit_at % len] = self.edit_byte,
            Edit::Insert => bytes.insert(self.edit_at % (len + 1), self.edit_byte),
            Edit::Remove if len > 0 => {
                bytes.remove(self.edit_at % len);
            }
            Edit::Truncate => bytes.truncate(self.edit_at % (len + 1)),
            _ => {}
        }
        bytes
    }
}

pub fn signer() -> UrlSigner {
    UrlSigner::new(SECRET.to_vec()).expect("a 32-byte secret")
}

pub fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(NOW, 0).unwrap()
}

/// Whether `sign` can express `params` for `op` in a query that `verify` accepts at `NOW`.
/// `sign` takes any params, but the query grammar carries `max` only for uploads and `dl=1` only
/// for downloads, numbers are at most 19 digits, and a URL is valid only before `expires`.
pub fn representable(op: SignedOperation, params: &SignedParams) -> bool {
    let max_ok = match op {
        SignedOperation::Upload | SignedOperation::UploadPart => {
            params.max_bytes <= 9_999_999_999_999_999_999
        }
        SignedOperation::Download | SignedOperation::Thumbnail => params.max_bytes == 0,
    };
    let attachment_ok = op == SignedOperation::Download || !params.attachment;
    max_ok && attachment_ok && params.expires > NOW
}

/// The signed-URL parser's properties, for any input (its format is `Input`):
/// 1. `verify` never panics, whatever the workspace, object and query; and it accepts a query
///    only if it is exactly what `sign` produces for the parameters it returned.
/// 2. A query that `sign` produced from the input's parameters verifies and returns exactly those
///    parameters when they are representable (see `representable`), and is refused otherwise.
/// 3. Any byte-level change of that signed query is refused unless it leaves the query as it was.
///
/// Panics on the first property that does not hold.
pub fn check_properties(data: &[u8]) {
    let input = Input::decode(data);
    let signer = signer();
    let now = now();
    let (op, ws, object) = (input.op, input.workspace.as_str(), input.object.as_str());

    // 1. Arbitrary queries (and none at all).
    assert!(signer.verify(op, ws, object, None, now).is_err(), "accepted a missing query");
    if let Ok(params) = signer.verify(op, ws, object, Some(&input.query), now) {
        assert_eq!(input.query, signer.sign(op, ws, object, &params), "accepted a non-canonical query");
        assert!(representable(op, &params), "accepted {params:?}");
    }

    // 2. Round trip.
    let signed = signer.sign(op, ws, object, &input.params);
    match signer.verify(op, ws, object, Some(&signed), now) {
        Ok(params) => {
            assert!(representable(op, &input.params), "accepted {signed} for {:?}", input.params);
            assert_eq!(params, input.params, "{signed} verified with other parameters");
        }
        Err(err) => {
            assert!(!representable(op, &input.params), "refused {signed} for {:?}: {err}", input.params)
        }
    }

    // 3. One byte-level change of the signed query.
    let edited = input.edited(&signed);
    if edited != signed.as_bytes() {
        if let Ok(edited) = std::str::from_utf8(&edited) {
            let verdict = signer.verify(op, ws, object, Some(edited), now);
            assert!(verdict.is_err(), "accepted {edited:?}, an edit of {signed:?}: {verdict:?}");
        }
    }
}
