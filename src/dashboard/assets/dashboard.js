// The rtmp-server dashboard: polls the stats API (/api/streams, /api/server every 2 s,
// /api/recordings every 10 s) with the API token as a bearer credential, and shows live
// streams, server gauges and recordings, with previews (hls.js, loaded on first use) and the
// operator controls. Plain script, no build step; every element is made with the DOM API
// and filled with textContent, never HTML from the API.
'use strict';
(() => {
  const POLL_MS = 2000;
  const RECORDINGS_MS = 10000;
  const THUMBNAIL_MS = 10000;
  const HISTORY = 150; // samples a graph holds: 5 minutes at 2 s
  const MIN_SPAN = 30; // samples a graph's width spans at least: a minute at 2 s
  const CONFIRM_MS = 4000; // how long a control waits for its confirming click
  const TOKEN_KEY = 'rtmp-server-api-token';

  const $ = (id) => document.getElementById(id);
  const make = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  };
  const SVG = 'http://www.w3.org/2000/svg';

  // ---- token: from #token=... (then removed from the address bar) or sessionStorage ----
  let token = '';
  const store = {
    get() { try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; } },
    set(v) { try { if (v) sessionStorage.setItem(TOKEN_KEY, v); else sessionStorage.removeItem(TOKEN_KEY); } catch { /* storage off */ } },
  };
  function takeToken() {
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (m) {
      let t = m[1];
      try { t = decodeURIComponent(t); } catch { /* kept as given */ }
      store.set(t);
      history.replaceState(null, '', location.pathname + location.search);
    }
    token = store.get();
  }

  // ---- formatting ----
  const num = (v) => typeof v === 'number' && Number.isFinite(v);
  function kbps(v) {
    if (!num(v)) return '–';
    return v >= 10000 ? `${(v / 1000).toFixed(1)} Mb/s` : `${Math.round(v)} kb/s`;
  }
  function bytes(v) {
    if (!num(v)) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return `${v.toFixed(i && v < 10 ? 1 : 0)} ${units[i]}`;
  }
  function duration(s) {
    if (!num(s)) return '–';
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    const pad = (n) => String(n).padStart(2, '0');
    return `${d ? `${d}d ` : ''}${pad(h)}:${pad(m)}:${pad(s % 60)}`;
  }
  function track(t) {
    const parts = [t.name || t.codec || '?'];
    if (t.profile) parts.push(t.profile);
    if (t.level) parts.push(`L${t.level}`);
    if (t.width && t.height) parts.push(`${t.width}×${t.height}`);
    if (num(t.frame_rate)) parts.push(`${+t.frame_rate.toFixed(2)} fps`);
    if (t.sample_rate) parts.push(`${t.sample_rate / 1000} kHz`);
    if (t.channels) parts.push(`${t.channels} ch`);
    if (num(t.bitrate_kbps)) parts.push(kbps(t.bitrate_kbps));
    return parts.join(' · ');
  }

  // ---- the API ----
  // One request: its status, its JSON body when it has one, and the error text a refusal
  // carries (the API's `error`, or the body's text).
  async function api(path, method = 'GET') {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    let r;
    try {
      r = await fetch(path, { method, headers, cache: 'no-store' });
    } catch (e) {
      return { status: 0, ok: false, body: null, error: `the server did not answer (${e.message})` };
    }
    const text = await r.text().catch(() => '');
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    const error = r.ok ? null : ((body && body.error) || text.trim() || `HTTP ${r.status}`);
    return { status: r.status, ok: r.ok, body, error };
  }

  function message(text) {
    const m = $('message');
    m.textContent = text || '';
    m.hidden = !text;
  }

  // ---- graphs: a line and its area over the last HISTORY samples, in a 150x40 box ----
  function graph(cls) {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', `graph ${cls || ''}`);
    svg.setAttribute('viewBox', '0 0 150 40');
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('aria-hidden', 'true');
    for (const part of ['area', 'line']) {
      const p = document.createElementNS(SVG, 'path');
      p.setAttribute('class', part);
      svg.append(p);
    }
    return svg;
  }
  function plot(svg, values) {
    const vs = values.slice(-HISTORY).map((v) => (num(v) ? v : 0));
    const max = Math.max(1, ...vs);
    // The newest sample at the right; the box spans at least a minute, at most HISTORY.
    const step = 150 / (Math.max(vs.length, MIN_SPAN) - 1);
    const x0 = 150 - (vs.length - 1) * step;
    const pts = vs.map((v, i) => `${(x0 + i * step).toFixed(1)},${(39 - (v / max) * 37).toFixed(1)}`);
    const line = pts.length ? `M${pts.join('L')}` : '';
    const area = pts.length ? `M${x0.toFixed(1)},40L${pts.join('L')}L150,40Z` : '';
    svg.querySelector('.line').setAttribute('d', line);
    svg.querySelector('.area').setAttribute('d', area);
    svg.dataset.samples = String(vs.length);
    svg.dataset.max = String(max);
  }

  // ---- hls.js, loaded on the first preview ----
  let hlsLoading = null;
  function loadHls() {
    if (window.Hls) return Promise.resolve(window.Hls);
    if (!hlsLoading) {
      hlsLoading = new Promise((resolve, reject) => {
        const s = document.createElement('script');
        s.src = document.body.dataset.hls;
        s.onload = () => resolve(window.Hls);
        s.onerror = () => { hlsLoading = null; reject(new Error('hls.js did not load')); };
        document.head.append(s);
      });
    }
    return hlsLoading;
  }

  // ---- a control that asks for a second click before it acts ----
  function confirmButton(label, confirmLabel, cls, act) {
    const b = make('button', cls, label);
    b.type = 'button';
    let armed = null;
    b.addEventListener('click', async () => {
      if (!armed) {
        b.textContent = confirmLabel;
        b.classList.add('armed');
        armed = setTimeout(() => { armed = null; b.textContent = label; b.classList.remove('armed'); }, CONFIRM_MS);
        return;
      }
      clearTimeout(armed);
      armed = null;
      b.textContent = label;
      b.classList.remove('armed');
      b.disabled = true;
      try { await act(); } finally { b.disabled = false; }
    });
    return b;
  }

  // ---- operator controls (the same function the buttons and tests call) ----
  async function control(name, action) {
    const paths = {
      stop: `/api/streams/${encodeURIComponent(name)}/stop`,
      'record-start': `/api/streams/${encodeURIComponent(name)}/record/start`,
      'record-stop': `/api/streams/${encodeURIComponent(name)}/record/stop`,
    };
    const path = paths[action];
    if (!path) throw new Error(`no control ${action}`);
    const r = await api(path, 'POST');
    const card = cards.get(name);
    const text = r.ok ? '' : `${action.replace('-', ' ')} refused (${r.status || 'no answer'}): ${r.error}`;
    if (card) card.error.textContent = text;
    message(card ? '' : text);
    if (r.ok && r.body && r.body.recording && card) card.recording = r.body.recording;
    if (r.ok) { schedule(0); if (action === 'record-stop') refreshRecordings(); }
    return { status: r.status, ok: r.ok, error: r.error, body: r.body };
  }

  // ---- stream cards ----
  const cards = new Map(); // name -> card
  let preview = null; // { name, hls, card }

  function copyRow(label) {
    const row = make('div', 'url');
    const l = make('span', 'url-label', label);
    const input = make('input');
    input.readOnly = true;
    input.type = 'text';
    input.setAttribute('aria-label', `${label} URL`);
    const b = make('button', 'copy', 'Copy');
    b.type = 'button';
    b.addEventListener('click', async () => {
      let done = false;
      try {
        if (navigator.clipboard && window.isSecureContext) { await navigator.clipboard.writeText(input.value); done = true; }
      } catch { /* fall back */ }
      if (!done) {
        input.select();
        try { done = document.execCommand('copy'); } catch { done = false; }
      }
      b.textContent = done ? 'Copied' : 'Select and copy';
      setTimeout(() => { b.textContent = 'Copy'; }, 1500);
    });
    row.append(l, input, b);
    return { row, input };
  }

  function makeCard(name) {
    const c = { name, samples: [], thumbSlot: -1, recording: null };
    const root = make('article', 'card');
    root.dataset.name = name;
    c.root = root;
    const media = make('div', 'media');
    c.thumb = make('img', 'thumb');
    c.thumb.alt = `latest picture of ${name}`;
    c.thumb.hidden = true;
    c.thumb.addEventListener('error', () => { c.thumb.hidden = true; c.noThumb.hidden = false; });
    c.thumb.addEventListener('load', () => { c.thumb.hidden = false; c.noThumb.hidden = true; });
    c.noThumb = make('div', 'no-thumb', 'no picture yet');
    c.video = make('video', 'preview');
    c.video.muted = true;
    c.video.playsInline = true;
    c.video.hidden = true;
    c.play = make('button', 'play', '▶ Preview');
    c.play.type = 'button';
    c.play.addEventListener('click', () => startPreview(c));
    c.thumb.addEventListener('click', () => startPreview(c));
    c.close = make('button', 'close', 'Close preview');
    c.close.type = 'button';
    c.close.hidden = true;
    c.close.addEventListener('click', () => stopPreview());
    media.append(c.thumb, c.noThumb, c.video, c.play, c.close);

    const head = make('header', 'card-head');
    c.title = make('h3', 'name', name);
    c.rec = make('span', 'badge rec', 'REC');
    c.rec.hidden = true;
    head.append(c.title, make('span', 'badge live', 'LIVE'), c.rec);

    c.facts = make('dl', 'facts');

    const rate = make('div', 'rate');
    c.rate = make('span', 'rate-value');
    c.graph = graph('bitrate');
    rate.append(make('span', 'muted', 'Bitrate '), c.rate, c.graph);

    c.relays = make('ul', 'relays');
    const urls = make('div', 'urls');
    c.urls = { hls: copyRow('HLS'), llhls: copyRow('LL-HLS'), flv: copyRow('FLV') };
    urls.append(c.urls.hls.row, c.urls.llhls.row, c.urls.flv.row);

    const controls = make('div', 'controls');
    c.stop = confirmButton('Stop', 'Confirm stop', 'stop danger', () => control(name, 'stop'));
    c.record = make('button', 'record', 'Start recording');
    c.record.type = 'button';
    c.record.addEventListener('click', async () => {
      c.record.disabled = true;
      try { await control(name, c.recording && c.recording.active ? 'record-stop' : 'record-start'); } finally { c.record.disabled = false; }
      showRecording(c);
    });
    c.error = make('span', 'error');
    c.error.setAttribute('role', 'alert');
    controls.append(c.stop, c.record, c.error);

    root.append(media, head, c.facts, rate, c.relays, urls, controls);
    return c;
  }

  function showRecording(c) {
    const active = !!(c.recording && c.recording.active);
    c.rec.hidden = !active;
    c.record.textContent = active ? 'Stop recording' : 'Start recording';
    c.root.dataset.recording = active ? 'on' : 'off';
  }

  function fact(dl, label, value, cls) {
    if (value === null || value === undefined || value === '') return;
    const dt = make('dt', null, label);
    const dd = make('dd', cls, value);
    dl.append(dt, dd);
  }

  function fillCard(c, s) {
    const video = s.video || null;
    const audio = s.audio || null;
    const dl = document.createDocumentFragment();
    if (s.key && s.key !== s.name) fact(dl, 'Key', s.key, 'key');
    fact(dl, 'Client', s.client);
    if (typeof s.node === 'string') fact(dl, 'Node', s.node);
    fact(dl, 'Encoder', s.encoder);
    if (video) {
      fact(dl, 'Video', [video.name, video.profile, video.codec].filter(Boolean).join(' · '));
      if (video.width && video.height) {
        const fps = num(video.frame_rate) ? ` @ ${+video.frame_rate.toFixed(2)} fps` : '';
        fact(dl, 'Picture', `${video.width}×${video.height}${fps}`, 'picture');
      }
    }
    if (audio) fact(dl, 'Audio', track(audio));
    const tracks = Array.isArray(s.tracks) ? s.tracks : [];
    if (tracks.length) fact(dl, 'Tracks', tracks.map((t) => `${t.kind} ${t.track}: ${track(t)}`).join('\n'), 'tracks');
    const kf = num(s.keyframe_interval_s) ? `${s.keyframe_interval_s.toFixed(2)} s` : null;
    fact(dl, 'Keyframes', kf ? `every ${kf}` : null);
    fact(dl, 'Advice', s.keyframe_advice || null, 'advice');
    fact(dl, 'Uptime', duration(s.uptime_s));
    let viewers = num(s.viewers) ? String(s.viewers) : null;
    if (viewers !== null && (num(s.viewers_hls) || num(s.viewers_llhls))) {
      viewers += ` (HLS ${num(s.viewers_hls) ? s.viewers_hls : '–'}, LL-HLS ${num(s.viewers_llhls) ? s.viewers_llhls : '–'})`;
    }
    fact(dl, 'Viewers', viewers);
    const p = s.players;
    if (p) fact(dl, 'Players', `RTMP ${p.rtmp ?? 0} · HTTP-FLV ${p.http_flv ?? 0} · WS-FLV ${p.ws_flv ?? 0}`);
    fact(dl, 'Segments', num(s.segments) ? String(s.segments) : null);
    if (c.recording || s.recording) {
      const r = s.recording || c.recording;
      fact(dl, 'Recording', r.active ? `on${r.id ? ` (${r.id})` : ''}` : 'off');
    }
    c.facts.replaceChildren(dl);

    if (s.recording) c.recording = s.recording;
    showRecording(c);

    // The bitrate graph: the server's history when it gives one, else this page's samples.
    if (num(s.bitrate_kbps)) {
      c.samples.push(s.bitrate_kbps);
      if (c.samples.length > HISTORY) c.samples.shift();
    }
    c.rate.textContent = kbps(s.bitrate_kbps);
    const history = Array.isArray(s.bitrate_history_kbps) && s.bitrate_history_kbps.length ? s.bitrate_history_kbps : c.samples;
    plot(c.graph, history);
    c.graph.dataset.source = history === c.samples ? 'page' : 'server';

    const relays = (Array.isArray(s.relays) ? s.relays : []).map((r) => {
      const li = make('li', `relay ${r.state || ''}`);
      li.append(make('span', 'relay-state', r.state || '?'), make('span', 'relay-url', ` ${r.url || ''}`));
      const extra = [];
      if (num(r.bytes_out)) extra.push(bytes(r.bytes_out));
      if (r.reconnects) extra.push(`${r.reconnects} reconnects`);
      if (r.last_error) extra.push(r.last_error);
      if (extra.length) li.append(make('span', 'muted', ` — ${extra.join(' · ')}`));
      return li;
    });
    c.relays.replaceChildren(...relays);
    c.relays.hidden = !relays.length;

    const origin = location.origin;
    const app = s.app || 'live';
    c.playlist = s.ll_playlist || s.playlist || null;
    setUrl(c.urls.hls, s.playlist ? origin + s.playlist : null);
    setUrl(c.urls.llhls, s.ll_playlist ? origin + s.ll_playlist : null);
    setUrl(c.urls.flv, `${origin}/${app}/${s.name}.flv`);
    c.play.disabled = !c.playlist;

    // The thumbnail, once the stream has a keyframe, reloaded every THUMBNAIL_MS (not
    // while the preview plays in its place).
    if (preview && preview.card === c) {
      c.thumbSlot = -1;
    } else if (s.thumbnail && s.segments > 0) {
      const slot = Math.floor(Date.now() / THUMBNAIL_MS);
      if (slot !== c.thumbSlot || c.thumbUrl !== s.thumbnail) {
        c.thumbSlot = slot;
        c.thumbUrl = s.thumbnail;
        const sep = s.thumbnail.includes('?') ? '&' : '?';
        c.thumb.src = `${s.thumbnail}${sep}width=320&t=${slot}`;
      }
    } else if (!s.thumbnail) {
      c.thumb.hidden = true;
      c.noThumb.hidden = false;
      c.noThumb.textContent = s.thumbnail === null ? 'no picture for this codec' : 'no picture yet';
    }
  }

  function setUrl(u, value) {
    u.row.hidden = !value;
    if (value && u.input.value !== value) u.input.value = value;
  }

  async function startPreview(c) {
    if (!c.playlist) return;
    if (preview && preview.card === c) return;
    stopPreview();
    preview = { card: c, hls: null };
    const current = preview;
    c.thumb.hidden = true;
    c.noThumb.hidden = true;
    c.video.hidden = false;
    c.play.hidden = true;
    c.close.hidden = false;
    c.root.classList.add('previewing');
    const v = c.video;
    v.muted = true;
    v.autoplay = true;
    try {
      const Hls = await loadHls();
      if (preview !== current) return;
      if (Hls && Hls.isSupported()) {
        const hls = new Hls({ lowLatencyMode: !!c.root.dataset.ll, liveDurationInfinity: true });
        current.hls = hls;
        hls.on(Hls.Events.ERROR, (_e, d) => {
          if (d.fatal) { c.error.textContent = `preview: ${d.details || d.type}`; stopPreview(); }
        });
        hls.loadSource(c.playlist);
        hls.attachMedia(v);
      } else if (v.canPlayType('application/vnd.apple.mpegurl')) {
        v.src = c.playlist;
      } else {
        c.error.textContent = 'preview: this browser plays no HLS';
        stopPreview();
        return;
      }
      v.play().catch(() => { /* autoplay retried by the media element */ });
    } catch (e) {
      c.error.textContent = `preview: ${e.message}`;
      stopPreview();
    }
  }

  function stopPreview() {
    if (!preview) return;
    const { card: c, hls } = preview;
    preview = null;
    if (hls) hls.destroy();
    c.video.pause();
    c.video.removeAttribute('src');
    c.video.load();
    c.video.hidden = true;
    c.play.hidden = false;
    c.close.hidden = true;
    c.root.classList.remove('previewing');
    c.thumbSlot = -1; // the picture comes back at the next poll
    c.noThumb.hidden = false;
  }

  function renderStreams(list) {
    const seen = new Set();
    const box = $('streams');
    for (const s of list) {
      if (!s || typeof s.name !== 'string') continue;
      seen.add(s.name);
      let c = cards.get(s.name);
      if (!c) {
        c = makeCard(s.name);
        cards.set(s.name, c);
        box.append(c.root);
      }
      c.root.dataset.ll = s.ll_playlist ? '1' : '';
      fillCard(c, s);
    }
    for (const [name, c] of cards) {
      if (seen.has(name)) continue;
      if (preview && preview.card === c) stopPreview();
      c.root.remove();
      cards.delete(name);
    }
    $('count').textContent = `(${cards.size})`;
    $('none').hidden = cards.size > 0;
  }

  // ---- server gauges ----
  const gauges = {};
  const GAUGES = [
    ['streams', 'Live streams', (s) => String(s.streams)],
    ['connections', 'Connections', (s) => `RTMP ${s.rtmp_connections} · HTTP ${s.http_connections}`],
    ['ingest', 'Ingest', (s) => kbps(s.ingest_kbps)],
    ['egress', 'Egress', (s) => kbps(s.egress_kbps)],
    ['memory', 'Segment memory', (s) => bytes(s.segment_memory_bytes)],
    ['disk', 'Disk used', (s) => bytes(s.disk_bytes_used)],
    ['disk_errors', 'Disk errors', (s) => String(s.disk_errors)],
    ['refused', 'Publishes refused', (s) => String(s.publishes_refused)],
    ['segments', 'Segments made', () => null],
  ];
  const SERIES = {
    streams: (s) => s.streams,
    connections: (s) => (s.rtmp_connections || 0) + (s.http_connections || 0),
    ingest: (s) => s.ingest_kbps,
    egress: (s) => s.egress_kbps,
    memory: (s) => s.segment_memory_bytes,
    disk: (s) => s.disk_bytes_used,
    disk_errors: (s) => s.disk_errors,
    refused: (s) => s.publishes_refused,
  };
  function gaugeBox() {
    const box = $('gauges');
    for (const [id, label] of GAUGES) {
      const g = make('div', 'gauge');
      g.dataset.gauge = id;
      const value = make('div', 'gauge-value', '–');
      g.append(make('div', 'gauge-label', label), value);
      const svg = SERIES[id] ? graph(id) : null;
      if (svg) g.append(svg);
      box.append(g);
      gauges[id] = { root: g, value, svg };
    }
  }

  const own = []; // this page's samples, when the server sends no history
  let last = null; // the previous /api/server answer and when it came, for rates
  function sample(body, now) {
    const conn = body.connections || {};
    const rejected = body.publishes && body.publishes.rejected ? Object.values(body.publishes.rejected) : [];
    let ingest = null, egress = null;
    if (last && body.bytes && last.body.bytes && now > last.at) {
      const dt = (now - last.at) / 1000;
      ingest = Math.max(0, (body.bytes.in - last.body.bytes.in) * 8 / 1000 / dt);
      egress = Math.max(0, (body.bytes.out - last.body.bytes.out) * 8 / 1000 / dt);
    }
    last = { body, at: now };
    return {
      t: now / 1000,
      streams: body.streams,
      rtmp_connections: conn.rtmp,
      http_connections: conn.http,
      ingest_kbps: ingest,
      egress_kbps: egress,
      segment_memory_bytes: body.segment_memory_bytes,
      disk_bytes_used: body.disk ? body.disk.bytes_used : null,
      disk_errors: body.disk ? body.disk.errors : null,
      publishes_refused: rejected.reduce((a, b) => a + (b || 0), 0),
    };
  }

  function renderServer(body) {
    const mine = sample(body, Date.now());
    own.push(mine);
    if (own.length > HISTORY) own.shift();
    const h = body.history && Array.isArray(body.history.samples) && body.history.samples.length ? body.history.samples : null;
    const samples = h || own;
    const now = h ? { ...mine, ...h[h.length - 1] } : mine;
    for (const [id, , show] of GAUGES) {
      const g = gauges[id];
      const text = show(now);
      g.value.textContent = text === null || text.includes('undefined') || text === 'null' ? '–' : text;
      if (g.svg) {
        plot(g.svg, samples.map(SERIES[id]));
        g.svg.dataset.source = h ? 'server' : 'page';
      }
    }
    gauges.segments.value.textContent = num(body.segments) ? String(body.segments) : '–';
    gauges.disk_errors.root.classList.toggle('bad', (now.disk_errors || 0) > 0);
    const reasons = body.publishes && body.publishes.rejected ? Object.entries(body.publishes.rejected).filter(([, n]) => n > 0) : [];
    $('refused').textContent = reasons.length ? `Refused by reason: ${reasons.map(([r, n]) => `${r} ${n}`).join(', ')}` : '';
    $('version').textContent = body.version ? `v${body.version} · up ${duration(body.uptime_s)}` : '';
  }

  // ---- recordings ----
  async function refreshRecordings() {
    const r = await api('/api/recordings');
    if (!r.ok) return;
    const list = r.body && Array.isArray(r.body.recordings) ? r.body.recordings : [];
    const items = list.slice().reverse().map((e) => {
      const li = make('li', `recording ${e.state || ''}`);
      li.dataset.id = e.id;
      const what = make('div', 'recording-what');
      what.append(make('strong', null, e.stream || e.id), make('span', 'muted', ` ${e.started_at || ''}`));
      const info = make('div', 'muted', [e.state, duration(e.duration_s), bytes(e.bytes), (e.codecs || []).join(', '), e.reason].filter(Boolean).join(' · '));
      const links = make('div', 'recording-links');
      if (e.playlist) { const a = make('a', null, 'Playlist'); a.href = e.playlist; links.append(a); }
      if (e.download) { const a = make('a', null, 'Download'); a.href = e.download; a.setAttribute('download', ''); links.append(a); }
      const error = make('span', 'error');
      const del = confirmButton('Delete', 'Confirm delete', 'danger', async () => {
        const d = await api(`/api/recordings/${encodeURIComponent(e.id)}`, 'DELETE');
        if (d.ok) { li.remove(); refreshRecordings(); } else error.textContent = `delete refused (${d.status || 'no answer'}): ${d.error}`;
      });
      if (e.state !== 'recording') links.append(del);
      links.append(error);
      li.append(what, info, links);
      return li;
    });
    $('recordings').replaceChildren(...items);
    $('recording-count').textContent = `(${list.length})`;
    $('no-recordings').hidden = list.length > 0;
  }

  // ---- the poll ----
  let timer = null;
  let polling = false;
  let lastRecordings = 0;
  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }
  async function poll() {
    if (polling) return;
    polling = true;
    try {
      const [streams, server] = await Promise.all([api('/api/streams'), api('/api/server')]);
      const refused = [streams, server].find((r) => r.status === 401);
      document.body.dataset.state = refused ? 'auth' : (streams.ok && server.ok ? 'ok' : 'error');
      $('auth').hidden = !refused;
      if (refused) {
        $('auth-reason').textContent = token ? 'The token given was not accepted.' : '';
        renderStreams([]);
        $('recordings').replaceChildren();
        $('status').textContent = '';
        $('version').textContent = '';
        last = null;
        return;
      }
      if (streams.ok && streams.body) renderStreams(Array.isArray(streams.body.streams) ? streams.body.streams : []);
      if (server.ok && server.body) renderServer(server.body);
      const failed = [streams, server].find((r) => !r.ok);
      $('status').textContent = failed ? `API: ${failed.error}` : `updated ${new Date().toLocaleTimeString()}`;
      if (Date.now() - lastRecordings >= RECORDINGS_MS) {
        lastRecordings = Date.now();
        refreshRecordings();
      }
    } finally {
      polling = false;
      schedule(POLL_MS);
    }
  }

  function start() {
    takeToken();
    $('token').value = token;
    $('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      token = $('token').value.trim();
      store.set(token);
      lastRecordings = 0;
      message('');
      schedule(0);
    });
    $('forget').addEventListener('click', () => {
      token = '';
      $('token').value = '';
      store.set('');
      schedule(0);
    });
    window.addEventListener('hashchange', () => {
      if (/token=/.test(location.hash)) { takeToken(); $('token').value = token; lastRecordings = 0; schedule(0); }
    });
    gaugeBox();
    schedule(0);
  }

  // What the page does, for the browser test: the controls as the buttons call them.
  window.rtmpDashboard = { control, poll: () => schedule(0) };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
