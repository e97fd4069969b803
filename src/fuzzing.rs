//! Entry points for the fuzz targets in `fuzz/`: thin wrappers over the internals that parse
//! untrusted input, so the targets exercise exactly the code the server and the clients run.
//! Not an API: hidden from the documentation and free to change.

use std::time::{Duration, Instant};

/// The fast member scanner, checked against serde_json: whatever it accepts, serde_json
/// must accept with the same members and the same raw values. Panics on a disagreement.
pub fn scanner_agrees_with_serde_json(text: &str) {
    let Some(fast) = crate::protocol::scan_members_for_fuzzing(text) else {
        return;
    };
    #[derive(serde::Deserialize)]
    struct Members<'a>(
        #[serde(borrow, with = "members")] Vec<(String, &'a serde_json::value::RawValue)>,
    );
    mod members {
        use serde::de::{Deserializer, MapAccess, Visitor};
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Vec<(String, &'de serde_json::value::RawValue)>, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Vec<(String, &'de serde_json::value::RawValue)>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    let mut out = Vec::new();
                    while let Some(entry) = map.next_entry()? {
                        out.push(entry);
                    }
                    Ok(out)
                }
            }
            d.deserialize_map(V)
        }
    }
    let Ok(Members(slow)) = serde_json::from_str::<Members<'_>>(text) else {
        panic!("the scanner accepted what serde_json refuses: {text:?}");
    };
    let slow: Vec<(String, &str)> = slow.into_iter().map(|(k, v)| (k, v.get())).collect();
    let fast: Vec<(String, &str)> = fast.into_iter().map(|(k, v)| (k.into_owned(), v)).collect();
    assert_eq!(fast, slow, "members differ for {text:?}");
}

/// Parses one client frame as the server does; a relay's rewritten text must be JSON.
pub fn inbound_frame(text: &str) {
    use crate::protocol::{Inbound, parse_inbound};
    if let Ok(Inbound::Relay(relay)) = parse_inbound(text) {
        let from: crate::identity::PeerId = "ab".repeat(32).parse().expect("a valid ID");
        let forwarded = relay.forward_text(&from);
        // Not checked through `serde_json::Value`: with serde_json's raw_value feature, an
        // object whose member is named "$serde_json::private::RawValue" is read as a raw
        // value token, so a perfectly valid relay fails to parse that way (the fuzzer found
        // this; the input is kept in the corpus).
        #[derive(serde::Deserialize)]
        struct Routed {
            from: String,
            to: Option<serde::de::IgnoredAny>,
        }
        serde_json::from_str::<serde::de::IgnoredAny>(&forwarded)
            .expect("a forwarded relay is JSON");
        let routed: Routed = serde_json::from_str(&forwarded).expect("it has a from");
        assert_eq!(routed.from, from.as_str());
        assert!(routed.to.is_none(), "to is removed");
    }
}

/// Feeds bytes to a connection's inbound guard in the given chunk sizes; must never panic
/// and must give back every byte it charged.
pub fn inbound_guard(bytes: &[u8], chunk: usize) {
    let budget = crate::server::guard_for_fuzzing::budget(1 << 20);
    {
        let mut guard = crate::server::guard_for_fuzzing::guard(budget.clone());
        let mut now = Instant::now();
        for piece in bytes.chunks(chunk.max(1)) {
            now += Duration::from_millis(1);
            if guard.observe(piece, now).is_err() {
                break;
            }
        }
    }
    assert_eq!(budget.held(), 0, "a dropped guard gives every byte back");
}

/// A public JWK as the server reads `register`: a key it accepts has one peer ID, the same
/// when read back from its canonical form.
pub fn public_jwk(text: &str) {
    use crate::identity::{PrivateMembers, PublicJwk};
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    if let Ok(key) = PublicJwk::from_json(&value, PrivateMembers::Refuse) {
        let again = PublicJwk::from_json(&key.to_public_json(), PrivateMembers::Refuse)
            .expect("a key's canonical JWK is a key");
        assert_eq!(again.peer_id(), key.peer_id());
    }
}

/// Key files as `rdv fingerprint`, `rdv peer --key` and `--allow-list` read them.
pub fn key_text(text: &str) {
    let _ = crate::identity::public_keys_from_pem(text);
    let _ = crate::identity::keyfile::find_keys(text);
    let _ = crate::identity::keyfile::parse_private_key(text);
    let _ = crate::identity::parse_buddies(text);
}

/// A proof of possession against fixed keys of every kind: never a panic, and never valid
/// (the fuzzer cannot forge signatures).
pub fn proof(alg: &str, signature: &[u8]) {
    use crate::identity::{EcCurve, KeySpec, PrivateKey};
    use std::sync::OnceLock;
    static KEYS: OnceLock<Vec<crate::identity::PublicJwk>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        [
            KeySpec::Ec(EcCurve::P256),
            KeySpec::Ec(EcCurve::P384),
            KeySpec::Ed25519,
            KeySpec::Rsa { bits: 2048 },
        ]
        .into_iter()
        .map(|spec| PrivateKey::generate(spec).expect("keys generate").public())
        .collect()
    });
    for key in keys {
        let verified = crate::identity::verify_proof(key, alg, "fuzz-nonce", signature);
        assert!(verified.is_err(), "a fuzzed proof verified for {alg}");
    }
}

/// What `rdv peer` reads: server messages, and its own NDJSON lines to send.
pub fn peer_input(text: &str) {
    for line in text.lines() {
        let _ = crate::peer::check_json_for_fuzzing(line);
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(line)
            && let Some(message) = crate::protocol::ServerMessage::parse(&value)
        {
            let _ = message.from();
            let _ = message.error_code();
        }
    }
}

/// An access token against every kind of key a server takes, and the key files themselves:
/// never a panic, and never valid (the fuzzer cannot forge signatures, and the secret is
/// random per run).
pub fn token(text: &str) {
    use crate::identity::{EcCurve, KeySpec, PrivateKey, base64url};
    use crate::token::{Verifier, VerifierOptions, parse_verifying_keys};
    use std::sync::OnceLock;
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    let verifier = VERIFIER.get_or_init(|| {
        let mut keys = Vec::new();
        for spec in [
            KeySpec::Ec(EcCurve::P256),
            KeySpec::Ec(EcCurve::P384),
            KeySpec::Ed25519,
            KeySpec::Rsa { bits: 2048 },
        ] {
            let public = PrivateKey::generate(spec)
                .expect("keys generate")
                .public_pem();
            keys.extend(parse_verifying_keys(&public).expect("a public key reads"));
        }
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the OS has randomness");
        let oct = serde_json::json!({"kty": "oct", "k": base64url(&secret)}).to_string();
        keys.extend(parse_verifying_keys(&oct).expect("an oct key reads"));
        Verifier::new(keys, VerifierOptions::default())
    });
    let verdict = verifier.verify(text, Some("room"));
    assert!(verdict.is_err(), "a fuzzed token verified: {text:?}");
    let _ = crate::token::unverified_parts(text);
    let _ = parse_verifying_keys(text);
    let _ = crate::token::parse_signing_key(text, None);
}
