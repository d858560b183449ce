//! Merged reads for connections that publish a stream, with prompt reads where latency
//! counts.
//!
//! An encoder sends a message every few milliseconds. Reading each as it arrives costs the
//! process a wakeup per message, and on a host with hundreds of streams those wakeups are most
//! of the CPU the server uses. While a stream is published, its connection instead reads on
//! the ticks of one server-wide grid, taking everything that arrived since the last tick at
//! once (SRS calls this merged read), and the socket's receive low-water mark is raised so
//! the kernel does not wake the process for each message in between.
//!
//! A tick's delay (up to [`TICK`]) matters only for the frame that completes a segment, or
//! a part that a player's held request waits for. The outputs say which decode time they
//! wait for next (a part only while a request waits for it: `Stream::awaited`); from the
//! arrival of the frames before it, the connection knows when that frame is due, and
//! shortly before that ([`PROMPT_LEAD`]) it reads as data arrives (low-water mark 1), until the frame is in (or [`PROMPT_LIMIT`] has passed), then
//! goes back to the grid. A stream costs a few prompt wakeups per part instead of one per
//! message.
//!
//! Reads take the kernel's receive time of the newest data they return (`SO_TIMESTAMPNS`),
//! so a frame's arrival is known however late it was read.

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use tokio::net::TcpStream;

/// The grid's period.
pub const TICK: Duration = Duration::from_millis(40);

/// How long before a frame an output waits for is due the connection starts reading
/// promptly: encoders send frames within a few milliseconds of their pace, and audio
/// interleaving (a video frame queued behind the audio frame before it, up to one AAC frame)
/// moves a frame by up to about 20 ms.
pub const PROMPT_LEAD: Duration = Duration::from_millis(25);

/// How long after a frame was due prompt reading goes on without it (a late or missing
/// keyframe, a paused encoder) before the connection returns to the grid.
pub const PROMPT_LIMIT: Duration = Duration::from_millis(150);

/// SO_RCVLOWAT while merged reads are on: more than any encoder sends in a tick (256 KiB in
/// 40 ms is 52 Mb/s), so the kernel only wakes the process for unusual bursts.
const LOW_WATER: libc::c_int = 256 * 1024;

/// Most bytes taken from the socket in one tick; what is left waits for the next tick.
/// Bounds the work and the buffer growth of one tick (4 MiB in 40 ms is 800 Mb/s).
pub const MAX_PER_TICK: usize = 4 * 1024 * 1024;

/// Bytes asked of the socket per `recv`.
const RECV_SIZE: usize = 64 * 1024;

/// Room for the control message a receive timestamp comes in (a `cmsghdr` and a `timespec`),
/// in 8-byte words so that it is aligned for `cmsghdr`.
const CONTROL_WORDS: usize = 8;

/// The next tick of the grid that started at `epoch`.
pub fn next_tick(epoch: Instant) -> tokio::time::Instant {
    next_on_grid(epoch, TICK)
}

/// The next multiple of `period` after `epoch`: with a period of whole ticks, a time the
/// merged reads wake at anyway, so whatever waits for it costs no wakeup of its own.
pub fn next_on_grid(epoch: Instant, period: Duration) -> tokio::time::Instant {
    let period = period.as_nanos().max(1);
    let next = (epoch.elapsed().as_nanos() / period + 1) * period;
    tokio::time::Instant::from_std(epoch) + Duration::from_nanos(next as u64)
}

/// How a publishing connection reads now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// On the grid, low-water mark raised.
    Merged,
    /// As data arrives: a frame an output waits for is due.
    Prompt,
}

/// The read mode at `now`, given when the frame an output waits for is due (`due`).
pub fn mode_at(now: Instant, due: Option<Instant>) -> ReadMode {
    match due {
        Some(due)
            if now + PROMPT_LEAD >= due && now.saturating_duration_since(due) < PROMPT_LIMIT =>
        {
            ReadMode::Prompt
        }
        _ => ReadMode::Merged,
    }
}

/// When merged reading should next wake (at `now`): the next tick, or earlier when prompt
/// reading is due to start before it. A due time whose prompt reading is over (or has not
/// started yet because it lies before now) moves nothing.
pub fn wake_at(epoch: Instant, due: Option<Instant>, now: Instant) -> tokio::time::Instant {
    let tick = next_tick(epoch);
    match due.and_then(|d| d.checked_sub(PROMPT_LEAD)) {
        Some(start) if start > now => tick.min(tokio::time::Instant::from_std(start)),
        _ => tick,
    }
}

/// Raises (`merged`) or restores the socket's receive low-water mark.
pub fn set_low_water(stream: &TcpStream, merged: bool) -> io::Result<()> {
    let value: libc::c_int = if merged { LOW_WATER } else { 1 };
    set_int_option(stream, libc::SO_RCVLOWAT, value)
}

/// Asks the kernel to give every read the receive time of the data it returns.
pub fn enable_receive_times(stream: &TcpStream) -> io::Result<()> {
    set_int_option(stream, libc::SO_TIMESTAMPNS, 1)
}

fn set_int_option(stream: &TcpStream, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a valid c_int on the stack,
    // on a descriptor `stream` owns.
    let r = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What [`drain`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Bytes appended (possibly none).
    pub bytes: usize,
    /// The peer closed the connection (after those bytes).
    pub closed: bool,
    /// When the newest of those bytes reached the socket, as the kernel stamped it.
    pub arrived: Option<Instant>,
}

/// Appends what the socket holds now to `buf`, without waiting. The low-water mark does not
/// apply: a non-blocking receive returns whatever is there. Used on the grid, outside the
/// runtime's readiness tracking.
pub fn drain(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<Drained> {
    let mut drained = Drained::default();
    while drained.bytes < MAX_PER_TICK && !drained.closed {
        let before = drained.bytes;
        match receive(stream, buf, MAX_PER_TICK - drained.bytes, &mut drained) {
            // A receive that did not fill what it asked for took all there was: asking again
            // would only be told to wait (one system call saved per tick and stream).
            Ok(()) if drained.bytes - before < RECV_SIZE && !drained.closed => break,
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(drained)
}

/// Waits until the socket is readable, then appends what it holds, at most `max` bytes (as
/// [`drain`] does), through the runtime's readiness tracking.
pub async fn read_ready(stream: &TcpStream, buf: &mut BytesMut, max: usize) -> io::Result<Drained> {
    loop {
        stream.readable().await?;
        if let Some(drained) = read_now(stream, buf, max)? {
            return Ok(drained);
        }
    }
}

/// After the socket was seen readable: appends what it holds, at most `max` bytes (as
/// [`drain`] does), or `None` when it held nothing after all, which clears the runtime's
/// readiness so that the next `readable` waits. `buf` grows by at most `max` for it.
pub fn read_now(stream: &TcpStream, buf: &mut BytesMut, max: usize) -> io::Result<Option<Drained>> {
    {
        let mut drained = Drained::default();
        let got = stream.try_io(tokio::io::Interest::READABLE, || {
            while drained.bytes < max && !drained.closed {
                match receive(stream, buf, max - drained.bytes, &mut drained) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // Would block after some bytes: done for now, readiness stays as it is.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && drained.bytes > 0 => break,
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        match got {
            Ok(()) => Ok(Some(drained)),
            // Nothing after all: readiness was cleared.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// One non-blocking `recvmsg` of at most `limit` bytes into `buf`'s spare capacity.
fn receive(
    stream: &TcpStream,
    buf: &mut BytesMut,
    limit: usize,
    drained: &mut Drained,
) -> io::Result<()> {
    buf.reserve(RECV_SIZE.min(limit));
    let spare = buf.spare_capacity_mut();
    let len = spare.len().min(limit);
    let mut iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: len,
    };
    let mut control = [0u64; CONTROL_WORDS];
    // SAFETY: an all-zero msghdr is a valid empty one; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: `recvmsg` writes at most `len` bytes into the spare capacity, which is valid for
    // writes of that many bytes, and at most `msg_controllen` bytes of control data.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &raw mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n == 0 {
        drained.closed = true;
        return Ok(());
    }
    let n = n as usize;
    // SAFETY: the kernel initialised `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    drained.bytes += n;
    if let Some(at) = receive_time(&msg) {
        drained.arrived = Some(drained.arrived.map_or(at, |a| a.max(at)));
    }
    Ok(())
}

/// The `SCM_TIMESTAMPNS` control message of a received `msg`, as an [`Instant`].
fn receive_time(msg: &libc::msghdr) -> Option<Instant> {
    // SAFETY: `msg` was filled by `recvmsg`; the CMSG macros walk its control buffer within
    // `msg_controllen`, and a timestamp message carries a whole `timespec`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                let wall = SystemTime::UNIX_EPOCH
                    + Duration::new(
                        ts.tv_sec.max(0) as u64,
                        ts.tv_nsec.clamp(0, 999_999_999) as u32,
                    );
                // The kernel stamps with the wall clock: how long ago that was, on the
                // monotonic clock.
                let ago = SystemTime::now().duration_since(wall).unwrap_or_default();
                return Instant::now().checked_sub(ago);
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn drains_what_arrived_without_waiting_and_sees_the_end() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        set_low_water(&server, true).unwrap();
        enable_receive_times(&server).unwrap();
        let mut buf = BytesMut::new();
        assert_eq!(drain(&server, &mut buf).unwrap(), Drained::default());
        // The kernel turns receive stamping on for the whole system a moment after a socket
        // first asks (a deferred switch), so the first bytes may come unstamped: send until
        // a read carries a stamp.
        let mut arrived = None;
        let mut sent = 0;
        for _ in 0..100 {
            let before = Instant::now();
            client.write_all(b"hello").await.unwrap();
            client.flush().await.unwrap();
            sent += 5;
            // Below the low-water mark, so nothing wakes a reader; the drain takes it anyway.
            let mut got = 0;
            let mut stamp = None;
            for _ in 0..100 {
                let d = drain(&server, &mut buf).unwrap();
                got += d.bytes;
                stamp = stamp.or(d.arrived);
                if got == 5 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(got, 5, "what was sent is drained");
            if let Some(at) = stamp {
                arrived = Some((before, at));
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(&buf[..], &b"hello".repeat(sent / 5)[..]);
        // The kernel's receive time, not the read's: after the send began, before now (the
        // wall-clock stamp converted to the monotonic clock may be off by a little).
        let (before, arrived) = arrived.expect("a receive time");
        let slack = Duration::from_millis(5);
        assert!(arrived + slack >= before && arrived <= Instant::now() + slack);
        drop(client);
        let mut closed = false;
        for _ in 0..100 {
            if drain(&server, &mut buf).unwrap().closed {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(closed);
    }

    #[tokio::test]
    async fn a_ready_read_waits_for_data_below_the_low_water_mark_when_it_is_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        set_low_water(&server, false).unwrap();
        let mut buf = BytesMut::new();
        let reader = async {
            let d = read_ready(&server, &mut buf, MAX_PER_TICK).await.unwrap();
            (d.bytes, d.closed)
        };
        let writer = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            client.write_all(b"abc").await.unwrap();
        };
        let ((bytes, closed), ()) = tokio::join!(reader, writer);
        assert_eq!((bytes, closed), (3, false));
        assert_eq!(&buf[..], b"abc");
    }

    #[test]
    fn prompt_reading_starts_shortly_before_a_due_frame_and_gives_up_after_a_while() {
        let now = Instant::now();
        assert_eq!(mode_at(now, None), ReadMode::Merged);
        assert_eq!(mode_at(now, Some(now + PROMPT_LEAD * 2)), ReadMode::Merged);
        assert_eq!(mode_at(now, Some(now + PROMPT_LEAD / 2)), ReadMode::Prompt);
        assert_eq!(mode_at(now + PROMPT_LIMIT / 2, Some(now)), ReadMode::Prompt);
        assert_eq!(mode_at(now + PROMPT_LIMIT, Some(now)), ReadMode::Merged);
        // The grid wakes early for a due frame, never later than its next tick.
        let epoch = now - Duration::from_millis(1);
        let due = now + PROMPT_LEAD + Duration::from_millis(5);
        let wake = wake_at(epoch, Some(due), now);
        assert_eq!(
            wake,
            tokio::time::Instant::from_std(due - PROMPT_LEAD).min(next_tick(epoch))
        );
        assert_eq!(wake_at(epoch, None, now), next_tick(epoch));
        // A due time already behind (prompt reading done, or given up) never makes the grid
        // wake at once, over and over.
        assert_eq!(
            wake_at(epoch, Some(now - PROMPT_LIMIT * 2), now),
            next_tick(epoch)
        );
        assert_eq!(wake_at(epoch, Some(now), now), next_tick(epoch));
    }

    #[test]
    fn the_next_tick_is_the_first_grid_point_after_now() {
        let epoch = Instant::now() - Duration::from_millis(81);
        let next = next_tick(epoch);
        let elapsed = epoch.elapsed();
        let offset = next - tokio::time::Instant::from_std(epoch);
        assert_eq!(
            offset.as_nanos() % TICK.as_nanos(),
            0,
            "{offset:?} is on the grid"
        );
        assert!(
            offset > Duration::from_millis(81),
            "{offset:?} is after now"
        );
        assert!(
            offset <= elapsed + TICK,
            "{offset:?} is the next tick, not a later one"
        );
    }
}
