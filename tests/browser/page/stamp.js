// The capture-time stamp that scripts/stamp_publisher.py draws into every frame, and its
// decoder. Runs in the page (a classic script) and in node (imported for its side effect);
// both find it as `globalThis.Stamp`.
//
// Layout, in a 1280x720 frame: one row of 40 blocks of 32x32 pixels at y = 32..64, each
// black (bit 0) or white (bit 1), most significant bit first:
//   4 bits  sync pattern 1011
//  28 bits  capture time: Unix time in ms, mod 2^28 (wraps every 74 hours)
//   8 bits  CRC-8 (polynomial 0x07, initial value 0) of the first 32 bits, big-endian
// A block is read as the mean of its central 16x16 pixels; a mean between the two
// thresholds makes the frame unreadable rather than guessing a bit.
globalThis.Stamp = (() => {
  const WIDTH = 1280;
  const BLOCK = 32;
  const ROW_Y = 32;
  const BLOCKS = WIDTH / BLOCK;
  const SYNC = 0b1011;
  const STAMP_BITS = 28;
  const STAMP_MOD = 2 ** STAMP_BITS;
  // Luma after x264 at normal bitrates stays far from the middle; between these the block
  // is damaged (a decoding error, a frame being replaced), so it is not read.
  const ONE_AT_LEAST = 160;
  const ZERO_AT_MOST = 96;
  const SAMPLE = 16;

  function crc8(bytes) {
    let crc = 0;
    for (const b of bytes) {
      crc ^= b;
      for (let i = 0; i < 8; i++) {
        crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
      }
    }
    return crc;
  }

  /// Decodes the row from pixels: `at(x, y)` gives the luma (0..255) at frame
  /// coordinates. Returns the stamp (ms mod 2^28), or null with `reason` set.
  function decode(at) {
    let bits = 0n;
    for (let i = 0; i < BLOCKS; i++) {
      const x0 = i * BLOCK + (BLOCK - SAMPLE) / 2;
      const y0 = ROW_Y + (BLOCK - SAMPLE) / 2;
      let sum = 0;
      for (let y = y0; y < y0 + SAMPLE; y++) {
        for (let x = x0; x < x0 + SAMPLE; x++) sum += at(x, y);
      }
      const mean = sum / (SAMPLE * SAMPLE);
      let bit;
      if (mean >= ONE_AT_LEAST) bit = 1n;
      else if (mean <= ZERO_AT_MOST) bit = 0n;
      else return { stamp: null, reason: 'ambiguous block' };
      bits = (bits << 1n) | bit;
    }
    const word = Number(bits >> 8n);
    const crc = Number(bits & 0xffn);
    if (word >>> STAMP_BITS !== SYNC) return { stamp: null, reason: 'no sync' };
    const bytes = [word >>> 24, (word >>> 16) & 0xff, (word >>> 8) & 0xff, word & 0xff];
    if (crc8(bytes) !== crc) return { stamp: null, reason: 'bad crc' };
    return { stamp: word & (STAMP_MOD - 1), reason: null };
  }

  /// How long ago (ms) a frame stamped `stamp` was captured, seen at Unix time `nowMs`.
  function age(stamp, nowMs) {
    const now = Math.round(nowMs) % STAMP_MOD;
    return (now - stamp + STAMP_MOD) % STAMP_MOD;
  }

  return { WIDTH, BLOCK, ROW_Y, BLOCKS, decode, age, crc8 };
})();
