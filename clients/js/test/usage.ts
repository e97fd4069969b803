// Type-checked against rdv.d.ts (tests/js_client.rs runs tsc --strict on it): the README's
// usage and every public name, as an application would write them.
import {
  ErrorCode, RdvError, join, loadIdentity, identityFrom, peerId, backoff, parseServerMessage,
  type Connection, type Peer, type Room, type SignatureCheck,
} from "../rdv.js";

export async function app(): Promise<void> {
  const identity = await loadIdentity("tab-1");
  const controller = new AbortController();
  const room: Room = await join("wss://signal.example.com", "lobby", {
    identity,
    signal: controller.signal,
    rtc: { iceTransportPolicy: "relay" },
    requireSignatures: true,
    buddies: ["ab".repeat(32)],
    sign: true,
    token: async () => (await fetch("/rdv-token")).text(),
    log: (level, message) => console.log(level, message),
  });
  room.on("peer-joined", (peer: Peer) => console.log(peer.id, peer.verified === null));
  room.on("connection", (conn: Connection) => {
    conn.channel.onmessage = (event) => console.log(conn.peerId, event.data);
    void conn.opened.then(() => conn.send(`hello from ${room.id}`));
  });
  room.on("error", (error: RdvError) => {
    if (error.code === ErrorCode.Unavailable) console.log("the cluster is down");
    if (error.code === ErrorCode.TokenExpired) console.log("the backend's tokens are too short-lived");
    if (error.code === ErrorCode.SignatureInvalid) console.log(error.peerId, error.reason);
  });
  room.on("reconnecting", ({ attempt, delay }) => console.log(attempt, delay));
  room.on("open", ({ peers, resumed }) => console.log(peers.length, resumed));
  room.mesh();
  const first = room.peers.keys().next();
  if (!first.done) {
    const conn = await room.connect(first.value);
    conn.pc.addEventListener("connectionstatechange", () => console.log(conn.pc.connectionState));
    const check: SignatureCheck | null = conn.signature;
    console.log(conn.verified === true, check?.result);
  }
  const keys = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]) as CryptoKeyPair;
  const other = await identityFrom(keys);
  console.log(await peerId(other.publicJwk), backoff(3), parseServerMessage("{}")?.type);
  controller.abort();
}
