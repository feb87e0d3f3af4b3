//! Fuzzes the hand-written signed-URL query parser (`UrlSigner::verify`), see SECURITY.md.
//! The properties are `cabinet_fuzz::check_properties`; `crates/core/tests/signed_url_properties.rs`
//! replays the seed corpus and a fixed set of derived inputs through them on every test run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cabinet_fuzz::check_properties(data));
