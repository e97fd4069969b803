// The browser client library (clients/js/rdv.js) in headless Chromium against a real
// `rdv serve` this script starts itself (so it can restart it):
//   glare    two pages call connect() at the same instant (perfect negotiation), proof required
//   reload   a page reloads and comes back with the same peer ID; the other sees it leave and
//            return, and a new data channel opens
//   restart  the server restarts under two connected pages; they reconnect on their own and
//            their data channels are re-established
//   resume   one page's signaling socket is cut (reset, through a proxy) under an open data
//            channel; it comes back within the grace (PROTOCOL §14): the channel stays open
//            and carries a message after, no new connection is made, and the other page
//            never sees it leave
//   signed   two pages that require signatures (PROTOCOL §12) connect, each verified end to
//            end; when the offers' DTLS fingerprint is changed on the way, the receiver
//            refuses them (signature-invalid) and no data channel opens
// Usage: node library.mjs --rdv BIN [--chromium PATH] [--scenario NAME] [--timeout-ms 45000]
// Prints one JSON line {ok, scenarios: {name: {ok, …}}}; exits 0 when every scenario passed.

import { spawn } from "node:child_process";
import net from "node:net";
import { createInterface } from "node:readline";
import { args, launchChromium, openPage, serveFiles } from "./driver.mjs";

const timeoutMs = Number(args["timeout-ms"] ?? 45000);
const { http, origin } = await serveFiles([
  "tests/browser/harness.html", "clients/js/rdv.js",
  "examples/browser/index.html", "examples/browser/app.js",
]);

/** `rdv serve` on `listen`; resolves with the child and its address once it listens. */
function serve(listen, extra = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(args.rdv, ["serve", "--listen", listen, ...extra], {
      stdio: ["ignore", "pipe", "ignore"],
      env: { ...process.env, RDV_LOG: "warn" },
    });
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`rdv serve exited with ${code}`)));
    createInterface({ input: child.stdout }).once("line", (line) => {
      resolve({ child, address: line.replace(/^listening /, "") });
    });
  });
}

function stop(server) {
  return new Promise((resolve) => {
    if (server.child.exitCode !== null || server.child.signalCode !== null) return resolve();
    server.child.removeAllListeners("exit");
    server.child.once("exit", resolve);
    server.child.kill("SIGTERM");
  });
}

/**
 * A TCP proxy to `target` (HOST:PORT) whose connections can all be cut at once with a reset,
 * as a lost network looks to both ends; it keeps accepting new ones.
 */
function cuttableProxy(target) {
  const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => sockets.delete(socket));
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({
    address: `127.0.0.1:${server.address().port}`,
    cut: () => { for (const socket of sockets) socket.resetAndDestroy(); },
    close: () => server.close(),
  })));
}

const browser = await launchChromium();

const page = (url, label) => openPage(browser, url, label, timeoutMs);

/** `promise`, or a rejection naming `what` once the timeout has passed. */
function within(promise, what) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** Polls `check` (a function evaluated in `p`) until it is truthy, within the timeout. */
async function until(p, what, check, arg) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await p.evaluate(check, arg);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const demoDone = () => window.demo?.done(1);

// --- glare -------------------------------------------------------------------------------
async function glare() {
  const server = await serve("127.0.0.1:0", ["--proof", "required"]);
  const url = `ws://${server.address}`;
  try {
    const pages = [await page(`${origin}/tests/browser/harness.html`, "glare a"), await page(`${origin}/tests/browser/harness.html`, "glare b")];
    const ids = [];
    for (const [i, p] of pages.entries()) {
      await until(p, "the library", () => window.harnessReady);
      ids.push(await within(p.evaluate(async ({ url, name }) => {
        window.logs = [];
        const identity = await window.rdvlib.loadIdentity(name);
        window.room = await window.rdvlib.join(url, "glare", {
          identity, log: (level, message) => window.logs.push(message),
          WebSocket: window.HoldableWebSocket,
        });
        return window.room.id;
      }, { url, name: `glare-${i}` }), "the join"));
    }
    for (const p of pages) await until(p, "the other peer", () => window.room.peers.size === 1);
    // Both connect while neither can hear the other; once both offers are out, both are
    // let through: each receives the other's offer with its own outstanding.
    for (const p of pages) await p.evaluate(() => window.hold());
    const connected = pages.map((p, i) => p.evaluate(async ({ other }) => {
      const connection = await window.room.connect(other);
      const received = new Promise((resolve) => connection.channel.addEventListener("message", (e) => resolve(e.data), { once: true }));
      connection.send(`from ${window.room.id}`);
      return { received: await received, polite: connection.polite, verified: window.room.peers.get(other).verified, connections: window.room.connections.size };
    }, { other: ids[1 - i] }));
    for (const [i, p] of pages.entries()) {
      await until(p, "its own offer", (line) => window.logs.includes(line), `offer to ${ids[1 - i].slice(0, 8)}`);
    }
    for (const p of pages) await p.evaluate(() => window.release());
    let results;
    try {
      results = await within(Promise.all(connected), "both connections to open");
    } catch (error) {
      const logs = await Promise.all(pages.map((p) => p.evaluate(() => window.logs)));
      return { ok: false, error: String(error), logs };
    }
    const logs = await Promise.all(pages.map((p) => p.evaluate(() => window.logs)));
    const offered = logs.map((lines, i) => lines.some((l) => l === `offer to ${ids[1 - i].slice(0, 8)}`));
    const collisions = logs.flat().filter((l) => l.includes("collision"));
    const ok = results.every((r, i) => r.received === `from ${ids[1 - i]}` && r.verified === true && r.connections === 1) &&
      results[0].polite !== results[1].polite && offered.every(Boolean) && collisions.length > 0;
    return { ok, results, offered, collisions };
  } finally {
    await stop(server);
  }
}

// --- reload ------------------------------------------------------------------------------
async function reload() {
  const server = await serve("127.0.0.1:0");
  const demo = (name) => `${origin}/examples/browser/index.html?server=${encodeURIComponent(`ws://${server.address}`)}&room=reload&identity=${name}`;
  try {
    const a = await page(demo("reload-a"), "reload a");
    const b = await page(demo("reload-b"), "reload b");
    await until(a, "a's channel", demoDone);
    await until(b, "b's channel", demoDone);
    const before = await a.evaluate(() => window.demo.id);
    await a.reload({ timeout: timeoutMs });
    try {
      await until(a, "a's channel after the reload", demoDone);
      await until(b, "b's new channel", demoDone);
    } catch (error) {
      const states = await Promise.all([a, b].map((p) => p.evaluate(() => ({
        events: window.demo.events, errors: window.demo.errors, peers: window.demo.peers,
      }))));
      return { ok: false, error: String(error), states };
    }
    const after = await a.evaluate(() => window.demo.id);
    const events = await b.evaluate(() => window.demo.events);
    const ok = before === after && events.includes(`left ${before}`) &&
      events.lastIndexOf(`joined ${before}`) > events.indexOf(`left ${before}`);
    return { ok, before, after, events };
  } finally {
    await stop(server);
  }
}

// --- restart -----------------------------------------------------------------------------
async function restart() {
  let server = await serve("127.0.0.1:0");
  const address = server.address;
  const demo = (name) => `${origin}/examples/browser/index.html?server=${encodeURIComponent(`ws://${address}`)}&room=restart&identity=${name}${args.debug ? "&debug=1" : ""}`;
  try {
    const pages = [await page(demo("restart-a"), "restart a"), await page(demo("restart-b"), "restart b")];
    for (const p of pages) await until(p, "a channel", demoDone);
    // Mark the channels of before the restart, so a new one can be told apart.
    for (const p of pages) await p.evaluate(() => { for (const peer of Object.values(window.demo.peers)) peer.received = false; });
    await stop(server);
    server = await serve(address);
    for (const p of pages) {
      await until(p, "a reconnect", () => window.demo.events.includes("open") || window.demo.events.some((e) => e.startsWith("joined")));
    }
    const state = () => Promise.all(pages.map((p) => p.evaluate(() => ({
      events: window.demo.events, errors: window.demo.errors, peers: window.demo.peers,
    }))));
    try {
      for (const p of pages) await until(p, "a channel after the restart", demoDone);
    } catch (error) {
      return { ok: false, error: String(error), states: await state() };
    }
    const states = await state();
    return { ok: states.every((s) => s.errors.length === 0), states };
  } finally {
    await stop(server);
  }
}

// Every wait above is bounded; this bounds the whole run as well, whatever hangs.
const watchdog = setTimeout(() => {
  process.stdout.write(`${JSON.stringify({ ok: false, error: "the run did not finish in time" })}\n`);
  process.exit(1);
}, timeoutMs * 8);
watchdog.unref();

// --- signed ------------------------------------------------------------------------------
async function signed() {
  const server = await serve("127.0.0.1:0");
  const url = `ws://${server.address}`;
  const joinAs = (p, name, room, socket) => within(p.evaluate(async ({ url, name, room, socket }) => {
    window.errors = [];
    const identity = await window.rdvlib.loadIdentity(name);
    window.room = await window.rdvlib.join(url, room, {
      identity, requireSignatures: true, WebSocket: window[socket] ?? WebSocket,
    });
    window.room.on("error", (error) => window.errors.push({ code: error.code, reason: error.reason }));
    window.room.on("connection", (connection) => {
      connection.channel.addEventListener("message", (e) => { window.received = e.data; });
    });
    return window.room.id;
  }, { url, name, room, socket }), `${name} to join`);
  try {
    // Honest: both sides verify the other's description; the channel carries a message.
    const honest = [await page(`${origin}/tests/browser/harness.html`, "signed a"), await page(`${origin}/tests/browser/harness.html`, "signed b")];
    for (const p of honest) await until(p, "the library", () => window.harnessReady);
    const ids = [await joinAs(honest[0], "signed-a", "signed"), await joinAs(honest[1], "signed-b", "signed")];
    await until(honest[0], "the other peer", () => window.room.peers.size === 1);
    const opened = await within(honest[0].evaluate(async (other) => {
      const connection = await window.room.connect(other);
      connection.send("signed hello");
      return { verified: connection.verified };
    }, ids[1]), "the signed connection");
    await until(honest[1], "the message", () => window.received === "signed hello");
    const other = await honest[1].evaluate((id) => ({ verified: window.room.connections.get(id)?.verified }), ids[0]);

    // Tampered: page c's offers reach d with another fingerprint.
    const tampered = [await page(`${origin}/tests/browser/harness.html`, "signed c"), await page(`${origin}/tests/browser/harness.html`, "signed d")];
    for (const p of tampered) await until(p, "the library", () => window.harnessReady);
    await joinAs(tampered[0], "signed-c", "tampered", "TamperingWebSocket");
    const d = await joinAs(tampered[1], "signed-d", "tampered");
    await until(tampered[0], "the other peer", () => window.room.peers.size === 1);
    await tampered[0].evaluate((other) => { window.attempt = window.room.connect(other).then(() => "opened", (e) => e.code); }, d);
    const refused = await until(tampered[1], "the refusal", () => window.errors.find((e) => e.code === "signature-invalid"));
    // Give a connection every chance to open anyway: it must not.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const after = await tampered[1].evaluate(() => ({ connections: window.room.connections.size, received: window.received ?? null }));
    const cState = await tampered[0].evaluate(() => Promise.race([window.attempt, new Promise((r) => setTimeout(() => r("pending"), 100))]));
    const ok = opened.verified === true && other.verified === true && refused.reason === "bad-signature" &&
      after.connections === 0 && after.received === null && cState !== "opened";
    return { ok, opened, other, refused, after, cState };
  } finally {
    await stop(server);
  }
}

// --- resume ------------------------------------------------------------------------------
async function resume() {
  const server = await serve("127.0.0.1:0", ["--resume-grace", "20s"]);
  const proxy = await cuttableProxy(server.address);
  const demo = (name, address) => `${origin}/examples/browser/index.html?server=${encodeURIComponent(`ws://${address}`)}&room=resume&identity=${name}`;
  try {
    const a = await page(demo("resume-a", proxy.address), "resume a");
    const b = await page(demo("resume-b", server.address), "resume b");
    await until(a, "a's channel", demoDone);
    await until(b, "b's channel", demoDone);
    const [aId, bId] = await Promise.all([a, b].map((p) => p.evaluate(() => window.demo.id)));
    const connectionsBefore = await a.evaluate(() => window.demo.connections);
    // b listens for what a sends over the channel that is open now.
    await b.evaluate((aId) => {
      window.got = [];
      window.demo.room.connections.get(aId).channel.addEventListener("message", (e) => window.got.push(e.data));
    }, aId);
    proxy.cut();
    const state = () => Promise.all([a, b].map((p) => p.evaluate(() => ({
      events: window.demo.events, errors: window.demo.errors, connections: window.demo.connections,
    }))));
    try {
      await until(a, "a's resume", () => window.demo.events.includes("resumed"));
      await a.evaluate((bId) => window.demo.room.connections.get(bId).send("after the cut"), bId);
      await until(b, "the message after the cut", () => window.got.includes("after the cut"));
    } catch (error) {
      return { ok: false, error: String(error), states: await state() };
    }
    const [stateA, stateB] = await state();
    const channelOpen = await a.evaluate((bId) => window.demo.room.connections.get(bId).channel.readyState, bId);
    const ok = channelOpen === "open" && stateA.connections === connectionsBefore &&
      !stateB.events.includes(`left ${aId}`) && !stateA.events.includes(`left ${bId}`) &&
      stateA.errors.length === 0 && stateB.errors.length === 0;
    return { ok, channelOpen, connectionsBefore, a: stateA, b: stateB };
  } finally {
    proxy.close();
    await stop(server);
  }
}

const scenarios = { glare, reload, restart, resume, signed };
const chosen = args.scenario ? [args.scenario] : Object.keys(scenarios);
const results = {};
for (const name of chosen) {
  try {
    results[name] = await scenarios[name]();
  } catch (error) {
    results[name] = { ok: false, error: String(error) };
  }
}
await browser.close();
http.close();
const ok = Object.values(results).every((r) => r.ok);
process.stdout.write(`${JSON.stringify({ ok, scenarios: results })}\n`);
process.exit(ok ? 0 : 1);
