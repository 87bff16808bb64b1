// Publish page: camera/microphone choice, preview, WHIP "Go live" / "Stop",
// connection state and outgoing bitrate.
import { publish, StatsSampler, formatBitrate } from '/whip-whep.js';

const $ = (id) => document.getElementById(id);
const live = { pc: null, session: null, stats: null, timer: 0 };
let stream = null;
// For tests and debugging in the console: the current peer connection.
window.whipwhepPublisher = live;

function setStatus(text, isError = false) {
  $('status').textContent = text;
  $('status').className = isError ? 'small error' : 'small';
}

function setBadge(text, cls) {
  $('state-badge').textContent = text;
  $('state-badge').className = `state-line badge ${cls}`;
}

/** The WHIP URL: ?url=…, else /{uid}/publish looked up with the dashboard's token. */
async function resolveUrl() {
  const fromQuery = new URLSearchParams(location.search).get('url');
  if (fromQuery) return fromQuery;
  const match = location.pathname.match(/^\/([0-9a-f]{32})\/publish\/?$/);
  const token = sessionStorage.getItem('whipwhep.token');
  const account = sessionStorage.getItem('whipwhep.account');
  if (!match || !token || !account) return '';
  try {
    const response = await fetch(
      `/client/v4/accounts/${encodeURIComponent(account)}/stream/live_inputs/${match[1]}`,
      { headers: { Authorization: `Bearer ${token}` } });
    const body = await response.json();
    return body?.result?.webRTC?.url || '';
  } catch {
    return '';
  }
}

function fillSelect(select, devices, kind, current) {
  const options = devices.filter((d) => d.kind === kind).map((d, i) => {
    const option = document.createElement('option');
    option.value = d.deviceId;
    option.textContent = d.label || `${kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`;
    return option;
  });
  const none = document.createElement('option');
  none.value = 'none';
  none.textContent = kind === 'videoinput' ? 'No video' : 'No audio';
  select.replaceChildren(...options, none);
  if (current && [...select.options].some((o) => o.value === current)) select.value = current;
}

async function startMedia() {
  const camera = $('camera').value;
  const microphone = $('microphone').value;
  const constraints = {
    video: camera === 'none' ? false : {
      deviceId: camera ? { exact: camera } : undefined,
      width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 },
    },
    audio: microphone === 'none' ? false : { deviceId: microphone ? { exact: microphone } : undefined },
  };
  if (!constraints.video && !constraints.audio) {
    throw new Error('Pick a camera or a microphone.');
  }
  const next = await navigator.mediaDevices.getUserMedia(constraints);
  const previous = stream;
  stream = next;
  $('preview').srcObject = stream;
  if (live.pc) {
    // Live already: swap tracks in place, no renegotiation needed.
    for (const sender of live.pc.getSenders()) {
      const kind = sender.track?.kind;
      const track = kind && stream.getTracks().find((t) => t.kind === kind);
      if (track) await sender.replaceTrack(track);
    }
  }
  previous?.getTracks().forEach((t) => t.stop());
  const devices = await navigator.mediaDevices.enumerateDevices();
  fillSelect($('camera'), devices, 'videoinput', stream.getVideoTracks()[0]?.getSettings().deviceId || camera);
  fillSelect($('microphone'), devices, 'audioinput', stream.getAudioTracks()[0]?.getSettings().deviceId || microphone);
}

async function refreshMedia() {
  $('media-error').hidden = true;
  try {
    await startMedia();
  } catch (err) {
    $('media-error').hidden = false;
    $('media-error').textContent = `Camera/microphone unavailable: ${err.message}`;
  }
}

async function updateStats() {
  if (!live.stats) return;
  const s = await live.stats.sample();
  $('bitrate').textContent = formatBitrate(s.bitrateBps);
  const v = s.video;
  $('video-info').textContent = v && v.frameWidth
    ? `${v.frameWidth}×${v.frameHeight} @ ${Math.round(v.framesPerSecond || 0)} fps` : '—';
  $('codecs').textContent = s.codecs.length ? [...new Set(s.codecs)].join(', ') : '—';
}

function onConnectionState(state) {
  $('conn-state').textContent = state;
  if (state === 'connected') setBadge('live', 'live');
  else if (state === 'failed') setBadge('failed', 'failed');
  else if (state === 'disconnected') setBadge('reconnecting', 'reconnecting');
  else setBadge(state, 'connecting');
  if (state === 'failed') {
    setStatus('The connection failed. Press "Go live" to try again.', true);
    stopLive(true);
  }
}

async function goLive() {
  const url = $('url').value.trim();
  if (!url) {
    setStatus('Paste the live input\'s WHIP URL first.', true);
    return;
  }
  if (!stream) await refreshMedia();
  if (!stream) return;
  $('go').disabled = true;
  setStatus('Connecting…');
  setBadge('connecting', 'connecting');
  try {
    const { pc, session } = await publish(url, stream, { onConnectionState });
    live.pc = pc;
    live.session = session;
    live.stats = new StatsSampler(pc, 'outbound');
    live.timer = setInterval(() => updateStats().catch(() => {}), 1000);
    $('stop').disabled = false;
    setStatus('Published. Viewers can watch now.');
  } catch (err) {
    $('go').disabled = false;
    setBadge('offline', '');
    const hint = err.status === 409 ? ' (someone is already publishing to this input)' : '';
    setStatus(`Could not go live: ${err.message}${hint}`, true);
  }
}

async function stopLive(failed = false) {
  clearInterval(live.timer);
  const { pc, session } = live;
  live.pc = null;
  live.session = null;
  live.stats = null;
  $('stop').disabled = true;
  $('go').disabled = false;
  pc?.close();
  if (session) live.lastDeleteStatus = await session.end();
  if (!failed) {
    setBadge('offline', '');
    $('conn-state').textContent = 'closed';
    $('bitrate').textContent = '—';
    setStatus('Stopped.');
  }
}

async function init() {
  $('url').value = await resolveUrl();
  if (!navigator.mediaDevices?.getUserMedia) {
    $('media-error').hidden = false;
    $('media-error').textContent =
      'This page needs a secure context (https:// or http://localhost) to use the camera.';
    $('go').disabled = true;
    return;
  }
  await refreshMedia();
}

$('setup').addEventListener('submit', (event) => {
  event.preventDefault();
  goLive();
});
$('stop').addEventListener('click', () => stopLive());
$('camera').addEventListener('change', refreshMedia);
$('microphone').addEventListener('change', refreshMedia);
// Ends the session on the server when the tab closes, instead of waiting
// for ICE to time out.
window.addEventListener('pagehide', () => live.session?.end({ keepalive: true }));

init();
