// Dashboard: API token + account id, list/create/delete live inputs, live
// status and viewer counts (polled), copyable URLs.

const POLL_MS = 3000;
const TOKEN_KEY = 'whipwhep.token';
const ACCOUNT_KEY = 'whipwhep.account';

const $ = (id) => document.getElementById(id);
const state = { account: '', token: '', timer: 0, items: new Map() };

function apiBase() {
  return `/client/v4/accounts/${encodeURIComponent(state.account)}/stream/live_inputs`;
}

/** Calls the API; returns `result` or throws an Error with the server's message. */
async function api(method, path = '', body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(apiBase() + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let envelope = null;
  if ((response.headers.get('Content-Type') || '').includes('json')) {
    envelope = await response.json().catch(() => null);
  }
  if (!response.ok || !envelope || envelope.success === false) {
    const message = envelope?.errors?.map((e) => e.message).join('; ') ||
      `${response.status} ${response.statusText}`;
    const err = new Error(response.status === 401 ? `Not authorised: ${message}` : message);
    err.status = response.status;
    throw err;
  }
  return envelope.result;
}

async function loadConfig() {
  const fromUrl = new URLSearchParams(location.search).get('account');
  let account = fromUrl || sessionStorage.getItem(ACCOUNT_KEY) || '';
  if (!account) {
    try {
      const response = await fetch('/config.json');
      if (response.ok) account = (await response.json()).accountId || '';
    } catch {
      // No config endpoint: the user types the account id.
    }
  }
  $('account').value = account;
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    $('token').value = token;
    if (account) connect();
  }
}

async function connect() {
  state.account = $('account').value.trim();
  state.token = $('token').value.trim();
  $('login-status').textContent = 'Connecting…';
  $('login-status').className = 'small';
  try {
    await refresh();
  } catch (err) {
    $('login-status').textContent = err.message;
    $('login-status').className = 'small error';
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, state.token);
  sessionStorage.setItem(ACCOUNT_KEY, state.account);
  $('login-status').textContent = 'Connected.';
  $('create-card').hidden = false;
  $('list-card').hidden = false;
  clearInterval(state.timer);
  state.timer = setInterval(() => {
    refresh().then(
      () => { $('list-status').textContent = ''; },
      (err) => {
        $('list-status').textContent = `Refresh failed: ${err.message}`;
        $('list-status').className = 'small error';
      });
  }, POLL_MS);
}

function forget() {
  clearInterval(state.timer);
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = '';
  $('token').value = '';
  $('create-card').hidden = true;
  $('list-card').hidden = true;
  $('inputs').replaceChildren();
  state.items.clear();
  $('login-status').textContent = 'Token forgotten.';
}

let refreshing = null;
/** Lists the inputs, then fetches each one for status, viewers and URLs. */
function refresh() {
  // Never overlap polls: a slow server would otherwise pile requests up.
  if (!refreshing) {
    refreshing = (async () => {
      const list = await api('GET');
      const summaries = list?.liveInputs ?? [];
      const details = await Promise.all(summaries.map((s) =>
        api('GET', `/${s.uid}`).catch(() => s)));
      render(details);
    })().finally(() => { refreshing = null; });
  }
  return refreshing;
}

async function copy(text, button) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch {
    // Plain http on a LAN address is not a secure context: fall back.
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.style.position = 'fixed';
    area.style.opacity = '0';
    document.body.append(area);
    area.select();
    ok = document.execCommand('copy');
    area.remove();
  }
  const label = button.textContent;
  button.textContent = ok ? 'Copied' : 'Copy failed';
  setTimeout(() => { button.textContent = label; }, 1500);
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function urlRow(uid, label, kind) {
  const id = `${kind}-${uid}`;
  const input = el('input', { id, readOnly: true, 'data-role': kind });
  const button = el('button', {
    type: 'button',
    'aria-label': `Copy ${label.toLowerCase()}`,
    onclick: (event) => copy(input.value, event.currentTarget),
  }, 'Copy');
  return el('div', { class: 'url-row' }, el('label', { htmlFor: id }, label), input, button);
}

function createItem(uid) {
  const name = el('strong', { 'data-role': 'name' });
  const status = el('span', { class: 'badge', 'data-role': 'status' });
  const viewers = el('span', { class: 'small muted', 'data-role': 'viewers' });
  const publish = el('a', { 'data-role': 'publish', target: '_blank', rel: 'noopener' }, 'Publish');
  const watch = el('a', { 'data-role': 'watch', target: '_blank', rel: 'noopener' }, 'Watch');
  const del = el('button', { type: 'button', class: 'danger', 'data-role': 'delete' }, 'Delete');
  const li = el('li', { 'data-uid': uid },
    el('div', {},
      el('div', { class: 'input-head' }, name, status, viewers),
      el('div', { class: 'small muted' }, `uid ${uid}`)),
    el('div', { class: 'input-actions' }, publish, watch, del),
    urlRow(uid, 'Publish URL', 'publish-url'),
    urlRow(uid, 'Playback URL', 'playback-url'));
  del.addEventListener('click', async () => {
    const label = li.querySelector('[data-role=name]').textContent;
    if (!confirm(`Delete live input "${label}"? Its publisher and viewers are disconnected.`)) return;
    del.disabled = true;
    try {
      await api('DELETE', `/${uid}`);
      await refresh();
    } catch (err) {
      del.disabled = false;
      $('list-status').textContent = `Delete failed: ${err.message}`;
      $('list-status').className = 'small error';
    }
  });
  return li;
}

/** Keyed update, so focus, selections and "Copied" labels survive polling. */
function render(inputs) {
  const list = $('inputs');
  const seen = new Set();
  for (const input of inputs) {
    seen.add(input.uid);
    let li = state.items.get(input.uid);
    if (!li) {
      li = createItem(input.uid);
      state.items.set(input.uid, li);
    }
    list.append(li); // keeps server order
    const q = (role) => li.querySelector(`[data-role="${role}"]`);
    q('name').textContent = input.meta?.name || 'Untitled';
    const status = input.status ?? 'idle';
    q('status').textContent = status === 'connected' ? 'live' : status.replace('_', ' ');
    q('status').className = `badge ${status}`;
    q('viewers').textContent = typeof input.liveViewers === 'number'
      ? `${input.liveViewers} viewer${input.liveViewers === 1 ? '' : 's'}` : '';
    const publishUrl = input.webRTC?.url || '';
    const playUrl = input.webRTCPlayback?.url || '';
    if (q('publish-url').value !== publishUrl) q('publish-url').value = publishUrl;
    if (q('playback-url').value !== playUrl) q('playback-url').value = playUrl;
    q('publish').href = `/publish.html?url=${encodeURIComponent(publishUrl)}`;
    q('watch').href = `/${input.uid}/watch`;
  }
  for (const [uid, li] of state.items) {
    if (!seen.has(uid)) {
      li.remove();
      state.items.delete(uid);
    }
  }
  $('count').textContent = `(${inputs.length})`;
  if (!inputs.length) {
    list.replaceChildren(el('li', { class: 'empty' }, 'No live inputs yet: create one above.'));
  } else {
    list.querySelector('li.empty')?.remove();
  }
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  connect();
});
$('forget').addEventListener('click', forget);
$('create').addEventListener('submit', async (event) => {
  event.preventDefault();
  const name = $('name').value.trim();
  const statusLine = $('create-status');
  statusLine.className = 'small';
  statusLine.textContent = 'Creating…';
  try {
    const created = await api('POST', '', { meta: { name: name || 'Untitled' } });
    statusLine.textContent = `Created "${created.meta?.name ?? name}".`;
    $('name').value = '';
    await refresh();
  } catch (err) {
    statusLine.className = 'small error';
    statusLine.textContent = `Create failed: ${err.message}`;
  }
});

loadConfig();
