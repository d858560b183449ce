#!/usr/bin/env python3
"""Publishes a live RTMP stream whose frames carry the wall-clock time they were captured.

    scripts/stamp_publisher.py rtmp://127.0.0.1:1935/live/KEY [--seconds 60] [--audio sine|none]
    scripts/stamp_publisher.py --frame-out FRAME.gray --stamp MS    (one frame, for tests)

Frames are generated here at 30 fps in real time (1280x720, 8-bit gray: a moving gradient
and one row of black/white blocks) and handed to ffmpeg's stdin, which encodes them with
libx264 as a live encoder is set up (veryfast, zerolatency: no lookahead, no B-frames;
keyframe every 2 s) and publishes FLV over RTMP. The capture time of a frame is the moment
it is handed to ffmpeg: the stamp is taken right before the write.

The stamp, as tests/browser/page/stamp.js reads it: one row of 40 blocks of 32x32 pixels at
y = 32..64, black for 0 and white for 1, most significant bit first: the sync pattern 1011,
the capture time in Unix ms mod 2^28, and a CRC-8 (polynomial 0x07) of those 32 bits.

Audio (--audio sine, the default) is a 440 Hz tone from ffmpeg's lavfi, AAC 128 kb/s, as
encoders send audio with their video; --audio none publishes video only. Only the Python
standard library is used.
"""

import argparse
import subprocess
import sys
import time

WIDTH, HEIGHT, FPS = 1280, 720, 30
BLOCK, ROW_Y = 32, 32
SYNC, STAMP_BITS = 0b1011, 28
STAMP_MOD = 1 << STAMP_BITS
# Keyframe interval in frames: 2 s, the server's default segment length (hls.time).
GOP = 2 * FPS


def crc8(data):
    """CRC-8, polynomial 0x07, initial value 0, no reflection."""
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def stamp_bits(stamp_ms):
    """The 40 bits of the stamp row for a capture time in Unix ms."""
    word = (SYNC << STAMP_BITS) | (stamp_ms % STAMP_MOD)
    value = (word << 8) | crc8(word.to_bytes(4, "big"))
    return [(value >> (39 - i)) & 1 for i in range(WIDTH // BLOCK)]


# A sawtooth twice the frame's width: each frame shows a window of it, moved by 4 px a
# frame, so the encoder has motion to code as a camera would give it.
GRADIENT = bytes((x // 2) % 256 for x in range(2 * WIDTH))
BLACK, WHITE = b"\x00" * BLOCK, b"\xff" * BLOCK


def frame(index, stamp_ms):
    """One gray frame: the moving gradient, with the stamp row at ROW_Y."""
    offset = (index * 4) % WIDTH
    background = GRADIENT[offset:offset + WIDTH]
    row = b"".join(WHITE if bit else BLACK for bit in stamp_bits(stamp_ms))
    return background * ROW_Y + row * BLOCK + background * (HEIGHT - ROW_Y - BLOCK)


def ffmpeg_command(url, seconds, audio):
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning",
           "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS),
           "-i", "-"]
    if audio == "sine":
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    cmd += ["-map", "0:v"]
    if audio == "sine":
        cmd += ["-map", "1:a", "-c:a", "aac", "-b:a", "128k", "-ac", "2"]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
            "-g", str(GOP), "-keyint_min", str(GOP), "-sc_threshold", "0", "-bf", "0",
            "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "5000k",
            "-t", str(seconds), "-f", "flv", url]
    return cmd


def feed(proc, seconds):
    """Hands frames to `proc`'s stdin in real time for `seconds`, then closes it. Returns
    how many frames were handed over late (more than a frame interval after their due
    time)."""
    late = 0
    start = time.monotonic()
    try:
        for i in range(int(seconds * FPS)):
            due = start + i / FPS
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            elif -wait > 1 / FPS:
                late += 1
            stamp = int(time.time() * 1000)
            proc.stdin.write(frame(i, stamp))
            proc.stdin.flush()
        proc.stdin.close()
    except BrokenPipeError:
        pass
    return late


def publish(url, seconds, audio, log=sys.stderr):
    """Runs ffmpeg publishing to `url` and feeds it frames in real time for `seconds`.
    Returns how many frames were handed over late."""
    proc = subprocess.Popen(ffmpeg_command(url, seconds, audio), stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=log)
    try:
        late = feed(proc, seconds)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return late


# A block reads as 1 from this mean luma up, as 0 up to ZERO_AT_MOST; between, the frame is
# not read (as tests/browser/page/stamp.js).
ONE_AT_LEAST, ZERO_AT_MOST, SAMPLE = 160, 96, 16


def decode(gray):
    """The capture time (Unix ms mod 2^28) a decoded 8-bit gray frame carries, or None when
    the row does not read as a stamp."""
    value = 0
    for i in range(WIDTH // BLOCK):
        x0 = i * BLOCK + (BLOCK - SAMPLE) // 2
        y0 = ROW_Y + (BLOCK - SAMPLE) // 2
        total = sum(sum(gray[y * WIDTH + x0:y * WIDTH + x0 + SAMPLE]) for y in range(y0, y0 + SAMPLE))
        mean = total / (SAMPLE * SAMPLE)
        if mean >= ONE_AT_LEAST:
            bit = 1
        elif mean <= ZERO_AT_MOST:
            bit = 0
        else:
            return None
        value = (value << 1) | bit
    word, crc = value >> 8, value & 0xFF
    if word >> STAMP_BITS != SYNC or crc8(word.to_bytes(4, "big")) != crc:
        return None
    return word % STAMP_MOD


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", nargs="?", help="rtmp://HOST:PORT/APP/KEY")
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--audio", choices=["sine", "none"], default="sine")
    p.add_argument("--frame-out", help="write one raw gray frame here instead of publishing")
    p.add_argument("--stamp", type=int, help="the capture time (Unix ms) for --frame-out")
    args = p.parse_args()
    if args.frame_out:
        with open(args.frame_out, "wb") as f:
            f.write(frame(0, args.stamp if args.stamp is not None else int(time.time() * 1000)))
        return 0
    if not args.url:
        p.error("an RTMP URL is needed")
    try:
        late = publish(args.url, args.seconds, args.audio)
    except KeyboardInterrupt:
        return 130
    if late:
        print(f"{late} frames handed to ffmpeg more than a frame late", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
