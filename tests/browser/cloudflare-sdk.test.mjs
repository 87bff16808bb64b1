// Cloudflare's own API SDK (the `cloudflare` npm package) against
// whipwhep-server, changing only its base URL and token: create, list, get,
// update and delete live inputs, and the SDK's view of errors.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { loadModule, startServer } from './harness.mjs';

describe('Cloudflare API SDK', () => {
  let server;
  let Cloudflare;
  let client;
  before(async () => {
    server = await startServer();
    const mod = loadModule('cloudflare');
    Cloudflare = mod.default ?? mod.Cloudflare ?? mod;
    client = new Cloudflare({ apiToken: server.token, baseURL: `${server.base}/client/v4`, maxRetries: 0 });
  });
  after(async () => { await server?.stop(); });

  it('creates, lists, gets, updates and deletes live inputs', async () => {
    const account_id = server.account;
    const created = await client.stream.liveInputs.create({
      account_id, meta: { name: 'from the SDK' }, recording: { mode: 'off' },
    });
    assert.match(created.uid, /^[0-9a-f]{32}$/);
    assert.equal(created.meta.name, 'from the SDK');
    assert.ok(created.webRTC.url.startsWith(`${server.base}/`), created.webRTC.url);
    assert.ok(!created.webRTC.url.includes(created.uid), 'the publish URL holds a secret, not the uid');
    assert.equal(created.webRTCPlayback.url, `${server.base}/${created.uid}/webRTC/play`);
    assert.equal(created.status, null);

    const list = await client.stream.liveInputs.list({ account_id });
    assert.ok(Array.isArray(list.liveInputs));
    assert.ok(list.liveInputs.some((i) => i.uid === created.uid));
    assert.equal(list.total, list.liveInputs.length);

    const got = await client.stream.liveInputs.get(created.uid, { account_id });
    assert.equal(got.uid, created.uid);
    assert.equal(got.webRTC.url, created.webRTC.url);

    const updated = await client.stream.liveInputs.update(created.uid, {
      account_id, meta: { name: 'renamed' },
    });
    assert.equal(updated.meta.name, 'renamed');
    assert.equal((await client.stream.liveInputs.get(created.uid, { account_id })).meta.name, 'renamed');

    await client.stream.liveInputs.delete(created.uid, { account_id });
    await assert.rejects(client.stream.liveInputs.get(created.uid, { account_id }),
      (err) => err.status === 404);
    assert.ok(!(await client.stream.liveInputs.list({ account_id })).liveInputs
      .some((i) => i.uid === created.uid));
  });

  it('reports a wrong token as the SDK\'s 401 error', async () => {
    const wrong = new Cloudflare({ apiToken: 'not-the-token', baseURL: `${server.base}/client/v4`, maxRetries: 0 });
    await assert.rejects(wrong.stream.liveInputs.list({ account_id: server.account }),
      (err) => err.status === 401);
  });
});
