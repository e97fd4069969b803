// Drives N headless Chromium pages of the demo in examples/browser (built on
// clients/js/rdv.js) against a running rdv serve.
// Usage: node e2e.mjs --server ws://127.0.0.1:PORT --room ROOM --pages N
//                     [--timeout-ms 45000] [--screenshots DIR] [--chromium PATH] [--relay 1]
//                     [--capture FILE]  (a screenshot of the first page once all connected: docs/img/)
//                     [--peers N]  (the other peers each page must reach; default pages - 1,
//                                   more when peers outside the browser are in the room)
// Prints one JSON summary line on stdout; exits 0 when every pair's data channel carried a
// message both ways, 1 otherwise (with a screenshot of every page in --screenshots).

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { args, launchChromium, openPage, serveFiles } from "./driver.mjs";

const pages = Number(args.pages ?? 2);
const others = Number(args.peers ?? pages - 1);
const timeoutMs = Number(args["timeout-ms"] ?? 45000);
// The demo page, its script and the library it imports, at their paths in the repository.
const { http, origin } = await serveFiles([
  "examples/browser/index.html", "examples/browser/app.js", "clients/js/rdv.js",
]);
const relay = args.relay === "1" ? "&relay=1" : "";
// Pages of one browser share IndexedDB, so each gets an identity of its own.
const pageUrl = (i) => `${origin}/examples/browser/index.html?server=${encodeURIComponent(args.server)}&room=${encodeURIComponent(args.room)}&identity=page${i}${relay}${args.debug ? "&debug=1" : ""}`;

const browser = await launchChromium();

let summary;
let code = 1;
const opened = [];
try {
  for (let i = 0; i < pages; i++) {
    opened.push(await openPage(browser, pageUrl(i), `page ${i}`, timeoutMs));
  }
  const deadline = Date.now() + timeoutMs;
  const states = async () => Promise.all(opened.map((page) => page.evaluate((n) => ({
    id: window.demo?.id, joined: window.demo?.joined, peers: window.demo?.peers,
    errors: window.demo?.errors, done: window.demo?.done(n) ?? false,
  }), others)));
  let current = await states();
  while (!current.every((s) => s.done) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    current = await states();
  }
  summary = { ok: current.every((s) => s.done), pages: current };
  code = summary.ok ? 0 : 1;
  if (summary.ok && args.capture) {
    await opened[0].setViewportSize({ width: 900, height: 560 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await opened[0].screenshot({ path: args.capture });
  }
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
