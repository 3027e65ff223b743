//! The client's plaintext, watched on its way from TLS to hyper: whether the HTTP/2
//! connection preface has arrived, and how many RST_STREAM frames the client sends.
//!
//! Runs on every read of a connection that may speak HTTP/2 (ALPN `h2`, or no ALPN); an
//! ALPN `http/1.1` connection passes straight through. Nothing is buffered or copied: the
//! watcher looks at the bytes hyper just read, keeps a few bytes of state (how much of the
//! preface matched, where the next frame header starts, a reset count per second) and
//! tells the connection loop through [`crate::identity::WireSignals`]:
//! - the preface was *decided* — all 24 bytes arrived (HTTP/2 may start) or a byte differed
//!   (not HTTP/2: hyper's HTTP/1 or its error handling takes over). Until then the loop
//!   closes the connection at `header_read_timeout`;
//! - the client reset more than [`RESET_LIMIT`] streams within [`RESET_WINDOW_SECS`]
//!   seconds, whatever the streams' state (h2's own limit only counts streams reset before
//!   they were accepted, so a reset paced after the response started escaped it). The loop
//!   then sends GOAWAY and closes the connection.
//!
//! It also frees rustls's buffer of received records when the connection goes idle, so an
//! idle connection does not keep it; hyper frees its own buffers at the same point
//! (patches/README.md). Idle means: no request in flight, and a flush since the last bytes
//! arrived (the last response is out; hyper's reads between the end of a response body and
//! its flush are not idle). The buffer is freed by the first read that blocks while idle:
//! hyper always reads once more after a response (for the next head), and freeing it at
//! the flush would only allocate it again for that read. So once per request.
//!
//! And it closes the connection gracefully when hyper ends it (RFC 9112 §9.6): after the
//! TLS `close_notify` and the FIN, it reads and drops what the client still sends until the
//! client closes, for at most [`LINGER`] and [`LINGER_BYTES`] (`Linger`). A response sent
//! before the request body was read (a 413 for a declared length over the limit, any refusal
//! of a request with a body) would otherwise be lost: closing a socket with unread bytes
//! makes Linux send a RST, and a client still writing its body gets a broken pipe before it
//! reads the answer. A client that has closed its side already is not waited for; the
//! gateway's own hard closes (preface timeout, rapid reset, an unanswered shutdown) drop the
//! connection without it.
//!
//! Frames are followed by their 9-byte headers (24-bit length, type, flags, stream id);
//! payloads are skipped by length, never read.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::identity::{clock_ms, ConnInfo};

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// More client RST_STREAM frames than this within [`RESET_WINDOW_SECS`] closes the connection.
pub const RESET_LIMIT: u32 = 100;
/// The window of [`RESET_LIMIT`], counted in whole seconds: resets are counted per second of
/// a process clock and the last `RESET_WINDOW_SECS + 1` seconds are summed, so every run of
/// more than 100 resets within any 10 s is caught (and one spread over up to 11 s may be).
pub const RESET_WINDOW_SECS: usize = 10;

/// The longest a connection lingers after the gateway closed it (NGINX's `lingering_time`
/// is 30 s, its `lingering_timeout` 5 s between reads).
pub const LINGER: Duration = Duration::from_secs(5);
/// The most a lingering client may still send: a body a client sends whole before it reads
/// the answer (many do) is drained if it is under this.
pub const LINGER_BYTES: usize = 16 * 1024 * 1024;

const FRAME_HEADER_LEN: u8 = 9;
const RST_STREAM: u8 = 0x3;
const SLOTS: usize = RESET_WINDOW_SECS + 1;

/// A connection's stream as hyper sees it, with the watcher in its read path.
pub struct Watched<IO> {
    io: IO,
    conn: Arc<ConnInfo>,
    scan: Scan,
    /// A flush found no request in flight, and no bytes arrived since (or none ever did).
    idle: bool,
    /// The client closed its side (a read found the end of the stream).
    eof: bool,
    /// The lingering close, once the write side is shut down with the client still open.
    linger: Option<Box<Linger>>,
}

impl<IO> Watched<IO> {
    /// Watch `io` for the HTTP/2 preface and resets when `may_be_h2`; otherwise pass
    /// through (and tell the loop there is no preface to wait for).
    pub fn new(io: IO, conn: Arc<ConnInfo>, may_be_h2: bool) -> Watched<IO> {
        let scan = if may_be_h2 {
            Scan::new()
        } else {
            conn.wire.set_decided();
            Scan::off()
        };
        Watched {
            io,
            conn,
            scan,
            // Idle until the first request's bytes arrive.
            idle: true,
            eof: false,
            linger: None,
        }
    }
}

/// What a chunk of client bytes told the watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Nothing,
    /// The preface arrived, or the bytes are not HTTP/2.
    Decided,
    /// The reset limit was crossed.
    RapidReset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Not watching (HTTP/1.1, or after the limit was crossed).
    Off,
    /// This many preface bytes matched so far.
    Preface(u8),
    /// Following frame headers.
    Frames,
}

/// The watcher's state: a few bytes, inline in the connection.
#[derive(Debug)]
struct Scan {
    mode: Mode,
    /// Bytes of the current frame header seen (0 to 8), and the first four of them.
    head_len: u8,
    head: [u8; 4],
    /// Payload bytes of the current frame still to skip.
    skip: u32,
    resets: ResetWindow,
}

impl Scan {
    fn new() -> Scan {
        Scan {
            mode: Mode::Preface(0),
            head_len: 0,
            head: [0; 4],
            skip: 0,
            resets: ResetWindow::default(),
        }
    }

    fn off() -> Scan {
        Scan {
            mode: Mode::Off,
            ..Scan::new()
        }
    }

    /// Follow `data`, the next bytes the client sent; `now_s` is read only for a reset.
    fn feed(&mut self, mut data: &[u8], now_s: impl Fn() -> u32) -> Seen {
        let mut seen = Seen::Nothing;
        if let Mode::Preface(matched) = self.mode {
            let want = &PREFACE[matched as usize..];
            let n = want.len().min(data.len());
            if data[..n] != want[..n] {
                self.mode = Mode::Off;
                return Seen::Decided;
            }
            if n < want.len() {
                self.mode = Mode::Preface(matched + n as u8);
                return Seen::Nothing;
            }
            self.mode = Mode::Frames;
            seen = Seen::Decided;
            data = &data[n..];
        }
        if self.mode != Mode::Frames {
            return seen;
        }
        while !data.is_empty() {
            if self.skip > 0 {
                let n = (self.skip as usize).min(data.len());
                self.skip -= n as u32;
                data = &data[n..];
                continue;
            }
            let n = ((FRAME_HEADER_LEN - self.head_len) as usize).min(data.len());
            for (i, b) in data[..n].iter().enumerate() {
                if let Some(slot) = self.head.get_mut(self.head_len as usize + i) {
                    *slot = *b;
                }
            }
            self.head_len += n as u8;
            data = &data[n..];
            if self.head_len < FRAME_HEADER_LEN {
                break;
            }
            self.head_len = 0;
            self.skip = u32::from_be_bytes([0, self.head[0], self.head[1], self.head[2]]);
            if self.head[3] == RST_STREAM && self.resets.record(now_s()) {
                self.mode = Mode::Off;
                return Seen::RapidReset;
            }
        }
        seen
    }
}

/// Client resets per second over the last [`SLOTS`] seconds.
#[derive(Debug, Default)]
struct ResetWindow {
    /// The newest second counted, on the process clock.
    second: u32,
    slots: [u8; SLOTS],
}

impl ResetWindow {
    /// Count a reset at second `now`; `true` once more than [`RESET_LIMIT`] are in the window.
    fn record(&mut self, now: u32) -> bool {
        let gap = now.saturating_sub(self.second) as usize;
        if gap >= SLOTS {
            self.slots = [0; SLOTS];
        } else {
            for i in 1..=gap {
                self.slots[(self.second as usize + i) % SLOTS] = 0;
            }
        }
        self.second = self.second.max(now);
        let slot = &mut self.slots[now as usize % SLOTS];
        *slot = slot.saturating_add(1);
        self.slots.iter().map(|&n| u32::from(n)).sum::<u32>() > RESET_LIMIT
    }
}

fn now_s() -> u32 {
    u32::try_from(clock_ms() / 1000).unwrap_or(u32::MAX)
}

/// What the watcher needs of a served stream besides reading and writing.
pub trait Served {
    /// Free the empty receive buffer while the connection is idle.
    fn release_idle(&mut self);
    /// Read raw bytes from the socket into `buf`, to drop them (the lingering close).
    fn poll_discard(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
}

impl Served for tokio_rustls::server::TlsStream<TcpStream> {
    fn release_idle(&mut self) {
        // Our rustls patch: frees the 4 KiB record buffer if it holds no partial record.
        self.get_mut().1.release_empty_receive_buffer();
    }

    fn poll_discard(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        // After close_notify nothing the client sends is read as TLS any more.
        let mut buf = ReadBuf::new(buf);
        Pin::new(self.get_mut().0)
            .poll_read(cx, &mut buf)
            .map_ok(|()| buf.filled().len())
    }
}

/// A lingering close under way: its deadline and the bytes dropped so far.
struct Linger {
    deadline: Pin<Box<tokio::time::Sleep>>,
    dropped: usize,
}

impl Linger {
    fn new() -> Linger {
        Linger {
            deadline: Box::pin(tokio::time::sleep(LINGER)),
            dropped: 0,
        }
    }

    /// Drop what the client sends until it closes, [`LINGER_BYTES`] came, or [`LINGER`]
    /// passed; then the close may complete.
    fn poll<IO: Served>(&mut self, io: &mut IO, cx: &mut Context<'_>) -> Poll<()> {
        let mut buf = [0u8; 16 * 1024];
        while self.dropped < LINGER_BYTES {
            match io.poll_discard(cx, &mut buf) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(n)) => self.dropped += n,
                Poll::Pending => return self.deadline.as_mut().poll(cx),
            }
        }
        Poll::Ready(())
    }
}

impl<IO: AsyncRead + Served + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if polled.is_pending() {
            if this.idle && !this.conn.activity.busy() {
                this.io.release_idle();
            }
        } else if buf.filled().len() > before {
            this.idle = false;
        } else if buf.remaining() > 0 && matches!(polled, Poll::Ready(Ok(()))) {
            this.eof = true;
        }
        if this.scan.mode == Mode::Off || buf.filled().len() == before {
            return polled;
        }
        match this.scan.feed(&buf.filled()[before..], now_s) {
            Seen::Nothing => {}
            Seen::Decided => this.conn.wire.set_decided(),
            Seen::RapidReset => {
                this.conn.wire.set_rapid_reset();
                this.conn.trust.close.notify_one();
            }
        }
        polled
    }
}

impl<IO: AsyncWrite + Served + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.io).poll_flush(cx);
        if flushed.is_ready() && !this.conn.activity.busy() {
            this.idle = true;
        }
        flushed
    }

    /// `close_notify` and FIN, then the lingering close unless the client closed already.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let linger = match &mut this.linger {
            Some(linger) => linger,
            None => {
                std::task::ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
                if this.eof {
                    return Poll::Ready(Ok(()));
                }
                this.conn.wire.set_lingering();
                this.linger.insert(Box::new(Linger::new()))
            }
        };
        linger.poll(&mut this.io, cx).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.push(kind);
        f.push(0);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// Feed `bytes` in chunks of `chunk` bytes; what was seen, in order (without `Nothing`).
    fn feed_in(scan: &mut Scan, bytes: &[u8], chunk: usize, now: u32) -> Vec<Seen> {
        bytes
            .chunks(chunk)
            .map(|c| scan.feed(c, || now))
            .filter(|s| *s != Seen::Nothing)
            .collect()
    }

    /// A stream that hands out queued reads (`None`: the read blocks) and counts releases.
    #[derive(Default)]
    struct Fake {
        reads: std::collections::VecDeque<Option<&'static [u8]>>,
        releases: usize,
        /// What raw reads of the lingering close return (`None`: block; empty: the end).
        discards: std::collections::VecDeque<Option<usize>>,
        discarded: usize,
        shut: bool,
    }

    impl AsyncRead for Fake {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            match self.get_mut().reads.pop_front().flatten() {
                Some(bytes) => {
                    buf.put_slice(bytes);
                    Poll::Ready(Ok(()))
                }
                None => Poll::Pending,
            }
        }
    }

    impl AsyncWrite for Fake {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(b.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().shut = true;
            Poll::Ready(Ok(()))
        }
    }

    impl Served for Fake {
        fn release_idle(&mut self) {
            self.releases += 1;
        }

        fn poll_discard(&mut self, _: &mut Context<'_>, b: &mut [u8]) -> Poll<io::Result<usize>> {
            match self.discards.pop_front() {
                Some(Some(n)) => {
                    self.discarded += n;
                    Poll::Ready(Ok(n.min(b.len())))
                }
                Some(None) => Poll::Pending,
                None => Poll::Ready(Ok(0)),
            }
        }
    }

    fn watched() -> Watched<Fake> {
        let conn = Arc::new(ConnInfo::new(
            "10.0.0.7:5000".parse().unwrap(),
            Arc::from("l0"),
            None,
        ));
        Watched::new(Fake::default(), conn, false)
    }

    fn shutdown(w: &mut Watched<Fake>) -> Poll<io::Result<()>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(w).poll_shutdown(&mut cx)
    }

    #[tokio::test]
    async fn a_close_lingers_until_the_client_closes_unless_it_had() {
        // The client closed first: FIN and done, nothing read.
        let mut w = watched();
        w.io.reads.push_back(Some(b""));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut space = [0u8; 64];
        let _ = Pin::new(&mut w).poll_read(&mut cx, &mut ReadBuf::new(&mut space));
        w.io.discards.push_back(Some(100));
        assert!(shutdown(&mut w).is_ready());
        assert!(w.io.shut && w.io.discarded == 0 && w.linger.is_none());

        // Still open: what it sends is dropped, the close waits while it sends nothing, and
        // ends when it closes.
        let mut w = watched();
        w.io.discards.extend([Some(1000), Some(2000), None]);
        assert!(shutdown(&mut w).is_pending());
        assert!(w.io.shut && w.io.discarded == 3000);
        w.io.discards.push_back(Some(500));
        assert!(shutdown(&mut w).is_ready(), "the client closed");
        assert_eq!(w.io.discarded, 3500);

        // One that never stops sending is cut at LINGER_BYTES.
        let mut w = watched();
        let reads = LINGER_BYTES / 16384 + 5;
        w.io.discards
            .extend(std::iter::repeat_n(Some(16384), reads));
        assert!(shutdown(&mut w).is_ready());
        assert_eq!(w.io.discarded, LINGER_BYTES);
    }

    #[test]
    fn the_record_buffer_is_freed_only_by_a_read_that_blocks_while_idle() {
        let conn = Arc::new(ConnInfo::new(
            "10.0.0.7:5000".parse().unwrap(),
            Arc::from("l0"),
            None,
        ));
        let mut w = Watched::new(Fake::default(), conn.clone(), false);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut read = |w: &mut Watched<Fake>, what: Option<&'static [u8]>| {
            w.io.reads.push_back(what);
            let mut space = [0u8; 64];
            let _ = Pin::new(&mut *w).poll_read(&mut cx, &mut ReadBuf::new(&mut space));
            w.io.releases
        };
        let flush = |w: &mut Watched<Fake>| {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            assert!(Pin::new(w).poll_flush(&mut cx).is_ready());
        };

        assert_eq!(read(&mut w, None), 1, "idle before the first request");
        assert_eq!(read(&mut w, Some(b"GET / HTTP/1.1\r\n")), 1);
        assert_eq!(read(&mut w, None), 1, "a request has arrived: not idle");
        conn.activity.begin();
        flush(&mut w);
        assert_eq!(read(&mut w, None), 1, "a request in flight");
        conn.activity.end();
        assert_eq!(read(&mut w, None), 1, "its response is not flushed yet");
        flush(&mut w);
        assert_eq!(
            read(&mut w, None),
            2,
            "flushed with nothing in flight: idle"
        );
        assert_eq!(read(&mut w, Some(b"GET /next HTTP/1.1\r\n")), 2);
        assert_eq!(read(&mut w, None), 2);
    }

    #[test]
    fn the_watcher_is_a_few_words() {
        // Inline in every connection's hyper state, beside the TLS stream (48 bytes today:
        // the lingering close is one pointer, allocated only when a close lingers).
        assert!(std::mem::size_of::<Watched<()>>() <= 48);
    }

    #[test]
    fn preface_decided_whole_or_split() {
        for chunk in [1, 5, 24, 100] {
            let mut s = Scan::new();
            let mut bytes = PREFACE.to_vec();
            bytes.extend(frame(0x4, 0, &[0; 6]));
            assert_eq!(feed_in(&mut s, &bytes, chunk, 0), vec![Seen::Decided]);
            assert_eq!(s.mode, Mode::Frames);
        }
    }

    #[test]
    fn http1_bytes_are_decided_and_then_ignored() {
        let mut s = Scan::new();
        assert_eq!(s.feed(b"PRI * HTTP/1.1\r\n", || 0), Seen::Decided);
        assert_eq!(s.mode, Mode::Off);
        let mut s = Scan::new();
        assert_eq!(s.feed(b"GET / HTTP/1.1\r\n", || 0), Seen::Decided);
        assert_eq!(s.feed(b"\x00\x00\x04\x03", || 0), Seen::Nothing);
    }

    #[test]
    fn resets_over_the_limit_are_seen_across_any_split() {
        for chunk in [1, 4, 9, 13, 4096] {
            let mut bytes = PREFACE.to_vec();
            let mut s = Scan::new();
            for i in 0..=RESET_LIMIT {
                // Frames around the resets: headers with a payload, data, settings.
                bytes.extend(frame(0x1, 2 * i + 1, &[0x82; 17]));
                bytes.extend(frame(0x0, 2 * i + 1, &[7; 300]));
                bytes.extend(frame(RST_STREAM, 2 * i + 1, &8u32.to_be_bytes()));
            }
            let seen = feed_in(&mut s, &bytes, chunk, 7);
            assert_eq!(seen, vec![Seen::Decided, Seen::RapidReset], "chunk {chunk}");
        }
    }

    #[test]
    fn resets_at_the_limit_are_allowed() {
        let mut bytes = PREFACE.to_vec();
        for i in 0..RESET_LIMIT {
            bytes.extend(frame(RST_STREAM, 2 * i + 1, &8u32.to_be_bytes()));
        }
        let mut s = Scan::new();
        assert_eq!(feed_in(&mut s, &bytes, 64, 3), vec![Seen::Decided]);
    }

    #[test]
    fn the_window_slides() {
        let mut w = ResetWindow::default();
        // 9 per second for a minute: at most 99 in the 11-second window.
        for second in 1000..1060 {
            for _ in 0..9 {
                assert!(!w.record(second), "9/s never trips (second {second})");
            }
        }
        // 101 in one second trips at once.
        let mut w = ResetWindow::default();
        assert!(!(0..RESET_LIMIT).any(|_| w.record(50)));
        assert!(w.record(50));
        // 60 now and 41 eleven seconds later: the first 60 have left the window.
        let mut w = ResetWindow::default();
        assert!(!(0..60).any(|_| w.record(100)));
        assert!(!(0..41).any(|_| w.record(111)));
        // But 60 now and 41 ten seconds later are 101 within 10 s.
        let mut w = ResetWindow::default();
        assert!(!(0..60).any(|_| w.record(200)));
        assert!(!(0..40).any(|_| w.record(210)));
        assert!(w.record(210));
    }
}
