//! What signing and checking an offer costs (PROTOCOL §12), per key type: `cargo bench
//! --bench signatures`. Prints the median of 9 rounds of 200 operations each; no thresholds.

use std::time::Instant;

use rdv::identity::{EcCurve, KeySpec, PrivateKey, sign_description, verify_description};
use serde_json::{Value, json};

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    // A real-sized data-channel offer: ~600 bytes of SDP.
    let sdp = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
               a=group:BUNDLE 0\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n\
               m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
               a=ice-ufrag:EsAw\r\na=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\na=ice-options:trickle\r\n\
               a=fingerprint:sha-256 8C:71:B4:8E:4C:2A:5F:90:0B:31:0D:63:1A:22:F4:71:2B:1F:99:AB:E3:60:CE:55:71:D9:21:6D:7E:88:02:4C\r\n\
               a=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n";
    let to = "b".repeat(64);
    let keys = [
        ("P-256", KeySpec::Ec(EcCurve::P256)),
        ("Ed25519", KeySpec::Ed25519),
        ("RSA-2048", KeySpec::Rsa { bits: 2048 }),
    ];
    println!("{:<10} {:>14} {:>14}", "key", "sign (µs)", "verify (µs)");
    for (name, spec) in keys {
        let key = PrivateKey::generate(spec).unwrap();
        let public = key.public();
        let from = public.peer_id().to_string();
        let now = 1_764_806_400_000;
        let offer = || json!({"type": "offer", "to": to, "sdp": {"type": "offer", "sdp": sdp}});
        let mut signed = offer();
        sign_description(&mut signed, &key, &from, now).unwrap();
        let mut received: Value = signed.clone();
        received.as_object_mut().unwrap().remove("to");
        received["from"] = from.clone().into();
        let rounds = 9;
        let per_round = 200;
        let mut sign_us = Vec::new();
        let mut verify_us = Vec::new();
        for _ in 0..rounds {
            let started = Instant::now();
            for _ in 0..per_round {
                let mut message = offer();
                sign_description(&mut message, &key, &from, now).unwrap();
                std::hint::black_box(&message);
            }
            sign_us.push(started.elapsed().as_secs_f64() * 1e6 / f64::from(per_round));
            let started = Instant::now();
            for _ in 0..per_round {
                std::hint::black_box(verify_description(&received, Some(&public), &to, now));
            }
            verify_us.push(started.elapsed().as_secs_f64() * 1e6 / f64::from(per_round));
        }
        println!(
            "{name:<10} {:>14.1} {:>14.1}",
            median(sign_us),
            median(verify_us)
        );
    }
}
