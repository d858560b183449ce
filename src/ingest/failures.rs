//! Failed publishes per client address (`auth.max_failures`, `auth.failure_window`,
//! `auth.failure_cooldown`): what stops one address from trying stream keys, or from
//! turning every attempt into a stream-service request, as fast as it can connect.
//!
//! Sans-IO: the table is told the time (`Instant`s) and answers; the ingest layer asks it
//! before a publish is checked ([`FailedPublishes::admit`]), tells it how the check ended
//! ([`FailedPublishes::fail`], [`FailedPublishes::succeed`]) and sweeps it now and then.
//!
//! Counting: `max` failures less than `window` after the first failure of a window put the
//! address in cool-down for `cooldown`, during which its publishes are refused before
//! anything else is done with them. A window that passes without reaching `max` starts over
//! at the next failure, so an address that never enters cool-down fails at most `max - 1`
//! times per window on average. Attempts refused in cool-down neither count nor extend it,
//! so a client that keeps retrying gets in again on time once it has a good key; the
//! cool-down's end starts a new count. Nothing here slows an address below the limit.
//!
//! Addresses: an IPv4 address counts on its own (an IPv4-mapped IPv6 address as the IPv4
//! address); IPv6 addresses count by their /64 prefix. One host picks any of the 2^64
//! addresses of its /64 freely (SLAAC privacy addresses), so counting single addresses
//! would let it start afresh at will and fill the table; /64 is the smallest block a host
//! cannot leave on its own, and the usual assignment to one subscriber line. (Clients behind
//! one NAT or one /64 share a count: a good publish from any of them clears it.)
//!
//! Memory: at most `capacity` addresses are held. Expired entries are dropped by
//! [`FailedPublishes::sweep`] (and when the table is full). When it is still full, a new
//! address's failure is not counted (it is as if the limit were off for that address until
//! room frees up): the alternatives are refusing addresses that never failed, or evicting
//! addresses in cool-down, which lets the worst offenders back in. Reaching that needs
//! `capacity` addresses (or /64s) failing within one window, and is reported once
//! ([`Failed::Untracked`]) until the table has room again.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

/// Most addresses the table holds: about 3 MiB.
pub const MAX_ADDRESSES: usize = 65_536;

/// The least time between two sweeps of a full table: a full table's failures do not each
/// pay for a walk of it.
const FULL_SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What failures are counted under: an IPv4 address, or an IPv6 /64 prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientBlock {
    V4(Ipv4Addr),
    /// The first 64 bits of the address.
    V6Prefix64(u64),
}

impl From<IpAddr> for ClientBlock {
    fn from(ip: IpAddr) -> ClientBlock {
        match ip {
            IpAddr::V4(v4) => ClientBlock::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientBlock::V4(v4),
                None => ClientBlock::V6Prefix64((v6.to_bits() >> 64) as u64),
            },
        }
    }
}

impl fmt::Display for ClientBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientBlock::V4(v4) => write!(f, "{v4}"),
            ClientBlock::V6Prefix64(prefix) => {
                write!(f, "{}/64", Ipv6Addr::from_bits(u128::from(*prefix) << 64))
            }
        }
    }
}

/// The limit: `max` failures within `window` put an address in cool-down for `cooldown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureLimit {
    pub max: NonZeroU32,
    pub window: Duration,
    pub cooldown: Duration,
}

impl FailureLimit {
    /// The limit `auth.max_failures`, `auth.failure_window` and `auth.failure_cooldown` set;
    /// `None` when `auth.max_failures` is 0 (off).
    pub fn from_config(auth: &crate::config::AuthConfig) -> Option<FailureLimit> {
        Some(FailureLimit {
            max: NonZeroU32::new(auth.max_failures)?,
            window: Duration::from_secs(auth.failure_window),
            cooldown: Duration::from_secs(auth.failure_cooldown),
        })
    }
}

/// Whether an address may try to publish now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// In cool-down until `until`.
    Refused {
        until: Instant,
    },
}

/// What a failure did to its address's count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failed {
    /// Counted; the address is still below the limit.
    Counted,
    /// This failure reached the limit: the address is in cool-down until `until`. Reported
    /// once per cool-down.
    CoolingDown { until: Instant },
    /// Not counted: the table is full. `first` is true for the first such failure since the
    /// table last had room.
    Untracked { first: bool },
}

#[derive(Clone, Copy, Debug)]
enum Entry {
    /// `failures` so far in the window that opened at `since`.
    Counting { since: Instant, failures: u32 },
    /// Refused until then.
    Cooling { until: Instant },
}

/// The table of failed publishes per [`ClientBlock`]; see the module documentation.
#[derive(Debug)]
pub struct FailedPublishes {
    limit: FailureLimit,
    capacity: usize,
    entries: HashMap<ClientBlock, Entry>,
    /// When a full table was last swept.
    full_swept: Option<Instant>,
    /// A failure went uncounted since the table last had room.
    overflowed: bool,
}

impl FailedPublishes {
    pub fn new(limit: FailureLimit) -> FailedPublishes {
        FailedPublishes::with_capacity(limit, MAX_ADDRESSES)
    }

    /// A table of at most `capacity` addresses.
    pub fn with_capacity(limit: FailureLimit, capacity: usize) -> FailedPublishes {
        FailedPublishes {
            limit,
            capacity,
            entries: HashMap::new(),
            full_swept: None,
            overflowed: false,
        }
    }

    /// Whether `who` may try to publish at `now`.
    pub fn admit(&self, who: ClientBlock, now: Instant) -> Admission {
        match self.entries.get(&who) {
            Some(&Entry::Cooling { until }) if now < until => Admission::Refused { until },
            _ => Admission::Allowed,
        }
    }

    /// Counts a failed publish of `who` at `now`.
    pub fn fail(&mut self, who: ClientBlock, now: Instant) -> Failed {
        let limit = self.limit;
        let fresh = Entry::Counting {
            since: now,
            failures: 0,
        };
        let entry = match self.entries.get_mut(&who) {
            Some(entry) => entry,
            None => {
                if self.entries.len() >= self.capacity {
                    let due = self
                        .full_swept
                        .is_none_or(|at| now.saturating_duration_since(at) >= FULL_SWEEP_EVERY);
                    if due {
                        self.full_swept = Some(now);
                        self.sweep(now);
                    }
                }
                if self.entries.len() >= self.capacity {
                    let first = !self.overflowed;
                    self.overflowed = true;
                    return Failed::Untracked { first };
                }
                self.overflowed = false;
                self.entries.entry(who).or_insert(fresh)
            }
        };
        let expired = match *entry {
            Entry::Counting { since, .. } => now.saturating_duration_since(since) >= limit.window,
            Entry::Cooling { until } => now >= until,
        };
        if expired {
            *entry = fresh;
        }
        match entry {
            // A failure of an attempt admitted before the cool-down began: it is under way.
            Entry::Cooling { .. } => Failed::Counted,
            Entry::Counting { failures, .. } => {
                *failures += 1;
                if *failures >= limit.max.get() {
                    let until = now + limit.cooldown;
                    *entry = Entry::Cooling { until };
                    Failed::CoolingDown { until }
                } else {
                    Failed::Counted
                }
            }
        }
    }

    /// A good publish of `who`: its count (and any cool-down) is cleared.
    pub fn succeed(&mut self, who: ClientBlock) {
        self.entries.remove(&who);
    }

    /// Drops the entries that no longer hold anything at `now` (windows passed, cool-downs
    /// over), and returns how many addresses are in cool-down.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let window = self.limit.window;
        let mut cooling = 0;
        self.entries.retain(|_, entry| match *entry {
            Entry::Counting { since, .. } => now.saturating_duration_since(since) < window,
            Entry::Cooling { until } => {
                let live = now < until;
                cooling += usize::from(live);
                live
            }
        });
        if self.entries.len() < self.capacity {
            self.overflowed = false;
        }
        cooling
    }

    /// Addresses held (counting or in cool-down, expired or not).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);
    const COOLDOWN: Duration = Duration::from_secs(30);

    fn limit(max: u32) -> FailureLimit {
        FailureLimit {
            max: NonZeroU32::new(max).unwrap(),
            window: WINDOW,
            cooldown: COOLDOWN,
        }
    }

    fn v4(last: u8) -> ClientBlock {
        ClientBlock::from(IpAddr::from([192, 0, 2, last]))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_failure_that_reaches_the_limit_starts_the_cool_down_once() {
        let t0 = Instant::now();
        let mut table = FailedPublishes::new(limit(3));
        let a = v4(1);
        assert_eq!(table.fail(a, t0), Failed::Counted);
        assert_eq!(table.fail(a, t0 + secs(1)), Failed::Counted);
        assert_eq!(table.admit(a, t0 + secs(2)), Admission::Allowed);
        let until = t0 + secs(2) + COOLDOWN;
        assert_eq!(table.fail(a, t0 + secs(2)), Failed::CoolingDown { until });
        // Refused for the whole cool-down; refusals do not extend it.
        for s in [2, 3, 20, 31] {
            assert_eq!(table.admit(a, t0 + secs(s)), Admission::Refused { until });
        }
        // Another address is not affected.
        assert_eq!(table.admit(v4(2), t0 + secs(3)), Admission::Allowed);
        // The cool-down's end starts a new count: it takes the limit again to go back.
        let after = until + secs(1);
        assert_eq!(table.admit(a, until), Admission::Allowed);
        assert_eq!(table.fail(a, after), Failed::Counted);
        assert_eq!(table.fail(a, after), Failed::Counted);
        assert_eq!(
            table.fail(a, after),
            Failed::CoolingDown {
                until: after + COOLDOWN
            }
        );
    }

    #[test]
    fn a_window_that_passes_below_the_limit_starts_over() {
        let t0 = Instant::now();
        let mut table = FailedPublishes::new(limit(3));
        let a = v4(1);
        table.fail(a, t0);
        table.fail(a, t0 + secs(59));
        // The window opened at t0; this failure opens the next one.
        assert_eq!(table.fail(a, t0 + secs(60)), Failed::Counted);
        assert_eq!(table.fail(a, t0 + secs(61)), Failed::Counted);
        assert!(matches!(
            table.fail(a, t0 + secs(62)),
            Failed::CoolingDown { .. }
        ));
    }

    #[test]
    fn a_good_publish_clears_the_count() {
        let t0 = Instant::now();
        let mut table = FailedPublishes::new(limit(3));
        let a = v4(1);
        table.fail(a, t0);
        table.fail(a, t0);
        table.succeed(a);
        assert!(table.is_empty());
        assert_eq!(table.fail(a, t0), Failed::Counted);
        assert_eq!(table.fail(a, t0), Failed::Counted);
        assert_eq!(table.admit(a, t0), Admission::Allowed);
    }

    #[test]
    fn ipv6_counts_by_64_prefix_and_mapped_ipv4_as_ipv4() {
        let ip = |s: &str| ClientBlock::from(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            ip("2001:db8:1:2::1"),
            ip("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_ne!(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"));
        assert_eq!(ip("::ffff:192.0.2.1"), ip("192.0.2.1"));
        assert_eq!(ip("2001:db8:1:2:abcd::9").to_string(), "2001:db8:1:2::/64");
        assert_eq!(ip("192.0.2.1").to_string(), "192.0.2.1");

        let t0 = Instant::now();
        let mut table = FailedPublishes::new(limit(2));
        table.fail(ip("2001:db8::1"), t0);
        assert!(matches!(
            table.fail(ip("2001:db8::2"), t0),
            Failed::CoolingDown { .. }
        ));
        assert!(matches!(
            table.admit(ip("2001:db8::3"), t0),
            Admission::Refused { .. }
        ));
    }

    #[test]
    fn the_sweep_drops_what_expired_and_counts_cool_downs() {
        let t0 = Instant::now();
        let mut table = FailedPublishes::new(limit(2));
        table.fail(v4(1), t0);
        table.fail(v4(2), t0);
        table.fail(v4(2), t0);
        assert_eq!(table.sweep(t0 + secs(1)), 1);
        assert_eq!(table.len(), 2);
        // v4(1)'s window has passed; v4(2) still cools down (30 s from t0).
        assert_eq!(table.sweep(t0 + WINDOW), 0);
        assert!(table.is_empty());
        table.fail(v4(3), t0 + WINDOW);
        table.fail(v4(3), t0 + WINDOW);
        assert_eq!(table.sweep(t0 + WINDOW + secs(29)), 1);
        assert_eq!(table.sweep(t0 + WINDOW + COOLDOWN), 0);
        assert!(table.is_empty());
    }

    #[test]
    fn a_full_table_keeps_its_entries_and_leaves_new_addresses_uncounted() {
        let t0 = Instant::now();
        let mut table = FailedPublishes::with_capacity(limit(2), 3);
        table.fail(v4(1), t0);
        for n in 2..=3 {
            table.fail(v4(n), t0);
            table.fail(v4(n), t0);
        }
        assert_eq!(table.fail(v4(4), t0), Failed::Untracked { first: true });
        assert_eq!(table.fail(v4(5), t0), Failed::Untracked { first: false });
        assert_eq!(table.len(), 3);
        // Those in cool-down stay refused; the uncounted address is let in.
        assert!(matches!(table.admit(v4(2), t0), Admission::Refused { .. }));
        assert_eq!(table.admit(v4(4), t0), Admission::Allowed);
        // Known addresses are still counted.
        assert!(matches!(table.fail(v4(1), t0), Failed::CoolingDown { .. }));
        // Once cool-downs end, room is made for new addresses.
        let later = t0 + COOLDOWN;
        assert_eq!(table.fail(v4(4), later), Failed::Counted);
        assert_eq!(table.len(), 1);
        // ... and a later overflow is reported again.
        let mut table = FailedPublishes::with_capacity(limit(5), 1);
        table.fail(v4(1), t0);
        assert_eq!(table.fail(v4(2), t0), Failed::Untracked { first: true });
        table.sweep(t0 + WINDOW);
        table.fail(v4(3), t0 + WINDOW);
        assert_eq!(
            table.fail(v4(4), t0 + WINDOW),
            Failed::Untracked { first: true }
        );
    }
}
