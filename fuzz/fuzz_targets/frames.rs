//! Raw bytes from a client as the inbound guard reads their frame headers, in any split.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, bytes)) = data.split_first() else {
        return;
    };
    rdv::fuzzing::inbound_guard(bytes, usize::from(chunk));
});
