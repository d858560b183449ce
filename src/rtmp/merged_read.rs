//! Merged reads for connections that publish a stream.
//!
//! An encoder sends a message every few milliseconds. Reading each as it arrives costs the
//! process a wakeup per message, and on a host with hundreds of streams those wakeups are most
//! of the CPU the server uses. While a stream is published, its connection instead reads on
//! the ticks of one server-wide grid, taking everything that arrived since the last tick at
//! once (SRS calls this merged read), and the socket's receive low-water mark is raised so
//! the kernel does not wake the process for each message in between. The delay this adds,
//! at most one tick, is small next to a segment's length; the end of the stream and socket
//! errors are seen at the next tick too.

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::TcpStream;

/// The grid's period.
pub const TICK: Duration = Duration::from_millis(40);

/// SO_RCVLOWAT while merged reads are on: more than any encoder sends in a tick (256 KiB in
/// 40 ms is 52 Mb/s), so the kernel only wakes the process for unusual bursts.
const LOW_WATER: libc::c_int = 256 * 1024;

/// Most bytes taken from the socket in one tick; what is left waits for the next tick.
/// Bounds the work and the buffer growth of one tick (4 MiB in 40 ms is 800 Mb/s).
const MAX_PER_TICK: usize = 4 * 1024 * 1024;

/// Bytes asked of the socket per `recv`.
const RECV_SIZE: usize = 64 * 1024;

/// The next tick of the grid that started at `epoch`.
pub fn next_tick(epoch: Instant) -> tokio::time::Instant {
    let tick = TICK.as_nanos();
    let next = (epoch.elapsed().as_nanos() / tick + 1) * tick;
    tokio::time::Instant::from_std(epoch) + Duration::from_nanos(next as u64)
}

/// Raises (`merged`) or restores the socket's receive low-water mark.
pub fn set_low_water(stream: &TcpStream, merged: bool) -> io::Result<()> {
    let value: libc::c_int = if merged { LOW_WATER } else { 1 };
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a valid c_int on the stack,
    // on a descriptor `stream` owns.
    let r = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
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
#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// This many bytes (possibly none) were appended.
    Bytes(usize),
    /// The peer closed the connection (after the bytes appended before, if any).
    Closed(usize),
}

/// Appends what the socket holds now to `buf`, without waiting. The low-water mark does not
/// apply: a non-blocking receive returns whatever is there.
pub fn drain(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<Drained> {
    let mut total = 0;
    while total < MAX_PER_TICK {
        buf.reserve(RECV_SIZE);
        let spare = buf.spare_capacity_mut();
        let len = spare.len().min(MAX_PER_TICK - total);
        // SAFETY: `recv` writes at most `len` bytes into the spare capacity, which is valid
        // for writes of that many bytes; only the bytes it reports written are exposed.
        let n = unsafe {
            libc::recv(
                stream.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                len,
                libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => return Ok(Drained::Closed(total)),
            n if n > 0 => {
                let n = n as usize;
                // SAFETY: the kernel initialised `n` bytes of the spare capacity.
                unsafe { buf.set_len(buf.len() + n) };
                total += n;
            }
            _ => {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => break,
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(e),
                }
            }
        }
    }
    Ok(Drained::Bytes(total))
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
        let mut buf = BytesMut::new();
        assert_eq!(drain(&server, &mut buf).unwrap(), Drained::Bytes(0));
        client.write_all(b"hello").await.unwrap();
        client.flush().await.unwrap();
        // Below the low-water mark, so nothing wakes a reader; the drain takes it anyway.
        let mut got = 0;
        for _ in 0..100 {
            if let Drained::Bytes(n) = drain(&server, &mut buf).unwrap() {
                got += n;
            }
            if got == 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(&buf[..], b"hello");
        drop(client);
        let mut closed = false;
        for _ in 0..100 {
            if drain(&server, &mut buf).unwrap() == Drained::Closed(0) {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(closed);
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
