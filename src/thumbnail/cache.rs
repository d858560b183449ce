//! One stream's thumbnails: its latest keyframe of the lead video track (and the first of
//! the current publish), the pictures decoded from them and the JPEG files made of those,
//! and the rule for when work may start: a keyframe is decoded at most once per interval
//! whatever the request rate, requests that come while the stream's work is in flight wait
//! for it, and a new width of a picture still held is only scaled and encoded.
//!
//! A decoded picture is held by the worker that made it, until its interval ends (see
//! `service`), or sooner when the stream goes, its product is replaced or the workers hold too
//! much; a stream keeps only a weak handle to it and the JPEG files, so a stream whose
//! keyframes stop, or its first keyframe's picture, holds no picture past the interval, and
//! no picture is freed on the ingest or HTTP path. A failure is answered until its interval
//! ends, then the keyframe is tried again.
//!
//! It lives on the stream (`hub::stream::Stream`), so it goes when the stream goes. Setting a
//! keyframe, on the ingest path, is a lock and a clone of two handles (no copy of the frame).

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use super::decode::Picture;
use super::scale::{WIDTHS, output_width};
use crate::hub::stream::lock;
use crate::media::codec::CodecConfig;

/// JPEG widths kept per picture: every width one can be made at (asked widths are rounded
/// to [`WIDTHS`], or the picture's own), so none is made twice per picture.
pub const MAX_WIDTHS: usize = WIDTHS.len() + 1;

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
    /// Work for this thumbnail is in flight: ask again once this changes, unless its
    /// `refused` count for the keyframe asked has grown past the one given (as it was when
    /// the wait began): see [`Completions`].
    Wait(watch::Receiver<Completions>, Completions),
    /// The CPU budget is spent (or the workers' queue full) and nothing is cached.
    Refused,
}

/// What a job does.
#[derive(Clone, Debug)]
pub enum Work {
    /// Decode the keyframe, then scale and encode the picture.
    Decode(Keyframe),
    /// Scale and encode a picture still held (decoded from keyframe `seq`) at another width.
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
    /// Not started: the CPU budget was in debt when a worker took the job.
    Refused,
}

/// What was made of one keyframe.
struct Product {
    seq: u64,
    /// Its decode's admission plus the interval: until then it is reused whatever newer
    /// keyframes came.
    until: Instant,
    /// The picture while its worker holds it (until `until`), or why the keyframe did not
    /// decode.
    picture: Result<Weak<Picture>, Arc<str>>,
    /// The picture's width (what widths asked for are bounded by).
    width: usize,
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
    /// none).
    fn width_for(&self, asked: Option<u32>) -> usize {
        output_width(self.width, asked)
    }
}

/// What a stream's waiters are woken with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Completions {
    /// Jobs of the stream completed.
    pub jobs: u64,
    /// Jobs a worker refused (the CPU budget in debt), per [`Which`]: a waiter that sees
    /// this grow answers busy rather than offering the job again.
    pub refused: [u64; 2],
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
    changed: watch::Sender<Completions>,
}

impl State {
    /// The latest or the first keyframe.
    fn keyframe(&self, which: Which) -> &Option<Keyframe> {
        match which {
            Which::Latest => &self.latest,
            Which::First => &self.first,
        }
    }
}

impl StreamThumbnails {
    /// A keyframe of the lead video track arrived (the ingest path: a lock and two clones).
    pub fn keyframe(&self, config: &Arc<CodecConfig>, data: &Bytes, publisher: u64) {
        let mut s = lock(&self.state);
        s.seq += 1;
        let keyframe = Keyframe {
            config: config.clone(),
            data: data.clone(),
            publisher,
            seq: s.seq,
        };
        if s.first.as_ref().is_none_or(|f| f.publisher != publisher) {
            s.first = Some(keyframe.clone());
            s.products[Which::First as usize] = None;
        }
        // What the older keyframe made stays, to serve while the budget is spent.
        s.latest = Some(keyframe);
    }

    /// The codec of `which` keyframe, when one came.
    pub fn codec(&self, which: Which) -> Option<&'static str> {
        let s = lock(&self.state);
        s.keyframe(which).as_ref().map(|k| k.config.name())
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
        admit: impl FnOnce(Job) -> Result<(), Job>,
    ) -> Answer {
        // A refused job (and the picture it may hold) is dropped after the lock.
        let mut refused = None;
        let admit = |job| match admit(job) {
            Ok(()) => true,
            Err(job) => {
                refused = Some(job);
                false
            }
        };
        let mut guard = lock(&self.state);
        let s = &mut *guard;
        let Some(keyframe) = s.keyframe(which).clone() else {
            return Answer::NoKeyframe;
        };
        if !matches!(*keyframe.config, CodecConfig::H264(_)) {
            return Answer::NoDecoder(keyframe.config.name());
        }
        let i = which as usize;
        if s.busy[i] {
            let (changed, seen) = self.subscribe();
            return Answer::Wait(changed, seen);
        }
        let product = &s.products[i];
        // A failure is final only until its interval ends; then the keyframe is tried again.
        let fresh = product
            .as_ref()
            .is_some_and(|p| now < p.until || (p.seq == keyframe.seq && p.picture.is_ok()));
        let job = |work| Job {
            stream: self.clone(),
            which,
            width,
            work,
            until: now + interval,
        };
        if let (true, Some(p)) = (fresh, product) {
            // A width made before a failure (say of another width's encode) is still served.
            if let Some(jpeg) = p.jpeg(p.width_for(width)) {
                return Answer::Jpeg(jpeg);
            }
            let picture = match &p.picture {
                Err(reason) => return Answer::Failed(reason.clone()),
                Ok(picture) => picture.upgrade(),
            };
            // A new width: scaled from the picture while it is held, else decoded again.
            let work = match picture {
                Some(picture) => Work::Encode {
                    picture,
                    seq: p.seq,
                },
                None => Work::Decode(keyframe),
            };
            s.busy[i] = true;
            let (changed, seen) = self.subscribe();
            if admit(job(work)) {
                return Answer::Wait(changed, seen);
            }
            s.busy[i] = false;
            return Answer::Refused;
        }
        s.busy[i] = true;
        let (changed, seen) = self.subscribe();
        if admit(job(Work::Decode(keyframe))) {
            return Answer::Wait(changed, seen);
        }
        s.busy[i] = false;
        // Refused: what an older keyframe made serves instead.
        match product {
            Some(p) => match (&p.picture, p.jpeg(p.width_for(width))) {
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
        let first = s.first.as_ref().map(|f| f.seq);
        match (work, made) {
            // The first keyframe of a publish that has since been replaced is not kept.
            (Work::Decode(keyframe), Made::Decoded { picture, jpeg })
                if which == Which::Latest || first == Some(keyframe.seq) =>
            {
                // The same keyframe decoded again (its picture let go): its files stay.
                let jpegs = match s.products[i].take() {
                    Some(p) if p.seq == keyframe.seq => p.jpegs,
                    _ => Vec::new(),
                };
                let mut product = Product {
                    seq: keyframe.seq,
                    until,
                    width: picture.as_ref().map_or(0, |p| p.width),
                    picture: picture.as_ref().map(Arc::downgrade).map_err(Arc::clone),
                    jpegs,
                };
                if let Some((w, j)) = jpeg {
                    product.keep(w, j);
                }
                s.products[i] = Some(product);
            }
            (Work::Encode { seq, .. }, Made::Encoded(result)) => {
                if let Some(p) = s.products[i].as_mut().filter(|p| p.seq == *seq) {
                    match result {
                        Ok((w, j)) => p.keep(w, j),
                        Err(reason) => p.picture = Err(reason),
                    }
                }
            }
            (_, Made::Refused) => self.changed.send_modify(|c| c.refused[i] += 1),
            _ => {}
        }
        // Sent under the stream's lock, so a waiter's count (taken under it) is exact.
        self.changed.send_modify(|c| c.jobs += 1);
    }

    /// A receiver of the stream's completions and their counts as it starts (called under
    /// the stream's lock).
    fn subscribe(&self) -> (watch::Receiver<Completions>, Completions) {
        let changed = self.changed.subscribe();
        let seen = *changed.borrow();
        (changed, seen)
    }

    /// Whether the product of `which` keyframe is still the one made of keyframe `seq` (a
    /// worker lets go of a picture whose product is gone).
    pub fn has_product(&self, which: Which, seq: u64) -> bool {
        lock(&self.state).products[which as usize]
            .as_ref()
            .is_some_and(|p| p.seq == seq)
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

    /// Runs a job as a worker would, with a made-up JPEG naming its width; gives the
    /// picture decoded, which a worker holds until the job's interval ends.
    fn finish(job: Job) -> Option<Arc<Picture>> {
        let width = output_width(320, job.width);
        let jpeg = Bytes::from(format!("jpeg {width}"));
        let (made, held) = match &job.work {
            Work::Decode(_) => {
                let picture = picture();
                let made = Made::Decoded {
                    picture: Ok(picture.clone()),
                    jpeg: Some((width, jpeg)),
                };
                (made, Some(picture))
            }
            Work::Encode { .. } => (Made::Encoded(Ok((width, jpeg))), None),
        };
        job.stream.complete(job.which, &job.work, job.until, made);
        held
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
        stream.keyframe(&config, &Bytes::from_static(b"k1"), 1);
        let mut jobs = Vec::new();
        let first = stream.request(Which::Latest, None, t0, TEN, |j| {
            jobs.push(j);
            Ok(())
        });
        assert!(matches!(first, Answer::Wait(..)));
        // While the decode is in flight, the others wait on it.
        for _ in 0..100 {
            let answer = stream.request(Which::Latest, None, t0, TEN, |_| unreachable!());
            assert!(matches!(answer, Answer::Wait(..)));
        }
        let Answer::Wait(changed, _) = stream.request(Which::Latest, None, t0, TEN, Err) else {
            panic!()
        };
        let held = finish(jobs.pop().unwrap());
        assert!(changed.has_changed().unwrap());
        assert_eq!(
            jpeg(stream.request(Which::Latest, None, t0, TEN, |_| unreachable!())),
            "jpeg 320"
        );
        // A new keyframe within the interval: the picture made is reused.
        stream.keyframe(&config, &Bytes::from_static(b"k2"), 1);
        assert_eq!(
            jpeg(stream.request(Which::Latest, None, at(9), TEN, |_| unreachable!())),
            "jpeg 320"
        );
        // A new width only encodes, while the picture is held.
        let answer = stream.request(Which::Latest, Some(160), at(9), TEN, |j| {
            assert!(matches!(j.work, Work::Encode { .. }));
            jobs.push(j);
            Ok(())
        });
        assert!(matches!(answer, Answer::Wait(..)));
        finish(jobs.pop().unwrap());
        // Widths are rounded: 100 and 160 are the same file.
        assert_eq!(
            jpeg(stream.request(Which::Latest, Some(100), at(9), TEN, |_| unreachable!())),
            "jpeg 160"
        );
        // Its interval over, the worker lets the picture go: the stream holds none.
        drop(held);
        assert!(
            stream.state.lock().unwrap().products[0]
                .as_ref()
                .is_some_and(|p| p.picture.as_ref().unwrap().upgrade().is_none())
        );
        // Past the interval, with a newer keyframe: decoded again.
        let answer = stream.request(Which::Latest, Some(160), at(10), TEN, |j| {
            match &j.work {
                Work::Decode(k) => assert_eq!(&k.data[..], b"k2"),
                other => panic!("{other:?}"),
            }
            jobs.push(j);
            Ok(())
        });
        assert!(matches!(answer, Answer::Wait(..)));
    }

    #[test]
    fn a_spent_budget_serves_what_is_cached_or_refuses() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let stream = Arc::new(StreamThumbnails::default());
        let config = h264();
        stream.keyframe(&config, &Bytes::from_static(b"k1"), 1);
        assert!(matches!(
            stream.request(Which::Latest, None, t0, TEN, Err),
            Answer::Refused
        ));
        let mut jobs = Vec::new();
        stream.request(Which::Latest, None, t0, TEN, |j| {
            jobs.push(j);
            Ok(())
        });
        let _held = finish(jobs.pop().unwrap());
        // Stale (a newer keyframe, the interval passed) and no budget: the stale JPEG.
        stream.keyframe(&config, &Bytes::from_static(b"k2"), 1);
        assert_eq!(
            jpeg(stream.request(Which::Latest, None, at(20), TEN, Err)),
            "jpeg 320"
        );
        // A width never made is refused.
        assert!(matches!(
            stream.request(Which::Latest, Some(100), at(20), TEN, Err),
            Answer::Refused
        ));
    }

    #[test]
    fn a_keyframe_whose_picture_was_let_go_decodes_again_and_keeps_its_files() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let stream = Arc::new(StreamThumbnails::default());
        stream.keyframe(&h264(), &Bytes::from_static(b"k1"), 1);
        let mut jobs = Vec::new();
        stream.request(Which::First, None, t0, TEN, |j| {
            jobs.push(j);
            Ok(())
        });
        drop(finish(jobs.pop().unwrap()));
        // No newer first keyframe, but the picture is gone: a new width decodes again.
        stream.request(Which::First, Some(160), at(30), TEN, |j| {
            assert!(matches!(j.work, Work::Decode(_)));
            jobs.push(j);
            Ok(())
        });
        let _held = finish(jobs.pop().unwrap());
        for (width, made) in [(None, "jpeg 320"), (Some(160), "jpeg 160")] {
            let answer = stream.request(Which::First, width, at(30), TEN, |_| unreachable!());
            assert_eq!(jpeg(answer), made);
        }
    }

    #[test]
    fn a_failed_width_does_not_hide_one_made_before() {
        let t0 = Instant::now();
        let stream = Arc::new(StreamThumbnails::default());
        stream.keyframe(&h264(), &Bytes::from_static(b"k1"), 1);
        let mut jobs = Vec::new();
        stream.request(Which::First, None, t0, TEN, |j| {
            jobs.push(j);
            Ok(())
        });
        let _held = finish(jobs.pop().unwrap());
        stream.request(Which::First, Some(160), t0, TEN, |j| {
            jobs.push(j);
            Ok(())
        });
        let job = jobs.pop().unwrap();
        let made = Made::Encoded(Err("out of memory".into()));
        stream.complete(job.which, &job.work, job.until, made);
        assert_eq!(
            jpeg(stream.request(Which::First, None, t0, TEN, |_| unreachable!())),
            "jpeg 320"
        );
        assert!(matches!(
            stream.request(Which::First, Some(160), t0, TEN, |_| unreachable!()),
            Answer::Failed(_)
        ));
    }

    #[test]
    fn a_failure_is_tried_again_once_its_interval_ends() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let stream = Arc::new(StreamThumbnails::default());
        stream.keyframe(&h264(), &Bytes::from_static(b"k1"), 1);
        let mut jobs = Vec::new();
        stream.request(Which::First, None, t0, TEN, |j| {
            jobs.push(j);
            Ok(())
        });
        let job = jobs.pop().unwrap();
        let made = Made::Decoded {
            picture: Err("bitstream truncated".into()),
            jpeg: None,
        };
        stream.complete(job.which, &job.work, job.until, made);
        assert!(matches!(
            stream.request(Which::First, None, at(9), TEN, |_| unreachable!()),
            Answer::Failed(_)
        ));
        // The same keyframe (the first is never replaced), its failure's interval over.
        let answer = stream.request(Which::First, None, at(10), TEN, |j| {
            assert!(matches!(j.work, Work::Decode(_)));
            jobs.push(j);
            Ok(())
        });
        assert!(matches!(answer, Answer::Wait(..)));
        let _held = finish(jobs.pop().unwrap());
        assert_eq!(
            jpeg(stream.request(Which::First, None, at(10), TEN, |_| unreachable!())),
            "jpeg 320"
        );
    }

    #[test]
    fn a_failure_is_kept_for_the_interval_and_other_codecs_are_named() {
        let t0 = Instant::now();
        let stream = Arc::new(StreamThumbnails::default());
        stream.keyframe(&h264(), &Bytes::from_static(b"bad"), 1);
        let mut jobs = Vec::new();
        stream.request(Which::Latest, None, t0, TEN, |j| {
            jobs.push(j);
            Ok(())
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
        stream.keyframe(&hevc, &Bytes::from_static(b"h"), 2);
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
