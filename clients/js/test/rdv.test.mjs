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
  ErrorCode, RdvError, backoff, generateIdentity, identityFrom, join, parseServerMessage,
  peerId, registerMessage, relayMessage, roomUrl, signProof,
} from "../rdv.js";

const repo = joinPath(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const vectors = JSON.parse(readFileSync(joinPath(repo, "tests/data/webcrypto-keys.json"), "utf8"));

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

const serverAvailable = existsSync(binary) && typeof WebSocket !== "undefined";

test("rdv verifies the library's proofs for every key type it signs with", { skip: serverAvailable ? false : `needs ${binary} and --experimental-websocket` }, async () => {
  const server = await serve(["--proof", "required"]);
  const rooms = [];
  try {
    const keyPairs = [
      await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]),
      await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-384" }, false, ["sign", "verify"]),
      await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]),
      await crypto.subtle.generateKey(
        { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
        false, ["sign", "verify"],
      ),
      await crypto.subtle.generateKey(
        { name: "RSA-PSS", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
        false, ["sign", "verify"],
      ),
    ];
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
