//! Reading a child's stdout and stderr with a deadline, on the calling thread (`poll`), so that a process
//! that keeps a pipe open can never make the reader wait past the time limit.

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// Bytes kept of the end of a stream beyond the head (where the harness prints its completion marker).
const TAIL_BYTES: usize = 4096;

/// One stream: the first `keep` bytes and the last [`TAIL_BYTES`].
#[derive(Debug, Default)]
pub(crate) struct Captured {
    head: Vec<u8>,
    tail: Vec<u8>,
    total: usize,
    keep: usize,
    open: bool,
}

impl Captured {
    fn new(keep: usize) -> Self {
        Self {
            keep,
            open: true,
            ..Self::default()
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len();
        let room = self.keep.saturating_sub(self.head.len());
        let (head, rest) = bytes.split_at(bytes.len().min(room));
        self.head.extend_from_slice(head);
        self.tail.extend_from_slice(rest);
        if self.tail.len() > 2 * TAIL_BYTES {
            self.tail.drain(..self.tail.len() - TAIL_BYTES);
        }
    }

    /// The text: all of it when it fit, else the head, a line saying how much was cut, and the tail.
    pub(crate) fn text(&self) -> String {
        let head = String::from_utf8_lossy(&self.head);
        if self.tail.is_empty() {
            return head.into_owned();
        }
        let tail = &self.tail[self.tail.len().saturating_sub(TAIL_BYTES)..];
        let cut = self.total - self.head.len() - tail.len();
        format!(
            "{head}\n[... {cut} bytes not kept ...]\n{}",
            String::from_utf8_lossy(tail)
        )
    }
}

/// Reads `streams` until both are closed, `done()` says to stop, or `stop_at()` has passed. `done` and
/// `stop_at` are asked after every wake-up (at least every 10 ms).
pub(crate) fn read_until(
    streams: [Option<&dyn AsRawFd>; 2],
    keep: usize,
    mut tick: impl FnMut() -> Option<Instant>,
) -> [Captured; 2] {
    let mut out = [Captured::new(keep), Captured::new(keep)];
    let fds: [Option<RawFd>; 2] = streams.map(|s| s.map(|s| s.as_raw_fd()));
    for (c, fd) in out.iter_mut().zip(fds) {
        c.open = fd.is_some();
    }
    let mut buf = [0u8; 8192];
    loop {
        let mut polled: Vec<libc::pollfd> = Vec::with_capacity(2);
        let mut which = Vec::with_capacity(2);
        for (i, fd) in fds.iter().enumerate() {
            if let (Some(fd), true) = (fd, out[i].open) {
                polled.push(libc::pollfd {
                    fd: *fd,
                    events: libc::POLLIN,
                    revents: 0,
                });
                which.push(i);
            }
        }
        if polled.is_empty() {
            return out;
        }
        // SAFETY: poll on descriptors we hold, with a valid array.
        let n = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, 10) };
        if n > 0 {
            for (p, &i) in polled.iter().zip(&which) {
                if p.revents == 0 {
                    continue;
                }
                // SAFETY: reading into a local buffer from a descriptor poll reported ready.
                let got = unsafe { libc::read(p.fd, buf.as_mut_ptr().cast(), buf.len()) };
                if got > 0 {
                    out[i].push(&buf[..got as usize]);
                } else if got == 0
                    || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)
                {
                    out[i].open = false;
                }
            }
        }
        if let Some(stop) = tick() {
            if Instant::now() >= stop {
                return out;
            }
        }
    }
}

/// How long reading goes on after the program ended or was killed (its last writes are in the pipe already;
/// only a process that escaped the kill could keep it open).
pub(crate) const DRAIN: Duration = Duration::from_millis(300);
