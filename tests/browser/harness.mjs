// Shared helpers for the browser tests: the real whipwhep-server on
// 127.0.0.1, the system Chromium driven by playwright-core (never a
// downloaded browser), a second-origin static server, bounded waits.
//
// Paths come from meson (tests/browser/meson.build) through the environment;
// the defaults let `node --test tests/browser/` run by hand after a build
// into ./build.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const build = process.env.WHIPWHEP_BUILD_DIR || join(repo, 'build');

export const paths = {
  server: process.env.WHIPWHEP_SERVER_BIN || join(build, 'server', 'whipwhep-server'),
  webRoot: process.env.WHIPWHEP_WEB_ROOT || join(repo, 'server', 'web'),
  pluginDir: process.env.WHIPWHEP_PLUGIN_DIR || join(build, 'gst'),
  // node_modules (installed by `npm ci` at build time) and artifacts.
  outDir: process.env.WHIPWHEP_BROWSER_OUT || here,
  chromium: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
};
export const artifactsDir = join(paths.outDir, 'artifacts');

/** Why the whole suite must be skipped, or '' (only when Chromium is truly absent). */
export const skipReason = existsSync(paths.chromium)
  ? '' : `no Chromium at ${paths.chromium} (apt-get install chromium; scripts/packages.txt has it)`;

/**
 * playwright-core from the build dir's node_modules. `npm ci` runs at build
 * time (the tests may run in a network namespace with loopback only); if it
 * did not, try once here, offline first.
 */
export function loadPlaywright() {
  return loadModule('playwright-core');
}

/** An npm package from the build dir's node_modules (see loadPlaywright). */
export function loadModule(name) {
  const modules = join(paths.outDir, 'node_modules');
  if (!existsSync(join(modules, name))) {
    mkdirSync(paths.outDir, { recursive: true });
    for (const args of [['ci', '--offline'], ['ci']]) {
      const r = spawnSync('npm', [...args, '--no-audit', '--no-fund', '--prefix', paths.outDir],
        { cwd: paths.outDir, stdio: 'inherit', timeout: 120_000 });
      if (r.status === 0) break;
    }
  }
  const require = createRequire(join(paths.outDir, 'package.json'));
  return require(name);
}

/** Polls `fn` until it returns a truthy value; throws with `what` after `timeoutMs`. */
export async function waitFor(fn, { timeoutMs = 15_000, intervalMs = 200, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last})`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The real server on 127.0.0.1, a port the system picks, a temp data dir. */
export async function startServer({ token = 'browser-test-token', account = 'acct0123456789', extraArgs = [] } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'whipwhep-browser-'));
  const env = {
    ...process.env,
    WHIPWHEP_WEB_ROOT: paths.webRoot,
    GST_PLUGIN_PATH_1_0: paths.pluginDir,
    GST_REGISTRY_1_0: join(dataDir, 'registry.bin'),
    GST_DEBUG: process.env.GST_DEBUG || '*:1,whipwhep*:3',
  };
  const child = spawn(paths.server, [
    '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--api-token', token,
    '--account-id', account, '--ice-addresses', '127.0.0.1', ...extraArgs,
  ], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const onData = (d) => { output += d.toString(); };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  let ready;
  try {
    ready = await Promise.race([
      waitFor(() => output.match(/ready: API (\S+) \(WHIP\/WHEP on ([^\s,)]+)/),
        { timeoutMs: 20_000, what: 'the server ready line' }),
      exited.then(({ code, signal }) => {
        throw new Error(`the server exited (code ${code}, signal ${signal}) before its ready line`);
      }),
    ]);
  } catch (err) {
    child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    throw new Error(`${err.message}\n--- server output ---\n${output}`);
  }
  const base = ready[2].replace(/\/$/, '');
  const server = {
    base,
    account,
    token,
    apiBase: `${base}/client/v4/accounts/${account}/stream/live_inputs`,
    output: () => output,
    async api(method, path = '', body) {
      const res = await fetch(server.apiBase + path, {
        method,
        headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const json = await res.json();
      if (!json.success) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json.errors)}`);
      return json.result;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        const result = await exited;
        clearTimeout(timer);
        server.exit = result;
      }
      rmSync(dataDir, { recursive: true, force: true });
      return server.exit;
    },
  };
  return server;
}

const mimeTypes = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };

/** A static server for server/web on another port: a different origin. */
export async function startOtherOrigin() {
  const http = createServer((req, res) => {
    const name = new URL(req.url, 'http://x').pathname.replace(/^\//, '') || 'index.html';
    if (!/^[a-z-]+\.(html|js|css)$/.test(name)) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = readFileSync(join(paths.webRoot, name));
      res.writeHead(200, { 'Content-Type': mimeTypes[extname(name)] }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${http.address().port}`,
    close: () => new Promise((r) => { http.closeAllConnections(); http.close(r); }),
  };
}

export const chromiumFlags = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run',
  '--autoplay-policy=no-user-gesture-required',
  // Timers of background tabs are throttled otherwise: the publisher tab
  // keeps its stats and the watch tab its supervision running.
  '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

/** System Chromium with a fresh profile (playwright makes a temp user-data-dir). */
export async function launchBrowser() {
  const { chromium } = loadPlaywright();
  return chromium.launch({ executablePath: paths.chromium, headless: true, args: chromiumFlags });
}

export async function screenshot(page, name, { fullPage = false } = {}) {
  mkdirSync(artifactsDir, { recursive: true });
  const file = join(artifactsDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage });
  return file;
}

/** Inbound video counters of the watch page's current peer connection. */
export async function watchStats(page) {
  return page.evaluate(async () => {
    const v = document.getElementById('video');
    const pc = window.whipwhepViewer?.pc;
    const out = { videoWidth: v.videoWidth, framesDecoded: 0, audioPackets: 0,
      reconnects: window.whipwhepViewer?.reconnects ?? 0 };
    if (!pc) return out;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') out.framesDecoded = s.framesDecoded || 0;
      if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audioPackets = s.packetsReceived || 0;
    });
    return out;
  });
}

/** Waits until the watch page decodes: framesDecoded rising and a picture size. */
export async function waitForDecoding(page, { timeoutMs = 30_000, minFrames = 10 } = {}) {
  const first = await waitFor(async () => {
    const s = await watchStats(page);
    return s.framesDecoded >= minFrames && s.videoWidth > 0 ? s : null;
  }, { timeoutMs, what: `the watch page decoding ${minFrames} frames` });
  const later = await waitFor(async () => {
    const s = await watchStats(page);
    return s.framesDecoded > first.framesDecoded ? s : null;
  }, { timeoutMs: 10_000, what: 'framesDecoded to keep rising' });
  return later;
}

/** Opens the publish page (already pointed at a WHIP URL) and goes live. */
export async function goLive(page) {
  await waitFor(() => page.evaluate(() => document.getElementById('preview').videoWidth > 0),
    { what: 'the camera preview' });
  await page.click('#go');
  await waitFor(() => page.evaluate(() => window.whipwhepPublisher.pc?.connectionState === 'connected'),
    { timeoutMs: 20_000, what: 'the publisher connection' }).catch(async (err) => {
    const status = await page.textContent('#status');
    throw new Error(`${err.message}; page says: ${status}`);
  });
}
