//! The server side of the RTMP handshake: C0+C1 in, S0+S1+S2 out, C2 in.
//!
//! Two kinds of C1 are in use. The plain one of the specification has zeros at bytes 4..8
//! and is answered with an S2 that echoes C1. The "complex" one that Flash Player introduced
//! and ffmpeg, librtmp (OBS) and most hardware encoders still send carries an HMAC-SHA256
//! digest at a position derived from C1 itself; such a client expects an S1 with a digest
//! made with the Flash Media Server key and an S2 signed with a key derived from its own
//! digest (ffmpeg checks both when it plays). A C1 that announces a version but whose digest
//! does not verify under either scheme is answered the plain way, as Flash Media Server did.
//!
//! Spec: RTMP 1.0 §5.2 (C0/S0 §5.2.2, C1/S1 §5.2.3, C2/S2 §5.2.4). The digest scheme is not
//! in the specification; its layout follows the clients that send it (ffmpeg's rtmpproto.c
//! `rtmp_handshake_imprint_with_digest`, librtmp's handshake.h).

use bytes::{Buf, BufMut, BytesMut};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::error::HandshakeError;

/// The RTMP version in C0/S0. Spec: RTMP 1.0 §5.2.2.
pub const RTMP_VERSION: u8 = 3;

/// Length of C1, S1, C2 and S2. Spec: RTMP 1.0 §5.2.3.
pub const HANDSHAKE_SIZE: usize = 1536;

/// Bytes the client sends during the handshake: C0, C1 and C2.
pub const CLIENT_HANDSHAKE_LEN: usize = 1 + 2 * HANDSHAKE_SIZE;

/// Length of an HMAC-SHA256 digest.
const DIGEST_LEN: usize = 32;

/// The key a Flash Player (or anything posing as one) signs C1 with: the text
/// "Genuine Adobe Flash Player 001".
const PLAYER_KEY: &[u8; 30] = b"Genuine Adobe Flash Player 001";

/// The key a Flash Media Server signs S1 with, followed by the 32 bytes that, appended,
/// make the key from which the S2 signing key is derived.
const SERVER_KEY: [u8; 68] = {
    let text = b"Genuine Adobe Flash Media Server 001";
    let tail: [u8; 32] = [
        0xf0, 0xee, 0xc2, 0x4a, 0x80, 0x68, 0xbe, 0xe8, 0x2e, 0x00, 0xd0, 0xd1, 0x02, 0x9e, 0x7e,
        0x57, 0x6e, 0xec, 0x5d, 0x2d, 0x29, 0x80, 0x6f, 0xab, 0x93, 0xb8, 0xe6, 0x36, 0xcf, 0xeb,
        0x31, 0xae,
    ];
    let mut key = [0u8; 68];
    let mut i = 0;
    while i < text.len() {
        key[i] = text[i];
        i += 1;
    }
    while i < 68 {
        key[i] = tail[i - text.len()];
        i += 1;
    }
    key
};

/// The part of [`SERVER_KEY`] that signs S1: the text alone.
const SERVER_KEY_TEXT_LEN: usize = 36;

/// The version S1 announces in its second field when answering a digest C1: a Flash Media
/// Server version (ffmpeg only verifies S1 when this major version is at least 3).
const SERVER_VERSION: [u8; 4] = [4, 5, 0, 1];

/// Where the digest sits in a 1536-byte C1/S1: the four bytes at `base` are summed, and the
/// digest starts `sum % 728` bytes after `base + 4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DigestScheme {
    /// Digest in the first half: offset bytes at 8..12. ffmpeg and librtmp send this one.
    Scheme0,
    /// Digest in the second half: offset bytes at 772..776.
    Scheme1,
}

impl DigestScheme {
    /// Offset of the digest in `block` (which is [`HANDSHAKE_SIZE`] bytes long).
    fn digest_offset(self, block: &[u8; HANDSHAKE_SIZE]) -> usize {
        let base = match self {
            DigestScheme::Scheme0 => 8,
            DigestScheme::Scheme1 => 772,
        };
        let sum: usize = block[base..base + 4].iter().map(|&b| usize::from(b)).sum();
        base + 4 + sum % 728
    }
}

/// HMAC-SHA256 of `block` without the 32 bytes at `gap`.
fn digest_without_gap(key: &[u8], block: &[u8; HANDSHAKE_SIZE], gap: usize) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(&block[..gap]);
    ctx.update(&block[gap + DIGEST_LEN..]);
    ctx.sign()
}

/// The digest scheme C1 was signed with and the digest itself, if it verifies.
fn find_client_digest(c1: &[u8; HANDSHAKE_SIZE]) -> Option<(DigestScheme, [u8; DIGEST_LEN])> {
    [DigestScheme::Scheme0, DigestScheme::Scheme1]
        .into_iter()
        .find_map(|scheme| {
            let at = scheme.digest_offset(c1);
            let expected = digest_without_gap(PLAYER_KEY, c1, at);
            let mut digest = [0u8; DIGEST_LEN];
            digest.copy_from_slice(&c1[at..at + DIGEST_LEN]);
            (expected.as_ref() == digest).then_some((scheme, digest))
        })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for C0 and C1.
    AwaitC0C1,
    /// S0, S1 and S2 are out; waiting for C2.
    AwaitC2,
    /// C2 has been consumed.
    Done,
}

/// The server side of one connection's handshake.
pub struct Handshake {
    state: State,
    rng: SystemRandom,
}

impl Default for Handshake {
    fn default() -> Handshake {
        Handshake::new()
    }
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Handshake {
    pub fn new() -> Handshake {
        Handshake {
            state: State::AwaitC0C1,
            rng: SystemRandom::new(),
        }
    }

    /// Consumes handshake bytes from `input`; appends S0+S1+S2 to `out` as soon as C0+C1
    /// are in. Returns `Ok(true)` once C2 has been consumed; bytes after C2 stay in `input`
    /// (clients send `connect` right behind C2). A wrong version in C0 is reported as soon
    /// as its one byte is there.
    pub fn feed(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<bool, HandshakeError> {
        loop {
            match self.state {
                State::AwaitC0C1 => {
                    let Some(&version) = input.first() else {
                        return Ok(false);
                    };
                    if version != RTMP_VERSION {
                        return Err(HandshakeError::UnsupportedVersion { version });
                    }
                    if input.len() < 1 + HANDSHAKE_SIZE {
                        return Ok(false);
                    }
                    input.advance(1);
                    let mut c1 = [0u8; HANDSHAKE_SIZE];
                    input.copy_to_slice(&mut c1);
                    self.answer(&c1, out)?;
                    self.state = State::AwaitC2;
                }
                State::AwaitC2 => {
                    if input.len() < HANDSHAKE_SIZE {
                        return Ok(false);
                    }
                    // C2 should echo S1 (§5.2.4). Clients disagree on what exactly they echo,
                    // and nothing depends on it, so it is not checked.
                    input.advance(HANDSHAKE_SIZE);
                    self.state = State::Done;
                }
                State::Done => return Ok(true),
            }
        }
    }

    /// Appends S0, S1 and S2 answering `c1`.
    fn answer(&self, c1: &[u8; HANDSHAKE_SIZE], out: &mut BytesMut) -> Result<(), HandshakeError> {
        out.reserve(1 + 2 * HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        // C1 bytes 4..8 are zero in the plain handshake (§5.2.3) and carry the client's
        // version when it signed C1.
        let client_digest = if c1[4..8] == [0; 4] {
            None
        } else {
            let found = find_client_digest(c1);
            if found.is_none() {
                tracing::debug!(
                    "C1 announces a client version but no digest verifies; answering plainly"
                );
            }
            found
        };

        // S1: time (0: this side has no clock to share), zero or version, random bytes.
        let mut s1 = [0u8; HANDSHAKE_SIZE];
        self.rng
            .fill(&mut s1[8..])
            .map_err(|_| HandshakeError::RandomUnavailable)?;
        match client_digest {
            None => {
                out.put_slice(&s1);
                // S2 echoes C1 (§5.2.4): time, time2 and random echo are all C1's.
                out.put_slice(c1);
            }
            Some((scheme, c1_digest)) => {
                s1[4..8].copy_from_slice(&SERVER_VERSION);
                let at = scheme.digest_offset(&s1);
                let digest = digest_without_gap(&SERVER_KEY[..SERVER_KEY_TEXT_LEN], &s1, at);
                s1[at..at + DIGEST_LEN].copy_from_slice(digest.as_ref());
                out.put_slice(&s1);

                // S2: random bytes, signed in the last 32 with a key derived from C1's digest.
                let mut s2 = [0u8; HANDSHAKE_SIZE];
                self.rng
                    .fill(&mut s2[..HANDSHAKE_SIZE - DIGEST_LEN])
                    .map_err(|_| HandshakeError::RandomUnavailable)?;
                let signature = s2_signature(&c1_digest, &s2[..HANDSHAKE_SIZE - DIGEST_LEN]);
                s2[HANDSHAKE_SIZE - DIGEST_LEN..].copy_from_slice(signature.as_ref());
                out.put_slice(&s2);
            }
        }
        Ok(())
    }
}

/// The signature in the last 32 bytes of S2: HMAC-SHA256 keyed with
/// HMAC-SHA256(full server key, C1 digest), over the S2 bytes before it.
fn s2_signature(c1_digest: &[u8; DIGEST_LEN], s2_body: &[u8]) -> hmac::Tag {
    let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &SERVER_KEY), c1_digest);
    hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        s2_body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// C0+C1 that ffmpeg 5.1 sent when publishing (testdata/rtmp/README.md).
    const FFMPEG_C0C1: &[u8] = include_bytes!("../../testdata/rtmp/ffmpeg-5.1_c0c1.bin");

    fn block(bytes: &[u8]) -> [u8; HANDSHAKE_SIZE] {
        let mut b = [0u8; HANDSHAKE_SIZE];
        b.copy_from_slice(bytes);
        b
    }

    /// A plain C1: time, zero, pseudo-random bytes.
    fn plain_c1() -> [u8; HANDSHAKE_SIZE] {
        let mut c1 = [0u8; HANDSHAKE_SIZE];
        c1[..4].copy_from_slice(&1234u32.to_be_bytes());
        for (i, b) in c1.iter_mut().enumerate().skip(8) {
            *b = (i * 7 + 3) as u8;
        }
        c1
    }

    /// A C1 signed the way ffmpeg/librtmp sign it, with the given scheme.
    fn digest_c1(scheme: DigestScheme) -> [u8; HANDSHAKE_SIZE] {
        let mut c1 = plain_c1();
        c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
        let at = scheme.digest_offset(&c1);
        let digest = digest_without_gap(PLAYER_KEY, &c1, at);
        c1[at..at + DIGEST_LEN].copy_from_slice(digest.as_ref());
        c1
    }

    /// Client bytes: C0, C1, a C2 of filler, then `after`.
    fn client_bytes(c1: &[u8; HANDSHAKE_SIZE], after: &[u8]) -> Vec<u8> {
        let mut v = vec![RTMP_VERSION];
        v.extend_from_slice(c1);
        v.extend_from_slice(&[0x5a; HANDSHAKE_SIZE]);
        v.extend_from_slice(after);
        v
    }

    /// Feeds `pieces` one after another until the handshake is done; returns the server
    /// bytes, whether the handshake finished and what was left in the input.
    fn run(pieces: &[&[u8]]) -> (Vec<u8>, bool, Vec<u8>) {
        let mut hs = Handshake::new();
        let mut input = BytesMut::new();
        let mut out = BytesMut::new();
        let mut done = false;
        for piece in pieces {
            input.extend_from_slice(piece);
            // Once the handshake is over, later bytes belong to the session.
            if !done {
                done = hs.feed(&mut input, &mut out).expect("valid handshake");
            }
        }
        (out.to_vec(), done, input.to_vec())
    }

    /// Checks a digest answer to `c1`: S0 version, S1 digest under `scheme`, S2 signature.
    fn assert_digest_answer(c1: &[u8; HANDSHAKE_SIZE], scheme: DigestScheme, out: &[u8]) {
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(out[0], RTMP_VERSION);
        let s1 = block(&out[1..1 + HANDSHAKE_SIZE]);
        let s2 = &out[1 + HANDSHAKE_SIZE..];
        assert_eq!(s1[..4], [0; 4]);
        assert_eq!(s1[4..8], SERVER_VERSION);
        let at = scheme.digest_offset(&s1);
        let expected = digest_without_gap(&SERVER_KEY[..SERVER_KEY_TEXT_LEN], &s1, at);
        assert_eq!(&s1[at..at + DIGEST_LEN], expected.as_ref(), "S1 digest");
        // ffmpeg's check of S2, written out independently of s2_signature().
        let (found_scheme, c1_digest) = find_client_digest(c1).expect("C1 is signed");
        assert_eq!(found_scheme, scheme);
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &SERVER_KEY[..]),
            &c1_digest,
        );
        let signature = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            &s2[..HANDSHAKE_SIZE - DIGEST_LEN],
        );
        assert_eq!(
            &s2[HANDSHAKE_SIZE - DIGEST_LEN..],
            signature.as_ref(),
            "S2 signature"
        );
    }

    #[test]
    fn server_key_is_text_then_constant() {
        assert_eq!(&SERVER_KEY[..36], b"Genuine Adobe Flash Media Server 001");
        assert_eq!(SERVER_KEY[36], 0xf0);
        assert_eq!(SERVER_KEY[67], 0xae);
    }

    #[test]
    fn plain_c1_gets_echo_s2_in_every_split() {
        let c1 = plain_c1();
        let after = b"\x03after";
        let all = client_bytes(&c1, after);
        for split in 0..=all.len() {
            let (out, done, rest) = run(&[&all[..split], &all[split..]]);
            assert!(done, "split {split}");
            assert_eq!(rest, after, "split {split}");
            assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
            assert_eq!(out[0], RTMP_VERSION);
            assert_eq!(out[1..9], [0; 8], "S1 time and zero");
            assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..], "S2 echoes C1");
        }
    }

    #[test]
    fn plain_handshake_byte_by_byte() {
        let c1 = plain_c1();
        let all = client_bytes(&c1, b"");
        let pieces: Vec<&[u8]> = all.chunks(1).collect();
        let (out, done, rest) = run(&pieces);
        assert!(done);
        assert!(rest.is_empty());
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..]);
    }

    #[test]
    fn answer_goes_out_once_c1_is_complete() {
        let c1 = plain_c1();
        let all = client_bytes(&c1, b"");
        let mut hs = Handshake::new();
        let mut input = BytesMut::from(&all[..HANDSHAKE_SIZE]);
        let mut out = BytesMut::new();
        assert!(!hs.feed(&mut input, &mut out).expect("valid"));
        assert!(out.is_empty(), "nothing before C1 is complete");
        input.extend_from_slice(&all[HANDSHAKE_SIZE..HANDSHAKE_SIZE + 1]);
        assert!(!hs.feed(&mut input, &mut out).expect("valid"));
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert!(input.is_empty());
        input.extend_from_slice(&all[HANDSHAKE_SIZE + 1..]);
        assert!(hs.feed(&mut input, &mut out).expect("valid"));
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE, "nothing more after C2");
        // Further calls keep reporting completion and leave input alone.
        input.extend_from_slice(b"xyz");
        assert!(hs.feed(&mut input, &mut out).expect("done"));
        assert_eq!(&input[..], b"xyz");
    }

    #[test]
    fn digest_c1_scheme_0_in_every_split() {
        let c1 = digest_c1(DigestScheme::Scheme0);
        let all = client_bytes(&c1, b"tail");
        for split in 0..=all.len() {
            let (out, done, rest) = run(&[&all[..split], &all[split..]]);
            assert!(done, "split {split}");
            assert_eq!(rest, b"tail");
            assert_digest_answer(&c1, DigestScheme::Scheme0, &out);
        }
        let pieces: Vec<&[u8]> = all.chunks(1).collect();
        let (out, done, rest) = run(&pieces);
        assert!(done);
        assert_eq!(rest, b"tail");
        assert_digest_answer(&c1, DigestScheme::Scheme0, &out);
    }

    #[test]
    fn digest_c1_scheme_1() {
        let c1 = digest_c1(DigestScheme::Scheme1);
        assert_eq!(
            find_client_digest(&c1).map(|f| f.0),
            Some(DigestScheme::Scheme1)
        );
        let all = client_bytes(&c1, b"");
        let (out, done, _) = run(&[&all]);
        assert!(done);
        assert_digest_answer(&c1, DigestScheme::Scheme1, &out);
    }

    #[test]
    fn ffmpeg_c1_is_verified() {
        assert_eq!(FFMPEG_C0C1.len(), 1 + HANDSHAKE_SIZE);
        let c1 = block(&FFMPEG_C0C1[1..]);
        assert_eq!(
            c1[4..8],
            [9, 0, 124, 2],
            "ffmpeg poses as Flash Player 9.0.124.2"
        );
        assert_eq!(
            find_client_digest(&c1).map(|f| f.0),
            Some(DigestScheme::Scheme0)
        );
        let mut all = FFMPEG_C0C1.to_vec();
        all.extend_from_slice(&[0; HANDSHAKE_SIZE]);
        for split in 0..=all.len() {
            let (out, done, rest) = run(&[&all[..split], &all[split..]]);
            assert!(done && rest.is_empty(), "split {split}");
            assert_digest_answer(&c1, DigestScheme::Scheme0, &out);
        }
    }

    #[test]
    fn bad_digest_is_answered_plainly() {
        let mut c1 = digest_c1(DigestScheme::Scheme0);
        let at = DigestScheme::Scheme0.digest_offset(&c1);
        c1[at] ^= 0xff;
        assert_eq!(find_client_digest(&c1), None);
        let (out, done, _) = run(&[&client_bytes(&c1, b"")]);
        assert!(done);
        assert_eq!(out[5..9], [0; 4], "S1 has no version");
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..], "S2 echoes C1");
    }

    #[test]
    fn wrong_version_is_refused_at_once() {
        for version in [0u8, 6, 8, b'G', 0xff] {
            let mut hs = Handshake::new();
            let mut input = BytesMut::from(&[version][..]);
            let mut out = BytesMut::new();
            let err = hs.feed(&mut input, &mut out).expect_err("refused");
            assert!(
                matches!(err, HandshakeError::UnsupportedVersion { version: v } if v == version)
            );
            assert!(out.is_empty());
        }
        let err = HandshakeError::UnsupportedVersion { version: 6 };
        assert!(err.to_string().contains("RTMPE"), "{err}");
    }

    #[test]
    fn empty_input_waits() {
        let mut hs = Handshake::new();
        let mut input = BytesMut::new();
        let mut out = BytesMut::new();
        assert!(!hs.feed(&mut input, &mut out).expect("waits"));
        assert!(out.is_empty());
    }
}
