// Browser <-> GStreamer through whipwhep-server: whipsink (gst-launch)
// publishes and the watch page in Chromium decodes video and receives
// audio; the publish page goes live and whepsrc decodes frames.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  goLive, launchBrowser, paths, skipReason, startServer, waitFor, waitForDecoding, watchStats,
} from './harness.mjs';

const registryDir = mkdtempSync(join(tmpdir(), 'whipwhep-gst-registry-'));
const gstEnv = {
  ...process.env,
  GST_PLUGIN_PATH_1_0: paths.pluginDir,
  GST_REGISTRY_1_0: join(registryDir, 'registry.bin'),
  GST_DEBUG: process.env.GST_DEBUG || '*:1,whipwhep*:3',
};


/** gst-launch-1.0 with our plugin; output kept for failure messages. */
function launch(args) {
  const child = spawn('gst-launch-1.0', args, { env: gstEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = { child, output: '' };
  child.stdout.on('data', (d) => { proc.output += d.toString(); });
  child.stderr.on('data', (d) => { proc.output += d.toString(); });
  proc.exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  proc.stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return proc.exited;
    child.kill('SIGINT'); // gst-launch: PLAYING -> NULL, the elements end their sessions
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const result = await proc.exited;
    clearTimeout(timer);
    return result;
  };
  return proc;
}

describe('GStreamer elements and the browser', { skip: skipReason || false }, () => {
  let server;
  let browser;
  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    rmSync(registryDir, { recursive: true, force: true });
  });

  it('whipsink publishes, the watch page decodes video and receives audio',
    async () => {
      const input = await server.api('POST', '', { meta: { name: 'from whipsink' } });
      // -e, as examples/launch/publish.sh: on SIGINT the sources send EOS,
      // whipsink DELETEs its session and posts EOS, then gst-launch exits.
      // (Without it gst-launch goes straight to NULL with buffers in flight;
      // once in CI that made videotestsrc post "streaming stopped, reason
      // error (-5)" and gst-launch exit 1. Open: which element returned the
      // error.)
      const gst = launch([
        '-e',
        'whipsink', 'name=s', `whip-endpoint=${input.webRTC.url}`, 'ice-addresses=127.0.0.1',
        'videotestsrc', 'is-live=true', 'pattern=ball', '!',
        'video/x-raw,width=320,height=240,framerate=15/1', '!',
        'vp8enc', 'deadline=1', 'cpu-used=8', 'keyframe-max-dist=30', '!', 's.video_0',
        'audiotestsrc', 'is-live=true', 'wave=ticks', '!', 'audio/x-raw,rate=48000,channels=2', '!',
        'opusenc', '!', 's.audio_0']);
      try {
        await waitFor(async () => (await server.api('GET', `/${input.uid}`)).status === 'connected',
          { timeoutMs: 20_000, what: 'whipsink to connect' }).catch((err) => {
          throw new Error(`${err.message}\n--- gst-launch ---\n${gst.output}`);
        });
        const page = await browser.newPage();
        await page.goto(`${server.base}/${input.uid}/watch`);
        const s = await waitForDecoding(page);
        assert.equal(s.videoWidth, 320);
        const first = await watchStats(page);
        await waitFor(async () => (await watchStats(page)).audioPackets > first.audioPackets + 10,
          { what: 'audio packets to arrive' });
        await page.close();
      } finally {
        const exit = await gst.stop();
        assert.equal(exit.code, 0, `gst-launch exit ${JSON.stringify(exit)}:\n${gst.output}`);
      }
      // Stopping whipsink ended its session on the server (DELETE).
      await waitFor(async () => (await server.api('GET', `/${input.uid}`)).status !== 'connected',
        { what: 'the input to leave "connected" after whipsink stopped' });
    });

  it('the publish page goes live, whepsrc decodes frames',
    async () => {
      const input = await server.api('POST', '', { meta: { name: 'to whepsrc' } });
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(`${server.base}/publish.html?url=${encodeURIComponent(input.webRTC.url)}`);
      await goLive(page);
      // whepsrc decodes when downstream asks for raw video; fpsdisplaysink
      // -v prints "rendered: N" twice a second.
      const gst = launch(['-v',
        'whepsrc', 'name=w', `whep-endpoint=${input.webRTCPlayback.url}`, 'ice-addresses=127.0.0.1',
        'w.video_0', '!', 'queue', '!', 'video/x-raw', '!',
        'fpsdisplaysink', 'name=fps', 'video-sink=fakesink', 'text-overlay=false', 'sync=false',
        // Every pad whepsrc exposes must be linked (not-linked is an error).
        'w.audio_0', '!', 'queue', '!', 'fakesink', 'sync=false']);
      try {
        const frames = () => Math.max(0, ...[...gst.output.matchAll(/fps: last-message = rendered: (\d+)/g)]
          .map((m) => Number(m[1])));
        await waitFor(() => frames() >= 30, { timeoutMs: 30_000, what: 'whepsrc to decode 30 frames' })
          .catch((err) => { throw new Error(`${err.message}\n--- gst-launch ---\n${gst.output.slice(-4000)}`); });
      } finally {
        const exit = await gst.stop();
        await context.close();
        assert.equal(exit.code, 0, `gst-launch exit ${JSON.stringify(exit)}:\n${gst.output.slice(-4000)}`);
      }
    });
});
