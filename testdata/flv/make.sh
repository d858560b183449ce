#!/bin/sh
# Regenerates the FLV test media in this folder from ffmpeg's lavfi sources.
# Every file is synthetic: no third-party media. Writes into this folder wherever it is
# run from. The last file needs GStreamer 1.22 (x264enc, avenc_aac).
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
