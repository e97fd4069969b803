//! What `rdv peer` reads: server messages and its own NDJSON input lines.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        rdv::fuzzing::peer_input(text);
    }
});
