#!/usr/bin/env python3
"""PROTOCOL §13's vectors: access tokens minted by PyJWT (with `cryptography`), an
implementation independent of rdv, for every algorithm `rdv serve --auth-key` takes.

    /usr/bin/python3 tests/data/make/pyjwt-tokens.py > tests/data/pyjwt-tokens.json

Each entry has the key the server is given (a public PEM, or the secret), the token, and the
claims. The tokens expire in 2100, so the vectors stay valid; the keys are made fresh on
every run (the file is regenerated whole).
"""
import json

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

EXPIRES = 4102444800  # 2100-01-01T00:00:00Z


def public_pem(private):
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def main():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signers = [
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
        ("ES384", ec.generate_private_key(ec.SECP384R1())),
        ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
        ("RS256", rsa_key),
        ("PS256", rsa_key),
    ]
    vectors = []
    for index, (alg, private) in enumerate(signers):
        claims = {"room": f"pyjwt-{alg.lower()}", "exp": EXPIRES, "iat": 1767225600}
        if index % 2 == 0:
            claims["room"] = "pyjwt-*"
            claims["max_peers"] = 8
        token = jwt.encode(claims, private, algorithm=alg, headers={"kid": f"py-{alg}"})
        vectors.append({"alg": alg, "key": public_pem(private), "token": token, "claims": claims})
    secret = "a shared secret from the app's backend, 48 bytes."
    claims = {"room": "pyjwt-hs256", "exp": EXPIRES, "aud": "rdv"}
    vectors.append({
        "alg": "HS256",
        "key": secret + "\n",
        "token": jwt.encode(claims, secret, algorithm="HS256"),
        "claims": claims,
    })
    print(json.dumps({
        "generator": f"PyJWT {jwt.__version__}",
        "vectors": vectors,
    }, indent=2))


main()
