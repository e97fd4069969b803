// The demo on top of rdv.js: join the room, connect to everyone (mesh), chat over the data
// channels. Its state is exposed as window.demo for the end-to-end tests.

import { join, loadIdentity } from "../../clients/js/rdv.js";

const params = new URLSearchParams(location.search);
const server = params.get("server") ?? `ws://${location.host}`;
const roomName = params.get("room") ?? "lobby";
// ?relay=1: TURN only, to prove the server's TURN credentials work.
const rtc = params.get("relay") === "1" ? { iceTransportPolicy: "relay" } : {};

const $ = (id) => document.getElementById(id);
const demo = {
  id: null,
  joined: false,
  peers: {}, // id -> { verified, channelOpen, sent, received, localType, remoteType, pathChecked }
  errors: [],
  // Connections made so far (a resume makes none).
  connections: 0,
  // "joined ID", "left ID", "open" (welcomed again after a reconnect), "resumed" (welcomed
  // back in our old place), for the tests.
  events: [],
  // Every other peer's channel carried a message both ways.
  done(expectedPeers) {
    const peers = Object.values(this.peers).filter((p) => p.present);
    return this.joined && this.errors.length === 0 && peers.length >= expectedPeers &&
      peers.every((p) => p.sent && p.received && p.pathChecked);
  },
};
window.demo = demo;

function status(text, ok = true) {
  $("status").textContent = text;
  $("status").className = ok ? "ok" : "bad";
}

function say(line, className = "") {
  const div = document.createElement("div");
  div.textContent = `${new Date().toTimeString().slice(0, 8)} ${line}`;
  div.className = className;
  $("chat").append(div);
  $("chat").scrollTop = $("chat").scrollHeight;
}

function showPeers(room) {
  $("peers").replaceChildren(...[...room.peers.values()].map((peer) => {
    const li = document.createElement("li");
    const state = demo.peers[peer.id];
    const flag = peer.verified === null ? "" : peer.verified ? " · key proven to the server" : " · key not proven";
    // End to end: its offer or answer was signed by its key for us (PROTOCOL §12).
    const signed = state?.signed === undefined ? "" : state.signed ? " · ✔ signed end to end" : " · unsigned";
    li.innerHTML = `<code></code> <span class="dim"></span>`;
    li.firstChild.textContent = peer.id.slice(0, 16);
    li.lastChild.textContent = `${state?.channelOpen ? "connected" : "connecting…"}${flag}${signed}`;
    return li;
  }));
  if (room === currentRoom) status(`joined, ${room.peers.size} other peer(s)`);
}

let currentRoom = null;

const short = (id) => id.slice(0, 8);

$("room").textContent = roomName;
const identity = await loadIdentity(params.get("identity") ?? "default");
demo.id = identity.peerId;
$("me").textContent = identity.peerId;

let room;
try {
  // ?debug=1: the library's log on the console.
  const log = params.has("debug") ? (level, message) => console.log(`[rdv ${level}] ${message}`) : undefined;
  room = await join(server, roomName, { identity, rtc, log });
} catch (error) {
  demo.errors.push(`${error.code}: ${error.message}`);
  status(`could not join: ${error.message}`, false);
  throw error;
}
demo.joined = true;
demo.room = room; // for the tests
currentRoom = room;
status(`joined, ${room.peers.size} other peer(s)`);

const track = (id) => (demo.peers[id] ??= { present: true, channelOpen: false, sent: false, received: false });
for (const peer of room.peers.values()) track(peer.id).verified = peer.verified;

room.on("peer-joined", (peer) => {
  Object.assign(track(peer.id), { present: true, verified: peer.verified, channelOpen: false, sent: false, received: false });
  demo.events.push(`joined ${peer.id}`);
  say(`${short(peer.id)} joined`, "dim");
  showPeers(room);
});
room.on("peer-left", (peer) => {
  track(peer.id).present = false;
  demo.events.push(`left ${peer.id}`);
  say(`${short(peer.id)} left`, "dim");
  showPeers(room);
});
room.on("error", (error) => {
  // Errors a chat can live with are shown; the test counts the rest. `unknown-peer` comes
  // back for signaling still on its way to a peer that has just left.
  if (!["rate-limited", "unknown-peer"].includes(error.code)) demo.errors.push(`${error.code}: ${error.message}`);
  say(`error ${error.code}: ${error.message}`, "bad");
});
room.on("reconnecting", ({ delay }) => status(`reconnecting in ${delay} ms`, false));
room.on("open", ({ resumed }) => {
  // Resumed: the server kept our place, nobody saw us go, and the connections carried on.
  demo.events.push(resumed ? "resumed" : "open");
  status(`${resumed ? "back" : "joined again"}, ${room.peers.size} other peer(s)`);
});
room.on("closed", () => status("left the room", false));

room.on("connection", (connection) => {
  const id = connection.peerId;
  demo.connections += 1;
  const peer = track(id);
  Object.assign(peer, { channelOpen: false, sent: false, received: false });
  connection.channel.addEventListener("open", async () => {
    Object.assign(peer, { channelOpen: true, signed: connection.verified === true });
    connection.send(`hello from ${room.id}`);
    peer.sent = true;
    showPeers(room);
    await recordPath(connection, peer);
  });
  connection.channel.addEventListener("message", (event) => {
    if (event.data === `hello from ${id}`) {
      peer.received = true;
      say(`${short(id)} is connected`, "dim");
    } else {
      say(`${short(id)}: ${event.data}`);
    }
  });
});
room.mesh();
showPeers(room);

$("say").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  for (const connection of room.connections.values()) {
    if (connection.channel.readyState === "open") connection.send(text);
  }
  say(`me: ${text}`);
  $("text").value = "";
});

// Which candidate types the selected pair joins ("host", "srflx", "relay"), for the tests.
// The stats may name the selected pair a moment after the channel opened: asked again, every
// 100 ms for up to 5 s, then given up (pathChecked either way).
async function recordPath(connection, peer) {
  for (let attempt = 0; attempt < 50 && peer.localType === undefined; attempt++) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 100));
    const stats = await connection.pc.getStats();
    const transport = [...stats.values()].find((report) => report.type === "transport");
    const selected = transport?.selectedCandidatePairId
      ? stats.get(transport.selectedCandidatePairId)
      : [...stats.values()].find((report) => report.type === "candidate-pair" &&
          (report.selected || report.nominated) && report.state === "succeeded");
    if (!selected) continue;
    peer.localType = stats.get(selected.localCandidateId)?.candidateType;
    peer.remoteType = stats.get(selected.remoteCandidateId)?.candidateType;
  }
  peer.pathChecked = true;
}
