// WHIP (RFC 9725) and WHEP client helpers shared by the publish and watch
// pages. No dependencies; plain ES module.
//
// Both protocols are the same exchange: POST an SDP offer as
// application/sdp, expect 201 Created with the answer and a Location naming
// the session, DELETE that Location to end it. We wait for ICE gathering
// (bounded) before POSTing instead of trickling with PATCH, because every
// server accepts a complete offer while trickle support is optional.

/** An HTTP-level failure: carries the status so callers can decide to retry. */
export class HttpError extends Error {
  constructor(message, status, retryAfterSeconds) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** Resolves when ICE gathering completes or after `timeoutMs`, whichever is first. */
export function waitForIceGathering(pc, timeoutMs = 1000) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

function parseRetryAfter(value) {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}

/**
 * Creates the offer, waits for candidates, POSTs it to `endpoint`, applies
 * the answer. Returns the session (its absolute URL and ETag).
 */
export async function negotiate(pc, endpoint, { token, signal, gatherTimeoutMs = 1000 } = {}) {
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await waitForIceGathering(pc, gatherTimeoutMs);

  const headers = { 'Content-Type': 'application/sdp' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(endpoint, {
      method: 'POST',
      headers,
      body: pc.localDescription.sdp,
      signal,
      mode: 'cors',
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new HttpError(`Cannot reach ${endpoint}: ${err.message}`, 0);
  }
  if (response.status !== 201) {
    const reason = (await response.text().catch(() => '')).trim();
    throw new HttpError(
      `${response.status} ${response.statusText}${reason ? `: ${reason}` : ''}`,
      response.status,
      parseRetryAfter(response.headers.get('Retry-After')),
    );
  }
  const location = response.headers.get('Location');
  if (!location) {
    // Servers must expose Location through CORS; without it we cannot stop.
    throw new HttpError('201 without a readable Location header (CORS Expose-Headers?)', 201);
  }
  const answer = await response.text();
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  return new Session(new URL(location, endpoint).href, response.headers.get('ETag'), token);
}

/** A WHIP or WHEP session resource on the server. */
export class Session {
  constructor(url, etag, token) {
    this.url = url;
    this.etag = etag;
    this.token = token;
  }

  /** Ends the session on the server. Never throws: the peer connection is closed anyway. */
  async end({ keepalive = false } = {}) {
    const headers = {};
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    try {
      const response = await fetch(this.url, { method: 'DELETE', headers, keepalive });
      return response.status;
    } catch {
      return 0;
    }
  }
}

/**
 * Publishes `stream` over WHIP. Each track gets a sendonly transceiver so
 * the offer says sendonly as WHIP requires.
 */
export async function publish(endpoint, stream, { token, signal, onConnectionState } = {}) {
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
  if (onConnectionState) {
    pc.addEventListener('connectionstatechange', () => onConnectionState(pc.connectionState));
  }
  // Audio first, then video: the order most WHIP servers and OBS use.
  const tracks = [...stream.getAudioTracks(), ...stream.getVideoTracks()];
  for (const track of tracks) {
    pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
  }
  try {
    const session = await negotiate(pc, endpoint, { token, signal });
    return { pc, session };
  } catch (err) {
    pc.close();
    throw err;
  }
}

/** Plays a WHEP endpoint: recvonly audio + video. The stream fills as tracks arrive. */
export async function play(endpoint, { token, signal, onConnectionState } = {}) {
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
  const stream = new MediaStream();
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.addEventListener('track', (event) => stream.addTrack(event.track));
  if (onConnectionState) {
    pc.addEventListener('connectionstatechange', () => onConnectionState(pc.connectionState));
  }
  try {
    const session = await negotiate(pc, endpoint, { token, signal });
    return { pc, session, stream };
  } catch (err) {
    pc.close();
    throw err;
  }
}

/**
 * Tracks the rates and derived numbers from successive getStats() reports.
 * `direction` is 'outbound' (publisher) or 'inbound' (viewer).
 */
export class StatsSampler {
  constructor(pc, direction) {
    this.pc = pc;
    this.direction = direction;
    this.previous = new Map(); // id -> {bytes, timestamp}
  }

  async sample() {
    const report = await this.pc.getStats();
    const type = this.direction === 'outbound' ? 'outbound-rtp' : 'inbound-rtp';
    const out = {
      bitrateBps: 0,
      video: null,
      audio: null,
      rttMs: null,
      codecs: [],
    };
    const codecs = new Map();
    report.forEach((s) => {
      if (s.type === 'codec') codecs.set(s.id, s.mimeType);
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded' &&
          typeof s.currentRoundTripTime === 'number') {
        out.rttMs = s.currentRoundTripTime * 1000;
      }
    });
    report.forEach((s) => {
      if (s.type !== type) return;
      const bytes = this.direction === 'outbound' ? s.bytesSent : s.bytesReceived;
      const prev = this.previous.get(s.id);
      let bitrate = 0;
      if (prev && s.timestamp > prev.timestamp) {
        bitrate = ((bytes - prev.bytes) * 8 * 1000) / (s.timestamp - prev.timestamp);
      }
      this.previous.set(s.id, { bytes, timestamp: s.timestamp });
      out.bitrateBps += bitrate;
      const kind = s.kind || s.mediaType;
      if (kind === 'video' || kind === 'audio') out[kind] = { ...s, bitrateBps: bitrate };
      if (s.codecId && codecs.has(s.codecId)) out.codecs.push(codecs.get(s.codecId));
    });
    return out;
  }
}

/** "1.23 Mbit/s" style formatting. */
export function formatBitrate(bps) {
  if (!Number.isFinite(bps) || bps <= 0) return '0 kbit/s';
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(2)} Mbit/s`;
  return `${Math.round(bps / 1e3)} kbit/s`;
}

/** Resolves after `ms`, or rejects early when `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DOMException('Aborted', 'AbortError'));
      return;
    }
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(new DOMException('Aborted', 'AbortError'));
    }, { once: true });
  });
}
