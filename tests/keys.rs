//! `rdv keygen` and `rdv fingerprint` as a user and a CI script run them.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn rdv_in(dir: &Path, args: &[&str], stdin: &str) -> Run {
    let mut child = common::spawn_rdv(dir, args);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

// Published example keys.
const RFC7517_A1_EC: &str = r#"{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","use":"enc","kid":"1"}"#;
const RFC8037_A2_ED25519: &str =
    r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
const RFC7638_RSA: &str = r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#;

#[test]
fn published_vectors() {
    let dir = tempfile::tempdir().unwrap();
    for (name, key, peer_id, thumbprint) in [
        (
            "ec.jwk",
            RFC7517_A1_EC,
            "a352193f3ae0e84514da6fcd22635e7363855ad6e684dc0bc33b22b2ae736401",
            None,
        ),
        (
            "ed.jwk",
            RFC8037_A2_ED25519,
            "20aab9665358bc73da7fc6ab0c064cc7487d8cc311c4596851adcce62db1f1e1",
            Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"),
        ), // RFC 8037 A.3
        (
            "rsa.jwk",
            RFC7638_RSA,
            "cf11c70a7e8d51ea8dc5838a58657c93252480f3aec2920817cfc58f469a208a",
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"),
        ), // RFC 7638 §3.1
    ] {
        write(dir.path(), name, key);
        let run = rdv_in(dir.path(), &["fingerprint", name], "");
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (0, format!("{peer_id}\n").as_str()),
            "{name}"
        );
        if let Some(thumbprint) = thumbprint {
            let run = rdv_in(
                dir.path(),
                &["fingerprint", "--scheme", "rfc7638", name],
                "",
            );
            assert_eq!(run.stdout, format!("{thumbprint}\n"), "{name}");
            assert_ne!(run.stdout.trim(), peer_id);
        }
        // stdin works the same.
        assert_eq!(
            rdv_in(dir.path(), &["fingerprint"], key).stdout,
            format!("{peer_id}\n")
        );
        assert_eq!(
            rdv_in(dir.path(), &["fingerprint", "--expect", peer_id, name], "").code,
            0
        );
    }
}

#[test]
fn agrees_with_every_webcrypto_vector() {
    let vectors: Vec<Value> =
        serde_json::from_str(include_str!("data/webcrypto-keys.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let set = json!({"keys": vectors.iter().map(|v| v["jwk"].clone()).collect::<Vec<_>>()});
    write(dir.path(), "set.jwks", &set.to_string());
    let run = rdv_in(dir.path(), &["fingerprint", "set.jwks"], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let expected: String = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{}  set.jwks#{i}\n", v["fingerprint"].as_str().unwrap()))
        .collect();
    assert_eq!(run.stdout, expected);
    // Private JWKs identify the same peers (the private half is ignored).
    for vector in &vectors {
        let run = rdv_in(
            dir.path(),
            &["fingerprint", "-"],
            &vector["privateJwk"].to_string(),
        );
        assert_eq!(
            run.stdout.trim(),
            vector["fingerprint"],
            "{}",
            vector["name"]
        );
    }
}

#[test]
fn keygen_round_trips_for_every_type_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[&[&str]] = &[
        &[],
        &["--curve", "P-384"],
        &["--curve", "P-521"],
        &["--type", "okp"],
        &["--type", "rsa", "--bits", "2048"],
        &["--type", "rsa"],
        &["--type", "rsa", "--bits", "4096"],
    ];
    for (n, extra) in cases.iter().enumerate() {
        for format in ["jwk", "pem"] {
            let private = format!("k{n}.{format}");
            let public = format!("k{n}.pub.{format}");
            let mut args = vec![
                "keygen",
                "--format",
                format,
                "-o",
                &private,
                "--public-out",
                &public,
            ];
            args.extend_from_slice(extra);
            let run = rdv_in(dir.path(), &args, "");
            assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
            let id = run
                .stderr
                .trim()
                .strip_prefix("peer ID ")
                .expect("peer ID on stderr")
                .to_owned();
            assert!(run.stdout.is_empty());
            let both = rdv_in(dir.path(), &["fingerprint", &private, &public], "");
            assert_eq!(
                both.stdout,
                format!("{id}  {private}\n{id}  {public}\n"),
                "{args:?}"
            );
            if format == "jwk" {
                let jwk: Value = serde_json::from_str(
                    &std::fs::read_to_string(dir.path().join(&private)).unwrap(),
                )
                .unwrap();
                assert_eq!(jwk["kid"], id.as_str());
                assert!(jwk.get("d").is_some());
            }
        }
    }
    // Defaults: EC P-256, private JWK on stdout; --json carries everything.
    let run = rdv_in(dir.path(), &["keygen", "--quiet"], "");
    let jwk: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    assert!(run.stderr.is_empty());
    let run = rdv_in(
        dir.path(),
        &["keygen", "--type", "rsa", "--bits", "2048", "--json"],
        "",
    );
    let out: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(out["privateKey"]["kid"], out["peerId"]);
    assert!(out["publicKey"].get("d").is_none());
    let check = rdv_in(
        dir.path(),
        &["fingerprint", "-"],
        &out["publicKey"].to_string(),
    );
    assert_eq!(check.stdout.trim(), out["peerId"]);
}

#[cfg(unix)]
#[test]
fn key_files_are_private_atomic_and_never_clobbered() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let mode = |name: &str| {
        std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(
        rdv_in(
            dir.path(),
            &["keygen", "-o", "a.jwk", "--public-out", "a.pub"],
            ""
        )
        .code,
        0
    );
    assert_eq!(mode("a.jwk"), 0o600);
    assert_eq!(mode("a.pub"), 0o644);
    let before = std::fs::read(dir.path().join("a.jwk")).unwrap();

    let run = rdv_in(dir.path(), &["keygen", "-o", "a.jwk"], "");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("a.jwk: already exists; use --force"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(dir.path().join("a.jwk")).unwrap(), before);

    // One refused destination means nothing is written at all.
    let run = rdv_in(
        dir.path(),
        &["keygen", "-o", "new.jwk", "--public-out", "a.pub"],
        "",
    );
    assert_eq!(run.code, 1);
    assert!(!dir.path().join("new.jwk").exists());

    assert_eq!(
        rdv_in(dir.path(), &["keygen", "-o", "a.jwk", "--force"], "").code,
        0
    );
    assert_ne!(std::fs::read(dir.path().join("a.jwk")).unwrap(), before);
    assert_eq!(mode("a.jwk"), 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".rdv-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn batches_write_pairs_and_a_buddy_list_that_checks() {
    let dir = tempfile::tempdir().unwrap();
    let run = rdv_in(
        dir.path(),
        &[
            "keygen",
            "--type",
            "okp",
            "--count",
            "12",
            "--out-dir",
            "team",
        ],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let team = dir.path().join("team");
    let buddies: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(team.join("buddies.json")).unwrap()).unwrap();
    assert_eq!(buddies.len(), 12);
    for buddy in &buddies {
        let id = buddy["id"].as_str().unwrap();
        for name in [format!("team/{id}.jwk"), format!("team/{id}.pub.jwk")] {
            assert_eq!(
                rdv_in(dir.path(), &["fingerprint", "--expect", id, &name], "").code,
                0
            );
        }
    }
    // A second batch into the same place would replace the buddy list: refused.
    let again = rdv_in(
        dir.path(),
        &["keygen", "--count", "1", "--out-dir", "team"],
        "",
    );
    assert_eq!(again.code, 1);
}

#[test]
fn buddy_lists_build_and_check() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["alice", "bob", "mallory"] {
        let file = format!("{name}.jwk");
        assert_eq!(
            rdv_in(
                dir.path(),
                &["keygen", "--type", "okp", "-o", &file, "-q"],
                ""
            )
            .code,
            0
        );
    }
    // Without a kid the name is the file stem.
    write(dir.path(), "carol.pub.jwk", RFC8037_A2_ED25519);
    let run = rdv_in(
        dir.path(),
        &[
            "fingerprint",
            "--buddy-list",
            "alice.jwk",
            "bob.jwk",
            "carol.pub.jwk",
        ],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let list: Vec<Value> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(list[2]["name"], "carol");
    // Generated keys carry kid = peer ID, which names nobody: the file stem is used instead.
    assert_eq!(list[0]["name"], "alice");
    assert!(
        list[0]["publicKey"].get("d").is_none(),
        "buddy lists never hold private members"
    );
    write(dir.path(), "buddies.json", &run.stdout);

    let ok = rdv_in(
        dir.path(),
        &[
            "fingerprint",
            "--check",
            "buddies.json",
            "alice.jwk",
            "carol.pub.jwk",
        ],
        "",
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    // Buddies are shown by name: the file stem, since alice.jwk's kid is only its ID.
    assert_eq!(
        ok.stdout,
        "alice.jwk: OK (alice)\ncarol.pub.jwk: OK (carol)\n"
    );

    let bad = rdv_in(
        dir.path(),
        &[
            "fingerprint",
            "--check",
            "buddies.json",
            "bob.jwk",
            "mallory.jwk",
        ],
        "",
    );
    assert_eq!(bad.code, 1);
    assert!(bad.stdout.contains("mallory.jwk: NOT ON LIST"));
    assert!(
        bad.stderr.contains("mallory.jwk: peer ID"),
        "{}",
        bad.stderr
    );

    let wrong = rdv_in(
        dir.path(),
        &["fingerprint", "--expect", &"0".repeat(64), "alice.jwk"],
        "",
    );
    assert_eq!(wrong.code, 1);
    assert!(wrong.stderr.contains("does not match"));
}

#[test]
fn errors_name_the_source_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let mut missing_y: Value = serde_json::from_str(RFC7517_A1_EC).unwrap();
    missing_y.as_object_mut().unwrap().remove("y");
    write(dir.path(), "alice.jwk", &missing_y.to_string());
    let mut padded: Value = serde_json::from_str(RFC7517_A1_EC).unwrap();
    padded["x"] = json!(format!("{}=", padded["x"].as_str().unwrap()));
    write(dir.path(), "padded.jwk", &padded.to_string());
    let mut short: Value = serde_json::from_str(RFC7517_A1_EC).unwrap();
    short["x"] = json!("AAAA");
    write(dir.path(), "short.jwk", &short.to_string());
    let mut zero: Value = serde_json::from_str(RFC7638_RSA).unwrap();
    zero["n"] = json!(format!("AA{}", zero["n"].as_str().unwrap()));
    write(dir.path(), "zero.jwk", &zero.to_string());
    write(dir.path(), "junk.txt", "hello");
    write(dir.path(), "good.jwk", RFC8037_A2_ED25519);

    for (file, problem) in [
        ("alice.jwk", "alice.jwk: EC key is missing member y"),
        ("padded.jwk", "padded.jwk: member x has '=' padding"),
        (
            "short.jwk",
            "short.jwk: member x is 3 bytes, but P-256 needs 32",
        ),
        ("zero.jwk", "zero.jwk: member n has a leading zero byte"),
        ("junk.txt", "junk.txt: not JSON or PEM"),
        ("nope.jwk", "nope.jwk: no such file"),
    ] {
        let run = rdv_in(dir.path(), &["fingerprint", file], "");
        assert_eq!(run.code, 1, "{file}");
        assert!(run.stderr.contains(problem), "{file}: {}", run.stderr);
        assert!(run.stdout.is_empty());
    }
    // Good inputs still print (like sha256sum); with --json nothing partial is printed.
    let run = rdv_in(dir.path(), &["fingerprint", "good.jwk", "alice.jwk"], "");
    assert_eq!(run.code, 1);
    assert!(run.stdout.ends_with("  good.jwk\n"));
    let run = rdv_in(
        dir.path(),
        &["fingerprint", "--json", "good.jwk", "alice.jwk"],
        "",
    );
    assert_eq!((run.code, run.stdout.as_str()), (1, ""));

    // Usage errors are 2.
    for args in [
        &["keygen", "--type", "okp", "--curve", "P-256"][..],
        &["keygen", "--bits", "2048"],
        &["keygen", "--type", "rsa", "--bits", "1024"],
        &["keygen", "--count", "3"],
        &[
            "fingerprint",
            "--check",
            "x",
            "--scheme",
            "rfc7638",
            "good.jwk",
        ],
        &["fingerprint", "--buddy-list", "--json", "good.jwk"],
        &["fingerprint", "-", "-"],
    ] {
        assert_eq!(rdv_in(dir.path(), args, "").code, 2, "{args:?}");
    }
}

#[test]
fn output_conventions_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ed.jwk", RFC8037_A2_ED25519);
    write(dir.path(), "ec.jwk", RFC7517_A1_EC);
    let run = rdv_in(
        dir.path(),
        &["fingerprint", "--json", "--explain", "ed.jwk", "ec.jwk"],
        "",
    );
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report[0]["kty"], "OKP");
    assert_eq!(report[0]["crv"], "Ed25519");
    assert_eq!(report[1]["source"], "ec.jwk");
    // --explain shows exactly what is hashed: hash it independently and compare.
    let canonical = report[1]["canonical"].as_str().unwrap();
    let digest: String = Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(report[1]["peerId"], digest);
    assert_eq!(
        rdv_in(dir.path(), &["fingerprint", "--explain", "ed.jwk"], "").stdout,
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}\n"
    );
    let b64 = rdv_in(
        dir.path(),
        &["fingerprint", "--encoding", "base64url", "ed.jwk"],
        "",
    );
    assert_eq!(b64.stdout.trim().len(), 43);
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // Enough lines to overflow the pipe buffer, so rdv is still writing when the reader leaves.
    let key: Value = serde_json::from_str(RFC8037_A2_ED25519).unwrap();
    write(
        dir.path(),
        "many.jwks",
        &json!({"keys": vec![key; 3000]}).to_string(),
    );
    let mut child = Command::new(common::rdv_binary())
        .args(["fingerprint", "many.jwks"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 65];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then the pipe closes
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// openssl is an outside implementation of PEM: rdv must read what it writes and vice versa.
#[test]
#[ignore = "needs openssl; cargo test -- --ignored runs it"]
fn pem_agrees_with_openssl() {
    common::outside::require(common::outside::program(
        "openssl",
        "version",
        "apt-get install openssl",
    ));
    let dir = tempfile::tempdir().unwrap();
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    for (name, genpkey) in [
        (
            "p256",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "p256.pem",
            ][..],
        ),
        (
            "p384",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-out",
                "p384.pem",
            ],
        ),
        (
            "ed",
            &["genpkey", "-algorithm", "ED25519", "-out", "ed.pem"],
        ),
        (
            "rsa",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "rsa.pem",
            ],
        ),
    ] {
        openssl(genpkey);
        openssl(&[
            "pkey",
            "-in",
            &format!("{name}.pem"),
            "-pubout",
            "-out",
            &format!("{name}.pub.pem"),
        ]);
        let run = rdv_in(
            dir.path(),
            &[
                "fingerprint",
                &format!("{name}.pem"),
                &format!("{name}.pub.pem"),
            ],
            "",
        );
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        let ids: Vec<&str> = run
            .stdout
            .lines()
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(ids[0], ids[1], "{name}");
        // The ID from openssl's own reading of the key, built into a JWK here.
        let text = openssl(&["pkey", "-in", &format!("{name}.pem"), "-noout", "-text"]);
        assert_eq!(ids[0], peer_id_from_openssl_text(name, &text), "{name}");
    }
    if Command::new("openssl")
        .args(["pkey", "-help"])
        .output()
        .is_ok()
    {
        // A PKCS#1 RSA key as older tools write it.
        openssl(&["pkey", "-in", "rsa.pem", "-traditional", "-out", "rsa1.pem"]);
        let run = rdv_in(dir.path(), &["fingerprint", "rsa.pem", "rsa1.pem"], "");
        let ids: Vec<&str> = run
            .stdout
            .lines()
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(ids[0], ids[1]);
    }
    // And openssl reads what rdv writes.
    for key_type in ["ec", "okp", "rsa"] {
        let private = format!("rdv-{key_type}.pem");
        let public = format!("rdv-{key_type}.pub.pem");
        let run = rdv_in(
            dir.path(),
            &[
                "keygen",
                "-t",
                key_type,
                "--format",
                "pem",
                "-o",
                &private,
                "--public-out",
                &public,
            ],
            "",
        );
        assert_eq!(run.code, 0);
        let derived = openssl(&["pkey", "-in", &private, "-pubout"]);
        assert_eq!(
            derived,
            std::fs::read_to_string(dir.path().join(&public)).unwrap(),
            "{key_type}"
        );
    }
}

/// Parses `openssl pkey -text` output into the JWK members and hashes them per PROTOCOL §4.
fn peer_id_from_openssl_text(name: &str, text: &str) -> String {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hex_block = |label: &str| -> Vec<u8> {
        let start = text
            .find(label)
            .unwrap_or_else(|| panic!("{label} in {text}"))
            + label.len();
        let mut bytes = Vec::new();
        for line in text[start..].lines().skip(1) {
            let line = line.trim();
            if line.is_empty() || !line.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
                break;
            }
            bytes.extend(
                line.split(':')
                    .filter(|s| !s.is_empty())
                    .map(|h| u8::from_str_radix(h, 16).unwrap()),
            );
        }
        bytes
    };
    let canonical = match name {
        "p256" | "p384" => {
            let point = hex_block("pub:");
            let (x, y) = point[1..].split_at((point.len() - 1) / 2);
            let crv = if name == "p256" { "P-256" } else { "P-384" };
            format!(
                r#"{{"kty":"EC","crv":"{crv}","x":"{}","y":"{}"}}"#,
                b64(x),
                b64(y)
            )
        }
        "ed" => format!(
            r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#,
            b64(&hex_block("pub:"))
        ),
        _ => {
            let mut n = hex_block("modulus:");
            while n.first() == Some(&0) {
                n.remove(0);
            }
            let e: u64 = text
                .split("publicExponent: ")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let e_bytes: Vec<u8> = e
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            format!(
                r#"{{"kty":"RSA","n":"{}","e":"{}"}}"#,
                b64(&n),
                b64(&e_bytes)
            )
        }
    };
    Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Error texts that say what to do instead (issue 11 §3).
#[test]
fn errors_a_newcomer_hits_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    // A missing output directory is named as such, and nothing is written.
    let run = rdv_in(dir.path(), &["keygen", "-o", "/nonexistent/dir/x.jwk"], "");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the directory /nonexistent/dir does not exist"),
        "{}",
        run.stderr
    );
    // A file that is not keys at all: one error for the file, not one per line.
    write(dir.path(), "notes.txt", "hello\nworld\nthird line\n");
    let run = rdv_in(dir.path(), &["fingerprint", "notes.txt"], "");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("rdv: notes.txt: not JSON or PEM, so not a key"),
        "{}",
        run.stderr
    );
    // A key where a buddy list is expected.
    let keygen = rdv_in(
        dir.path(),
        &[
            "keygen",
            "--type",
            "okp",
            "-o",
            "me.jwk",
            "--public-out",
            "me.pub.jwk",
        ],
        "",
    );
    assert_eq!(keygen.code, 0, "{}", keygen.stderr);
    let run = rdv_in(
        dir.path(),
        &["fingerprint", "me.pub.jwk", "--check", "me.pub.jwk"],
        "",
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("me.pub.jwk: this looks like a key, not a buddy list"),
        "{}",
        run.stderr
    );
}

/// `keygen --name` sets the kid; buddy lists take a name from a kid only when it is not the
/// peer ID itself (which is what keygen writes without --name), else from the file stem.
#[test]
fn keys_carry_names_into_buddy_lists() {
    let dir = tempfile::tempdir().unwrap();
    let named = rdv_in(
        dir.path(),
        &[
            "keygen",
            "--name",
            "alice",
            "-o",
            "a.jwk",
            "--public-out",
            "a.pub.jwk",
        ],
        "",
    );
    assert_eq!(named.code, 0, "{}", named.stderr);
    for file in ["a.jwk", "a.pub.jwk"] {
        let jwk: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(file)).unwrap()).unwrap();
        assert_eq!(jwk["kid"], "alice", "{file}");
    }
    let unnamed = rdv_in(
        dir.path(),
        &["keygen", "-o", "bob.jwk", "--public-out", "bob.pub.jwk"],
        "",
    );
    assert_eq!(unnamed.code, 0, "{}", unnamed.stderr);
    let list = rdv_in(
        dir.path(),
        &["fingerprint", "--buddy-list", "a.pub.jwk", "bob.pub.jwk"],
        "",
    );
    assert_eq!(list.code, 0, "{}", list.stderr);
    let list: Value = serde_json::from_str(&list.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    // PEM has no kid to carry a name.
    let pem = rdv_in(
        dir.path(),
        &["keygen", "--name", "x", "--format", "pem"],
        "",
    );
    assert_eq!(pem.code, 2, "{}", pem.stderr);
}
