// What the Chromium drivers (e2e.mjs, library.mjs) share: their command line, a static server
// for files of the repository, and a headless Chromium fit for WebRTC on loopback.

import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

/** `--name value` pairs of the command line, as an object. */
export const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith("--")) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * Serves exactly `files` (paths in the repository) on a free loopback port: WebCrypto needs
 * a secure context, which http://127.0.0.1 is and file:// is not everywhere. Resolves with
 * the server and its origin.
 */
export async function serveFiles(files) {
  const http = createServer(async (request, response) => {
    const name = new URL(request.url, "http://x").pathname.replace(/^\/+/, "");
    if (!files.includes(name)) {
      response.writeHead(name === "favicon.ico" ? 204 : 404).end();
      return;
    }
    const type = name.endsWith(".js") ? "text/javascript" : "text/html";
    response.writeHead(200, { "content-type": type }).end(await readFile(join(repo, name)));
  });
  await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
  return { http, origin: `http://127.0.0.1:${http.address().port}` };
}

/** Headless Chromium (`--chromium PATH`, default Debian's). */
export function launchChromium() {
  return chromium.launch({
    executablePath: args.chromium ?? "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-quic", "--allow-loopback-in-peer-connection",
      // Real host candidates on loopback instead of mDNS names nothing here can resolve.
      "--disable-features=WebRtcHideLocalIpsWithMdns",
    ],
  });
}

/** A new page at `url` whose console and errors go to stderr, prefixed with `label`. */
export async function openPage(browser, url, label, timeoutMs) {
  const page = await browser.newPage();
  page.on("console", (message) => process.stderr.write(`[${label}] ${message.text()}\n`));
  page.on("pageerror", (error) => process.stderr.write(`[${label}] error: ${error}\n`));
  await page.goto(url, { timeout: timeoutMs });
  return page;
}
