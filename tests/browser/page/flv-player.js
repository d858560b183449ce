// The page side of `play.mjs --player mpegts`: plays a live HTTP-FLV (http://) or
// WebSocket-FLV (ws://) stream with mpegts.js and records what a viewer would notice, in
// the report shape page/player.js gives for hls.js, so play.mjs judges both alike.
//
// Recorded: ms from load() to the first presented frame; `waiting` events after playback
// began; `ended` events; mpegts.js errors (every one ends its playback, so each counts as
// fatal); once a second: position, distance to the end of what is buffered, frames decoded
// and dropped; the media info mpegts.js read from the stream (onMetaData, codecs).
(() => {
  const video = document.getElementById('video');
  const state = {
    startedAt: null,
    firstFrameMs: null,
    playing: false,
    waiting: [],
    ended: [],
    errors: {},
    fatal: [],
    samples: [],
    presented: 0,
    clock: null,
    media: null,
    config: null,
  };
  let player = null;

  const since = () => (performance.now() - state.startedAt) / 1000;
  const round = (x, digits = 3) => (x == null || !isFinite(x) ? null : Number(x.toFixed(digits)));

  function presented() {
    state.presented += 1;
    if (state.firstFrameMs === null) state.firstFrameMs = round(performance.now() - state.startedAt, 1);
  }

  function onVideoFrame() {
    presented();
    video.requestVideoFrameCallback(onVideoFrame);
  }

  // Without requestVideoFrameCallback: a new frame is noticed on the next animation frame
  // after the position moves.
  function pollFrames() {
    let last = -1;
    const tick = () => {
      if (video.currentTime !== last && video.readyState >= 2) {
        last = video.currentTime;
        presented();
      }
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  function sample() {
    const q = video.getVideoPlaybackQuality();
    let ahead = 0;
    let end = null;
    for (let i = 0; i < video.buffered.length; i++) {
      end = video.buffered.end(i);
      if (video.buffered.start(i) <= video.currentTime + 0.1 && video.currentTime < end) {
        ahead = end - video.currentTime;
      }
    }
    state.samples.push({
      t: round(since(), 2),
      pos: round(video.currentTime),
      latency: null,
      behind_edge: end === null ? null : round(end - video.currentTime),
      buffer: round(ahead),
      frames: q.totalVideoFrames,
      dropped: q.droppedVideoFrames,
    });
  }

  window.startPlayer = ({ url, mpegtsConfig }) => {
    if (!mpegts.getFeatureList().mseLivePlayback) throw new Error('mpegts.js: live MSE playback is not supported here');
    state.clock = 'requestVideoFrameCallback' in HTMLVideoElement.prototype
      ? 'rvfc expectedDisplayTime'
      : 'requestAnimationFrame after currentTime moved';
    state.config = { isLive: true, ...mpegtsConfig };
    player = mpegts.createPlayer({ type: 'flv', isLive: true, url }, state.config);
    player.on(mpegts.Events.ERROR, (type, details, info) => {
      const key = `${type}:${details}`;
      state.errors[key] = (state.errors[key] || 0) + 1;
      state.fatal.push({ t: round(since(), 2), type, details, reason: JSON.stringify(info ?? null) });
    });
    player.on(mpegts.Events.MEDIA_INFO, (m) => {
      state.media = {
        mime_type: m.mimeType,
        has_audio: m.hasAudio,
        has_video: m.hasVideo,
        width: m.width,
        height: m.height,
        video_codec: m.videoCodec,
        audio_codec: m.audioCodec,
      };
    });
    video.addEventListener('playing', () => { state.playing = true; });
    video.addEventListener('ended', () => state.ended.push(round(since(), 2)));
    video.addEventListener('waiting', () => {
      if (state.playing) state.waiting.push(round(since(), 2));
    });
    if (state.clock.startsWith('rvfc')) video.requestVideoFrameCallback(onVideoFrame);
    else pollFrames();
    state.startedAt = performance.now();
    player.attachMediaElement(video);
    player.load();
    Promise.resolve(player.play()).catch((e) => state.fatal.push({ t: round(since(), 2), type: 'play', details: String(e) }));
    setInterval(sample, 1000);
    return { version: mpegts.version, clock: state.clock };
  };

  window.playerReport = () => {
    sample();
    return {
      first_frame_ms: state.firstFrameMs,
      presented: state.presented,
      waiting: state.waiting,
      ended: state.ended,
      paused: video.paused,
      buffer_stalled: [],
      errors: state.errors,
      fatal: state.fatal,
      samples: state.samples,
      glass: [],
      stamp_failures: {},
      clock: state.clock,
      playlist: null,
      ll: null,
      media: state.media,
      config: state.config,
    };
  };

  // play.mjs waits on this before the first frame (time to first frame, fatal errors).
  window.playerStatus = () => ({
    first_frame_ms: state.firstFrameMs,
    fatal: state.fatal.length,
    presented: state.presented,
  });
})();
