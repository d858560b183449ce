// The page side of play.mjs: plays one HLS playlist with hls.js and records what a viewer
// would notice. play.mjs calls `startPlayer(options)` and, at the end, `playerReport()`.
//
// Recorded:
// - start: ms from loadSource() to the first presented frame;
// - stalls: `waiting` events after playback began, and hls.js BUFFER_STALLED_ERRORs;
// - `ended` events (a live stream must not end while it is published), and whether the
//   video is paused at the end;
// - hls.js errors by detail, and every fatal one;
// - Low-Latency HLS: parts loaded, blocking playlist reloads and delta updates;
// - once a second: position, distance to the live edge (hls.latency, and the end of the
//   seekable range minus the position), buffer ahead, frames decoded and dropped
//   (getVideoPlaybackQuality());
// - with seekBack(seconds) (a DVR window): where it seeks from and to, the fragment hls.js
//   loaded at the target, and what the seek waited (its waiting events are the seek's, not
//   stalls);
// - per presented frame carrying a stamp (page/stamp.js): glass-to-glass in ms, the frame's
//   expected display time (requestVideoFrameCallback metadata.expectedDisplayTime, on the
//   wall clock) minus the capture time the frame carries.
(() => {
  const video = document.getElementById('video');
  const state = {
    startedAt: null,
    firstFrameMs: null,
    playing: false,
    waiting: [],
    ended: [],
    bufferStalled: [],
    errors: {},
    fatal: [],
    samples: [],
    glass: [],
    stampFailures: {},
    presented: 0,
    clock: null,
    playlist: null,
    // Low-Latency HLS as hls.js used it: parts loaded, playlist loads that were blocking
    // reloads (_HLS_msn) and delta updates (_HLS_skip).
    ll: { parts_loaded: 0, blocking_reloads: 0, delta_updates: 0 },
  };
  let hls = null;
  let band = null;

  const since = () => (performance.now() - state.startedAt) / 1000;
  const round = (x, digits = 3) => (x == null || !isFinite(x) ? null : Number(x.toFixed(digits)));

  // A canvas one block row high, read back on the CPU for every presented frame.
  function readStamp() {
    if (!band) {
      const canvas = document.createElement('canvas');
      canvas.width = Stamp.WIDTH;
      canvas.height = Stamp.BLOCK;
      band = canvas.getContext('2d', { willReadFrequently: true });
    }
    const scale = video.videoWidth / Stamp.WIDTH;
    band.drawImage(video, 0, Stamp.ROW_Y * scale, video.videoWidth, Stamp.BLOCK * scale,
      0, 0, Stamp.WIDTH, Stamp.BLOCK);
    const pixels = band.getImageData(0, 0, Stamp.WIDTH, Stamp.BLOCK).data;
    return Stamp.decode((x, y) => {
      const i = ((y - Stamp.ROW_Y) * Stamp.WIDTH + x) * 4;
      return (pixels[i] + pixels[i + 1] + pixels[i + 2]) / 3;
    });
  }

  function presented(displayedAtPerf) {
    state.presented += 1;
    if (state.firstFrameMs === null) state.firstFrameMs = round(performance.now() - state.startedAt, 1);
    if (!state.stamps) return;
    // Wall clock of the display time: the offset between the two clocks taken now, so a
    // drift of performance.timeOrigin over a long page life does not enter.
    const displayedAtWall = Date.now() - performance.now() + displayedAtPerf;
    const { stamp, reason } = readStamp();
    if (stamp === null) {
      state.stampFailures[reason] = (state.stampFailures[reason] || 0) + 1;
      return;
    }
    state.glass.push([round(since(), 3), Stamp.age(stamp, displayedAtWall)]);
  }

  function onVideoFrame(now, metadata) {
    presented(metadata.expectedDisplayTime);
    video.requestVideoFrameCallback(onVideoFrame);
  }

  // Without requestVideoFrameCallback: a new frame is noticed on the next animation frame
  // after the position moves, and its display time is that animation frame's.
  function pollFrames() {
    let last = -1;
    const tick = (now) => {
      if (video.currentTime !== last && video.readyState >= 2) {
        last = video.currentTime;
        presented(now);
      }
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  function sample() {
    const q = video.getVideoPlaybackQuality();
    const seekable = video.seekable.length ? video.seekable.end(video.seekable.length - 1) : null;
    let ahead = 0;
    for (let i = 0; i < video.buffered.length; i++) {
      if (video.buffered.start(i) <= video.currentTime + 0.1 && video.currentTime < video.buffered.end(i)) {
        ahead = video.buffered.end(i) - video.currentTime;
      }
    }
    state.samples.push({
      t: round(since(), 2),
      pos: round(video.currentTime),
      latency: round(hls.latency),
      behind_edge: seekable === null ? null : round(seekable - video.currentTime),
      buffer: round(ahead),
      frames: q.totalVideoFrames,
      dropped: q.droppedVideoFrames,
    });
  }

  window.startPlayer = ({ url, hlsConfig, stamps }) => {
    if (!Hls.isSupported()) throw new Error('hls.js: MediaSource is not supported here');
    state.stamps = stamps;
    state.clock = 'requestVideoFrameCallback' in HTMLVideoElement.prototype
      ? 'rvfc expectedDisplayTime'
      : 'requestAnimationFrame after currentTime moved';
    hls = new Hls(hlsConfig);
    hls.on(Hls.Events.ERROR, (_, data) => {
      state.errors[data.details] = (state.errors[data.details] || 0) + 1;
      if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR && !state.seeking) state.bufferStalled.push(round(since(), 2));
      if (data.fatal) {
        state.fatal.push({ t: round(since(), 2), type: data.type, details: data.details,
          reason: String(data.reason || data.error || data.response?.code || '') });
      }
    });
    hls.on(Hls.Events.LEVEL_LOADED, (_, data) => {
      const d = data.details;
      state.playlist = {
        live: d.live,
        targetduration: d.targetduration,
        fragments: d.fragments.length,
        part_target: d.partTarget || null,
        parts: d.partList ? d.partList.length : 0,
        can_block_reload: !!d.canBlockReload,
        can_skip_until: d.canSkipUntil || 0,
        preload_hint: !!d.preloadHint,
      };
      const directives = data.deliveryDirectives;
      if (directives && directives.msn !== undefined) state.ll.blocking_reloads += 1;
      if (directives && directives.skip) state.ll.delta_updates += 1;
    });
    hls.on(Hls.Events.FRAG_LOADED, (_, data) => {
      if (data.part) state.ll.parts_loaded += 1;
      const s = state.seek;
      const f = data.frag;
      if (s && s.target_frag === null && !data.part && f.start <= s.target && s.target < f.start + f.duration) {
        s.target_frag = { sn: f.sn, url: f.url, start: round(f.start), duration: round(f.duration) };
      }
    });
    video.addEventListener('playing', () => {
      state.playing = true;
      if (state.seeking) {
        state.seeking = false;
        state.seek.playing_t = round(since(), 2);
      }
    });
    video.addEventListener('seeked', () => {
      if (state.seek && state.seek.seeked_t === null) state.seek.seeked_t = round(since(), 2);
    });
    video.addEventListener('ended', () => state.ended.push(round(since(), 2)));
    video.addEventListener('waiting', () => {
      if (state.seeking) state.seek.waits += 1;
      else if (state.playing) state.waiting.push(round(since(), 2));
    });
    if (state.clock.startsWith('rvfc')) video.requestVideoFrameCallback(onVideoFrame);
    else pollFrames();
    state.startedAt = performance.now();
    hls.loadSource(url);
    hls.attachMedia(video);
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      video.play().catch((e) => state.fatal.push({ t: round(since(), 2), type: 'play', details: String(e) }));
    });
    setInterval(sample, 1000);
    return { version: Hls.version, clock: state.clock };
  };

  // How much media before the live edge the player can seek to: the seekable range hls.js
  // keeps from the playlist's first to its last segment.
  window.seekableSpan = () => {
    if (!video.seekable.length) return 0;
    return video.seekable.end(video.seekable.length - 1) - video.seekable.start(0);
  };

  // Seeks `seconds` before the end of the seekable range (the live edge).
  window.seekBack = (seconds) => {
    const end = video.seekable.end(video.seekable.length - 1);
    const details = hls.levels[hls.currentLevel]?.details;
    state.seek = {
      t: round(since(), 2),
      from: round(video.currentTime),
      target: round(end - seconds),
      seekable_start: round(video.seekable.start(0)),
      seekable_end: round(end),
      // The newest segment listed when seeking: how far back the target's segment lies.
      live_end_sn: details ? details.endSN : null,
      target_frag: null,
      seeked_t: null,
      playing_t: null,
      waits: 0,
    };
    state.seeking = true;
    video.currentTime = end - seconds;
    return state.seek;
  };

  window.playerReport = () => {
    sample();
    return {
      first_frame_ms: state.firstFrameMs,
      presented: state.presented,
      waiting: state.waiting,
      ended: state.ended,
      paused: video.paused,
      duration: Number.isFinite(video.duration) ? round(video.duration) : null,
      position: round(video.currentTime),
      buffer_stalled: state.bufferStalled,
      errors: state.errors,
      fatal: state.fatal,
      samples: state.samples,
      glass: state.glass,
      stamp_failures: state.stampFailures,
      clock: state.clock,
      playlist: state.playlist,
      ll: state.ll,
      seek: state.seek || null,
      config: { lowLatencyMode: hls.config.lowLatencyMode, liveSyncDurationCount: hls.config.liveSyncDurationCount },
    };
  };

  // play.mjs waits on this before the first frame (time to first frame, fatal errors).
  window.playerStatus = () => ({
    first_frame_ms: state.firstFrameMs,
    fatal: state.fatal.length,
    presented: state.presented,
    ended: state.ended.length,
  });
})();
