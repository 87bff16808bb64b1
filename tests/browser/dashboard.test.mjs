// The dashboard in headless Chromium against the real server: token entry,
// create/list/delete live inputs, URLs shown match the API. Screenshots of
// the three pages at desktop and phone sizes are saved as artifacts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { launchBrowser, screenshot, skipReason, startServer, waitFor } from './harness.mjs';

const sizes = [['1280x800', 1280, 800], ['390x844', 390, 844]];

describe('dashboard', { skip: skipReason || false }, () => {
  let server;
  let browser;
  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('connects with the token, creates, lists and deletes live inputs', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`${server.base}/`);
    // Account id pre-filled from /config.json.
    await waitFor(async () => (await page.inputValue('#account')) === server.account,
      { what: 'the account id from /config.json' });

    // A wrong token is refused with the server's message; nothing is stored.
    await page.fill('#token', 'wrong');
    await page.click('#login button[type=submit]');
    await waitFor(async () => /not authorised/i.test(await page.textContent('#login-status')),
      { what: 'the 401 message' });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('whipwhep.token')), null);

    await page.fill('#token', server.token);
    await page.click('#login button[type=submit]');
    await page.waitForSelector('#create-card:not([hidden])', { timeout: 10_000 });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('whipwhep.token')), server.token);
    assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in localStorage');

    await page.fill('#name', 'Browser test stream');
    await page.click('#create button[type=submit]');
    const item = page.locator('ul.inputs > li[data-uid]', { hasText: 'Browser test stream' });
    await item.waitFor({ timeout: 10_000 });
    const uid = await item.getAttribute('data-uid');
    const fromApi = await server.api('GET', `/${uid}`);
    assert.equal(fromApi.meta.name, 'Browser test stream');
    // URLs come from the full record (the list holds no URLs): wait a poll.
    await waitFor(async () => (await item.locator('[data-role=publish-url]').inputValue()) === fromApi.webRTC.url,
      { what: 'the publish URL in the list' });
    assert.equal(await item.locator('[data-role=playback-url]').inputValue(), fromApi.webRTCPlayback.url);
    assert.equal(await item.locator('[data-role=watch]').getAttribute('href'), `/${uid}/watch`);
    assert.equal(await item.locator('[data-role=status]').textContent(), 'idle');
    assert.match(await item.locator('[data-role=viewers]').textContent(), /^0 viewers$/);

    // An input created elsewhere shows up by polling.
    const other = await server.api('POST', '', { meta: { name: 'Created by curl' } });
    await page.locator(`li[data-uid="${other.uid}"]`).waitFor({ timeout: 10_000 });

    // Copy button: clipboard in a secure context (127.0.0.1 is one).
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.base });
    await item.getByRole('button', { name: 'Copy playback URL' }).click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), fromApi.webRTCPlayback.url);

    for (const [name, width, height] of sizes) {
      await page.setViewportSize({ width, height });
      await screenshot(page, `dashboard-${name}`);
      await screenshot(page, `dashboard-${name}-full`, { fullPage: true });
    }
    await page.setViewportSize({ width: 1280, height: 800 });

    page.once('dialog', (dialog) => dialog.accept());
    await page.locator(`li[data-uid="${other.uid}"] [data-role=delete]`).click();
    await page.locator(`li[data-uid="${other.uid}"]`).waitFor({ state: 'detached', timeout: 10_000 });
    const left = await server.api('GET');
    assert.deepEqual(left.liveInputs.map((i) => i.uid), [uid]);

    // Reload: the token survives in this tab's session.
    await page.reload();
    await item.waitFor({ timeout: 10_000 });
    await page.close();
  });

  it('renders the publish and watch pages (screenshots)', async () => {
    const input = await server.api('POST', '', { meta: { name: 'Screens' } });
    for (const [name, width, height] of sizes) {
      const page = await browser.newPage({ viewport: { width, height } });
      await page.goto(`${server.base}/publish.html?url=${encodeURIComponent(input.webRTC.url)}`);
      assert.equal(await page.inputValue('#url'), input.webRTC.url);
      await waitFor(() => page.evaluate(() => document.getElementById('preview').videoWidth > 0),
        { what: 'the fake camera preview' });
      assert.ok(await page.locator('#camera option').count() >= 2, 'cameras listed');
      await screenshot(page, `publish-idle-${name}`);
      await page.goto(`${server.base}/${input.uid}/watch`);
      await page.click('#stats-toggle');
      await screenshot(page, `watch-idle-${name}`);
      await page.close();
    }
  });
});
