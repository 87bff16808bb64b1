// Real browser WebRTC through whipwhep-server: the publish page (fake
// camera) goes live over WHIP and the watch page plays it over WHEP, from
// the server's own origin and from another origin (CORS), and the player
// resumes by itself when the publisher stops and comes back.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  goLive, launchBrowser, screenshot, skipReason, startOtherOrigin, startServer,
  waitFor, waitForDecoding, watchStats,
} from './harness.mjs';

describe('browser publish and watch', { skip: skipReason || false }, () => {
  let server;
  let browser;
  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    const exit = await server?.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, 'server exits 0 on SIGTERM');
  });

  it('browser publishes, another page watches, the player survives a publisher restart', async () => {
    const input = await server.api('POST', '', { meta: { name: 'browser to browser' } });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const publisher = await context.newPage();
    await publisher.goto(`${server.base}/publish.html?url=${encodeURIComponent(input.webRTC.url)}`);
    await goLive(publisher);
    await waitFor(async () => (await server.api('GET', `/${input.uid}`)).status === 'connected',
      { what: 'status "connected"' });

    const viewer = await context.newPage();
    await viewer.goto(`${server.base}/${input.uid}/watch`);
    const playing = await waitForDecoding(viewer);
    assert.ok(playing.videoWidth > 0);
    await waitFor(async () => (await server.api('GET', `/${input.uid}`)).liveViewers === 1,
      { what: 'liveViewers 1' });
    // Muted autoplay actually plays.
    assert.equal(await viewer.evaluate(() => document.getElementById('video').paused), false);
    assert.equal(await viewer.evaluate(() => document.getElementById('video').muted), true);

    // Outgoing bitrate and state shown on the publish page.
    await waitFor(async () => /bit\/s/.test(await publisher.textContent('#bitrate')) &&
      !(await publisher.textContent('#bitrate')).startsWith('0 '), { what: 'a bitrate on the publish page' });
    assert.equal(await publisher.textContent('#conn-state'), 'connected');

    // Stats panel on demand.
    await viewer.click('#stats-toggle');
    await waitFor(async () => /\d/.test(await viewer.textContent('#s-latency')), { what: 'a latency estimate' });
    assert.match(await viewer.textContent('#s-video'), /\d+×\d+/);
    for (const [name, width, height] of [['1280x800', 1280, 800], ['390x844', 390, 844]]) {
      await publisher.setViewportSize({ width, height });
      await viewer.setViewportSize({ width, height });
      await screenshot(publisher, `publish-live-${name}`);
      await screenshot(viewer, `watch-playing-${name}`);
    }

    // Unmute control.
    await viewer.click('#unmute');
    assert.equal(await viewer.evaluate(() => document.getElementById('video').muted), false);

    // The publisher stops: DELETE 200, status leaves "connected".
    await publisher.click('#stop');
    await waitFor(() => publisher.evaluate(() => window.whipwhepPublisher.lastDeleteStatus),
      { what: 'the DELETE to finish' });
    assert.equal(await publisher.evaluate(() => window.whipwhepPublisher.lastDeleteStatus), 200);
    await waitFor(async () => (await server.api('GET', `/${input.uid}`)).status !== 'connected',
      { what: 'status to leave "connected"' });
    const before = await watchStats(viewer);
    await new Promise((r) => setTimeout(r, 2000)); // let the viewer see the gap

    // ...and comes back: the watch page resumes with no help.
    await goLive(publisher);
    const resumed = await waitFor(async () => {
      const s = await watchStats(viewer);
      return s.videoWidth > 0 && (s.framesDecoded > before.framesDecoded + 10 ||
        (s.reconnects > before.reconnects && s.framesDecoded > 10)) ? s : null;
    }, { timeoutMs: 40_000, what: 'the watch page to resume after the publisher came back' });
    assert.ok(resumed.framesDecoded > 0);
    await waitForDecoding(viewer);

    await publisher.click('#stop');
    await context.close();
  });

  it('a page from another origin publishes and plays with only the two API URLs (CORS)', async () => {
    const other = await startOtherOrigin();
    try {
      const input = await server.api('POST', '', { meta: { name: 'cross origin' } });
      assert.notEqual(new URL(other.base).origin, new URL(server.base).origin);
      const context = await browser.newContext();
      const publisher = await context.newPage();
      await publisher.goto(`${other.base}/publish.html?url=${encodeURIComponent(input.webRTC.url)}`);
      await goLive(publisher);
      const viewer = await context.newPage();
      await viewer.goto(`${other.base}/watch.html?url=${encodeURIComponent(input.webRTCPlayback.url)}`);
      await waitForDecoding(viewer);
      // The session URLs were read from Location across origins.
      const sessionUrl = await viewer.evaluate(() => window.whipwhepViewer.session.url);
      assert.ok(sessionUrl.startsWith(server.base), sessionUrl);
      // Cross-origin DELETE (preflighted) ends the publisher's session.
      await publisher.click('#stop');
      await waitFor(() => publisher.evaluate(() => window.whipwhepPublisher.lastDeleteStatus),
        { what: 'the cross-origin DELETE' });
      assert.equal(await publisher.evaluate(() => window.whipwhepPublisher.lastDeleteStatus), 200);
      await context.close();
    } finally {
      await other.close();
    }
  });
});
