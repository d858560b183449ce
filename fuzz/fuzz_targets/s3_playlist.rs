//! The bucket's copy of a playlist (`storage::playlist`): gaps and continuation.
//!
//! Input: a mask byte (which segment URIs count as missing from the bucket: a URI whose
//! length modulo 8 has its bit set), then pieces separated by NUL bytes: the bucket's
//! earlier copy, then successive versions of the node's playlist.
//!
//! Properties: no panic; every rewritten version is a media playlist that lists at least
//! one segment, none of them missing, and exactly the node's last segments in order (a gap
//! cuts the top, never the middle); the first version continuing an earlier copy with
//! segments starts past that copy's last sequence number and last discontinuity number
//! (unless the numbers overflow).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtmp_server::storage::playlist::{Parsed, Rewrite};
use rtmp_server_fuzz::input::Input;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mask = input.byte();
    let missing = |uri: &str| mask & (1 << (uri.len() % 8)) != 0;
    let text = String::from_utf8_lossy(input.rest()).into_owned();
    let mut pieces = text.split('\0');
    let old = pieces.next().unwrap_or_default();
    let versions: Vec<&str> = pieces.collect();
    let Some(first) = versions.first() else {
        let _ = Rewrite::fresh().apply(old, missing);
        return;
    };
    let mut rewrite = Rewrite::continuing(old, first);
    // Continued only when the first version is a playlist.
    let old_last = Parsed::parse(old)
        .and_then(|p| p.last_numbers())
        .filter(|_| Parsed::parse(first).is_some());
    for (i, version) in versions.iter().enumerate() {
        let Some(out) = rewrite.apply(version, missing) else {
            continue;
        };
        let parsed = Parsed::parse(&out.text).expect("a rewritten version parses");
        let listed: Vec<&str> = parsed.segment_uris().collect();
        assert!(!listed.is_empty(), "an empty version:\n{}", out.text);
        assert!(listed.iter().all(|u| !missing(u)), "lists a missing segment:\n{}", out.text);
        assert_eq!(listed, out.uris, "the listed URIs are not the ones reported");
        let node: Vec<&str> = Parsed::parse(version)
            .expect("a version that rewrites parses")
            .segment_uris()
            .collect();
        assert!(node.ends_with(&listed), "not the node's last segments:\n{}", out.text);
        if i == 0 {
            if let Some((seq, disc)) = old_last {
                let first_disc = parsed.discontinuity_sequence()
                    + u64::from(out.text.contains("#EXT-X-DISCONTINUITY\n"));
                if seq < u64::MAX / 2 && disc < u64::MAX / 2 {
                    assert!(parsed.media_sequence() > seq, "went back:\n{old}\n->\n{}", out.text);
                    assert!(first_disc > disc, "discontinuity reused:\n{old}\n->\n{}", out.text);
                }
            }
        }
    }
});
