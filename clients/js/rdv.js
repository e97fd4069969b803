// rdv.js: the browser client of rdv (docs/PROTOCOL.md). One ES module, no build step, no
// dependencies: identity (WebCrypto, kept in IndexedDB), signaling (register, proof of
// possession, verification of every peer ID, reconnecting), and WebRTC connections
// negotiated with the "perfect negotiation" pattern, so two peers may connect at once.
//
//   import { join } from "./rdv.js";
//   const room = await join("wss://signal.example.com", "lobby");
//   room.on("connection", (conn) => conn.channel.onmessage = (e) => console.log(e.data));
//   const conn = await room.connect(room.peers.keys().next().value);
//   conn.channel.send("hello");

/** The server's error codes (PROTOCOL §5), and the library's own. */
export const ErrorCode = Object.freeze({
  InvalidJson: "invalid-json",
  InvalidMessage: "invalid-message",
  UnknownType: "unknown-type",
  BinaryUnsupported: "binary-unsupported",
  NotRegistered: "not-registered",
  AlreadyRegistered: "already-registered",
  InvalidKey: "invalid-key",
  PrivateKey: "private-key",
  DuplicatePeer: "duplicate-peer",
  UnknownPeer: "unknown-peer",
  RoomFull: "room-full",
  RateLimited: "rate-limited",
  Forbidden: "forbidden",
  ProofRequired: "proof-required",
  ProofInvalid: "proof-invalid",
  Replaced: "replaced",
  Unavailable: "unavailable",
  TokenRequired: "token-required",
  TokenInvalid: "token-invalid",
  TokenExpired: "token-expired",
  RoomForbidden: "room-forbidden",
  TokenPeerMismatch: "token-peer-mismatch",
  // Raised by the library, never sent by a server:
  /** The server's `welcome` names another peer ID than ours: it is not to be trusted. */
  ServerMismatch: "server-mismatch",
  /** A peer was announced with a key whose peer ID is not the announced one. */
  PeerMismatch: "peer-mismatch",
  /** The connection to the server closed and will not be retried. */
  Closed: "closed",
  /** The key cannot sign proofs (its algorithm is not one PROTOCOL §9 knows). */
  UnsupportedKey: "unsupported-key",
  /** An offer or answer whose signature does not hold (PROTOCOL §12): refused. */
  SignatureInvalid: "signature-invalid",
  /** An unsigned offer or answer where signatures are required: refused. */
  SignatureMissing: "signature-missing",
  /** A peer that is not on the `buddies` list: not connected to, its offers refused. */
  NotABuddy: "not-a-buddy",
});

/** Errors that retrying the same register cannot fix: `join` gives up on them. */
const FINAL = new Set([
  ErrorCode.InvalidKey, ErrorCode.PrivateKey, ErrorCode.Forbidden, ErrorCode.ProofRequired,
  ErrorCode.ProofInvalid, ErrorCode.ServerMismatch, ErrorCode.UnsupportedKey,
  ErrorCode.TokenRequired, ErrorCode.TokenInvalid, ErrorCode.TokenExpired,
  ErrorCode.RoomForbidden, ErrorCode.TokenPeerMismatch,
]);

/** The server's access-token refusals (PROTOCOL §13); each closes the connection. */
const TOKEN_REFUSALS = new Set([
  ErrorCode.TokenRequired, ErrorCode.TokenInvalid, ErrorCode.TokenExpired,
  ErrorCode.RoomForbidden, ErrorCode.TokenPeerMismatch,
]);

/** Token refusals a fresh token from a `token` function can fix on a reconnect. */
const STALE_TOKEN = new Set([ErrorCode.TokenExpired, ErrorCode.TokenInvalid]);

/** An error from the server (its `code` is one of {@link ErrorCode}) or from the library. */
export class RdvError extends Error {
  constructor(code, message) {
    super(message ?? code);
    this.name = "RdvError";
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------
// Identity (PROTOCOL §4, §9)

const encoder = new TextEncoder();

const hex = (bytes) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");

export function base64url(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The members of a public JWK that make its peer ID, in PROTOCOL §4's order. */
function essential(jwk) {
  switch (jwk?.kty) {
    case "EC": return { kty: "EC", crv: jwk.crv, x: jwk.x, y: jwk.y };
    case "OKP": return { kty: "OKP", crv: jwk.crv, x: jwk.x };
    case "RSA": return { kty: "RSA", n: jwk.n, e: jwk.e };
    default: throw new RdvError(ErrorCode.InvalidKey, `unsupported key type ${jwk?.kty}`);
  }
}

/** PROTOCOL §4: lowercase hex SHA-256 of the essential members as compact JSON. */
export async function peerId(publicJwk) {
  const text = JSON.stringify(essential(publicJwk));
  return hex(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

/** The public JWK as a room sees it: its essential members only. */
export function publicKeyOf(publicJwk) {
  return essential(publicJwk);
}

/** The §9 algorithm and WebCrypto parameters for a private key. */
function signing(privateKey) {
  const { name, namedCurve, hash } = privateKey.algorithm;
  if (name === "ECDSA") {
    const sha = { "P-256": "SHA-256", "P-384": "SHA-384", "P-521": "SHA-512" }[namedCurve];
    const alg = { "P-256": "ES256", "P-384": "ES384", "P-521": "ES512" }[namedCurve];
    if (sha) return { alg, params: { name: "ECDSA", hash: sha } };
  }
  if (name === "Ed25519") return { alg: "EdDSA", params: { name: "Ed25519" } };
  if (name === "RSASSA-PKCS1-v1_5" && hash?.name === "SHA-256") {
    return { alg: "RS256", params: { name } };
  }
  if (name === "RSA-PSS" && hash?.name === "SHA-256") {
    return { alg: "PS256", params: { name, saltLength: 32 } };
  }
  throw new RdvError(ErrorCode.UnsupportedKey, `cannot sign a proof with a ${name} key`);
}

/**
 * PROTOCOL §9: `{alg, signature}` over `rdv-register:` + nonce. WebCrypto's ECDSA signature
 * is already the raw r‖s the protocol asks for.
 */
export async function signProof(privateKey, nonce) {
  const { alg, params } = signing(privateKey);
  const data = encoder.encode(`rdv-register:${nonce}`);
  const signature = await crypto.subtle.sign(params, privateKey, data);
  return { alg, signature: base64url(signature) };
}

// ---------------------------------------------------------------------------------------
// Signed offers and answers (PROTOCOL §12)

/** How far a signature's timestamp may be from our clock, either way (PROTOCOL §12). */
export const MAX_SKEW_MS = 5 * 60 * 1000;

/** The bytes a description's signature covers, as a string (PROTOCOL §12). */
export function signedBytes(from, to, type, ts, sdp) {
  return `rdv-signed-description/1\n${from}\n${to}\n${type}\n${ts}\n${sdp}`;
}

/** The `signature` member for a description `{type, sdp}` we send to `to`. */
export async function signDescription(identity, to, description, now = Date.now()) {
  const { alg, params } = signing(identity.privateKey);
  const data = encoder.encode(signedBytes(identity.peerId, to, description.type, now, description.sdp));
  const signature = await crypto.subtle.sign(params, identity.privateKey, data);
  return { alg, ts: now, sig: base64url(signature) };
}

/** WebCrypto's import and verify parameters for a §9 `alg` and a public JWK. */
function verifying(alg, jwk) {
  const curves = { ES256: ["P-256", "SHA-256"], ES384: ["P-384", "SHA-384"], ES512: ["P-521", "SHA-512"] };
  if (curves[alg] && jwk.kty === "EC" && jwk.crv === curves[alg][0]) {
    return { importAs: { name: "ECDSA", namedCurve: jwk.crv }, verifyAs: { name: "ECDSA", hash: curves[alg][1] } };
  }
  if (alg === "EdDSA" && jwk.kty === "OKP" && jwk.crv === "Ed25519") {
    return { importAs: { name: "Ed25519" }, verifyAs: { name: "Ed25519" } };
  }
  if (alg === "RS256" && jwk.kty === "RSA") {
    return { importAs: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, verifyAs: { name: "RSASSA-PKCS1-v1_5" } };
  }
  if (alg === "PS256" && jwk.kty === "RSA") {
    return { importAs: { name: "RSA-PSS", hash: "SHA-256" }, verifyAs: { name: "RSA-PSS", saltLength: 32 } };
  }
  return null;
}

/** Imported keys by JWK object and alg: a peer's key is imported once, not per description. */
const imported = new WeakMap();

async function importedForVerifying(jwk, alg, importAs) {
  let byAlg = imported.get(jwk);
  if (!byAlg) imported.set(jwk, (byAlg = new Map()));
  if (!byAlg.has(alg)) byAlg.set(alg, crypto.subtle.importKey("jwk", publicKeyOf(jwk), importAs, false, ["verify"]));
  return byAlg.get(alg);
}

function fromBase64url(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text)) return null;
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/**
 * Checks a received offer or answer (with `from`, as the server forwards it) against its
 * sender's public JWK, for `receiver` (our peer ID): `{result: "valid" | "missing" |
 * "invalid", reason?}` with PROTOCOL §12's reasons. Replays are the caller's to track.
 */
export async function verifyDescription(message, senderJwk, receiver, now = Date.now()) {
  const signature = message.signature;
  if (signature === undefined) return { result: "missing" };
  const invalid = (reason) => ({ result: "invalid", reason });
  const description = message.sdp;
  const sig = fromBase64url(signature?.sig);
  if (typeof signature?.alg !== "string" || !Number.isSafeInteger(signature?.ts) || signature.ts < 0 || !sig
    || typeof message.from !== "string" || typeof description?.sdp !== "string"
    || description?.type !== message.type) {
    return invalid("malformed");
  }
  if (!senderJwk) return invalid("unknown-sender");
  if (Math.abs(now - signature.ts) > MAX_SKEW_MS) return invalid("stale");
  const params = verifying(signature.alg, senderJwk);
  if (!params) return invalid("wrong-algorithm");
  try {
    const key = await importedForVerifying(senderJwk, signature.alg, params.importAs);
    const data = encoder.encode(signedBytes(message.from, receiver, message.type, signature.ts, description.sdp));
    return (await crypto.subtle.verify(params.verifyAs, key, sig, data)) ? { result: "valid" } : invalid("bad-signature");
  } catch {
    return invalid("bad-signature");
  }
}

/**
 * An identity from a key pair (a `CryptoKeyPair`, or `{publicKey, privateKey}` with the
 * public half as a CryptoKey or a JWK).
 */
export async function identityFrom(keys) {
  const publicJwk = keys.publicKey instanceof CryptoKey
    ? await crypto.subtle.exportKey("jwk", keys.publicKey)
    : keys.publicKey;
  return Object.freeze({
    publicJwk: publicKeyOf(publicJwk),
    privateKey: keys.privateKey,
    peerId: await peerId(publicJwk),
  });
}

/** A new P-256 identity whose private key cannot be exported. */
export async function generateIdentity() {
  const keys = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"],
  );
  return identityFrom(keys);
}

const DB = "rdv";
const STORE = "identities";

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function openStore() {
  const open = indexedDB.open(DB, 1);
  open.onupgradeneeded = () => open.result.createObjectStore(STORE);
  return request(open);
}

/**
 * The identity named `name` kept in this origin's IndexedDB, made (non-extractable P-256)
 * on first use: a page reload keeps its peer ID. Without IndexedDB (Node, some private
 * modes), a fresh identity each time.
 */
export async function loadIdentity(name = "default") {
  if (typeof indexedDB === "undefined") return generateIdentity();
  const db = await openStore();
  try {
    const stored = await request(db.transaction(STORE).objectStore(STORE).get(name));
    if (stored?.privateKey && stored?.publicKey) return identityFrom(stored);
    const keys = await crypto.subtle.generateKey(
      { name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"],
    );
    // CryptoKeys are stored as they are; the private key stays non-extractable.
    const tx = db.transaction(STORE, "readwrite");
    tx.objectStore(STORE).put({ publicKey: keys.publicKey, privateKey: keys.privateKey }, name);
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
    });
    return identityFrom(keys);
  } finally {
    db.close();
  }
}

// ---------------------------------------------------------------------------------------
// Messages (PROTOCOL §2, §3)

/** `register`, with a proof when the server sent a challenge and an access token (§13) when given. */
export function registerMessage(publicJwk, proof, token) {
  const message = { type: "register", publicKey: publicKeyOf(publicJwk) };
  if (proof) message.proof = proof;
  if (token) message.token = token;
  return JSON.stringify(message);
}

/** A relayed message for `to`: `offer`, `answer` (with `sdp`) or `ice-candidate`. */
export function relayMessage(type, to, body, signature) {
  if (type === "ice-candidate") return JSON.stringify({ type, to, candidate: body });
  if (type === "offer" || type === "answer") {
    return JSON.stringify(signature ? { type, to, sdp: body, signature } : { type, to, sdp: body });
  }
  throw new TypeError(`not a relayed type: ${type}`);
}

const SERVER_TYPES = new Set([
  "challenge", "welcome", "peer-joined", "peer-left", "offer", "answer", "ice-candidate",
  "error", "pong", "ice-servers",
]);

/** A server message as an object, or `null` for anything that is not one. */
export function parseServerMessage(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return null;
  }
  if (message === null || typeof message !== "object" || !SERVER_TYPES.has(message.type)) {
    return null;
  }
  return message;
}

/** The WebSocket URL of a room: `base` is ws(s)://host or http(s)://host (PROTOCOL §1). */
export function roomUrl(base, room) {
  const url = new URL(base);
  if (url.protocol === "http:") url.protocol = "ws:";
  if (url.protocol === "https:") url.protocol = "wss:";
  const prefix = url.pathname.replace(/\/+$/, "");
  url.pathname = `${prefix}/room/${encodeURIComponent(room)}/websocket`;
  url.search = "";
  return url.toString();
}

/**
 * Milliseconds to wait before reconnect attempt `attempt` (0, 1, …): exponential from
 * `base` up to `max`, with "full jitter" (uniform in [0, ceiling]) so clients that lost one
 * server do not all come back at the same instant.
 */
export function backoff(attempt, { base = 500, max = 30_000, random = Math.random } = {}) {
  const ceiling = Math.min(max, base * 2 ** Math.min(attempt, 30));
  return Math.round(random() * ceiling);
}

// ---------------------------------------------------------------------------------------
// Rooms

/** Close codes after which reconnecting would be refused the same way. */
const FINAL_CLOSES = new Set([1008]);

/**
 * Joins `roomName` on the server at `url` (ws://, wss://, http:// or https://). Resolves with
 * the {@link Room} once the server welcomed it; rejects with an {@link RdvError} if the
 * server refuses for good (a bad key, a forbidden ID, a failed proof) or with the abort
 * reason if `signal` fires first.
 *
 * Options: `identity` (from {@link loadIdentity}, {@link identityFrom}…; default: the
 * stored one), `iceServers` (default: what the server hands out, else none), `signal`
 * (an AbortSignal that leaves the room), `reconnect` (default true), `proof` (`"auto"`:
 * sign when the server challenges, `true`: always wait for a challenge, `false`: never),
 * `sign` (sign our offers and answers, PROTOCOL §12; default true), `requireSignatures`
 * (refuse unsigned or invalid ones), `buddies` (peer IDs to connect to and accept, and
 * whose signatures are required), `token` (an access token for a server started with
 * `--auth-key`, PROTOCOL §13: a string, or a function, sync or async, called before every
 * connect and reconnect so each gets a fresh one),
 * `rtc` (more RTCConfiguration, e.g. `{iceTransportPolicy: "relay"}`), `log`
 * (`(level, message) => void`; nothing is logged without it), `WebSocket` and
 * `RTCPeerConnection` (to run outside a browser).
 */
export async function join(url, roomName, options = {}) {
  const identity = options.identity ?? (await loadIdentity());
  const room = new Room(roomUrl(url, roomName), identity, options);
  await room._start();
  return room;
}

/** How long a polite peer that yielded waits for its first ICE candidate before an ICE restart. */
const GATHER_WAIT_MS = 2000;

/** How long the larger ID of a pair waits for the other's offer in a mesh before offering. */
const MESH_WAIT_MS = 3000;

/** Relays kept while signaling is down (PROTOCOL §14); more are dropped. */
const MAX_UNSENT = 256;

/** How long `proof: "auto"` waits for a challenge before registering without a proof. */
const CHALLENGE_WAIT_MS = 250;

/**
 * A joined room. Events (`room.on(name, handler)` or `addEventListener`, the payload in
 * `event.detail`): `peer-joined` and `peer-left` ({id, publicKey, verified}), `connection`
 * (a {@link Connection} a peer opened to us, or one `mesh` opened), `error` (an
 * {@link RdvError}), `reconnecting` ({attempt, delay}: signaling dropped), `open` ({peers,
 * resumed}: welcomed again after a
 * reconnect), `ice-servers` (the new list), `closed` (for good).
 */
export class Room extends EventTarget {
  constructor(url, identity, options) {
    super();
    this.url = url;
    this.identity = identity;
    /** Our peer ID. */
    this.id = identity.peerId;
    /** Every other peer of the room: id → {id, publicKey, verified}. */
    this.peers = new Map();
    /** Open connections: peer id → {@link Connection}. */
    this.connections = new Map();
    this.iceServers = options.iceServers ?? [];
    this._fixedIce = Boolean(options.iceServers);
    this._options = options;
    this._log = options.log ?? (() => {});
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._RTCPeerConnection = options.RTCPeerConnection ?? globalThis.RTCPeerConnection;
    this._attempt = 0;
    this._closed = false;
    this._meshing = false;
    this._ws = null;
    this._timer = null;
    // Messages are handled one at a time, in order: a peer's offer must not overtake the
    // `peer-joined` (whose key check is async) that announced it.
    this._queue = Promise.resolve();
    // Relays are sent in order too: a candidate must not overtake its offer while the
    // offer is being signed.
    this._sending = Promise.resolve();
    // Relays made while signaling was down, for a resume to deliver.
    this._unsent = [];
    this._sign = options.sign ?? true;
    this._buddies = options.buddies ? new Set(options.buddies) : null;
    this._requireSignatures = Boolean(options.requireSignatures);
    /** Signatures accepted within the skew window: sig → ts, so a replay is refused. */
    this._seenSignatures = new Map();
    options.signal?.addEventListener("abort", () => this.close(), { once: true });
  }

  /** `room.on("peer-joined", (peer) => …)`: the event's detail, not the event. */
  on(type, handler) {
    const listener = (event) => handler(event.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Connects and waits for the first welcome (or a final refusal). */
  _start() {
    if (this._options.signal?.aborted) return Promise.reject(this._options.signal.reason);
    return new Promise((resolve, reject) => {
      this._firstWelcome = { resolve, reject };
      this._options.signal?.addEventListener("abort", () => reject(this._options.signal.reason), { once: true });
      this._connect();
    });
  }

  _connect() {
    if (this._closed) return;
    const ws = new this._WebSocket(this.url);
    this._ws = ws;
    let registered = false;
    let challengeTimer = null;
    // The server's challenge, and whether a register on this socket carried a proof: a
    // challenge that comes after `proof: "auto"` stopped waiting is answered when the server
    // says `proof-required`, instead of giving up on a slow network.
    let nonce = null;
    let proved = false;
    // Fetched while the socket opens; a failure is reported when register needs it.
    const token = this._fetchToken();
    token.catch(() => {});
    const register = async (challenge, again = false) => {
      if ((registered && !again) || ws !== this._ws) return;
      registered = true;
      clearTimeout(challengeTimer);
      let proof = null;
      try {
        if (challenge && this._options.proof !== false) proof = await signProof(this.identity.privateKey, challenge);
      } catch (error) {
        return this._fail(error instanceof RdvError ? error : new RdvError(ErrorCode.UnsupportedKey, String(error)));
      }
      let accessToken;
      try {
        accessToken = await token;
      } catch (error) {
        return this._tokenFailed(ws, error);
      }
      proved ||= Boolean(proof);
      if (ws.readyState === 1) ws.send(registerMessage(this.identity.publicJwk, proof, accessToken));
      this._log("debug", `register sent${proof ? " with a proof" : ""}`);
    };
    this._proveLate = () => {
      if (ws !== this._ws || proved || !nonce || this._options.proof === false) return false;
      this._log("info", "the challenge came late: registering again with a proof");
      register(nonce, true);
      return true;
    };
    ws.onopen = () => {
      const proof = this._options.proof ?? "auto";
      if (proof === "auto") challengeTimer = setTimeout(() => register(null), CHALLENGE_WAIT_MS);
      else if (proof === false) register(null);
    };
    ws.onmessage = (event) => {
      if (ws !== this._ws) return;
      const message = parseServerMessage(event.data);
      if (!message) return this._log("warn", "ignoring a frame that is not a server message");
      if (message.type === "challenge") {
        nonce = message.nonce;
        return register(message.nonce);
      }
      this._queue = this._queue
        .then(() => (ws === this._ws || message.type === "error" ? this._handle(message) : null))
        .catch((error) => this._error(error));
    };
    ws.onclose = (event) => {
      clearTimeout(challengeTimer);
      if (ws !== this._ws) return;
      this._log("info", `signaling closed: ${event.code} ${event.reason}`);
      this._ws = null;
      if (this._closed) return;
      if (FINAL_CLOSES.has(event.code) && !this._welcomed) {
        return this._fail(new RdvError(ErrorCode.Closed, `the server closed the connection: ${event.code} ${event.reason}`));
      }
      this._retry();
    };
  }

  /** The `token` option's value for this connect: null without one. */
  async _fetchToken() {
    const source = this._options.token;
    if (source === undefined || source === null) return null;
    const value = typeof source === "function" ? await source() : source;
    if (typeof value !== "string" || value === "") throw new TypeError("the token option gave no token");
    return value;
  }

  /** The token function threw: the first join fails with it; a reconnect tries again later. */
  _tokenFailed(ws, error) {
    const wrapped = new RdvError(ErrorCode.TokenRequired, `could not get an access token: ${error?.message ?? error}`);
    if (!this._welcomed) return this._fail(wrapped);
    this._error(wrapped);
    if (ws === this._ws) ws.close();
  }

  _retry() {
    if (this._closed) return;
    if (this._options.reconnect === false) {
      return this._fail(new RdvError(ErrorCode.Closed, "the connection to the server closed"));
    }
    const delay = backoff(this._attempt, this._options.backoff);
    this._emit("reconnecting", { attempt: this._attempt, delay });
    this._attempt += 1;
    this._timer = setTimeout(() => this._connect(), delay);
  }

  async _handle(message) {
    switch (message.type) {
      case "welcome": return this._welcome(message);
      case "peer-joined": {
        const peer = await this._checked(message.peerId, message.publicKey, message.verified);
        if (!peer) return;
        this.peers.set(peer.id, peer);
        this._emit("peer-joined", peer);
        if (this._meshing) this._meshTo(peer.id);
        return;
      }
      case "peer-left": return this._left(message.peerId);
      // Only an offer opens a connection: an answer or a candidate belongs to one that
      // exists, and a stray one (late, replayed, or after a close) is dropped.
      case "offer":
      case "answer": {
        const check = await this._checkSignature(message);
        if (!check) return;
        const connection = message.type === "offer"
          ? this._connection(message.from, false)
          : this._existing(message.from, message.type);
        if (!connection) return;
        connection.signature = check;
        connection.verified = check.result === "valid";
        return connection._description(message.sdp);
      }
      case "ice-candidate":
        this._log("debug", `candidate from ${message.from.slice(0, 8)}`);
        return this._existing(message.from, message.type)?._candidate(message.candidate);
      case "ice-servers":
        if (this._fixedIce) return;
        this.iceServers = message.iceServers;
        for (const connection of this.connections.values()) connection._useIceServers(this.iceServers);
        return this._emit("ice-servers", this.iceServers);
      case "error": {
        const error = new RdvError(message.code, message.message);
        if (message.code === ErrorCode.Replaced) {
          // Our identity registered again elsewhere (another tab, a newer connection):
          // reconnecting would take it back, and the other would do the same.
          return this._fail(error);
        }
        if (message.code === ErrorCode.ProofRequired && this._proveLate?.()) return;
        if (TOKEN_REFUSALS.has(message.code) && this._welcomed) {
          // A reconnect whose token went stale: the server closes (1008) and the next
          // attempt asks the function for a fresh one. Anything else would be refused again.
          if (STALE_TOKEN.has(message.code) && typeof this._options.token === "function") return this._error(error);
          return this._fail(error);
        }
        if (message.code === ErrorCode.DuplicatePeer && this._welcomed && !this._welcomedOnThisSocket()) {
          // Reconnecting while our previous connection is still open on the server (it has
          // not noticed the network change yet): try again after a back-off until it times
          // out. On a first join the ID is someone else's connection: that is final.
          this._ws?.close();
          return;
        }
        if ((FINAL.has(message.code) || message.code === ErrorCode.DuplicatePeer) && !this._welcomed) {
          return this._fail(error);
        }
        return this._error(error);
      }
      default:
    }
  }

  /**
   * The signature check of an offer or answer (PROTOCOL §12), or null if it is refused: from
   * a peer not on `buddies`, or not validly signed where signatures are required (always
   * with `requireSignatures`, and from buddies).
   */
  async _checkSignature(message) {
    const from = message.from;
    if (this._buddies && !this._buddies.has(from)) {
      this._error(new RdvError(ErrorCode.NotABuddy, `refused a ${message.type} from ${from}: not a buddy`));
      return null;
    }
    const now = Date.now();
    let check = await verifyDescription(message, this.peers.get(from)?.publicKey, this.id, now);
    if (check.result === "valid") {
      for (const [sig, ts] of this._seenSignatures) {
        if (Math.abs(now - ts) > MAX_SKEW_MS) this._seenSignatures.delete(sig);
      }
      if (this._seenSignatures.has(message.signature.sig)) check = { result: "invalid", reason: "replayed" };
      else this._seenSignatures.set(message.signature.sig, message.signature.ts);
    }
    const required = this._requireSignatures || Boolean(this._buddies);
    if (required && check.result !== "valid") {
      const code = check.result === "missing" ? ErrorCode.SignatureMissing : ErrorCode.SignatureInvalid;
      const why = check.reason ? ` (${check.reason})` : "";
      const error = new RdvError(code, `refused a ${message.type} from ${from}: signature ${check.result}${why}`);
      error.peerId = from;
      error.reason = check.reason ?? null;
      this._error(error);
      return null;
    }
    if (check.result !== "valid") {
      this._log("debug", `${message.type} from ${from.slice(0, 8)}: signature ${check.result} ${check.reason ?? ""}`);
    }
    return check;
  }

  /** Sends a relayed message after those before it; offers and answers signed (§12). */
  _relay(type, to, body) {
    this._sending = this._sending.then(async () => {
      let signature;
      if (this._sign && (type === "offer" || type === "answer") && this.identity.privateKey) {
        signature = await signDescription(this.identity, to, body).catch((error) => {
          this._error(error);
          return undefined;
        });
      }
      const text = relayMessage(type, to, body, signature);
      if (this._welcomedOnThisSocket() && this.send(text)) return;
      // Signaling is down: kept for a resume, which delivers it (PROTOCOL §14); dropped if
      // the server welcomes us afresh instead.
      if (this._unsent.length < MAX_UNSENT) this._unsent.push(text);
    });
    return this._sending;
  }

  _welcomedOnThisSocket() {
    return this._welcomedSocket === this._ws;
  }

  async _welcome(message) {
    if (message.peerId !== this.id) {
      // A server that computes another ID for our key is broken or lying: leave.
      this._fail(new RdvError(ErrorCode.ServerMismatch, `the server says our peer ID is ${message.peerId}, not ${this.id}`));
      return;
    }
    if (message.iceServers && !this._fixedIce) this.iceServers = message.iceServers;
    const now = new Map();
    for (const entry of message.peers) {
      const peer = await this._checked(entry.id, entry.publicKey, entry.verified);
      if (peer) now.set(peer.id, peer);
    }
    const again = this._welcomed;
    const before = this.peers;
    this.peers = now;
    this._welcomed = true;
    this._welcomedSocket = this._ws;
    this._attempt = 0;
    const unsent = this._unsent;
    this._unsent = [];
    if (again) {
      if (message.resumed) {
        // The server kept our place (PROTOCOL §14): what peers sent meanwhile follows this
        // welcome, and what we could not send goes now, in order. Connections carry on.
        for (const text of unsent) this.send(text);
      } else {
        // Signaling sent while we were away was lost: a connection still negotiating would
        // wait forever, so it starts over.
        for (const connection of [...this.connections.values()]) {
          if (connection.channel.readyState !== "open") connection.close();
        }
      }
      // After a reconnect: tell the difference, as if we had never been away (after a
      // resume, what changed in the room meanwhile).
      for (const id of before.keys()) if (!now.has(id)) this._left(id, before.get(id));
      for (const [id, peer] of now) if (!before.has(id)) this._emit("peer-joined", peer);
      this._emit("open", { peers: [...now.values()], resumed: Boolean(message.resumed) });
    } else {
      this._firstWelcome?.resolve();
      this._firstWelcome = null;
    }
    if (this._meshing) {
      for (const id of now.keys()) if (!this.connections.has(id)) this._meshTo(id);
    }
  }

  /** An announced peer, if its ID is its key's. */
  async _checked(id, publicKey, verified) {
    let computed = null;
    try {
      computed = await peerId(publicKey);
    } catch {
      // Not a key this library knows: treat as a mismatch.
    }
    if (computed !== id) {
      this._error(new RdvError(ErrorCode.PeerMismatch, `peer ${id} was announced with a key whose ID is ${computed}`));
      return null;
    }
    return Object.freeze({ id, publicKey, verified: verified ?? null });
  }

  _left(id, known) {
    const peer = known ?? this.peers.get(id);
    this.peers.delete(id);
    this.connections.get(id)?.close();
    if (peer) this._emit("peer-left", peer);
  }

  _error(error) {
    this._log("warn", String(error?.message ?? error));
    this._emit("error", error instanceof RdvError ? error : new RdvError(ErrorCode.Closed, String(error)));
  }

  _fail(error) {
    this._error(error);
    this._firstWelcome?.reject(error);
    this._firstWelcome = null;
    this.close();
  }

  /** Sends a signaling message as it is (a relayed type, or `ping`). */
  send(message) {
    if (this._ws?.readyState !== 1) return false;
    this._ws.send(typeof message === "string" ? message : JSON.stringify(message));
    return true;
  }

  _connectionLost(id) {
    if (this._meshing && this.peers.has(id) && !this._closed) this._meshTo(id);
  }

  /** The open connection to `id`, if there is one; else null, and `type` is dropped. */
  _existing(id, type) {
    const connection = this.connections.get(id);
    if (connection && connection.pc.connectionState !== "closed") return connection;
    this._log("debug", `dropping a stray ${type} from ${id.slice(0, 8)}: no connection to it`);
    return null;
  }

  /** The connection to `id`, made on demand (by us, or when its first offer arrives). */
  _connection(id, create = true) {
    let connection = this.connections.get(id);
    if (connection && connection.pc.connectionState === "closed") {
      connection.close();
      connection = undefined;
    }
    if (!connection && this.peers.has(id)) {
      connection = new Connection(this, id);
      this.connections.set(id, connection);
      if (!create) this._emit("connection", connection);
    }
    return connection;
  }

  /**
   * A {@link Connection} to peer `id`, resolved once its data channel is open. Both peers
   * may call it at the same moment: perfect negotiation sorts out who offers.
   */
  async connect(id) {
    if (id === this.id) throw new RdvError(ErrorCode.UnknownPeer, "a peer cannot connect to itself");
    if (!this.peers.has(id)) throw new RdvError(ErrorCode.UnknownPeer, `no peer ${id} in this room`);
    if (this._buddies && !this._buddies.has(id)) throw new RdvError(ErrorCode.NotABuddy, `${id} is not a buddy`);
    const existing = this.connections.has(id);
    const connection = this._connection(id);
    if (!existing && this._meshing) this._emit("connection", connection);
    await connection.opened;
    return connection;
  }

  /**
   * Connects to every peer of the room, now and as they join; each is a `connection` event.
   * When both sides mesh, the peer with the smaller ID offers and the other waits for it
   * (briefly: it offers itself if nothing came), so a mesh never relies on glare handling.
   */
  mesh() {
    this._meshing = true;
    for (const id of this.peers.keys()) this._meshTo(id);
    return this;
  }

  _meshTo(id) {
    if (this._buddies && !this._buddies.has(id)) return;
    const start = () => {
      if (this._closed || !this.peers.has(id)) return;
      this.connect(id).catch((error) => {
        // Closed before it opened (the peer left, or we reconnected): a mesh moves on.
        if (error?.code !== ErrorCode.Closed) this._error(error);
      });
    };
    if (this.id < id) start();
    else setTimeout(() => { if (!this.connections.has(id)) start(); }, MESH_WAIT_MS);
  }

  /** Leaves the room: closes every connection and the signaling socket. */
  close() {
    if (this._closed) return;
    this._closed = true;
    clearTimeout(this._timer);
    for (const connection of this.connections.values()) connection.close();
    const ws = this._ws;
    this._ws = null;
    ws?.close(1000);
    this._firstWelcome?.reject(new RdvError(ErrorCode.Closed, "the room was closed"));
    this._firstWelcome = null;
    this._emit("closed", {});
  }
}

/**
 * A WebRTC connection to one peer: `pc` (the RTCPeerConnection) and `channel` (a data
 * channel both sides create, negotiated out of band with id 0, so neither waits for the
 * other's). Offers and answers follow the "perfect negotiation" pattern: the peer with the
 * larger ID is polite and rolls its own offer back when both offer at once. Trickle ICE;
 * an ICE restart when the connection fails.
 */
export class Connection extends EventTarget {
  constructor(room, peerId) {
    super();
    this.room = room;
    this.peerId = peerId;
    this.polite = room.id > peerId;
    /**
     * Whether the peer's last offer or answer was signed by its key for us (PROTOCOL §12):
     * the DTLS fingerprint it carries is the peer's, whatever the server did. `null` until
     * one came; `signature` holds the check (`{result, reason}`).
     */
    this.verified = null;
    this.signature = null;
    this._makingOffer = false;
    this._ignoreOffer = false;
    this._closed = false;
    this.pc = new room._RTCPeerConnection({ ...room._options.rtc, iceServers: room.iceServers });
    this.channel = this.pc.createDataChannel("rdv", { negotiated: true, id: 0 });
    this.opened = new Promise((resolve, reject) => {
      this.channel.addEventListener("open", () => resolve(this), { once: true });
      this._rejectOpened = reject;
    });
    // The other side closed its end (it left, reloaded, or lost us while the server was
    // away): this connection is over; a mesh makes a new one if the peer is still here.
    this.channel.addEventListener("close", () => {
      if (this._closed) return;
      this.close();
      room._connectionLost(peerId);
    });
    // A caller that never awaits `opened` must not see an unhandled rejection.
    this.opened.catch(() => {});
    this.pc.onnegotiationneeded = async () => {
      try {
        this._makingOffer = true;
        await this.pc.setLocalDescription();
        room._log("debug", `${this.pc.localDescription.type} to ${peerId.slice(0, 8)}`);
        this._signal(this.pc.localDescription.type, this.pc.localDescription.toJSON());
      } catch (error) {
        room._error(error);
      } finally {
        this._makingOffer = false;
      }
    };
    this._gathered = 0;
    this.pc.onicecandidate = ({ candidate }) => {
      if (candidate) this._gathered += 1;
      room._log("debug", `candidate to ${peerId.slice(0, 8)}: ${candidate?.candidate?.split(" ").slice(4, 8).join(" ") ?? "end"}`);
      if (candidate) this._signal("ice-candidate", candidate.toJSON());
    };
    this.pc.oniceconnectionstatechange = () => {
      room._log("debug", `ICE with ${peerId.slice(0, 8)}: ${this.pc.iceConnectionState}`);
      if (this.pc.iceConnectionState === "failed") {
        room._log("info", `ICE failed with ${peerId.slice(0, 12)}: restarting`);
        this.pc.restartIce();
      }
    };
    this.pc.onconnectionstatechange = () => {
      room._log("debug", `connection with ${peerId.slice(0, 8)}: ${this.pc.connectionState}`);
      this.dispatchEvent(new CustomEvent("state", { detail: this.pc.connectionState }));
    };
  }

  _signal(type, body) {
    this.room._relay(type, this.peerId, body);
  }

  async _description(description) {
    const pc = this.pc;
    const collision = description.type === "offer" && (this._makingOffer || pc.signalingState !== "stable");
    this._ignoreOffer = !this.polite && collision;
    this.room._log("debug", `${description.type} from ${this.peerId.slice(0, 8)}${collision ? ` (collision, ${this.polite ? "yielding" : "ignored"})` : ""}`);
    if (this._ignoreOffer) return;
    // The polite peer's setRemoteDescription rolls its own offer back implicitly.
    await pc.setRemoteDescription(description);
    if (collision) this._watchGathering();
    if (description.type === "offer") {
      await pc.setLocalDescription();
      this.room._log("debug", `answer to ${this.peerId.slice(0, 8)}`);
      this._signal("answer", pc.localDescription.toJSON());
    }
  }

  /**
   * After yielding to the other side's offer: Chromium sometimes gathers no candidates for
   * the answer when its own offer was rolled back before gathering began, and ICE would wait
   * forever. If nothing was gathered in a while, an ICE restart starts over cleanly.
   */
  _watchGathering() {
    this._gathered = 0;
    setTimeout(() => {
      if (!this._closed && this._gathered === 0 && this.pc.iceConnectionState === "new") {
        this.room._log("info", `no ICE candidates for ${this.peerId.slice(0, 8)} after a rollback: restarting ICE`);
        this.pc.restartIce();
      }
    }, GATHER_WAIT_MS);
  }

  async _candidate(candidate) {
    try {
      await this.pc.addIceCandidate(candidate);
    } catch (error) {
      // Candidates of an offer we ignored are expected to fail.
      this.room._log("debug", `candidate from ${this.peerId.slice(0, 8)} not added: ${error}`);
      if (!this._ignoreOffer) throw error;
    }
  }

  _useIceServers(iceServers) {
    this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers });
  }

  /** Sends on the data channel. */
  send(data) {
    this.channel.send(data);
  }

  close() {
    if (this._closed) return;
    this._closed = true;
    this._rejectOpened(new RdvError(ErrorCode.Closed, "the connection was closed"));
    this.channel.close();
    this.pc.close();
    if (this.room.connections.get(this.peerId) === this) this.room.connections.delete(this.peerId);
    this.dispatchEvent(new CustomEvent("close"));
  }
}
