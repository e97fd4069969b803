//! Finding keys in text: one JWK, a JWK Set, an array of JWKs or buddy entries, NDJSON of
//! JWKs, or PEM blocks. Pure: callers read the files.

use serde_json::Value;

use crate::identity::{self, PrivateKey, PrivateMembers, PublicJwk};

/// One key found in an input.
#[derive(Debug)]
pub struct FoundKey {
    /// Position inside a container (JWK Set member, array entry, NDJSON line, PEM block),
    /// `None` when the input is a single key.
    pub index: Option<usize>,
    /// The JWK's `kid`, if it had one.
    pub kid: Option<String>,
    pub key: Result<PublicJwk, String>,
}

/// Every key in `text`, each parsed on its own so one bad entry does not hide the others.
/// Private members are ignored: the public half identifies the key pair.
pub fn find_keys(text: &str) -> Result<Vec<FoundKey>, String> {
    if identity::looks_like_pem(text) {
        let blocks = identity::public_keys_from_pem(text);
        let single = blocks.len() == 1;
        return Ok(blocks
            .into_iter()
            .enumerate()
            .map(|(index, key)| FoundKey {
                index: (!single).then_some(index),
                kid: None,
                key: key.map_err(|e| e.to_string()),
            })
            .collect());
    }
    if text.trim().is_empty() {
        return Err("the input is empty".into());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => match object.get("keys") {
            Some(Value::Array(keys)) => Ok(indexed(keys.iter(), "JWK Set member")),
            Some(_) => Err("member keys of a JWK Set must be an array".into()),
            None => Ok(vec![from_jwk(None, &Value::Object(object), "")]),
        },
        Ok(Value::Array(entries)) => Ok(indexed(entries.iter(), "entry")),
        Ok(_) => Err("expected a JWK object, a JWK Set, NDJSON of JWKs, or PEM".into()),
        Err(whole) => {
            let lines: Vec<(usize, &str)> = text
                .lines()
                .enumerate()
                .filter(|(_, line)| !line.trim().is_empty())
                .collect();
            // NDJSON only when the first line is JSON: a file that is not keys at all gets
            // one error, not one per line.
            let first_is_json = lines
                .first()
                .is_some_and(|(_, line)| serde_json::from_str::<Value>(line).is_ok());
            if lines.len() < 2 || !first_is_json {
                return Err(format!(
                    "not JSON or PEM, so not a key: expected a JWK, a JWK Set, NDJSON of JWKs, or PEM \
                     ({whole})"
                ));
            }
            Ok(lines
                .into_iter()
                .enumerate()
                .map(
                    |(index, (line_number, line))| match serde_json::from_str::<Value>(line) {
                        Ok(value) => from_jwk(Some(index), &value, ""),
                        Err(e) => FoundKey {
                            index: Some(index),
                            kid: None,
                            key: Err(format!("line {}: not JSON: {e}", line_number + 1)),
                        },
                    },
                )
                .collect())
        }
    }
}

fn indexed<'a>(values: impl Iterator<Item = &'a Value>, what: &str) -> Vec<FoundKey> {
    values
        .enumerate()
        .map(|(index, value)| {
            // A buddy list entry carries its key in publicKey.
            let jwk = value.get("publicKey").unwrap_or(value);
            from_jwk(Some(index), jwk, &format!("{what} {index}: "))
        })
        .collect()
}

fn from_jwk(index: Option<usize>, value: &Value, context: &str) -> FoundKey {
    FoundKey {
        index,
        kid: value.get("kid").and_then(Value::as_str).map(str::to_owned),
        key: PublicJwk::from_json(value, PrivateMembers::Ignore)
            .map_err(|e| format!("{context}{e}")),
    }
}

/// Reads one private key: a private JWK or a private PEM (PKCS#8, PKCS#1, SEC1).
pub fn parse_private_key(text: &str) -> Result<PrivateKey, String> {
    if identity::looks_like_pem(text) {
        let (label, der) = pkcs8::der::pem::decode_vec(text.trim().as_bytes())
            .map_err(|e| format!("not valid PEM: {e}"))?;
        return PrivateKey::from_pem(label, &der).map_err(|e| e.to_string());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON or PEM: {e}"))?;
    PrivateKey::from_jwk(&value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::KeySpec;

    #[test]
    fn finds_keys_in_every_container() {
        let a = PrivateKey::generate(KeySpec::Ed25519).unwrap();
        let b = PrivateKey::generate(KeySpec::Ed25519).unwrap();
        let (ja, jb) = (a.public().to_public_json(), b.public().to_public_json());
        let ids = |text: &str| -> Vec<String> {
            find_keys(text)
                .unwrap()
                .into_iter()
                .map(|k| k.key.unwrap().peer_id().to_string())
                .collect()
        };
        let expected = vec![
            a.public().peer_id().to_string(),
            b.public().peer_id().to_string(),
        ];
        assert_eq!(
            ids(&serde_json::json!({"keys": [ja, jb]}).to_string()),
            expected
        );
        assert_eq!(ids(&format!("{ja}\n\n{jb}\n")), expected);
        assert_eq!(
            ids(&serde_json::json!([{"id": "x", "publicKey": ja}, jb]).to_string()),
            expected
        );
        assert_eq!(
            ids(&format!("{}{}", a.public_pem(), b.to_pkcs8_pem())),
            expected
        );
        assert_eq!(ids(&a.to_jwk().to_string()), expected[..1]);
        assert!(find_keys("").is_err());
        assert!(find_keys("{nope").is_err());
        let mixed = find_keys(&format!("{ja}\n{{\"kty\":\"EC\"}}\n")).unwrap();
        assert!(mixed[0].key.is_ok() && mixed[1].key.is_err());
    }
}
