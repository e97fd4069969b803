// Node's own test runner: `node --experimental-websocket --test clients/js/test/` (Node 20
// has WebCrypto; its WebSocket is behind that flag). The pure parts against fixed data, the
// room logic against a scripted WebSocket, and proofs against a real `rdv serve` (the binary
// in RDV_BINARY; `cargo test -- --ignored` runs this file with it set).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { dirname, join as joinPath } from "node:path";

import {
  ErrorCode, MAX_SKEW_MS, RdvError, backoff, generateIdentity, identityFrom, join,
  parseServerMessage, peerId, registerMessage, relayMessage, roomUrl, signDescription,
  signProof, signedBytes, verifyDescription,
} from "../rdv.js";

const repo = joinPath(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const vectors = JSON.parse(readFileSync(joinPath(repo, "tests/data/webcrypto-keys.json"), "utf8"));
const signedVectors = JSON.parse(readFileSync(joinPath(repo, "tests/data/signed-descriptions.json"), "utf8")).vectors;

test("peer IDs match every WebCrypto vector", async () => {
  assert.ok(vectors.length >= 8);
  for (const vector of vectors) {
    assert.equal(await peerId(vector.jwk), vector.fingerprint, vector.name);
    // Extra members (ext, key_ops, alg) never change the ID.
    assert.equal(await peerId({ ...vector.jwk, ext: true, key_ops: ["verify"], alg: "x" }), vector.fingerprint);
  }
  await assert.rejects(peerId({ kty: "oct", k: "AAAA" }), (e) => e instanceof RdvError && e.code === ErrorCode.InvalidKey);
});

test("register carries only the key's essential members, and the proof when given", () => {
  const ec = vectors.find((v) => v.jwk.kty === "EC").jwk;
  const message = JSON.parse(registerMessage({ ...ec, d: "secret", ext: true }, null));
  assert.deepEqual(Object.keys(message), ["type", "publicKey"]);
  assert.deepEqual(message.publicKey, { kty: "EC", crv: ec.crv, x: ec.x, y: ec.y });
  const proven = JSON.parse(registerMessage(ec, { alg: "ES256", signature: "sig" }));
  assert.deepEqual(proven.proof, { alg: "ES256", signature: "sig" });
});

test("relayed messages have the shape PROTOCOL §2 gives", () => {
  assert.deepEqual(JSON.parse(relayMessage("offer", "ab", { type: "offer", sdp: "v=0" })),
    { type: "offer", to: "ab", sdp: { type: "offer", sdp: "v=0" } });
  assert.deepEqual(JSON.parse(relayMessage("ice-candidate", "ab", { candidate: "c" })),
    { type: "ice-candidate", to: "ab", candidate: { candidate: "c" } });
  assert.throws(() => relayMessage("register", "ab", {}), TypeError);
});

test("server messages are parsed, anything else is null", () => {
  assert.deepEqual(parseServerMessage('{"type":"pong"}'), { type: "pong" });
  assert.equal(parseServerMessage("not json"), null);
  assert.equal(parseServerMessage("[1]"), null);
  assert.equal(parseServerMessage("null"), null);
  assert.equal(parseServerMessage('{"type":"mystery"}'), null);
});

test("room URLs take ws, wss, http and https, and encode the room", () => {
  assert.equal(roomUrl("ws://h:8080", "lobby"), "ws://h:8080/room/lobby/websocket");
  assert.equal(roomUrl("https://h/", "a b/c"), "wss://h/room/a%20b%2Fc/websocket");
  assert.equal(roomUrl("http://h/signal/", "r"), "ws://h/signal/room/r/websocket");
});

test("back-off grows exponentially to its cap, with full jitter", () => {
  const top = () => 1;
  assert.deepEqual([0, 1, 2, 3].map((n) => backoff(n, { base: 100, random: top })), [100, 200, 400, 800]);
  assert.equal(backoff(50, { base: 100, max: 5000, random: top }), 5000);
  assert.equal(backoff(3, { base: 100, random: () => 0 }), 0);
  for (let n = 0; n < 200; n++) {
    const delay = backoff(n % 10, { base: 100, max: 3000 });
    assert.ok(delay >= 0 && delay <= Math.min(3000, 100 * 2 ** (n % 10)));
  }
});

// --- Signed offers and answers (PROTOCOL §12) ---------------------------------------------

test("PROTOCOL §12's vectors: the signed bytes, every signature, and Ed25519's exactly", async () => {
  for (const vector of signedVectors) {
    const { from, to, type, ts, sdp } = vector.input;
    assert.equal(signedBytes(from, to, type, ts, sdp), vector.signedBytes);
    assert.equal(await peerId(vector.publicKey), from);
    assert.deepEqual(await verifyDescription(vector.message, vector.publicKey, to, ts), { result: "valid" }, vector.name);
    if (vector.privateKey) {
      const privateKey = await crypto.subtle.importKey("jwk", vector.privateKey, { name: "Ed25519" }, false, ["sign"]);
      const identity = { peerId: from, privateKey, publicJwk: vector.publicKey };
      const signature = await signDescription(identity, to, { type, sdp }, ts);
      assert.deepEqual(signature, vector.message.signature);
    }
  }
});

test("a changed SDP, another receiver, a relabelled sender or an old one do not verify", async () => {
  const alice = await generateIdentity();
  const bob = "b".repeat(64);
  const description = { type: "offer", sdp: "v=0\r\na=fingerprint:sha-256 AA:BB\r\n" };
  const now = Date.now();
  const message = { type: "offer", from: alice.peerId, sdp: description, signature: await signDescription(alice, bob, description, now) };
  assert.deepEqual(await verifyDescription(message, alice.publicJwk, bob, now), { result: "valid" });
  const bad = { result: "invalid", reason: "bad-signature" };
  assert.deepEqual(await verifyDescription(message, alice.publicJwk, "c".repeat(64), now), bad);
  assert.deepEqual(await verifyDescription({ ...message, sdp: { ...description, sdp: description.sdp.replace("AA:BB", "AA:BC") } }, alice.publicJwk, bob, now), bad);
  assert.deepEqual(await verifyDescription({ ...message, from: "c".repeat(64) }, alice.publicJwk, bob, now), bad);
  assert.deepEqual(await verifyDescription(message, alice.publicJwk, bob, now + MAX_SKEW_MS + 1), { result: "invalid", reason: "stale" });
  assert.deepEqual(await verifyDescription(message, null, bob, now), { result: "invalid", reason: "unknown-sender" });
  assert.deepEqual(await verifyDescription({ ...message, signature: { ...message.signature, alg: "EdDSA" } }, alice.publicJwk, bob, now), { result: "invalid", reason: "wrong-algorithm" });
  assert.deepEqual(await verifyDescription({ ...message, signature: undefined }, alice.publicJwk, bob, now), { result: "missing" });
  assert.deepEqual(await verifyDescription({ ...message, signature: { alg: "ES256" } }, alice.publicJwk, bob, now), { result: "invalid", reason: "malformed" });
});

/** Enough of an RTCPeerConnection for the signaling logic: descriptions, no network. */
class FakePeerConnection {
  constructor() {
    this.signalingState = "stable";
    this.connectionState = "new";
    this.remote = [];
    this.localDescription = null;
  }
  createDataChannel() {
    const channel = new EventTarget();
    channel.close = () => {};
    return channel;
  }
  async setRemoteDescription(description) {
    this.remote.push(description);
    this.signalingState = description.type === "offer" ? "have-remote-offer" : "stable";
  }
  async setLocalDescription() {
    this.localDescription = { type: "answer", sdp: "v=0\r\n", toJSON() { return { type: this.type, sdp: this.sdp }; } };
    this.signalingState = "stable";
  }
  addIceCandidate() {}
  restartIce() {}
  close() { this.connectionState = "closed"; }
}

/** A room joined through a scripted server that welcomes us with `other` already there. */
async function joinedWith(other, options) {
  const identity = await generateIdentity();
  const { Scripted, sockets } = scriptedWebSocket((socket, message) => {
    if (message?.type === "register") {
      socket.deliver({ type: "welcome", peerId: identity.peerId, peers: [{ id: other.peerId, publicKey: other.publicJwk }] });
    }
  });
  const room = await join("ws://server", "r", {
    identity, WebSocket: Scripted, RTCPeerConnection: FakePeerConnection, proof: false, reconnect: false, ...options,
  });
  const errors = [];
  room.on("error", (error) => errors.push(error));
  return { identity, room, sockets, errors };
}

test("requireSignatures refuses an unsigned offer; a signed one makes a verified connection", async () => {
  const alice = await generateIdentity();
  const { identity, room, sockets, errors } = await joinedWith(alice, { requireSignatures: true });
  const description = { type: "offer", sdp: "v=0\r\n" };
  sockets[0].deliver({ type: "offer", from: alice.peerId, sdp: description });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(room.connections.size, 0);
  assert.equal(errors[0]?.code, ErrorCode.SignatureMissing);
  const signature = await signDescription(alice, identity.peerId, description);
  const signed = { type: "offer", from: alice.peerId, sdp: description, signature };
  sockets[0].deliver(signed);
  await new Promise((resolve) => setTimeout(resolve, 20));
  const connection = room.connections.get(alice.peerId);
  assert.equal(connection?.verified, true);
  assert.deepEqual(connection.pc.remote, [description]);
  // Our answer went out signed by us, for Alice.
  const answer = sockets[0].sent.find((m) => m.type === "answer");
  assert.deepEqual(await verifyDescription({ ...answer, from: identity.peerId }, identity.publicJwk, alice.peerId), { result: "valid" });
  // The same signed offer again is a replay.
  sockets[0].deliver(signed);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(errors.at(-1)?.code, ErrorCode.SignatureInvalid);
  assert.equal(errors.at(-1)?.reason, "replayed");
  room.close();
});

test("buddies: a stranger's offer is refused and connect() to a stranger throws", async () => {
  const stranger = await generateIdentity();
  const { identity, room, sockets, errors } = await joinedWith(stranger, { buddies: ["a".repeat(64)] });
  const description = { type: "offer", sdp: "v=0\r\n" };
  const signature = await signDescription(stranger, identity.peerId, description);
  sockets[0].deliver({ type: "offer", from: stranger.peerId, sdp: description, signature });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(room.connections.size, 0);
  assert.equal(errors[0]?.code, ErrorCode.NotABuddy);
  await assert.rejects(room.connect(stranger.peerId), (error) => error.code === ErrorCode.NotABuddy);
  room.close();
});

// --- The room against a scripted WebSocket ------------------------------------------------

/** A WebSocket whose server side is the test: `script(socket, message)` answers sends. */
function scriptedWebSocket(script) {
  const sockets = [];
  class Scripted extends EventTarget {
    constructor(url) {
      super();
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      sockets.push(this);
      setTimeout(() => {
        this.readyState = 1;
        this.onopen?.({});
        script(this, null);
      }, 1);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
      setTimeout(() => script(this, JSON.parse(text)), 1);
    }
    deliver(message) {
      this.onmessage?.({ data: JSON.stringify(message) });
    }
    close(code = 1000, reason = "") {
      if (this.readyState === 3) return;
      this.readyState = 3;
      setTimeout(() => this.onclose?.({ code, reason }), 1);
    }
  }
  return { Scripted, sockets };
}

const other = vectors.find((v) => v.name.includes("Ed25519")) ?? vectors[0];

test("join registers, checks the server's answer and every peer's key", async () => {
  const identity = await generateIdentity();
  const liar = { id: "0".repeat(64), publicKey: other.jwk };
  const { Scripted } = scriptedWebSocket((socket, message) => {
    if (message?.type === "register") {
      socket.deliver({ type: "welcome", peerId: identity.peerId, peers: [{ id: other.fingerprint, publicKey: other.jwk }, liar] });
    }
  });
  const room = await join("ws://server", "r", { identity, WebSocket: Scripted, proof: false, reconnect: false });
  assert.equal(room.id, identity.peerId);
  assert.deepEqual([...room.peers.keys()], [other.fingerprint], "the lying entry is left out");
  room.close();
});

test("a server that computes another ID for our key is refused", async () => {
  const identity = await generateIdentity();
  const { Scripted } = scriptedWebSocket((socket, message) => {
    if (message?.type === "register") socket.deliver({ type: "welcome", peerId: "f".repeat(64), peers: [] });
  });
  await assert.rejects(
    join("ws://server", "r", { identity, WebSocket: Scripted, proof: false }),
    (e) => e.code === ErrorCode.ServerMismatch,
  );
});

test("a final refusal rejects join with the server's code", async () => {
  const identity = await generateIdentity();
  const { Scripted } = scriptedWebSocket((socket, message) => {
    if (message?.type === "register") socket.deliver({ type: "error", code: "forbidden", message: "no" });
  });
  await assert.rejects(
    join("ws://server", "r", { identity, WebSocket: Scripted, proof: false }),
    (e) => e instanceof RdvError && e.code === ErrorCode.Forbidden,
  );
});

test("a dropped connection is retried with back-off and the room told the difference", async () => {
  const identity = await generateIdentity();
  const second = vectors.find((v) => v.jwk.kty === "RSA");
  let connection = 0;
  const { Scripted, sockets } = scriptedWebSocket((socket, message) => {
    if (message?.type !== "register") return;
    connection += 1;
    const peers = connection === 1
      ? [{ id: other.fingerprint, publicKey: other.jwk }]
      : [{ id: second.fingerprint, publicKey: second.jwk }];
    socket.deliver({ type: "welcome", peerId: identity.peerId, peers });
  });
  const room = await join("ws://server", "r", {
    identity, WebSocket: Scripted, proof: false, backoff: { base: 5, max: 20 },
  });
  const events = [];
  room.on("reconnecting", () => events.push("reconnecting"));
  room.on("peer-left", (peer) => events.push(`left ${peer.id.slice(0, 4)}`));
  room.on("peer-joined", (peer) => events.push(`joined ${peer.id.slice(0, 4)}`));
  const reopened = new Promise((resolve) => room.on("open", resolve));
  sockets[0].close(1006, "gone");
  await reopened;
  assert.deepEqual(events, ["reconnecting", `left ${other.fingerprint.slice(0, 4)}`, `joined ${second.fingerprint.slice(0, 4)}`]);
  assert.deepEqual([...room.peers.keys()], [second.fingerprint]);
  assert.equal(sockets.length, 2);
  room.close();
});

test("being replaced ends the room instead of taking the ID back", async () => {
  const identity = await generateIdentity();
  const { Scripted, sockets } = scriptedWebSocket((socket, message) => {
    if (message?.type === "register") socket.deliver({ type: "welcome", peerId: identity.peerId, peers: [] });
  });
  const room = await join("ws://server", "r", { identity, WebSocket: Scripted, proof: false, backoff: { base: 5 } });
  const closed = new Promise((resolve) => room.on("closed", resolve));
  sockets[0].deliver({ type: "error", code: "replaced", message: "elsewhere" });
  sockets[0].close(1000, "replaced");
  await closed;
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(sockets.length, 1, "no reconnect");
});

test("only an offer opens a connection: a stray answer or candidate is dropped", async () => {
  const identity = await generateIdentity();
  const { Scripted, sockets } = scriptedWebSocket((socket, message) => {
    if (message?.type === "register") {
      socket.deliver({ type: "welcome", peerId: identity.peerId, peers: [{ id: other.fingerprint, publicKey: other.jwk }] });
    }
  });
  class NeverMade {
    constructor() { throw new Error("a stray message made a connection"); }
  }
  const room = await join("ws://server", "r", {
    identity, WebSocket: Scripted, RTCPeerConnection: NeverMade, proof: false, reconnect: false,
  });
  const errors = [];
  const connections = [];
  room.on("error", (error) => errors.push(error));
  room.on("connection", (connection) => connections.push(connection));
  sockets[0].deliver({ type: "answer", from: other.fingerprint, sdp: { type: "answer", sdp: "v=0" } });
  sockets[0].deliver({ type: "ice-candidate", from: other.fingerprint, candidate: { candidate: "" } });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(room.connections.size, 0);
  assert.deepEqual(connections, []);
  assert.deepEqual(errors, []);
  room.close();
});

test("a challenge that comes after auto stopped waiting is answered with a proof", async () => {
  const identity = await generateIdentity();
  const registers = [];
  const { Scripted } = scriptedWebSocket((socket, message) => {
    // A slow network: the challenge arrives after the library registered without a proof.
    if (message === null) setTimeout(() => socket.deliver({ type: "challenge", nonce: "late-nonce" }), 400);
    if (message?.type !== "register") return;
    registers.push(message.proof ? "with a proof" : "without");
    if (message.proof) socket.deliver({ type: "welcome", peerId: identity.peerId, peers: [] });
    else setTimeout(() => socket.deliver({ type: "error", code: "proof-required", message: "prove it" }), 450);
  });
  const room = await join("ws://server", "r", { identity, WebSocket: Scripted, reconnect: false });
  assert.deepEqual(registers, ["without", "with a proof"]);
  room.close();
});

// --- Against a real rdv serve --------------------------------------------------------------

const binary = process.env.RDV_BINARY ?? joinPath(repo, "target/debug/rdv");

/** `rdv serve ARGS` on a free port; resolves with its base URL and a stop function. */
function serve(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ["serve", "--listen", "127.0.0.1:0", ...args], { stdio: ["ignore", "pipe", "inherit"] });
    child.on("error", reject);
    createInterface({ input: child.stdout }).once("line", (line) => {
      const address = line.replace(/^listening /, "");
      resolve({ url: `ws://${address}`, stop: () => child.kill() });
    });
  });
}

/** A WebCrypto signing key pair for each algorithm the library signs with, in this order:
 * ECDSA P-256, P-384 (and P-521 when asked), Ed25519, RSASSA-PKCS1-v1_5, RSA-PSS. */
function signingKeyPairs({ p521 = false } = {}) {
  const rsa = (name) => ({ name, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" });
  const algorithms = [
    { name: "ECDSA", namedCurve: "P-256" },
    { name: "ECDSA", namedCurve: "P-384" },
    ...(p521 ? [{ name: "ECDSA", namedCurve: "P-521" }] : []),
    { name: "Ed25519" },
    rsa("RSASSA-PKCS1-v1_5"),
    rsa("RSA-PSS"),
  ];
  return Promise.all(algorithms.map((algorithm) => crypto.subtle.generateKey(algorithm, false, ["sign", "verify"])));
}

const serverAvailable = existsSync(binary) && typeof WebSocket !== "undefined";

test("rdv verifies the library's proofs for every key type it signs with", { skip: serverAvailable ? false : `needs ${binary} and --experimental-websocket` }, async () => {
  const server = await serve(["--proof", "required"]);
  const rooms = [];
  try {
    const keyPairs = await signingKeyPairs();
    for (const keys of keyPairs) {
      const identity = await identityFrom(keys);
      const room = await join(server.url, "proofs", { identity, reconnect: false });
      rooms.push(room);
      // The server checked the proof (it is in required mode) and computed the same ID.
      assert.equal(room.id, identity.peerId);
    }
    const last = rooms.at(-1);
    assert.equal(last.peers.size, keyPairs.length - 1);
    for (const peer of last.peers.values()) assert.equal(peer.verified, true);
    // A signature over another nonce is refused by rdv itself.
    const identity = await generateIdentity();
    const proof = await signProof(identity.privateKey, "not-the-servers-nonce");
    assert.equal(proof.alg, "ES256");
    assert.equal(Buffer.from(proof.signature, "base64url").length, 64, "raw r‖s");
    const ws = new WebSocket(`${server.url}/room/proofs/websocket`);
    const replies = [];
    const closed = new Promise((resolve) => { ws.onclose = (event) => resolve(event.code); });
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      replies.push(message.type === "error" ? message.code : message.type);
      if (message.type === "challenge") ws.send(registerMessage(identity.publicJwk, proof));
    };
    assert.equal(await closed, 1008);
    assert.deepEqual(replies, ["challenge", "proof-invalid"]);
  } finally {
    for (const room of rooms) room.close();
    server.stop();
  }
});

/** `rdv peer ARGS` in script mode; resolves with its exit code, stdout and stderr. */
function peerProcess(args) {
  const child = spawn(binary, ["peer", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => { stdout += chunk; });
  child.stderr.on("data", (chunk) => { stderr += chunk; });
  const peerIdLine = new Promise((resolve) => {
    child.stderr.on("data", () => {
      const match = /peer ID ([0-9a-f]{64})/.exec(stderr);
      if (match) resolve(match[1]);
    });
  });
  const done = new Promise((resolve) => child.on("exit", (code) => resolve({ code, stdout, stderr })));
  return { peerIdLine, done };
}

test("interop: rdv peer verifies what rdv.js signs, for every key type, and rdv.js what rdv peer signs", { skip: serverAvailable ? false : `needs ${binary} and --experimental-websocket` }, async () => {
  const server = await serve([]);
  try {
    const keyPairs = await signingKeyPairs({ p521: true });
    for (const [n, keys] of keyPairs.entries()) {
      const roomName = `interop-${n}`;
      const receiver = peerProcess([server.url, roomName, "--require-signed", "--until", ".sdp.type=offer", "--timeout", "10s"]);
      const receiverId = await receiver.peerIdLine;
      const identity = await identityFrom(keys);
      const room = await join(server.url, roomName, { identity, reconnect: false, RTCPeerConnection: FakePeerConnection });
      // rdv peer prints its ID before it has registered: wait until the room has it.
      if (!room.peers.has(receiverId)) {
        await new Promise((resolve) => room.on("peer-joined", (peer) => { if (peer.id === receiverId) resolve(); }));
      }
      await room._relay("offer", receiverId, { type: "offer", sdp: "v=0\r\na=fingerprint:sha-256 AA:BB\r\n" });
      const result = await receiver.done;
      room.close();
      assert.equal(result.code, 0, `${keys.privateKey.algorithm.name}: ${result.stderr}`);
      const offer = result.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line)).find((m) => m.type === "offer");
      assert.deepEqual(offer.signatureCheck, { result: "valid" });
    }
    // The other way: rdv peer (an Ed25519 key of its own) signs, rdv.js requires it.
    const identity = await generateIdentity();
    const room = await join(server.url, "interop-back", {
      identity, reconnect: false, RTCPeerConnection: FakePeerConnection, requireSignatures: true,
    });
    const connected = new Promise((resolve) => room.on("connection", resolve));
    const offer = JSON.stringify({ type: "offer", to: identity.peerId, sdp: { type: "offer", sdp: "v=0\r\n" } });
    const sender = peerProcess([server.url, "interop-back", "--send-after-peers", "1", "-x", offer, "--exit-on-eof"]);
    const connection = await connected;
    assert.equal((await sender.done).code, 0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(connection.verified, true);
    room.close();
  } finally {
    server.stop();
  }
});

test("a token function is asked before every connect, and a throwing one fails the join", async () => {
  const identity = await generateIdentity();
  let asked = 0;
  const { Scripted, sockets } = scriptedWebSocket((socket, message) => {
    if (message?.type === "register") socket.deliver({ type: "welcome", peerId: identity.peerId, peers: [] });
  });
  const room = await join("ws://server", "r", {
    identity, WebSocket: Scripted, proof: false, backoff: { base: 5, max: 20 },
    token: async () => `token-${++asked}`,
  });
  assert.equal(sockets[0].sent[0].token, "token-1");
  const reopened = new Promise((resolve) => room.on("open", resolve));
  sockets[0].close(1006, "gone");
  await reopened;
  assert.equal(sockets[1].sent[0].token, "token-2", "a reconnect gets a fresh token");
  room.close();
  assert.equal(JSON.parse(registerMessage(identity.publicJwk, null, "t")).token, "t");

  await assert.rejects(
    join("ws://server", "r", {
      identity, WebSocket: Scripted, proof: false, token: () => { throw new Error("backend down"); },
    }),
    (e) => e instanceof RdvError && e.code === ErrorCode.TokenRequired && /backend down/.test(e.message),
  );
});

test("a real rdv serve --auth-key admits a token rdv token made, and refuses the rest with their codes", { skip: serverAvailable ? false : `needs ${binary} and --experimental-websocket` }, async () => {
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { execFileSync } = await import("node:child_process");
  const dir = mkdtempSync(joinPath(tmpdir(), "rdv-token-"));
  const secret = joinPath(dir, "secret.txt");
  writeFileSync(secret, "a secret shared by the backend and rdv serve, 48+\n");
  const mint = (...args) => execFileSync(binary, ["token", "--key", secret, ...args]).toString().trim();
  const server = await serve(["--auth-key", secret]);
  try {
    const identity = await generateIdentity();
    let fetches = 0;
    const room = await join(server.url, "game-7", {
      identity, reconnect: false, token: async () => { fetches += 1; return mint("--room", "game-*", "--peer", identity.peerId); },
    });
    assert.equal(room.id, identity.peerId);
    assert.equal(fetches, 1);
    room.close();
    for (const [token, code] of [
      [undefined, ErrorCode.TokenRequired],
      [mint("--room", "other"), ErrorCode.RoomForbidden],
      [mint("--room", "game-7", "--peer", "ab".repeat(32)), ErrorCode.TokenPeerMismatch],
      ["not.a.token", ErrorCode.TokenInvalid],
    ]) {
      await assert.rejects(
        join(server.url, "game-7", { identity: await generateIdentity(), reconnect: false, token }),
        (e) => e instanceof RdvError && e.code === code,
        code,
      );
    }
  } finally {
    server.stop();
  }
});

test("a resumed welcome keeps what we relayed while signaling was down; a fresh one drops it", async () => {
  for (const resumed of [true, false]) {
    const identity = await generateIdentity();
    let connection = 0;
    const { Scripted, sockets } = scriptedWebSocket((socket, message) => {
      if (message?.type !== "register") return;
      connection += 1;
      const welcome = { type: "welcome", peerId: identity.peerId, peers: [{ id: other.fingerprint, publicKey: other.jwk }] };
      if (connection > 1 && resumed) welcome.resumed = true;
      socket.deliver(welcome);
    });
    const room = await join("ws://server", "r", {
      identity, WebSocket: Scripted, proof: false, sign: false, backoff: { base: 50, max: 50 },
    });
    const events = [];
    room.on("peer-left", () => events.push("left"));
    const reopened = new Promise((resolve) => room.on("open", resolve));
    sockets[0].close(1006, "gone");
    await new Promise((resolve) => setTimeout(resolve, 5));
    await room._relay("ice-candidate", other.fingerprint, { candidate: "c1" });
    await room._relay("ice-candidate", other.fingerprint, { candidate: "c2" });
    const opened = await reopened;
    assert.equal(opened.resumed, resumed);
    const sent = sockets[1].sent.map((m) => m.type === "ice-candidate" ? m.candidate.candidate : m.type);
    assert.deepEqual(sent, resumed ? ["register", "c1", "c2"] : ["register"]);
    assert.deepEqual(events, [], "the peer is still there either way");
    room.close();
  }
});
