// What signing and checking an offer costs in rdv.js (PROTOCOL §12), per key type, with
// this Node's WebCrypto: `node clients/js/bench/signatures.mjs`. Prints the median of 9
// rounds of 200 operations each; no thresholds.
import { generateIdentity, identityFrom, signDescription, verifyDescription } from "../rdv.js";

const sdp = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
  "a=group:BUNDLE 0\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n" +
  "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n" +
  "a=ice-ufrag:EsAw\r\na=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\na=ice-options:trickle\r\n" +
  "a=fingerprint:sha-256 8C:71:B4:8E:4C:2A:5F:90:0B:31:0D:63:1A:22:F4:71:2B:1F:99:AB:E3:60:CE:55:71:D9:21:6D:7E:88:02:4C\r\n" +
  "a=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n";
const to = "b".repeat(64);
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const kinds = {
  "P-256": async () => generateIdentity(),
  Ed25519: async () => identityFrom(await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"])),
  "RSA-2048": async () => identityFrom(await crypto.subtle.generateKey(
    { name: "RSA-PSS", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, false, ["sign", "verify"])),
};
console.log("key        sign (µs)  verify (µs)");
for (const [name, make] of Object.entries(kinds)) {
  const identity = await make();
  const description = { type: "offer", sdp };
  const signature = await signDescription(identity, to, description);
  const message = { type: "offer", from: identity.peerId, sdp: description, signature };
  const sign = [];
  const verify = [];
  for (let round = 0; round < 9; round++) {
    let started = performance.now();
    for (let n = 0; n < 200; n++) await signDescription(identity, to, description);
    sign.push((performance.now() - started) * 1000 / 200);
    started = performance.now();
    for (let n = 0; n < 200; n++) await verifyDescription(message, identity.publicJwk, to, signature.ts);
    verify.push((performance.now() - started) * 1000 / 200);
  }
  console.log(`${name.padEnd(10)} ${median(sign).toFixed(1).padStart(9)} ${median(verify).toFixed(1).padStart(12)}`);
}
