#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/ from testdata/ (python3, no packages).

Each seed is laid out the way its target reads input (see the doc comment at the top of
each fuzz_targets/*.rs). Run from anywhere; the output is deterministic, so running it again
changes nothing unless testdata/ or this file changed.
"""

import os
import shutil
import struct

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)
TESTDATA = os.path.join(ROOT, "testdata")
# The Enhanced FLV captures of testdata/flv/make.sh.
ENHANCED = ("hevc_aac", "av1_opus", "vp9_opus", "h264_multitrack", "h264_flac", "h264_ac3")
CORPUS = os.path.join(FUZZ, "corpus")

HANDSHAKE_SIZE = 1536


def read(*path):
    with open(os.path.join(TESTDATA, *path), "rb") as f:
        return f.read()


def flv_tags(data):
    """(tag type, timestamp, body) of every tag of an FLV file (FLV 10.1 §E.3, §E.4.1)."""
    offset = struct.unpack(">I", data[5:9])[0]
    pos = offset + 4
    tags = []
    while pos + 11 <= len(data):
        tag_type = data[pos] & 0x1F
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        ts = int.from_bytes(data[pos + 4 : pos + 7], "big") | data[pos + 7] << 24
        body = data[pos + 11 : pos + 11 + size]
        if len(body) < size:
            break
        tags.append((tag_type, ts, body))
        pos += 11 + size + 4
    return tags


# AMF0 (Adobe "Action Message Format -- AMF 0" §2).
def amf_number(n):
    return b"\x00" + struct.pack(">d", n)


def amf_bool(b):
    return b"\x01" + bytes([1 if b else 0])


def amf_string(s):
    raw = s.encode()
    if len(raw) > 0xFFFF:
        return b"\x0c" + struct.pack(">I", len(raw)) + raw
    return b"\x02" + struct.pack(">H", len(raw)) + raw


def amf_properties(props):
    out = b""
    for name, value in props:
        raw = name.encode()
        out += struct.pack(">H", len(raw)) + raw + value
    return out + b"\x00\x00\x09"


def amf_object(props):
    return b"\x03" + amf_properties(props)


def amf_ecma(props):
    return b"\x08" + struct.pack(">I", len(props)) + amf_properties(props)


def amf_strict(values):
    return b"\x0a" + struct.pack(">I", len(values)) + b"".join(values)


AMF_NULL = b"\x05"
AMF_UNDEFINED = b"\x06"


def amf_reference(i):
    return b"\x07" + struct.pack(">H", i)


def amf_date(ms, tz):
    return b"\x0b" + struct.pack(">dh", ms, tz)


def connect_command():
    return (
        amf_string("connect")
        + amf_number(1)
        + amf_object(
            [
                ("app", amf_string("live")),
                ("type", amf_string("nonprivate")),
                ("flashVer", amf_string("FMLE/3.0 (compatible; Lavf59.27.100)")),
                ("tcUrl", amf_string("rtmp://127.0.0.1:1935/live")),
            ]
        )
    )


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def handshake():
    c0c1 = read("rtmp", "ffmpeg-5.1_c0c1.bin")
    c2 = bytes(HANDSHAKE_SIZE)
    # flags, number of cuts, cuts (u16), client bytes.
    write("handshake", "ffmpeg-whole", b"\x00\x00" + c0c1 + c2 + b"\x03after")
    write("handshake", "ffmpeg-prefix-cut", b"\x01\x02" + struct.pack(">HH", 700, 1537) + c2)
    plain = b"\x03" + struct.pack(">I", 1234) + bytes(4)
    plain += bytes((i * 7 + 3) & 0xFF for i in range(8, HANDSHAKE_SIZE))
    write("handshake", "plain-cut", b"\x00\x03" + struct.pack(">HHH", 1, 1536, 3000) + plain + c2)
    write("handshake", "wrong-version", b"\x00\x00GET / HTTP/1.1\r\n")


def chunk():
    connect = read("rtmp", "ffmpeg-5.1_connect.bin")
    publish = read("rtmp", "ffmpeg-5.1_publish.bin")
    # Decoder mode: mode byte (even), cut point (u16), chunk stream bytes.
    write("chunk", "ffmpeg-connect", b"\x00" + struct.pack(">H", 70) + connect)
    write("chunk", "ffmpeg-publish", b"\x00" + struct.pack(">H", 3000) + publish)
    # Round trip mode: mode byte (odd), interleave flag, cut point, chunk size, messages of
    # csid (u16), timestamp mode and value, type, stream id, length (u16) and payload.
    messages = b""
    for csid, ts_mode, ts, type_id, stream, payload in [
        (1, 0, b"\x00", 20, 0, connect_command()),
        (2, 2, struct.pack(">I", 0x01000000), 9, 1, bytes(300)),
        (6, 1, b"\x10", 8, 1, bytes(range(200))),
        (0, 0, b"\x00", 1, 0, struct.pack(">I", 7)),
        (4, 3, struct.pack(">I", 0xFFFFFFFF), 18, 1, amf_string("onMetaData")),
    ]:
        messages += struct.pack(">HB", csid, ts_mode) + ts + struct.pack(">BIH", type_id, stream, len(payload))
        messages += payload
    write("chunk", "round-trip", b"\x01\x00" + struct.pack(">HI", 50, 0x40000000 | 100) + messages)
    write("chunk", "round-trip-interleaved", b"\x01\x01" + struct.pack(">HI", 9, 5) + messages)


def amf0():
    publish_name = amf_string("publish") + amf_number(5) + AMF_NULL + amf_string("key?token=abc") + amf_string("live")
    write("amf0", "connect", b"\x14" + connect_command())
    write("amf0", "publish", b"\x14" + publish_name)
    write("amf0", "connect-amf3", b"\x11\x00" + connect_command())
    metadata = [body for tag_type, _, body in flv_tags(read("flv", "h264_aac.flv")) if tag_type == 18]
    write("amf0", "onmetadata", b"\x12" + metadata[0])
    everything = (
        amf_object([("a", amf_strict([amf_number(float("nan")), amf_bool(True), AMF_UNDEFINED])), ("b", amf_reference(0))])
        + amf_ecma([("d", amf_date(1.5e12, -60)), ("", AMF_NULL)])
        + amf_string("x" * 70000)
        + amf_reference(2)
    )
    write("amf0", "every-type", b"\x12" + everything)
    # Protocol and user control messages: Set Chunk Size, Window Ack Size, Set Peer
    # Bandwidth, User Control Set Buffer Length and Ping Request.
    write("amf0", "set-chunk-size", b"\x01" + struct.pack(">I", 60000))
    write("amf0", "window-ack-size", b"\x05" + struct.pack(">I", 2500000))
    write("amf0", "peer-bandwidth", b"\x06" + struct.pack(">IB", 2500000, 2))
    write("amf0", "set-buffer-length", b"\x04" + struct.pack(">HII", 3, 1, 3000))
    write("amf0", "ping", b"\x04" + struct.pack(">HI", 6, 12345))


def session():
    connect = read("rtmp", "ffmpeg-5.1_connect.bin")
    publish = read("rtmp", "ffmpeg-5.1_publish.bin")
    # Chunk size choice, decisions (bit n accepts the nth publish request), actions (ping,
    # end the publish), piece size.
    write("session", "ffmpeg-publish-accepted", b"\x00\xff\x00\x00" + publish)
    write("session", "ffmpeg-publish-rejected", b"\x01\x00\x00\x00" + publish)
    write("session", "ffmpeg-publish-pieces", b"\x02\x81\x81\x07" + publish)
    write("session", "ffmpeg-connect", b"\x05\x55\x55\x01" + connect)
    # An Enhanced RTMP connect (fourCcList), answered with the server's codecs and capsEx.
    enhanced = read("rtmp", "ffmpeg-9.0_enhanced_connect.bin")
    write("session", "ffmpeg9-enhanced-connect", b"\x00\x55\x55\x00" + enhanced)
    # The publish answered before the media that follows it arrives (as encoders wait for
    # the answer): fed byte by byte and in 64-byte pieces, so the client's FCUnpublish and
    # deleteStream end it.
    write("session", "ffmpeg-publish-bytewise", b"\x00\x01\x00\x01" + publish)
    write("session", "ffmpeg-publish-accepted-pieces", b"\x00\x01\x02\x40" + publish)


def flv():
    files = {name: read("flv", name + ".flv") for name in ("h264_aac", "audio_only", "video_only", "sorenson_h263")}
    tags = flv_tags(files["h264_aac"])
    video = [body for t, _, body in tags if t == 9]
    audio = [body for t, _, body in tags if t == 8]
    record = video[0][5:]
    config = audio[0][2:]
    # Mode 0: tag bodies (a video sequence header, a frame's head, audio), and Enhanced
    # RTMP headers for 'avc1' and 'mp4a'.
    write("flv", "tag-avc-sequence-header", b"\x00" + video[0])
    write("flv", "tag-avc-frame-head", b"\x00" + video[2][:64])
    write("flv", "tag-aac-raw", b"\x00" + audio[1][:64])
    write("flv", "tag-aac-sequence-header", b"\x00" + audio[0])
    write("flv", "tag-ex-avc1-coded-frames", b"\x00\x91avc1\x00\x00\x21" + video[2][5:40])
    write("flv", "tag-ex-mp4a-sequence-start", b"\x00\x90mp4a" + config)
    write("flv", "tag-sorenson", b"\x00" + flv_tags(files["sorenson_h263"])[1][2][:32])
    # Mode 1: the AVCDecoderConfigurationRecord.
    write("flv", "avc-record", b"\x01" + record)
    # Mode 2: length size (lengthSizeMinusOne 3) and an access unit: the smallest frame.
    smallest = min(video[1:], key=len)
    write("flv", "avcc-frame", b"\x02\x03" + smallest[5:])
    write("flv", "avcc-keyframe-head", b"\x02\x03" + video[1][5:200])
    # Mode 3: frame length (u16) and the AudioSpecificConfig.
    write("flv", "aac-config", b"\x03" + struct.pack(">H", len(audio[1]) - 2) + config)
    write("flv", "aac-config-he", b"\x03" + struct.pack(">H", 8184) + bytes([0x2B, 0x92, 0x08, 0x00]))
    # Mode 4: cut point (u16) and the head of each file.
    for name, data in files.items():
        write("flv", "file-" + name, b"\x04" + struct.pack(">H", 5000) + data[:16384])
    # Mode 0 again: Enhanced RTMP tags of the ffmpeg 9 captures (the first tags of each
    # kind: sequence starts, metadata, multichannel configuration, multitrack packets).
    for name in ENHANCED:
        seen = {}
        for kind, _, body in flv_tags(read("flv", name + ".flv")):
            key = (kind, body[:2])
            if kind in (8, 9) and key not in seen and len(seen) < 8:
                seen[key] = body
                write("flv", "tag-%s-%d-%02x%02x" % (name, kind, body[0], body[1] if len(body) > 1 else 0), b"\x00" + body[:4096])


def remux():
    flv_files = {name: read("flv", name + ".flv") for name in ("h264_aac", "audio_only", "video_only")}
    # The first 4.5 s: three keyframes, so two segments are cut at the default 2 s.
    tags = [t for t in flv_tags(flv_files["h264_aac"]) if t[0] in (8, 9) and t[1] < 4500]
    # Configuration: hls.time choice, max segment, carried-over TD, flags (hint, keep
    # going, FLV file mode); then the stream's base timestamp (u32).
    default = b"\x01\x00\x00\x00"
    # Every tag of the test file in order, by index, on its own timing (op 0xc2).
    all_tags = b"".join(b"\xc2" + struct.pack(">H", i) for i in range(len(tags)))
    write("remux", "h264-aac-in-order", default + struct.pack(">I", 0) + all_tags)
    # The same just before the 32-bit clock wraps, with max_segment and a hint.
    write("remux", "h264-aac-wrapping", b"\x00\x82\x00\x03" + struct.pack(">I", 0xFFFFF000) + all_tags)
    # CompositionTimes replaced (op 0xc6) by 100 ms, -100 ms and the largest, with a
    # carried-over TD of 2 s.
    composition = [b"\x00\x00\x64", b"\xff\xff\x9c", b"\x7f\xff\x00"]
    rewritten = b"".join(b"\xc6" + struct.pack(">H", i) + composition[i % 3] for i in range(len(tags)))
    write("remux", "h264-aac-composition", b"\x01\x00\x81\x00" + struct.pack(">I", 1000) + rewritten)
    # Sequence headers (op 3, audio with bit 3), then built IDR and non-IDR frames (op 4)
    # and AAC frames (op 5), stepping 33 ms (top bits 111), with a clock jump back.
    built = b"\x03\x0b"
    for i in range(200):
        keyframe = i % 30 == 0
        nal_type = 5 if keyframe else 1
        # Op, CompositionTime (i16), NAL count - 1, NAL header byte, length, bytes.
        built += bytes([0xE4 | (0x08 if keyframe else 0)]) + struct.pack(">h", 66) + b"\x00"
        built += bytes([0x60 | nal_type, 8]) + bytes(8)
        built += b"\xe5\x04\x21\x10\x04\x60"
        if i == 120:
            built += b"\x83" + struct.pack(">H", 5000)
    write("remux", "built-frames", default + struct.pack(">I", 0) + built)
    # FLV file mode (flag 0x08), 1 s segment target: the head of each file, and of the
    # Enhanced FLV captures (HEVC, AV1, VP9, Opus, FLAC, AC-3, multitrack).
    for name, data in flv_files.items():
        write("remux", "file-" + name, b"\x00\x00\x00\x08" + data[:60000])
    for name in ENHANCED:
        write("remux", "file-" + name, b"\x00\x00\x00\x08" + read("flv", name + ".flv")[:60000])


def flv_mux():
    # The head of every test file: each codec, multitrack, and a codec players refuse.
    names = ("h264_aac", "audio_only", "video_only", "sorenson_h263") + tuple(ENHANCED)
    for name in names:
        write("flv_mux", name, read("flv", name + ".flv")[:60000])


def mp4_box(kind, body):
    return struct.pack(">I", 8 + len(body)) + kind + body


def recording():
    # Mode 0: a journal as the writer leaves it (here cut in a part line), with the media
    # file's length in front.
    journal = b"".join(
        line + b"\n"
        for line in (
            b'{"recording":{"id":"k_20261205T120000.000Z","app":"live","stream":"k",'
            b'"started_ms":1,"codecs":["avc1.64001F"],"tracks":[]}}',
            b'{"init":{"at":0,"len":700}}',
            b'{"segment":{"discontinuity":false}}',
            b'{"part":{"at":700,"len":300,"duration":90000}}',
            b'{"segment_end":{"duration":90000}}',
            b'{"segment":{"discontinuity":true}}',
            b'{"part":{"at":1000,"len":200,"duration":45000}}',
        )
    )
    write("recording", "journal", b"\x00" + struct.pack(">Q", 1200) + journal + b'{"part":{"at":12')
    # Mode 1: a fragment laid out as the server writes it: mfhd, then a traf with tfhd
    # (default-base-is-moof), tfdt version 1 and a version 1 trun with every sample field.
    samples = struct.pack(">IIIi", 3000, 2, 0x02000000, 0) + struct.pack(">IIIi", 3000, 2, 0x01010000, 3000)
    trun = mp4_box(b"trun", struct.pack(">II", 0x01000F01, 2) + struct.pack(">i", 0) + samples)
    traf = mp4_box(
        b"traf",
        mp4_box(b"tfhd", struct.pack(">II", 0x00020000, 1))
        + mp4_box(b"tfdt", struct.pack(">IQ", 0x01000000, 126000))
        + trun,
    )
    moof = mp4_box(b"moof", mp4_box(b"mfhd", struct.pack(">II", 0, 7)) + traf)
    write("recording", "fragment", b"\x01" + moof + mp4_box(b"mdat", b"\x01\x02\x03\x04"))


def ll_query():
    # Mode byte 0: the rest is a query as players send it (hls.js, Safari), with cache
    # busters, escapes and the errors a 400 explains.
    queries = {
        "blocking": b"_HLS_msn=273&_HLS_part=2",
        "blocking-delta": b"_HLS_msn=273&_HLS_part=3&_HLS_skip=YES",
        "delta-v2": b"_HLS_skip=v2",
        "cache-buster": b"t=1700000000123&_HLS_msn=5&token=a%2Bb%3D",
        "escaped": b"%5FHLS_msn=%31%32&_HLS_part=0",
        "part-without-msn": b"_HLS_part=1",
        "repeated": b"_HLS_msn=1&_HLS_msn=2",
        "negative": b"_HLS_msn=-1",
        "too-large": b"_HLS_msn=9007199254740992",
        "malformed": b"_HLS_msn=%3",
        "bad-skip": b"_HLS_skip=yes",
    }
    for name, query in queries.items():
        write("ll_query", name, b"\x00" + query)
    # Mode byte 1: round trip of directives among other parameters.
    write("ll_query", "round-trip", b"\x01\x01\x00\x00\x01\x11\x00\x01\x05\x01\x02\x04\x03t=1\x05")


def codec():
    # Each seed goes whole to every parser: the SequenceStart bodies ffmpeg 9 sends (HEVC,
    # AV1, VP9, Opus, FLAC), syncframe and frame headers, Opus TOCs and FLAC frame headers.
    seeds = {
        "hevc-main": "0101600000009000000000003cf000fcfdf8f800000f03200001001840010c01"
        "ffff01600000030090000003000003003c959809210001002a42010101600000030090000003000003003c"
        "a01a2020724996566924caf0168080000003008000000c8422000100074401c172b46240",
        "hevc-main10": "0102200000009000000000003cf000fcfdfafa00000f03200001001840010c01"
        "ffff02200000030090000003000003003c959809210001002842010102200000030090000003000003003c"
        "a01620244d96566924caf01680800001f480003a980422000100074401c172b46240",
        "hevc-access-unit": "000000034601500000000226010000000326 01af".replace(" ", ""),
        "av1-svt": "81000c000a0b020000055db1fb805f0008",
        "av1-aom-10bit": "81004c000a0a00000003b4fdf36be501",
        "vp9-record": "01000000000a820202020000",
        "vp9-record-bare": "000a820202020000",
        "vp9-keyframe": "824983420009f005960638241c184a0005405f",
        "vp9-superframe": "824983420009f005960638241c184a0005405f8600c11302c1",
        "opus-stereo": "4f707573486561640102380180bb0000000000",
        "opus-surround": "4f707573486561640106380180bb00000000010402000401020305",
        "opus-packet": "fc7e0299",
        "opus-code3": "8330",
        "flac-streaminfo": "040004000000000008150ac440f00000000000000000000000000000000000000000",
        "flac-file": "664c614300000022040004000000000008150ac440f000000000000000000000"
        "000000000000000000008100000400000000",
        "flac-frame": "fff8a9080050",
        "flac-frame-uncommon": "fff97c08fe8182838485861000308f",
        "ac3-stereo": "0b77fe95144043e106f46370",
        "ac3-51": "0b77c4b71e40ebf8403eff99",
        "eac3-stereo": "0b77017f3487c0002084210838",
        "eac3-51": "0b7703ce7f87c00020842108",
        "mp3-mpeg1": "fffb90640000023c",
        "mp3-mpeg2": "fff340c40012b05e",
    }
    for name, text in seeds.items():
        write("codec", name, bytes.fromhex(text))


def tls_session():
    # The target prepends its own ClientHello when flag bit 0 is set (fuzz_targets/tls_session.rs).
    write("tls_session", "hello-whole", b"\x01\x00")
    write("tls_session", "hello-cut", b"\x01\x03" + struct.pack(">HHH", 1, 5, 100))
    write("tls_session", "hello-then-rtmp", b"\x01\x00\x03" + bytes(1536))
    write("tls_session", "plain-rtmp", b"\x00\x00\x03" + bytes(1536))
    write("tls_session", "http", b"\x00\x00GET / HTTP/1.1\r\n\r\n")
    # A handshake message longer than rustls allows: refused without an alert.
    write("tls_session", "handshake-too-large", bytes.fromhex("48b27acaff0016033300160333332d2d332d2d2d2d2d424547494e203333fbffff30"))


def annex_b_nal_units(data):
    """The NAL units of an Annex B byte stream (ISO/IEC 14496-10 Annex B), without start codes."""
    starts, i = [], 0
    while i + 3 <= len(data):
        if data[i:i + 3] == b"\0\0\1":
            starts.append(i + 3)
            i += 3
        else:
            i += 1
    nals = []
    for k, s in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else len(data)
        nal = data[s:end]
        if k + 1 < len(starts):
            nal = nal.rstrip(b"\0")
        nals.append(nal)
    return nals


def thumbnail():
    # Record length, AVCDecoderConfigurationRecord, width byte, AVCC keyframe
    # (fuzz_targets/thumbnail.rs), from x264's IDR of testsrc2.
    for name, width in (("testsrc2_320x180", 38), ("testsrc2_1280x720", 0)):
        nals = annex_b_nal_units(read("thumbnail", name + ".h264"))
        sps = next(n for n in nals if n[0] & 0x1F == 7)
        pps = next(n for n in nals if n[0] & 0x1F == 8)
        record = bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]) + struct.pack(">H", len(sps)) + sps
        record += b"\x01" + struct.pack(">H", len(pps)) + pps
        frame = b"".join(struct.pack(">I", len(n)) + n for n in nals if n[0] & 0x1F not in (7, 8))
        write("thumbnail", name, struct.pack(">H", len(record)) + record + bytes([width]) + frame)


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    handshake()
    chunk()
    amf0()
    session()
    flv()
    remux()
    flv_mux()
    ll_query()
    recording()
    codec()
    tls_session()
    thumbnail()


if __name__ == "__main__":
    main()
