// The static-file route of whipwhep-server (server/static-files.cpp): right
// pages and MIME types, nothing outside the web directory, GET/HEAD only.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { startServer } from './harness.mjs';

describe('static pages', () => {
  let server;
  before(async () => { server = await startServer(); });
  after(async () => { await server?.stop(); });

  const get = (path, init) => fetch(server.base + path, init);

  it('serves the pages with their MIME types and security headers', async () => {
    for (const [path, type, marker] of [
      ['/', 'text/html', 'Live inputs'],
      ['/index.html', 'text/html', 'Live inputs'],
      ['/publish.html', 'text/html', 'Go live'],
      ['/watch.html', 'text/html', 'id="video"'],
      ['/whip-whep.js', 'text/javascript', 'export async function negotiate'],
      ['/style.css', 'text/css', ':root'],
    ]) {
      const res = await get(path);
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get('content-type'), new RegExp(`^${type}`), path);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', path);
      assert.equal(res.headers.get('referrer-policy'), 'no-referrer', path);
      assert.ok((await res.text()).includes(marker), `${path} holds ${marker}`);
    }
  });

  it('maps /{uid}/watch and /{uid}/publish to the pages; only the player is embeddable', async () => {
    const uid = '0123456789abcdef0123456789abcdef';
    const watch = await get(`/${uid}/watch`);
    assert.equal(watch.status, 200);
    assert.ok((await watch.text()).includes('id="video"'));
    assert.match(watch.headers.get('content-security-policy'), /frame-ancestors \*/);
    const publish = await get(`/${uid}/publish/`);
    assert.equal(publish.status, 200);
    assert.ok((await publish.text()).includes('Go live'));
    assert.match(publish.headers.get('content-security-policy'), /frame-ancestors 'self'/);
    assert.equal((await get(`/${uid}/other`)).status, 404);
  });

  it('answers a matching If-None-Match with 304', async () => {
    const first = await get('/whip-whep.js');
    const etag = first.headers.get('etag');
    assert.ok(etag);
    assert.equal(first.headers.get('cache-control'), 'no-cache');
    const again = await get('/whip-whep.js', { headers: { 'If-None-Match': etag } });
    assert.equal(again.status, 304);
  });

  it('never leaves the web directory', async () => {
    for (const path of ['/..%2Fmeson.build', '/%2e%2e/%2e%2e/etc/passwd', '/.hidden.js',
      '/sub/dir.js', '/static-files.cpp', '/whip-whep.js%00.css', '/index.html/']) {
      const res = await get(path);
      assert.equal(res.status, 404, path);
      assert.ok(!(await res.text()).includes('#include'), path);
    }
  });

  it('takes GET and HEAD only', async () => {
    const head = await get('/watch.html', { method: 'HEAD' });
    assert.equal(head.status, 200);
    const post = await get('/index.html', { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
  });

  it('serves non-secret config for the dashboard', async () => {
    const res = await get('/config.json');
    assert.equal(res.status, 200);
    const config = await res.json();
    assert.equal(config.accountId, server.account);
    assert.equal(config.apiBase, `/client/v4/accounts/${server.account}/stream/live_inputs`);
    assert.ok(!JSON.stringify(config).includes(server.token), 'no token in config.json');
  });
});
