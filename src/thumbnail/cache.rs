//! One stream's thumbnails: its latest keyframe of the lead video track (and the first of
//! the current publish), the pictures decoded from them and the JPEG files made of those,
//! and the rule for when work may start: a keyframe is decoded at most once per interval
//! whatever the request rate, requests that come while the stream's work is in flight wait
//! for it, and a new width of a picture already decoded is only scaled and encoded.
//!
//! It lives on the stream (`hub::stream::Stream`), so it goes when the stream goes. Setting a
//! keyframe, on the ingest path, is a lock and a clone of two handles (no copy of the frame).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use super::decode::Picture;
use super::scale::output_size;
use crate::hub::stream::lock;
use crate::media::Timestamp90k;
use crate::media::codec::CodecConfig;

/// JPEG widths kept per picture; asking for another drops the least recently made.
pub const MAX_WIDTHS: usize = 4;

/// Which keyframe a thumbnail shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// The stream's latest keyframe.
    Latest = 0,
    /// The first keyframe of the current publish (the `on_publish` webhook names it).
    First = 1,
}

/// A keyframe of a stream's lead video track, as it arrived.
#[derive(Clone, Debug)]
pub struct Keyframe {
    /// Its track's configuration (for H.264 the parameter sets it is decoded with).
    pub config: Arc<CodecConfig>,
    /// The coded access unit, a slice of the message it arrived in.
    pub data: Bytes,
    pub dts: Timestamp90k,
    /// The publisher that sent it.
    pub publisher: u64,
    /// Counts the stream's keyframes: tells a new one from the one a picture was made of.
    pub seq: u64,
}

/// What a request gets.
#[derive(Debug)]
pub enum Answer {
    Jpeg(Bytes),
    /// The keyframe did not decode (HTTP 500); the reason is the decoder's.
    Failed(Arc<str>),
    /// The stream has sent no keyframe yet.
    NoKeyframe,
    /// The lead video's codec (named) has no decoder here.
    NoDecoder(&'static str),
    /// Work for this thumbnail is in flight: ask again once this changes.
    Wait(watch::Receiver<u64>),
    /// The CPU budget is spent (or the workers' queue full) and nothing is cached.
    Refused,
}

/// What a job does.
#[derive(Clone, Debug)]
pub enum Work {
    /// Decode the keyframe, then scale and encode the picture.
    Decode(Keyframe),
    /// Scale and encode a picture already decoded (from keyframe `seq`) at another width.
    Encode { picture: Arc<Picture>, seq: u64 },
}

/// Work handed to a thumbnail worker; [`StreamThumbnails::complete`] takes its result.
pub struct Job {
    pub stream: Arc<StreamThumbnails>,
    pub which: Which,
    /// The width asked for (`None`: the picture's own).
    pub width: Option<u32>,
    pub work: Work,
    /// Until when what it makes is reused: its admission plus the interval.
    pub until: Instant,
}

/// What a job made.
pub enum Made {
    /// The keyframe decoded (or why not), and its JPEG at the width asked for.
    Decoded {
        picture: Result<Arc<Picture>, Arc<str>>,
        jpeg: Option<(usize, Bytes)>,
    },
    /// The picture at another width, or why it could not be encoded.
    Encoded(Result<(usize, Bytes), Arc<str>>),
}

/// What was made of one keyframe.
struct Product {
    seq: u64,
    /// Its decode's admission plus the interval: until then it is reused whatever newer
    /// keyframes came.
    until: Instant,
    /// The picture, while it may still be scaled to another width (dropped once a newer
    /// keyframe may be decoded), or why the keyframe did not decode.
    picture: Result<Option<Arc<Picture>>, Arc<str>>,
    /// Its JPEG files by width, least recently made first.
    jpegs: Vec<(usize, Bytes)>,
}

impl Product {
    fn jpeg(&self, width: usize) -> Option<Bytes> {
        self.jpegs
            .iter()
            .find(|(w, _)| *w == width)
            .map(|(_, j)| j.clone())
    }

    fn keep(&mut self, width: usize, jpeg: Bytes) {
        self.jpegs.retain(|(w, _)| *w != width);
        if self.jpegs.len() >= MAX_WIDTHS {
            self.jpegs.remove(0);
        }
        self.jpegs.push((width, jpeg));
    }

    /// The width a JPEG of this product has for `asked` (the picture's own width when
    /// none), when the picture is known; otherwise the largest kept (what was made for no
    /// width asked is the picture's own).
    fn width_for(&self, asked: Option<u32>) -> Option<usize> {
        match (&self.picture, asked) {
            (Ok(Some(p)), _) => Some(output_size(p, asked).0),
            (_, Some(w)) => {
                // The picture is gone; a kept JPEG no wider than asked for that is the
                // widest kept is the one made for this width (widths never exceed the
                // picture's).
                let widest = self.jpegs.iter().map(|(w, _)| *w).max()?;
                Some((w as usize).min(widest))
            }
            (_, None) => self.jpegs.iter().map(|(w, _)| *w).max(),
        }
    }
}

#[derive(Default)]
struct State {
    latest: Option<Keyframe>,
    first: Option<Keyframe>,
    seq: u64,
    products: [Option<Product>; 2],
    /// Work in flight, per [`Which`].
    busy: [bool; 2],
}

/// One stream's thumbnails (see the module's text).
#[derive(Default)]
pub struct StreamThumbnails {
    state: Mutex<State>,
    /// Bumped when a job of the stream completes.
    changed: watch::Sender<u64>,
}

impl StreamThumbnails {
    /// A keyframe of the lead video track arrived (the ingest path: a lock and two clones).
    pub fn keyframe(
        &self,
        config: &Arc<CodecConfig>,
        data: &Bytes,
        dts: Timestamp90k,
        publisher: u64,
        now: Instant,
    ) {
        let mut s = lock(&self.state);
        s.seq += 1;
        let keyframe = Keyframe {
            config: config.clone(),
            data: data.clone(),
            dts,
            publisher,
            seq: s.seq,
        };
        if s.first.as_ref().is_none_or(|f| f.publisher != publisher) {
            s.first = Some(keyframe.clone());
            s.products[Which::First as usize] = None;
        }
        s.latest = Some(keyframe);
        // A picture past its interval will not be scaled again: the next request decodes
        // the new keyframe. Its JPEG files stay, to serve while the budget is spent.
        if let Some(p) = &mut s.products[Which::Latest as usize]
            && now >= p.until
            && let Ok(picture) = &mut p.picture
        {
            *picture = None;
        }
    }

    /// The codec of `which` keyframe, when one came.
    pub fn codec(&self, which: Which) -> Option<&'static str> {
        let s = lock(&self.state);
        let keyframe = match which {
            Which::Latest => &s.latest,
            Which::First => &s.first,
        };
        keyframe.as_ref().map(|k| k.config.name())
    }

    /// A request for the thumbnail of `which` keyframe at `width`, made at most once per
    /// `interval` (`thumbnail.interval`). Work it needs is offered
    /// to `admit` (under the stream's lock), which hands it to a worker or refuses it
    /// (budget spent, queue full); a refused decode falls back to what is cached.
    pub fn request(
        self: &Arc<Self>,
        which: Which,
        width: Option<u32>,
        now: Instant,
        interval: Duration,
        admit: impl FnOnce(Job) -> bool,
    ) -> Answer {
        let mut guard = lock(&self.state);
        let s = &mut *guard;
        let keyframe = match which {
            Which::Latest => &s.latest,
            Which::First => &s.first,
        };
        let Some(keyframe) = keyframe.clone() else {
            return Answer::NoKeyframe;
        };
        if !matches!(*keyframe.config, CodecConfig::H264(_)) {
            return Answer::NoDecoder(keyframe.config.name());
        }
        let i = which as usize;
        if s.busy[i] {
            return Answer::Wait(self.changed.subscribe());
        }
        let product = &s.products[i];
        let fresh = product
            .as_ref()
            .is_some_and(|p| p.seq == keyframe.seq || now < p.until);
        let job = |work| Job {
            stream: self.clone(),
            which,
            width,
            work,
            until: now + interval,
        };
        if let (true, Some(p)) = (fresh, product) {
            let picture = match &p.picture {
                Err(reason) => return Answer::Failed(reason.clone()),
                Ok(picture) => picture.clone(),
            };
            if let Some(jpeg) = p.width_for(width).and_then(|w| p.jpeg(w)) {
                return Answer::Jpeg(jpeg);
            }
            // Fresh, so the picture is still held (it is dropped only once stale).
            let work = match picture {
                Some(picture) => Work::Encode {
                    picture,
                    seq: p.seq,
                },
                None => Work::Decode(keyframe),
            };
            s.busy[i] = true;
            let wait = self.changed.subscribe();
            if admit(job(work)) {
                return Answer::Wait(wait);
            }
            s.busy[i] = false;
            return Answer::Refused;
        }
        s.busy[i] = true;
        let wait = self.changed.subscribe();
        if admit(job(Work::Decode(keyframe))) {
            return Answer::Wait(wait);
        }
        s.busy[i] = false;
        // Refused: what an older keyframe made serves instead.
        match product {
            Some(p) => match (&p.picture, p.width_for(width).and_then(|w| p.jpeg(w))) {
                (_, Some(jpeg)) => Answer::Jpeg(jpeg),
                (Err(reason), None) => Answer::Failed(reason.clone()),
                (Ok(_), None) => Answer::Refused,
            },
            None => Answer::Refused,
        }
    }

    /// A job of this stream finished with `made`.
    pub fn complete(&self, which: Which, work: &Work, until: Instant, made: Made) {
        let mut s = lock(&self.state);
        let i = which as usize;
        s.busy[i] = false;
        match (work, made) {
            (Work::Decode(keyframe), Made::Decoded { picture, jpeg }) => {
                let mut product = Product {
                    seq: keyframe.seq,
                    until,
                    picture: picture.map(Some),
                    jpegs: Vec::new(),
                };
                if let Some((w, j)) = jpeg {
                    product.keep(w, j);
                }
                // The first keyframe of a publish that has since been replaced is not kept.
                let current = match which {
                    Which::Latest => true,
                    Which::First => s.first.as_ref().is_some_and(|f| f.seq == keyframe.seq),
                };
                if current {
                    s.products[i] = Some(product);
                }
            }
            (Work::Encode { seq, .. }, Made::Encoded(result)) => {
                if let Some(p) = s.products[i].as_mut().filter(|p| p.seq == *seq) {
                    match result {
                        Ok((w, j)) => p.keep(w, j),
                        Err(reason) => p.picture = Err(reason),
                    }
                }
            }
            _ => {}
        }
        drop(s);
        self.changed.send_modify(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thumbnail::decode::Colour;

    const TEN: Duration = Duration::from_secs(10);

    fn h264() -> Arc<CodecConfig> {
        let (config, _) = crate::thumbnail::decode::tests::keyframe("testsrc2_320x180.h264");
        Arc::new(CodecConfig::H264(config))
    }

    fn picture() -> Arc<Picture> {
        Arc::new(Picture {
            width: 320,
            height: 180,
            y: vec![0; 320 * 180],
            cb: vec![128; 160 * 90],
            cr: vec![128; 160 * 90],
            colour: Colour::default(),
            sample_aspect: (1, 1),
        })
    }

    /// Runs a job as a worker would, with a made-up JPEG naming its width.
    fn finish(job: Job) {
        let width = job.width.map_or(320, |w| w as usize);
        let jpeg = Bytes::from(format!("jpeg {width}"));
        let made = match &job.work {
            Work::Decode(_) => Made::Decoded {
                picture: Ok(picture()),
                jpeg: Some((width, jpeg)),
            },
            Work::Encode { .. } => Made::Encoded(Ok((width, jpeg))),
        };
        job.stream.complete(job.which, &job.work, job.until, made);
    }

    fn jpeg(answer: Answer) -> String {
        match answer {
            Answer::Jpeg(j) => String::from_utf8(j.to_vec()).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_decode_per_interval_whatever_the_requests() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let stream = Arc::new(StreamThumbnails::default());
        let config = h264();
        assert!(matches!(
            stream.request(Which::Latest, None, t0, TEN, |_| unreachable!()),
            Answer::NoKeyframe
        ));
        stream.keyframe(&config, &Bytes::from_static(b"k1"), Timestamp90k(0), 1, t0);
        let mut jobs = Vec::new();
        let first = stream.request(Which::Latest, None, t0, TEN, |j| {
            jobs.push(j);
            true
        });
        assert!(matches!(first, Answer::Wait(_)));
        // While the decode is in flight, the others wait on it.
        for _ in 0..100 {
            let answer = stream.request(Which::Latest, None, t0, TEN, |_| unreachable!());
            assert!(matches!(answer, Answer::Wait(_)));
        }
        let Answer::Wait(changed) = stream.request(Which::Latest, None, t0, TEN, |_| false) else {
            panic!()
        };
        finish(jobs.pop().unwrap());
        assert!(changed.has_changed().unwrap());
        assert_eq!(
            jpeg(stream.request(Which::Latest, None, t0, TEN, |_| unreachable!())),
            "jpeg 320"
        );
        // A new keyframe within the interval: the picture made is reused.
        stream.keyframe(
            &config,
            &Bytes::from_static(b"k2"),
            Timestamp90k(90_000),
            1,
            at(2),
        );
        assert_eq!(
            jpeg(stream.request(Which::Latest, None, at(9), TEN, |_| unreachable!())),
            "jpeg 320"
        );
        // A new width only encodes.
        let answer = stream.request(Which::Latest, Some(160), at(9), TEN, |j| {
            assert!(matches!(j.work, Work::Encode { .. }));
            jobs.push(j);
            true
        });
        assert!(matches!(answer, Answer::Wait(_)));
        finish(jobs.pop().unwrap());
        assert_eq!(
            jpeg(stream.request(Which::Latest, Some(160), at(9), TEN, |_| unreachable!())),
            "jpeg 160"
        );
        // Past the interval, with a newer keyframe: decoded again.
        let answer = stream.request(Which::Latest, Some(160), at(10), TEN, |j| {
            match &j.work {
                Work::Decode(k) => assert_eq!(&k.data[..], b"k2"),
                other => panic!("{other:?}"),
            }
            jobs.push(j);
            true
        });
        assert!(matches!(answer, Answer::Wait(_)));
    }

    #[test]
    fn a_spent_budget_serves_what_is_cached_or_refuses() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let stream = Arc::new(StreamThumbnails::default());
        let config = h264();
        stream.keyframe(&config, &Bytes::from_static(b"k1"), Timestamp90k(0), 1, t0);
        assert!(matches!(
            stream.request(Which::Latest, None, t0, TEN, |_| false),
            Answer::Refused
        ));
        let mut jobs = Vec::new();
        stream.request(Which::Latest, None, t0, TEN, |j| {
            jobs.push(j);
            true
        });
        finish(jobs.pop().unwrap());
        // Stale (a newer keyframe, the interval passed) and no budget: the stale JPEG.
        stream.keyframe(
            &config,
            &Bytes::from_static(b"k2"),
            Timestamp90k(0),
            1,
            at(20),
        );
        assert_eq!(
            jpeg(stream.request(Which::Latest, None, at(20), TEN, |_| false)),
            "jpeg 320"
        );
        // The picture was let go with the new keyframe; a width never made is refused.
        assert!(matches!(
            stream.request(Which::Latest, Some(100), at(20), TEN, |_| false),
            Answer::Refused
        ));
    }

    #[test]
    fn a_failure_is_kept_for_the_interval_and_other_codecs_are_named() {
        let t0 = Instant::now();
        let stream = Arc::new(StreamThumbnails::default());
        stream.keyframe(&h264(), &Bytes::from_static(b"bad"), Timestamp90k(0), 1, t0);
        let mut jobs = Vec::new();
        stream.request(Which::Latest, None, t0, TEN, |j| {
            jobs.push(j);
            true
        });
        let job = jobs.pop().unwrap();
        let made = Made::Decoded {
            picture: Err("bitstream truncated".into()),
            jpeg: None,
        };
        stream.complete(job.which, &job.work, job.until, made);
        match stream.request(Which::Latest, None, t0, TEN, |_| unreachable!()) {
            Answer::Failed(reason) => assert_eq!(&*reason, "bitstream truncated"),
            other => panic!("{other:?}"),
        }
        let hevc = {
            // ffmpeg 9 + libx265, 202x122, as FLV's SequenceStart.
            let record = Bytes::from(crate::codec::test_util::hex(
                "0101600000009000000000003cf000fcfdf8f800000f03200001001840010c01\
                 ffff01600000030090000003000003003c959809210001002a42010101600000030090000003\
                 000003003ca01a2020724996566924caf0168080000003008000000c8422000100074401c172\
                 b46240",
            ));
            Arc::new(CodecConfig::Hevc(
                crate::codec::hevc::HevcConfig::parse(&record).unwrap(),
            ))
        };
        stream.keyframe(&hevc, &Bytes::from_static(b"h"), Timestamp90k(0), 2, t0);
        assert!(matches!(
            stream.request(Which::Latest, None, t0, TEN, |_| unreachable!()),
            Answer::NoDecoder("HEVC")
        ));
        // The first keyframe of the new publish is the HEVC one.
        assert!(matches!(
            stream.request(Which::First, None, t0, TEN, |_| unreachable!()),
            Answer::NoDecoder("HEVC")
        ));
    }
}
