// A browser peer for rdv (PROTOCOL.md): identity with WebCrypto, signaling over WebSocket,
// a WebRTC data channel to every other peer. State is exposed as window.rdv for tests.

const params = new URLSearchParams(location.search);
const server = params.get("server") ?? `ws://${location.host}`;
const room = params.get("room") ?? "lobby";
// ?relay=1: TURN only (iceTransportPolicy "relay"), to prove the server's TURN credentials.
const relayOnly = params.get("relay") === "1";
// From welcome.iceServers, replaced by each ice-servers message (PROTOCOL §10).
let iceServers = [];

const state = {
  id: null,
  serverAgrees: false,
  peers: {},        // id -> { verified, keyMatches, channelOpen, sent, received }
  errors: [],
  log: [],
  // Every other peer's channel carried a message both ways.
  done(expectedPeers) {
    const peers = Object.values(this.peers);
    return this.serverAgrees && this.errors.length === 0 && peers.length >= expectedPeers &&
      peers.every((p) => p.keyMatches && p.sent && p.received);
  },
};
window.rdv = state;

function log(line) {
  state.log.push(line);
  document.getElementById("log").textContent += `${new Date().toISOString().slice(11, 23)} ${line}\n`;
}

function fail(message) {
  state.errors.push(message);
  log(`ERROR ${message}`);
  const status = document.getElementById("status");
  status.textContent = message;
  status.className = "bad";
}

const b64url = (bytes) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const hex = (bytes) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");

// PROTOCOL §4: SHA-256 of JSON.stringify of the essential members, in this order.
async function peerIdOf(jwk) {
  let essential;
  if (jwk.kty === "EC") essential = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
  else if (jwk.kty === "OKP") essential = { kty: jwk.kty, crv: jwk.crv, x: jwk.x };
  else if (jwk.kty === "RSA") essential = { kty: jwk.kty, n: jwk.n, e: jwk.e };
  else throw new Error(`unsupported kty ${jwk.kty}`);
  const text = new TextEncoder().encode(JSON.stringify(essential));
  return hex(await crypto.subtle.digest("SHA-256", text));
}

const keys = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
const publicJwk = await crypto.subtle.exportKey("jwk", keys.publicKey);
state.id = await peerIdOf(publicJwk);
document.getElementById("me").textContent = state.id;
log(`my peer ID ${state.id.slice(0, 12)}`);

const ws = new WebSocket(`${server}/room/${encodeURIComponent(room)}/websocket`);
const connections = new Map(); // peer id -> { pc, channel, pendingIce }
let registered = false;

const send = (message) => ws.send(JSON.stringify(message));

async function register(nonce) {
  if (registered) return;
  registered = true;
  const message = { type: "register", publicKey: publicJwk };
  if (nonce) {
    // WebCrypto's ECDSA signature is raw r‖s, the form §9 asks for.
    const data = new TextEncoder().encode(`rdv-register:${nonce}`);
    const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, keys.privateKey, data);
    message.proof = { alg: "ES256", signature: b64url(signature) };
  }
  send(message);
  log(`register sent${nonce ? " with proof" : ""}`);
}

// A server in proof mode sends its challenge first thing; otherwise register unproven.
ws.onopen = () => setTimeout(() => register(null), 300);
ws.onclose = (event) => log(`connection closed: ${event.code} ${event.reason}`);

ws.onmessage = async (event) => {
  const message = JSON.parse(event.data);
  switch (message.type) {
    case "challenge":
      await register(message.nonce);
      break;
    case "welcome":
      if (message.iceServers) iceServers = message.iceServers;
      state.serverAgrees = message.peerId === state.id;
      if (!state.serverAgrees) fail(`server says my ID is ${message.peerId}`);
      for (const peer of message.peers) await meet(peer.id, peer.publicKey, peer.verified);
      document.getElementById("status").textContent = "registered";
      break;
    case "ice-servers":
      // Fresh TURN credentials: for new connections and every ICE restart from now on.
      iceServers = message.iceServers;
      for (const { pc } of connections.values()) pc.setConfiguration({ ...pc.getConfiguration(), iceServers });
      log("fresh ICE servers");
      break;
    case "peer-joined":
      await meet(message.peerId, message.publicKey, message.verified);
      break;
    case "peer-left":
      log(`peer left ${message.peerId.slice(0, 12)}`);
      break;
    case "offer":
      await onOffer(message.from, message.sdp);
      break;
    case "answer":
      await connections.get(message.from)?.pc.setRemoteDescription(message.sdp);
      await flushIce(message.from);
      break;
    case "ice-candidate":
      await onIce(message.from, message.candidate);
      break;
    case "error":
      fail(`server error ${message.code}: ${message.message}`);
      break;
  }
};

// A peer announced by the server: check its ID against its key, then connect. The peer
// with the smaller ID makes the offer, so two peers never offer to each other at once.
async function meet(id, publicKey, verified) {
  const keyMatches = (await peerIdOf(publicKey)) === id;
  state.peers[id] = { verified: verified ?? null, keyMatches, channelOpen: false, sent: false, received: false };
  if (!keyMatches) return fail(`peer ${id} does not match its key`);
  log(`met ${id.slice(0, 12)}${verified === undefined ? "" : verified ? " (verified)" : " (unverified)"}`);
  if (state.id < id) {
    const { pc } = connection(id);
    wire(id, pc.createDataChannel("rdv"));
    await pc.setLocalDescription(await pc.createOffer());
    send({ type: "offer", to: id, sdp: pc.localDescription.toJSON() });
  }
}

function connection(id) {
  if (!connections.has(id)) {
    const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: relayOnly ? "relay" : "all" });
    pc.onicecandidate = (event) => {
      if (event.candidate) send({ type: "ice-candidate", to: id, candidate: event.candidate.toJSON() });
    };
    pc.ondatachannel = (event) => wire(id, event.channel);
    connections.set(id, { pc, pendingIce: [] });
  }
  return connections.get(id);
}

function wire(id, channel) {
  channel.onopen = async () => {
    state.peers[id].channelOpen = true;
    recordPath(id);
    channel.send(`hello from ${state.id}`);
    state.peers[id].sent = true;
    log(`channel open to ${id.slice(0, 12)}, hello sent`);
  };
  channel.onmessage = (event) => {
    if (event.data === `hello from ${id}`) state.peers[id].received = true;
    log(`from ${id.slice(0, 12)} over the data channel: ${event.data.slice(0, 30)}…`);
  };
}

// Which candidate types the selected pair joins ("host", "srflx", "relay"), for the tests.
async function recordPath(id) {
  const pc = connections.get(id)?.pc;
  if (!pc) return;
  const stats = await pc.getStats();
  for (const report of stats.values()) {
    if (report.type !== "candidate-pair" || !(report.selected || report.nominated) || report.state !== "succeeded") continue;
    state.peers[id].localType = stats.get(report.localCandidateId)?.candidateType;
    state.peers[id].remoteType = stats.get(report.remoteCandidateId)?.candidateType;
  }
}

async function onOffer(from, sdp) {
  const { pc } = connection(from);
  await pc.setRemoteDescription(sdp);
  await pc.setLocalDescription(await pc.createAnswer());
  send({ type: "answer", to: from, sdp: pc.localDescription.toJSON() });
  await flushIce(from);
}

// Trickled candidates can arrive before the remote description; hold them until then.
async function onIce(from, candidate) {
  const entry = connection(from);
  if (entry.pc.remoteDescription) await entry.pc.addIceCandidate(candidate);
  else entry.pendingIce.push(candidate);
}

async function flushIce(from) {
  const entry = connections.get(from);
  for (const candidate of entry?.pendingIce.splice(0) ?? []) await entry.pc.addIceCandidate(candidate);
}
