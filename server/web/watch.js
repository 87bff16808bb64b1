// Watch page: WHEP playback that keeps itself alive. Muted autoplay (what
// browsers allow without a gesture), an unmute control, stats on demand, and
// a reconnect loop: on a refused POST (404/409/503…), on a failed or lasting
// disconnected connection, and when media stops arriving (the publisher
// left), it starts a new session with backoff until media flows again.
import { play, StatsSampler, formatBitrate, sleep } from '/whip-whep.js';

const $ = (id) => document.getElementById(id);
const video = $('video');

// How long without any incoming RTP bytes before giving a session up.
const STALL_AFTER_MEDIA_MS = 4000;   // media flowed, then stopped: publisher gone
const NO_MEDIA_YET_MS = 8000;        // connected but nothing ever came
const DISCONNECTED_GRACE_MS = 3000;  // ICE "disconnected" often heals by itself
const MAX_BACKOFF_MS = 8000;

// For tests and debugging in the console.
const viewer = { pc: null, session: null, reconnects: 0, lastError: '', state: 'new' };
window.whipwhepViewer = viewer;

function message(text) {
  $('message').textContent = text;
  $('message').hidden = !text;
}

function playbackUrl() {
  const fromQuery = new URLSearchParams(location.search).get('url');
  if (fromQuery) return fromQuery;
  const match = location.pathname.match(/^\/([0-9a-f]{32})\/watch\/?$/);
  return match ? new URL(`/${match[1]}/webRTC/play`, location.origin).href : '';
}

function describeError(err) {
  switch (err.status) {
    case 404: return 'This live input does not exist (yet).';
    case 409: case 503: return 'Waiting for the stream to start…';
    case 0: return 'Cannot reach the server. Retrying…';
    default: return `Playback refused: ${err.message}. Retrying…`;
  }
}

/**
 * Resolves with a reason once the session should be replaced. Samples
 * incoming byte counters once a second; `stats` is shared with the panel.
 */
function superviseSession(pc, stats) {
  return new Promise((resolve) => {
    let lastBytes = -1;
    let lastChange = performance.now();
    let hadMedia = false;
    let disconnectedSince = 0;
    const finish = (reason) => {
      clearInterval(timer);
      resolve({ reason, hadMedia });
    };
    const timer = setInterval(async () => {
      const state = pc.connectionState;
      if (state === 'failed' || state === 'closed') return finish(`connection ${state}`);
      if (state === 'disconnected') {
        disconnectedSince ||= performance.now();
        if (performance.now() - disconnectedSince > DISCONNECTED_GRACE_MS) {
          return finish('connection lost');
        }
      } else {
        disconnectedSince = 0;
      }
      let sample;
      try {
        sample = await stats.sample();
      } catch {
        return undefined;
      }
      const bytes = (sample.video?.bytesReceived || 0) + (sample.audio?.bytesReceived || 0);
      const now = performance.now();
      if (bytes !== lastBytes) {
        if (lastBytes >= 0 && bytes > lastBytes) hadMedia = true;
        lastBytes = bytes;
        lastChange = now;
      }
      showStats(sample);
      const idle = now - lastChange;
      if (hadMedia && idle > STALL_AFTER_MEDIA_MS) return finish('stream stopped');
      if (!hadMedia && idle > NO_MEDIA_YET_MS) return finish('no media');
      if (hadMedia && idle < 1500) message('');
      return undefined;
    }, 1000);
  });
}

async function tryPlay() {
  try {
    await video.play();
    $('play').hidden = true;
  } catch {
    $('play').hidden = false; // autoplay refused: needs a click
  }
}

async function run(url) {
  let attempt = 0;
  for (;;) {
    viewer.state = 'connecting';
    let current = null;
    try {
      current = await play(url, {
        onConnectionState: (s) => { $('s-state').textContent = s; },
      });
    } catch (err) {
      attempt += 1;
      viewer.lastError = err.message;
      message(describeError(err));
      const backoff = Math.min(500 * 2 ** attempt, MAX_BACKOFF_MS);
      const hinted = err.retryAfterSeconds !== undefined
        ? Math.min(Math.max(err.retryAfterSeconds * 1000, 500), 15000) : backoff;
      await sleep(hinted);
      viewer.reconnects += 1;
      $('s-reconnects').textContent = viewer.reconnects;
      continue;
    }
    const { pc, session, stream } = current;
    viewer.pc = pc;
    viewer.session = session;
    viewer.state = 'playing';
    video.srcObject = stream;
    tryPlay();
    message(attempt ? 'Reconnected, waiting for video…' : 'Waiting for video…');
    const stats = new StatsSampler(pc, 'inbound');
    const { reason, hadMedia } = await superviseSession(pc, stats);
    viewer.lastError = reason;
    viewer.pc = null;
    viewer.session = null;
    pc.close();
    session.end();
    attempt = hadMedia ? 0 : attempt + 1;
    message(hadMedia ? 'The stream stopped. Reconnecting…' : 'Waiting for the stream to start…');
    await sleep(hadMedia ? 300 : Math.min(500 * 2 ** attempt, MAX_BACKOFF_MS));
    viewer.reconnects += 1;
    $('s-reconnects').textContent = viewer.reconnects;
  }
}

// Recent (not lifetime) averages, so the estimate follows changes.
let prevVideo = null;
function showStats(s) {
  if ($('stats-panel').hidden) {
    prevVideo = s.video;
    return;
  }
  const v = s.video;
  const a = s.audio;
  let jitterBufferMs = null;
  if (v && prevVideo && v.jitterBufferEmittedCount > prevVideo.jitterBufferEmittedCount) {
    jitterBufferMs = (1000 * (v.jitterBufferDelay - prevVideo.jitterBufferDelay)) /
      (v.jitterBufferEmittedCount - prevVideo.jitterBufferEmittedCount);
  } else if (v?.jitterBufferEmittedCount) {
    jitterBufferMs = (1000 * v.jitterBufferDelay) / v.jitterBufferEmittedCount;
  }
  const decodeMs = v?.framesDecoded ? (1000 * (v.totalDecodeTime || 0)) / v.framesDecoded : 0;
  prevVideo = v;
  const fmt = (n, unit = 'ms') => (n === null || n === undefined ? '—' : `${Math.round(n)} ${unit}`);
  // Glass-to-glass is not measurable from one end; this adds what the
  // receiver can see: half the RTT, the jitter buffer and decoding.
  const latency = jitterBufferMs === null ? null : jitterBufferMs + decodeMs + (s.rttMs ?? 0) / 2;
  $('s-latency').textContent = latency === null ? '—'
    : `≈ ${fmt(latency)} (buffer ${fmt(jitterBufferMs)})`;
  $('s-rtt').textContent = fmt(s.rttMs);
  $('s-jitter').textContent = v?.jitter !== undefined ? fmt(v.jitter * 1000) : '—';
  $('s-bitrate').textContent = formatBitrate(s.bitrateBps);
  $('s-video').textContent = v?.frameWidth
    ? `${v.frameWidth}×${v.frameHeight} @ ${Math.round(v.framesPerSecond || 0)} fps` : '—';
  $('s-decoded').textContent = v?.framesDecoded ?? '—';
  $('s-dropped').textContent = v?.framesDropped ?? '—';
  $('s-lost').textContent = (v?.packetsLost ?? 0) + (a?.packetsLost ?? 0);
  $('s-audio').textContent = a?.packetsReceived ?? '—';
  $('s-codecs').textContent = s.codecs.length ? [...new Set(s.codecs)].join(', ') : '—';
}

$('unmute').addEventListener('click', () => {
  video.muted = !video.muted;
  $('unmute').textContent = video.muted ? 'Unmute' : 'Mute';
  $('unmute').setAttribute('aria-pressed', String(!video.muted));
  tryPlay();
});
$('play').addEventListener('click', tryPlay);
$('stats-toggle').addEventListener('click', () => {
  const panel = $('stats-panel');
  panel.hidden = !panel.hidden;
  $('stats-toggle').setAttribute('aria-expanded', String(!panel.hidden));
});
window.addEventListener('pagehide', () => viewer.session?.end({ keepalive: true }));

const initial = playbackUrl();
if (initial) {
  run(initial);
} else {
  message('');
  $('stats-panel').hidden = false;
  $('url-form').hidden = false;
  $('url-form').addEventListener('submit', (event) => {
    event.preventDefault();
    $('url-form').hidden = true;
    $('stats-panel').hidden = true;
    const url = $('url').value.trim();
    history.replaceState(null, '', `?url=${encodeURIComponent(url)}`);
    run(url);
  });
}
