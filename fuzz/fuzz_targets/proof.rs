//! A proof of possession: an algorithm name and signature bytes, against keys of every kind.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (alg, signature) = data.split_at(split);
    if let Ok(alg) = std::str::from_utf8(alg) {
        rdv::fuzzing::proof(alg, signature.get(1..).unwrap_or(&[]));
    }
});
