//! Lease bookkeeping, sans-IO: which stream keys this node holds in Redis, until when its
//! leases surely last, and whether a write to shared storage is safe now (the fence).
//!
//! A lease's deadline is counted from when the request that set or renewed it was *sent*,
//! plus the lease length: Redis started the lease later than that, so this node's idea of
//! its lease always ends first. At a takeover the previous holder's remaining lease is read
//! (PTTL) in the same script; it ends, at the latest, that long after the answer *arrived*,
//! and until then the new holder does not write: the previous holder only starts a write its
//! own lease outlasts, so it has finished by then.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// May this node write a stream's shared state (its playlists in object storage) now?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fence {
    /// This node holds the key, for at least the time asked, and no earlier holder can
    /// still write.
    Write,
    /// Not yet, or not for that long: the previous holder's lease may still run, or this
    /// node's own lease is nearly out (a renewal is late: Redis is slow or unreachable).
    Wait,
    /// Another node holds the key (or this node never did): never write again for it.
    Lost,
}

/// One stream key this node holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The fencing token Redis handed out with the claim (INCR, per key, monotonic).
    pub token: u64,
    /// This node's lease surely lasts until then.
    pub deadline: Instant,
    /// The previous holder's lease surely ended by then.
    pub previous_until: Instant,
    /// The local publisher (`hub::stream::Publisher::id`) whose end gives the key back;
    /// `None` between the claim and the registry's.
    pub owner: Option<u64>,
    /// The publish ended and the key was given back (`released:` in Redis): renewed while
    /// the ended stream is kept here, its last writes (the ended playlist, the deletions)
    /// covered until `deadline`; a node that claims the key tells this one and waits out
    /// the lease before writing.
    pub draining: bool,
}

/// What this node knows of its leases. Keyed by stream (`{app}/{name}`).
#[derive(Debug)]
pub struct Leases {
    lease: Duration,
    held: HashMap<String, Held>,
}

impl Leases {
    pub fn new(lease: Duration) -> Leases {
        Leases {
            lease,
            held: HashMap::new(),
        }
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// A claim sent at `sent` was granted with `token`, and its answer arrived at `arrived`;
    /// another node's lease on the key had `previous_ttl` left when it was taken over
    /// (zero when the key was free or this node's).
    pub fn claimed(
        &mut self,
        stream: &str,
        token: u64,
        sent: Instant,
        arrived: Instant,
        previous_ttl: Duration,
    ) {
        let previous_until = arrived + previous_ttl;
        // A claim over this node's own lease keeps the wait for an earlier holder.
        let previous_until = match self.held.get(stream) {
            Some(h) => h.previous_until.max(previous_until),
            None => previous_until,
        };
        self.held.insert(
            stream.to_string(),
            Held {
                token,
                deadline: sent + self.lease,
                previous_until,
                owner: None,
                draining: false,
            },
        );
    }

    /// A renewal of `stream` with `token`, sent at `sent`, succeeded.
    pub fn renewed(&mut self, stream: &str, token: u64, sent: Instant) {
        if let Some(h) = self.held.get_mut(stream).filter(|h| h.token == token) {
            h.deadline = h.deadline.max(sent + self.lease);
        }
    }

    /// A renewal sent at `sent` found the lease gone (it ran out while Redis could not be
    /// reached, or Redis lost it) and took the key again with `new`; the claim keeps its
    /// owner. Returns whether `old` was still held.
    pub fn reasserted(&mut self, stream: &str, old: u64, new: u64, sent: Instant) -> bool {
        match self.held.get_mut(stream).filter(|h| h.token == old) {
            Some(h) => {
                h.token = new;
                h.deadline = sent + self.lease;
                true
            }
            None => false,
        }
    }

    /// The key was found with another holder, whose token is `newer_than`: the lease is
    /// gone. True if it was held with an older token (news of a claim no newer than the one
    /// held is stale and ignored).
    pub fn lost(&mut self, stream: &str, newer_than: u64) -> bool {
        match self.held.get(stream) {
            Some(h) if h.token < newer_than => {
                self.held.remove(stream);
                true
            }
            _ => false,
        }
    }

    /// The claim with `token` belongs to the local publisher `owner`.
    pub fn bind(&mut self, stream: &str, token: u64, owner: u64) {
        if let Some(h) = self.held.get_mut(stream).filter(|h| h.token == token) {
            h.owner = Some(owner);
        }
    }

    /// The claim with `token` came to nothing (the registry refused the publish): the lease
    /// is given back. Returns whether it was held.
    pub fn abandoned(&mut self, stream: &str, token: u64) -> bool {
        if self.held.get(stream).is_some_and(|h| h.token == token) {
            self.held.remove(stream);
            return true;
        }
        false
    }

    /// The local publisher `owner` of `stream` ended: its lease is given back, and drains
    /// (see [`Held::draining`]). Returns its token, unless the lease belongs to another
    /// claim (a later publish) or is gone.
    pub fn released(&mut self, stream: &str, owner: u64) -> Option<u64> {
        let h = self.held.get_mut(stream)?;
        if h.owner != Some(owner) || h.draining {
            return None;
        }
        h.owner = None;
        h.draining = true;
        Some(h.token)
    }

    /// Forgets the drained leases whose time is over at `now`.
    pub fn drained(&mut self, now: Instant) {
        self.held.retain(|_, h| !h.draining || h.deadline > now);
    }

    pub fn get(&self, stream: &str) -> Option<&Held> {
        self.held.get(stream)
    }

    /// Every key held, with its token and whether it drains, for a renewal round.
    pub fn all(&self) -> Vec<(String, u64, bool)> {
        self.held
            .iter()
            .map(|(s, h)| (s.clone(), h.token, h.draining))
            .collect()
    }

    /// Keys held for a publish (draining ones are not).
    pub fn len(&self) -> usize {
        self.held.values().filter(|h| !h.draining).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The fence at `now` for a write that needs the lease for `for_at_least` more.
    pub fn fence(&self, stream: &str, now: Instant, for_at_least: Duration) -> Fence {
        let Some(h) = self.held.get(stream) else {
            return Fence::Lost;
        };
        if now < h.previous_until {
            return Fence::Wait;
        }
        if h.deadline.saturating_duration_since(now) < for_at_least || h.deadline <= now {
            return Fence::Wait;
        }
        Fence::Write
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(5);
    const S: &str = "live/cam";

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_free_key_is_written_at_once_while_the_lease_lasts() {
        let t0 = Instant::now();
        let mut l = Leases::new(LEASE);
        assert_eq!(l.fence(S, t0, ms(500)), Fence::Lost, "never held");
        l.claimed(S, 1, t0, t0 + ms(3), Duration::ZERO);
        assert_eq!(l.fence(S, t0 + ms(3), ms(500)), Fence::Write);
        // The deadline counts from when the claim was sent.
        assert_eq!(l.fence(S, t0 + ms(4400), ms(500)), Fence::Write);
        assert_eq!(l.fence(S, t0 + ms(4600), ms(500)), Fence::Wait);
        assert_eq!(l.fence(S, t0 + ms(6000), Duration::ZERO), Fence::Wait);
        // A renewal sent at 4.0 s carries it to 9.0 s.
        l.renewed(S, 1, t0 + ms(4000));
        assert_eq!(l.fence(S, t0 + ms(4600), ms(500)), Fence::Write);
        assert_eq!(l.fence(S, t0 + ms(8600), ms(500)), Fence::Wait);
    }

    #[test]
    fn a_takeover_waits_for_the_previous_lease() {
        let t0 = Instant::now();
        let mut l = Leases::new(LEASE);
        // The previous holder had 4.2 s left when the answer came at 10 ms.
        l.claimed(S, 7, t0, t0 + ms(10), ms(4200));
        assert_eq!(l.fence(S, t0 + ms(10), ms(100)), Fence::Wait);
        assert_eq!(l.fence(S, t0 + ms(4209), ms(100)), Fence::Wait);
        l.renewed(S, 7, t0 + ms(3000));
        assert_eq!(l.fence(S, t0 + ms(4210), ms(100)), Fence::Write);
        // A local takeover (a new claim by this node) keeps waiting for the earlier holder.
        let mut l = Leases::new(LEASE);
        l.claimed(S, 7, t0, t0 + ms(10), ms(4200));
        l.claimed(S, 8, t0 + ms(20), t0 + ms(30), Duration::ZERO);
        assert_eq!(l.fence(S, t0 + ms(1000), ms(100)), Fence::Wait);
        assert_eq!(l.fence(S, t0 + ms(4300), ms(100)), Fence::Write);
    }

    #[test]
    fn a_released_lease_covers_the_last_writes_until_it_runs_out() {
        let t0 = Instant::now();
        let mut l = Leases::new(LEASE);
        l.claimed(S, 5, t0, t0, Duration::ZERO);
        l.bind(S, 5, 9);
        assert_eq!(l.released(S, 8), None, "another publisher's end");
        assert_eq!(l.released(S, 9), Some(5));
        assert_eq!(l.released(S, 9), None, "given back once");
        assert_eq!(l.all(), vec![(S.to_string(), 5, true)]);
        assert_eq!(l.len(), 0);
        assert_eq!(l.fence(S, t0 + ms(1000), ms(2000)), Fence::Write);
        assert_eq!(l.fence(S, t0 + ms(3500), ms(2000)), Fence::Wait);
        l.drained(t0 + ms(4000));
        assert!(l.get(S).is_some());
        l.drained(t0 + ms(5000));
        assert_eq!(l.fence(S, t0 + ms(5000), Duration::ZERO), Fence::Lost);
    }

    #[test]
    fn a_renewal_of_an_older_token_or_a_late_one_never_shortens() {
        let t0 = Instant::now();
        let mut l = Leases::new(LEASE);
        l.claimed(S, 3, t0 + ms(1000), t0 + ms(1001), Duration::ZERO);
        l.renewed(S, 2, t0 + ms(3000));
        assert_eq!(l.get(S).unwrap().deadline, t0 + ms(6000));
        l.renewed(S, 3, t0 + ms(500));
        assert_eq!(l.get(S).unwrap().deadline, t0 + ms(6000));
    }

    #[test]
    fn a_lease_taken_again_keeps_its_publisher() {
        let t0 = Instant::now();
        let mut l = Leases::new(LEASE);
        l.claimed(S, 4, t0, t0, Duration::ZERO);
        l.bind(S, 4, 77);
        // Redis was gone for longer than the lease: nothing may be written.
        assert_eq!(l.fence(S, t0 + ms(9000), ms(100)), Fence::Wait);
        assert!(!l.reasserted(S, 3, 1, t0 + ms(9000)), "an older token");
        assert!(l.reasserted(S, 4, 1, t0 + ms(9000)));
        assert_eq!(l.fence(S, t0 + ms(9001), ms(100)), Fence::Write);
        assert_eq!(l.released(S, 77), Some(1));
    }

    #[test]
    fn a_lost_key_is_never_written_and_stale_news_is_ignored() {
        let t0 = Instant::now();
        let mut l = Leases::new(LEASE);
        l.claimed(S, 5, t0, t0, Duration::ZERO);
        assert!(!l.lost(S, 4), "a message about an older claim");
        assert_eq!(l.fence(S, t0 + ms(1), ms(1)), Fence::Write);
        assert!(l.lost(S, 6));
        assert_eq!(l.fence(S, t0 + ms(1), ms(1)), Fence::Lost);
        assert!(!l.lost(S, 7), "already gone");
        l.claimed(S, 9, t0, t0, Duration::ZERO);
        assert_eq!(l.released(S, 1), None, "not bound to a publisher yet");
        l.bind(S, 8, 1);
        assert_eq!(l.released(S, 1), None, "an older claim's token");
        l.bind(S, 9, 1);
        assert_eq!(l.released(S, 2), None, "another publisher");
        assert_eq!(l.released(S, 1), Some(9));
        assert!(l.is_empty());
        l.drained(t0 + LEASE);
        assert_eq!(l.fence(S, t0 + LEASE, Duration::ZERO), Fence::Lost);
        l.claimed(S, 10, t0, t0, Duration::ZERO);
        assert!(!l.abandoned(S, 9));
        assert!(l.abandoned(S, 10));
        assert!(l.is_empty());
    }

    #[test]
    fn an_old_holder_stops_writing_before_the_new_one_starts() {
        // Node A's clock and node B's run at the same rate; Redis sees A's renewal at
        // `a_sent + d1` and B's claim at `b_sent + d2`.
        let base = Instant::now();
        let mut a = Leases::new(LEASE);
        let mut b = Leases::new(LEASE);
        a.claimed(S, 1, base, base + ms(2), Duration::ZERO);
        let a_sent = base + ms(2000);
        a.renewed(S, 1, a_sent);
        // Redis sets A's lease at a_sent + 40 ms: it expires at a_sent + 5040 ms.
        let redis_expiry = a_sent + ms(40) + LEASE;
        // B takes over at a_sent + 1000 ms; its answer arrives 30 ms later.
        let b_sent = a_sent + ms(1000);
        let b_arrived = b_sent + ms(30);
        let pttl_read_at = b_sent + ms(15);
        b.claimed(S, 2, b_sent, b_arrived, redis_expiry - pttl_read_at);
        let write = ms(800);
        // The last instant A may start a write of `write` length, and when it ends.
        let mut t = a_sent;
        let mut last_a_end = a_sent;
        while a.fence(S, t, write) == Fence::Write {
            last_a_end = t + write;
            t += ms(1);
        }
        let mut first_b = b_arrived;
        while b.fence(S, first_b, write) != Fence::Write {
            first_b += ms(1);
            assert!(first_b < b_sent + ms(20_000), "B never writes");
        }
        assert!(last_a_end <= first_b, "{last_a_end:?} > {first_b:?}");
    }
}
