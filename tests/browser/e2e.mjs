// Drives N headless Chromium pages of the demo in examples/browser (built on
// clients/js/rdv.js) against a running rdv serve.
// Usage: node e2e.mjs --server ws://127.0.0.1:PORT --room ROOM --pages N
//                     [--timeout-ms 45000] [--screenshots DIR] [--chromium PATH] [--relay 1]
// Prints one JSON summary line on stdout; exits 0 when every pair's data channel carried a
// message both ways, 1 otherwise (with a screenshot of every page in --screenshots).

import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith("--")) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const pages = Number(args.pages ?? 2);
const timeoutMs = Number(args["timeout-ms"] ?? 45000);
const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
// The demo page, its script and the library it imports, at their paths in the repository.
const served = ["examples/browser/index.html", "examples/browser/app.js", "clients/js/rdv.js"];

// WebCrypto needs a secure context: http://127.0.0.1 is one, file:// is not everywhere.
const http = createServer(async (request, response) => {
  const name = new URL(request.url, "http://x").pathname.replace(/^\/+/, "");
  if (!served.includes(name)) {
    response.writeHead(name === "favicon.ico" ? 204 : 404).end();
    return;
  }
  const type = name.endsWith(".js") ? "text/javascript" : "text/html";
  response.writeHead(200, { "content-type": type }).end(await readFile(join(repo, name)));
});
await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
const relay = args.relay === "1" ? "&relay=1" : "";
// Pages of one browser share IndexedDB, so each gets an identity of its own.
const pageUrl = (i) => `http://127.0.0.1:${http.address().port}/examples/browser/index.html?server=${encodeURIComponent(args.server)}&room=${encodeURIComponent(args.room)}&identity=page${i}${relay}${args.debug ? "&debug=1" : ""}`;

const browser = await chromium.launch({
  executablePath: args.chromium ?? "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--allow-loopback-in-peer-connection",
    // Real host candidates on loopback instead of mDNS names nothing here can resolve.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
  ],
});

let summary;
let code = 1;
const opened = [];
try {
  for (let i = 0; i < pages; i++) {
    const page = await browser.newPage();
    page.on("console", (message) => process.stderr.write(`[page ${i}] ${message.text()}\n`));
    page.on("pageerror", (error) => process.stderr.write(`[page ${i}] error: ${error}\n`));
    await page.goto(pageUrl(i), { timeout: timeoutMs });
    opened.push(page);
  }
  const deadline = Date.now() + timeoutMs;
  const states = async () => Promise.all(opened.map((page) => page.evaluate((n) => ({
    id: window.demo?.id, joined: window.demo?.joined, peers: window.demo?.peers,
    errors: window.demo?.errors, done: window.demo?.done(n) ?? false,
  }), pages - 1)));
  let current = await states();
  while (!current.every((s) => s.done) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    current = await states();
  }
  summary = { ok: current.every((s) => s.done), pages: current };
  code = summary.ok ? 0 : 1;
} catch (error) {
  summary = { ok: false, error: String(error) };
} finally {
  if (code !== 0 && args.screenshots) {
    mkdirSync(args.screenshots, { recursive: true });
    for (const [i, page] of opened.entries()) {
      await page.screenshot({ path: join(args.screenshots, `page-${i}.png`), fullPage: true }).catch(() => {});
    }
  }
  await browser.close();
  http.close();
}
process.stdout.write(`${JSON.stringify(summary)}\n`);
process.exit(code);
