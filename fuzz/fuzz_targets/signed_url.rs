//! Fuzzes the hand-written signed-URL query parser (`UrlSigner::verify`), see SECURITY.md.
//!
//! Properties, for any input (format in `fuzz/src/lib.rs`):
//! 1. `verify` never panics, whatever the workspace, object and query; and it accepts a query
//!    only if it is exactly what `sign` produces for the parameters it returned.
//! 2. A query that `sign` produced from the input's parameters verifies and returns exactly those
//!    parameters when they are representable (see `representable`), and is refused otherwise.
//! 3. Any byte-level change of that signed query is refused unless it leaves the query as it was.
#![no_main]

use cabinet_fuzz::{now, representable, signer, Input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
});
