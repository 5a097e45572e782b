//! RFC 4571 framing (a 16-bit big-endian length, then the datagram) read from a byte
//! stream through one buffer: a read takes in as many frames as the socket holds, so a burst
//! of media costs one system call and one clock reading, not two reads per frame.
//!
//! Frames longer than [`MAX_DATAGRAM`] are not WebRTC on a sane path; they are skipped as
//! they arrive (never buffered) and reported as [`Frame::Oversize`], so the buffer only
//! needs to hold one largest datagram.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::net::MAX_DATAGRAM;

/// Bytes read at most per system call: sixteen ~1 KB media frames, and more than one
/// largest accepted frame with its length.
const BUFFER: usize = 16 * 1024;

/// Why [`FrameReader::next`] stopped short.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// EOF, a socket error, or shutdown.
    Closed,
    /// `deadline` passed first.
    Expired,
}

/// What [`FrameReader::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// One datagram, and when the read that completed it returned.
    Datagram(&'a [u8], Instant),
    /// A frame over [`MAX_DATAGRAM`] bytes was skipped whole.
    Oversize,
}

/// Frames from one stream.
#[derive(Debug)]
pub(crate) struct FrameReader {
    buf: Box<[u8]>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Bytes of an oversize frame still to be discarded.
    skip: usize,
    /// When the last read returned data.
    heard: Instant,
}

impl FrameReader {
    /// An empty reader; `now` stands for "heard" until the first read.
    pub(crate) fn new(now: Instant) -> Self {
        FrameReader {
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            skip: 0,
            heard: now,
        }
    }

    /// The next frame. `stop` and `deadline` are looked at before every read (so a peer that
    /// keeps sending cannot outlast them, though frames already buffered are still returned),
    /// and `stream`'s read timeout decides how often a silent peer is checked. A `WouldBlock`,
    /// `TimedOut` or `Interrupted` read is retried; any other error is [`End::Closed`].
    pub(crate) fn next<R: Read>(
        &mut self,
        stream: &mut R,
        deadline: Instant,
        stop: &AtomicBool,
    ) -> Result<Frame<'_>, End> {
        loop {
            if self.skip > 0 {
                let dropped = self.skip.min(self.end - self.start);
                self.start += dropped;
                self.skip -= dropped;
                if self.skip == 0 {
                    return Ok(Frame::Oversize);
                }
            } else if let Some(frame) = self.complete() {
                match frame {
                    Ok((from, to)) => {
                        self.start = to;
                        let heard = self.heard;
                        return Ok(Frame::Datagram(&self.buf[from..to], heard));
                    }
                    Err(len) => {
                        self.start += 2;
                        self.skip = len;
                        continue;
                    }
                }
            }
            self.fill(stream, deadline, stop)?;
        }
    }

    /// The next buffered frame's bounds (`Ok`), or the length of an oversize frame whose
    /// header is buffered (`Err`); `None` if more bytes are needed.
    fn complete(&self) -> Option<Result<(usize, usize), usize>> {
        let have = &self.buf[self.start..self.end];
        let [hi, lo, ..] = *have else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len > MAX_DATAGRAM {
            return Some(Err(len));
        }
        (have.len() >= 2 + len).then(|| Ok((self.start + 2, self.start + 2 + len)))
    }

    /// One read into the free end of the buffer (after moving a partial frame to the front).
    fn fill<R: Read>(
        &mut self,
        stream: &mut R,
        deadline: Instant,
        stop: &AtomicBool,
    ) -> Result<(), End> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(End::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(End::Expired);
            }
            match stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(End::Closed),
                Ok(n) => {
                    self.end += n;
                    self.heard = Instant::now();
                    return Ok(());
                }
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return Err(End::Closed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use super::*;

    /// A stream that hands out scripted reads: bytes (at most the caller's buffer), or
    /// "nothing yet" (`None`, a read timeout); then EOF, or silence forever.
    struct Script(VecDeque<Option<Vec<u8>>>, bool);

    impl Script {
        fn new(reads: impl IntoIterator<Item = Option<Vec<u8>>>) -> Self {
            Script(reads.into_iter().collect(), false)
        }
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.pop_front() {
                None if self.1 => Err(std::io::ErrorKind::TimedOut.into()),
                None => Ok(0),
                Some(None) => Err(std::io::ErrorKind::WouldBlock.into()),
                Some(Some(mut bytes)) => {
                    let n = bytes.len().min(buf.len());
                    buf[..n].copy_from_slice(&bytes[..n]);
                    if n < bytes.len() {
                        self.0.push_front(Some(bytes.split_off(n)));
                    }
                    Ok(n)
                }
            }
        }
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        let len = u16::try_from(body.len()).expect("short");
        [&len.to_be_bytes()[..], body].concat()
    }

    fn all(reader: &mut FrameReader, stream: &mut Script) -> (Vec<Vec<u8>>, usize, End) {
        let far = Instant::now() + Duration::from_secs(60);
        let stop = AtomicBool::new(false);
        let (mut frames, mut oversize) = (Vec::new(), 0);
        loop {
            match reader.next(stream, far, &stop) {
                Ok(Frame::Datagram(data, _)) => frames.push(data.to_vec()),
                Ok(Frame::Oversize) => oversize += 1,
                Err(end) => return (frames, oversize, end),
            }
        }
    }

    #[test]
    fn frames_come_out_whole_however_the_bytes_arrive() {
        let bodies: Vec<Vec<u8>> = (0..40u8)
            .map(|i| vec![i; 1 + usize::from(i) * 37 % MAX_DATAGRAM])
            .collect();
        let wire: Vec<u8> = bodies.iter().flat_map(|b| framed(b)).collect();
        // All at once (more than the buffer holds), one byte per read, and uneven pieces
        // with read timeouts between them.
        let splits: [Vec<Option<Vec<u8>>>; 3] = [
            vec![Some(wire.clone())],
            wire.iter().map(|&b| Some(vec![b])).collect(),
            wire.chunks(997)
                .flat_map(|c| [None, Some(c.to_vec())])
                .collect(),
        ];
        for script in splits {
            let mut reader = FrameReader::new(Instant::now());
            let (frames, oversize, end) = all(&mut reader, &mut Script::new(script));
            assert_eq!(frames, bodies);
            assert_eq!((oversize, end), (0, End::Closed));
        }
    }

    #[test]
    fn an_oversize_frame_is_skipped_and_the_next_one_read() {
        let big = vec![7u8; 60_000];
        let wire = [framed(b"before"), framed(&big), framed(b"after")].concat();
        for piece in [wire.len(), 1000, 3] {
            let script = wire.chunks(piece).map(|c| Some(c.to_vec()));
            let mut reader = FrameReader::new(Instant::now());
            let (frames, oversize, end) = all(&mut reader, &mut Script::new(script));
            assert_eq!(frames, [b"before".to_vec(), b"after".to_vec()]);
            assert_eq!((oversize, end), (1, End::Closed));
        }
    }

    #[test]
    fn a_silent_peer_expires_and_stop_closes() {
        let stop = AtomicBool::new(false);
        let mut reader = FrameReader::new(Instant::now());
        // Half a frame, then silence until the deadline.
        let mut silent = Script([Some(vec![0, 10, 1, 2])].into(), true);
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(reader.next(&mut silent, soon, &stop), Err(End::Expired));
        assert!(Instant::now() >= soon);
        // A buffered frame is still returned after stop; the next read is refused.
        let mut ready = Script::new([Some([framed(b"x"), framed(b"y")].concat())]);
        let mut reader = FrameReader::new(Instant::now());
        let far = Instant::now() + Duration::from_secs(60);
        assert!(matches!(
            reader.next(&mut ready, far, &stop),
            Ok(Frame::Datagram(b"x", _))
        ));
        stop.store(true, Ordering::Relaxed);
        assert!(matches!(
            reader.next(&mut ready, far, &stop),
            Ok(Frame::Datagram(b"y", _))
        ));
        assert_eq!(reader.next(&mut ready, far, &stop), Err(End::Closed));
    }
}
