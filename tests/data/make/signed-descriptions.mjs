// Makes tests/data/signed-descriptions.json, PROTOCOL §12's vectors, with Node's WebCrypto:
// an implementation outside rdv's Rust code, so the Rust tests check theirs against it.
//   node tests/data/make/signed-descriptions.mjs > tests/data/signed-descriptions.json
// Ed25519 signatures are deterministic: that vector carries its private key, and the Rust
// test checks it signs to the same bytes. ECDSA and RSA-PSS signatures are randomized: those
// vectors are checked by verifying.
const { subtle } = globalThis.crypto;

const b64 = (bytes) => Buffer.from(bytes).toString("base64url");

async function peerId(jwk) {
  const members = {
    EC: ["crv", "kty", "x", "y"],
    OKP: ["crv", "kty", "x"],
    RSA: ["e", "kty", "n"],
  }[jwk.kty];
  const order = { EC: ["kty", "crv", "x", "y"], OKP: ["kty", "crv", "x"], RSA: ["kty", "n", "e"] }[jwk.kty];
  const essential = {};
  for (const name of order) if (members.includes(name)) essential[name] = jwk[name];
  const digest = await subtle.digest("SHA-256", new TextEncoder().encode(JSON.stringify(essential)));
  return Buffer.from(digest).toString("hex");
}

const kinds = [
  { name: "ES256", generate: { name: "ECDSA", namedCurve: "P-256" }, sign: { name: "ECDSA", hash: "SHA-256" } },
  { name: "EdDSA", generate: { name: "Ed25519" }, sign: { name: "Ed25519" }, deterministic: true },
  {
    name: "PS256",
    generate: { name: "RSA-PSS", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    sign: { name: "RSA-PSS", saltLength: 32 },
  },
];

const to = "9f8e1c1b2b5b4b3e7a1f0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f";
const sdp = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
  "a=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n" +
  "a=fingerprint:sha-256 8C:71:B4:8E:4C:2A:5F:90:0B:31:0D:63:1A:22:F4:71:2B:1F:99:AB:E3:60:CE:55:71:D9:21:6D:7E:88:02:4C\r\n" +
  "a=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\n";
const ts = 1764806400000;

const vectors = [];
for (const kind of kinds) {
  const pair = await subtle.generateKey(kind.generate, true, ["sign", "verify"]);
  const publicJwk = await subtle.exportKey("jwk", pair.publicKey);
  const publicKey = Object.fromEntries(
    Object.entries(publicJwk).filter(([name]) => ["kty", "crv", "x", "y", "n", "e"].includes(name)),
  );
  const from = await peerId(publicKey);
  for (const type of kind.deterministic ? ["offer", "answer"] : ["offer"]) {
    const signedBytes = `rdv-signed-description/1\n${from}\n${to}\n${type}\n${ts}\n${sdp}`;
    const signature = await subtle.sign(kind.sign, pair.privateKey, new TextEncoder().encode(signedBytes));
    const vector = {
      name: `${kind.name} ${type}`,
      publicKey,
      input: { from, to, type, ts, sdp },
      signedBytes,
      message: { type, from, sdp: { type, sdp }, signature: { alg: kind.name, ts, sig: b64(signature) } },
    };
    if (kind.deterministic) {
      const privateJwk = await subtle.exportKey("jwk", pair.privateKey);
      vector.privateKey = { kty: privateJwk.kty, crv: privateJwk.crv, x: privateJwk.x, d: privateJwk.d };
    }
    vectors.push(vector);
  }
}
console.log(JSON.stringify({
  about: "PROTOCOL §12 signed descriptions, made by Node's WebCrypto (tests/data/make/signed-descriptions.mjs)",
  vectors,
}, null, 2));
