#!/bin/sh
# Regenerates the FLV test media in this folder from ffmpeg's lavfi sources.
# Every file is synthetic: no third-party media. Writes into this folder wherever it is
# run from. The GStreamer file needs GStreamer 1.22 (x264enc, avenc_aac); the Enhanced FLV
# files at the end need ffmpeg 9.
set -eu
cd "$(dirname "$0")"

# H.264 High profile with B-frames (bf=2, as OBS "high" presets produce), a keyframe every
# 2 s (60 frames at 30 fps, no scene-cut keyframes): every H.264 file below.
X264="-c:v libx264 -profile:v high -preset veryfast -bf 2 -g 60 -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p"

# H.264 as above at 600k, AAC-LC 48 kHz stereo. 10 s.
ffmpeg -y -hide_banner -loglevel error \
  -f lavfi -i testsrc2=size=640x360:rate=30 \
  -f lavfi -i "sine=frequency=440:sample_rate=48000,aformat=channel_layouts=stereo" \
  -t 10 $X264 -b:v 600k -maxrate 600k -bufsize 1200k \
  -c:a aac -b:a 96k -ar 48000 \
  h264_aac.flv

# Audio only: AAC-LC 48 kHz stereo, 10 s.
ffmpeg -y -hide_banner -loglevel error \
  -f lavfi -i "sine=frequency=440:sample_rate=48000,aformat=channel_layouts=stereo" \
  -t 10 -c:a aac -b:a 96k -ar 48000 \
  audio_only.flv

# Video only: the same H.264 High profile settings as h264_aac.flv, 10 s.
ffmpeg -y -hide_banner -loglevel error \
  -f lavfi -i testsrc2=size=640x360:rate=30 \
  -t 10 $X264 -b:v 600k -maxrate 600k -bufsize 1200k \
  video_only.flv

# An unsupported codec for refusal tests: Sorenson H.263 (FLV video codec id 2), no audio, 2 s.
ffmpeg -y -hide_banner -loglevel error \
  -f lavfi -i testsrc2=size=320x240:rate=15 \
  -t 2 -c:v flv1 -b:v 200k \
  sorenson_h263.flv

# Load measurements: 720p30 at 3.15 Mb/s in all (3000k H.264 High with B-frames, 2 s GOP,
# 128k AAC-LC 48 kHz stereo), the stream the nginx-rtmp and node-media-server figures
# were measured with. 6 s (three GOPs); rtmp-load loops it.
ffmpeg -y -hide_banner -loglevel error \
  -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -f lavfi -i "sine=frequency=440:sample_rate=48000,aformat=channel_layouts=stereo" \
  -t 6 $X264 -b:v 3000k -maxrate 3000k -bufsize 6000k \
  -c:a aac -b:a 128k -ar 48000 \
  h264_720p30_3m.flv

# A real GStreamer 1.22 encode, as rtmp2sink would publish it: x264enc with its default
# scene-cut detection (an extra keyframe at 4.633 s restarts the 59-frame keyframe interval)
# and flvmux stamping the first B-frame-delayed frames with equal DTS (0, 0, 0). 5.7 s.
gst-launch-1.0 -q videotestsrc num-buffers=170 ! video/x-raw,width=640,height=360,framerate=30/1 \
  ! x264enc key-int-max=60 bframes=2 bitrate=300 ! h264parse ! queue \
  ! flvmux name=mux streamable=true ! filesink location=gstreamer_x264_scenecut.flv \
  audiotestsrc num-buffers=266 samplesperbuffer=1024 ! audio/x-raw,rate=48000,channels=2 \
  ! avenc_aac ! aacparse ! queue ! mux.

# Enhanced FLV (Enhanced RTMP v2: FourCC video and audio, multitrack), written by ffmpeg 9:
# Debian's ffmpeg 5.1 writes none of it. The static ffmpeg 9.0.2 of PyPI's imageio-ffmpeg
# 0.8.1, as scripts/test.sh installs it (RTMP_SERVER_FFMPEG9, else its cache directory).
# 2 s each at 320x180 30 fps with a keyframe every second (30 frames, no scene-cut
# keyframes), 48 kHz stereo audio. The test pattern is converted to BT.709 YUV before
# encoding (without it libx265 tags the stream with the RGB source's GBR matrix).
FFMPEG9=${RTMP_SERVER_FFMPEG9:-$(python3 -c 'import sys
sys.path.insert(0, sys.argv[1])
import imageio_ffmpeg
print(imageio_ffmpeg.get_ffmpeg_exe())' "${XDG_CACHE_HOME:-$HOME/.cache}/rtmp-server/imageio-ffmpeg")}
VIDEO_180="testsrc2=size=320x180:rate=30,scale=out_color_matrix=bt709:out_range=tv,format=yuv420p"
SINE="sine=frequency=440:sample_rate=48000,aformat=channel_layouts=stereo"
GOP_1S="-g 30 -keyint_min 30 -sc_threshold 0"
X264_1S="-c:v libx264 -profile:v high -preset veryfast -bf 2 $GOP_1S -pix_fmt yuv420p"

# HEVC Main (libx265, B-frames, closed GOPs) + AAC-LC.
"$FFMPEG9" -y -hide_banner -loglevel error -f lavfi -i "$VIDEO_180" -f lavfi -i "$SINE" \
  -t 2 -c:v libx265 -preset veryfast -b:v 300k \
  -x265-params "keyint=30:min-keyint=30:scenecut=0:open-gop=0:bframes=2:log-level=error" \
  -c:a aac -b:a 64k -ar 48000 \
  hevc_aac.flv

# AV1 Main (libsvtav1) + Opus (libopus).
SVT_LOG=1 "$FFMPEG9" -y -hide_banner -loglevel error -f lavfi -i "$VIDEO_180" -f lavfi -i "$SINE" \
  -t 2 -c:v libsvtav1 -preset 10 -b:v 300k -g 30 -svtav1-params "scd=0" \
  -c:a libopus -b:a 64k -ar 48000 \
  av1_opus.flv

# VP9 profile 0 (libvpx-vp9, realtime) + Opus (libopus).
"$FFMPEG9" -y -hide_banner -loglevel error -f lavfi -i "$VIDEO_180" -f lavfi -i "$SINE" \
  -t 2 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 300k $GOP_1S \
  -c:a libopus -b:a 64k -ar 48000 \
  vp9_opus.flv

# Multitrack video: three H.264 renditions of one picture (320x180, 256x144, 160x90 at
# 300k, 200k, 100k), keyframes at the same frames, + one AAC-LC track.
"$FFMPEG9" -y -hide_banner -loglevel error -f lavfi -i "$VIDEO_180" -f lavfi -i "$SINE" \
  -t 2 -filter_complex "[0:v]split=3[a][b][c];[b]scale=256:144[b2];[c]scale=160:90[c2]" \
  -map "[a]" -map "[b2]" -map "[c2]" -map 1:a \
  $X264_1S -b:v:0 300k -b:v:1 200k -b:v:2 100k \
  -c:a aac -b:a 64k -ar 48000 \
  h264_multitrack.flv

# H.264 + FLAC (16-bit).
"$FFMPEG9" -y -hide_banner -loglevel error -f lavfi -i "$VIDEO_180" -f lavfi -i "$SINE" \
  -t 2 $X264_1S -b:v 300k \
  -c:a flac -ar 48000 \
  h264_flac.flv

# H.264 + AC-3.
"$FFMPEG9" -y -hide_banner -loglevel error -f lavfi -i "$VIDEO_180" -f lavfi -i "$SINE" \
  -t 2 $X264_1S -b:v 300k \
  -c:a ac3 -b:a 96k -ar 48000 \
  h264_ac3.flv

# Every stream of every Enhanced FLV file decodes without an error.
for f in hevc_aac.flv av1_opus.flv vp9_opus.flv h264_multitrack.flv h264_flac.flv h264_ac3.flv; do
  errors=$("$FFMPEG9" -hide_banner -nostdin -v error -i "$f" -map 0 -f null - 2>&1)
  [ -z "$errors" ] || { echo "$f: $errors" >&2; exit 1; }
done
