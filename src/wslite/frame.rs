//! RFC 6455 framing for a server that only sends: headers of server frames (unmasked, so one
//! encoded frame is the same bytes for every subscriber and the payload is never copied: it is
//! written as `[header, shared payload]` with one `writev`), and a sans-IO decoder of client
//! frames that keeps no payload but control frames' (≤ 125 bytes): a client's data is
//! counted and skipped (text checked as UTF-8 on the way), pings are answered, a close is
//! echoed.

use super::utf8::Utf8Stream;

/// Opcode of a text frame.
pub const TEXT: u8 = 0x1;
/// Opcode of a close frame.
pub const CLOSE: u8 = 0x8;
/// Opcode of a ping.
pub const PING: u8 = 0x9;
/// Opcode of a pong.
pub const PONG: u8 = 0xA;

/// Longest control-frame payload (RFC 6455 § 5.5).
pub const MAX_CONTROL: usize = 125;

/// The header of one unfragmented, unmasked server frame with `opcode` and a payload of
/// `len` bytes: 2, 4 or 10 bytes, returned with its length.
pub fn header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | (opcode & 0x0f);
    let len64 = u64::try_from(len).unwrap_or(u64::MAX);
    if len < 126 {
        h[1] = len64 as u8;
        (h, 2)
    } else if let Ok(short) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&short.to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&len64.to_be_bytes());
        (h, 10)
    }
}

/// The server's keepalive: a ping with no payload (FIN + opcode 9, length 0), the same bytes
/// for every subscriber every `alerts.ping_secs`, so nothing is built per ping.
pub const EMPTY_PING: [u8; 2] = [0x80 | PING, 0];

/// A whole control frame (`opcode`, `payload` cut to 125 bytes) as bytes.
pub fn control(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(MAX_CONTROL)];
    let (h, n) = header(opcode, payload.len());
    let mut out = Vec::with_capacity(n + payload.len());
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(payload);
    out
}

/// The code to answer a client's close with: its own if RFC 6455 § 7.4 lets it be sent, 1000
/// if it gave none, 1002 (protocol error) for one no endpoint may send (1005, 1006, 1015,
/// unassigned ranges).
pub fn echo_code(received: Option<u16>) -> u16 {
    match received {
        None => 1000,
        Some(code @ (1000..=1003 | 1007..=1011 | 3000..=4999)) => code,
        Some(_) => 1002,
    }
}

/// A close frame with `code` and `reason` (cut so the payload fits 125 bytes).
pub fn close(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    let mut cut = reason.len().min(MAX_CONTROL - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    control(CLOSE, &payload)
}

/// What a client sent, as far as this server cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A ping: answer with a pong carrying `payload`.
    Ping(Vec<u8>),
    /// A pong (an answer to our ping).
    Pong,
    /// A data frame (text, binary or continuation), skipped: it only shows the client is there.
    Data,
    /// A close, with its status code if it had one.
    Close(Option<u16>),
}

/// A client frame that breaks the protocol; the connection is closed with
/// [`FrameError::close_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Client frames must be masked (RFC 6455 § 5.1).
    #[error("client frame is not masked")]
    Unmasked,
    /// RSV bits set without a negotiated extension.
    #[error("reserved bits set")]
    Reserved,
    /// An opcode RFC 6455 does not define.
    #[error("unknown opcode {0:#x}")]
    Opcode(u8),
    /// A control frame longer than 125 bytes or fragmented.
    #[error("malformed control frame")]
    Control,
    /// A continuation without a message to continue, or a new message inside one.
    #[error("bad fragmentation")]
    Fragmentation,
    /// A data message over the configured limit.
    #[error("message of {0} bytes is over the limit")]
    TooLarge(u64),
    /// A text message, or a close reason, that is not UTF-8 (RFC 6455 § 8.1, § 5.5.1).
    #[error("text that is not UTF-8")]
    InvalidUtf8,
    /// A 64-bit payload length with its most significant bit set (RFC 6455 § 5.2).
    #[error("payload length over 2^63")]
    Length,
}

impl FrameError {
    /// The close code to answer with: 1009 for size, 1007 for text that is not UTF-8, 1002
    /// (protocol error) for the rest.
    pub fn close_code(self) -> u16 {
        match self {
            FrameError::TooLarge(_) => 1009,
            FrameError::InvalidUtf8 => 1007,
            _ => 1002,
        }
    }
}

#[derive(Debug)]
enum State {
    /// Collecting the 2–14 header bytes.
    Header { buf: [u8; 14], have: usize },
    /// Inside a payload: `left` bytes to go; control payloads are kept.
    Payload {
        opcode: u8,
        fin: bool,
        left: u64,
        mask: [u8; 4],
        at: usize,
    },
}

/// Decodes client frames fed in arbitrary pieces. Holds ≤ 14 header bytes and one control
/// payload; data payloads are skipped, text checked as UTF-8 on the way ([`Utf8Stream`]).
#[derive(Debug)]
pub struct Decoder {
    state: State,
    control: Vec<u8>,
    /// Bytes of the data message in progress, `None` outside a fragmented message.
    message: Option<u64>,
    max_message: u64,
    /// The data message in progress is text: its bytes are checked as UTF-8.
    text: bool,
    utf8: Utf8Stream,
    /// The client's close frame came: what follows is ignored.
    closed: bool,
}

impl Decoder {
    /// A decoder refusing data messages over `max_message` bytes.
    pub fn new(max_message: u64) -> Decoder {
        Decoder {
            state: State::Header {
                buf: [0; 14],
                have: 0,
            },
            control: Vec::new(),
            message: None,
            max_message,
            text: false,
            utf8: Utf8Stream::default(),
            closed: false,
        }
    }

    /// Feeds `input`; calls `event` for every complete frame of interest.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut event: impl FnMut(ClientEvent),
    ) -> Result<(), FrameError> {
        // After the client's close frame nothing it sends counts (RFC 6455 § 5.5.1).
        while !input.is_empty() && !self.closed {
            match &mut self.state {
                State::Header { buf, have } => {
                    let take = (header_len(&buf[..*have]) - *have).min(input.len());
                    buf[*have..*have + take].copy_from_slice(&input[..take]);
                    *have += take;
                    input = &input[take..];
                    if *have == header_len(&buf[..*have]) {
                        let parsed = self.start_frame()?;
                        if let Some(done) = parsed {
                            self.closed = matches!(done, ClientEvent::Close(_));
                            event(done);
                        }
                    }
                }
                State::Payload {
                    opcode,
                    fin,
                    left,
                    mask,
                    at,
                } => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    if *opcode >= CLOSE {
                        for (i, b) in input[..n].iter().enumerate() {
                            self.control.push(b ^ mask[(*at + i) % 4]);
                        }
                    } else if self.text {
                        // Unmasked a stack buffer at a time: nothing kept, nothing allocated.
                        let mut plain = [0u8; 64];
                        for (k, piece) in input[..n].chunks(plain.len()).enumerate() {
                            let from = *at + k * plain.len();
                            for (i, b) in piece.iter().enumerate() {
                                plain[i] = b ^ mask[(from + i) % 4];
                            }
                            if !self.utf8.feed(&plain[..piece.len()]) {
                                return Err(FrameError::InvalidUtf8);
                            }
                        }
                    }
                    *at += n;
                    *left -= n as u64;
                    input = &input[n..];
                    if *left == 0 {
                        let (opcode, fin) = (*opcode, *fin);
                        self.state = State::Header {
                            buf: [0; 14],
                            have: 0,
                        };
                        let done = self.finish(opcode, fin)?;
                        self.closed = matches!(done, ClientEvent::Close(_));
                        event(done);
                    }
                }
            }
        }
        Ok(())
    }

    /// The header is complete: checks it and enters the payload (or finishes an empty frame).
    fn start_frame(&mut self) -> Result<Option<ClientEvent>, FrameError> {
        let State::Header { buf, have } = &self.state else {
            return Ok(None);
        };
        let h = &buf[..*have];
        let (fin, rsv, opcode) = (h[0] & 0x80 != 0, h[0] & 0x70, h[0] & 0x0f);
        if rsv != 0 {
            return Err(FrameError::Reserved);
        }
        if h[1] & 0x80 == 0 {
            return Err(FrameError::Unmasked);
        }
        let len = match h[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            n => u64::from(n),
        };
        if len >> 63 != 0 {
            return Err(FrameError::Length);
        }
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&h[*have - 4..*have]);
        match opcode {
            CLOSE | PING | PONG => {
                // A close body is empty or a 2-byte code plus reason (RFC 6455 § 5.5.1).
                if !fin || len > MAX_CONTROL as u64 || (opcode == CLOSE && len == 1) {
                    return Err(FrameError::Control);
                }
                self.control.clear();
            }
            0x0..=0x2 => {
                let so_far = match (opcode, self.message) {
                    (0x0, Some(n)) => n,
                    (0x0, None) => return Err(FrameError::Fragmentation),
                    (_, Some(_)) => return Err(FrameError::Fragmentation),
                    (_, None) => 0,
                };
                let total = so_far.saturating_add(len);
                if total > self.max_message {
                    return Err(FrameError::TooLarge(total));
                }
                self.message = (!fin).then_some(total);
                if opcode != 0x0 {
                    self.text = opcode == TEXT;
                    self.utf8 = Utf8Stream::default();
                }
            }
            other => return Err(FrameError::Opcode(other)),
        }
        if len == 0 {
            self.state = State::Header {
                buf: [0; 14],
                have: 0,
            };
            return self.finish(opcode, fin).map(Some);
        }
        self.state = State::Payload {
            opcode,
            fin,
            left: len,
            mask,
            at: 0,
        };
        Ok(None)
    }

    /// A frame's payload is complete: its event, or the error a text message ending inside a
    /// character, or a close reason that is not UTF-8, is.
    fn finish(&mut self, opcode: u8, fin: bool) -> Result<ClientEvent, FrameError> {
        Ok(match opcode {
            PING => ClientEvent::Ping(std::mem::take(&mut self.control)),
            PONG => ClientEvent::Pong,
            CLOSE => {
                let reason = self.control.get(2..).unwrap_or_default();
                if std::str::from_utf8(reason).is_err() {
                    return Err(FrameError::InvalidUtf8);
                }
                let code = (self.control.len() >= 2)
                    .then(|| u16::from_be_bytes([self.control[0], self.control[1]]));
                ClientEvent::Close(code)
            }
            _ => {
                if fin && self.text {
                    self.text = false;
                    if !self.utf8.complete() {
                        return Err(FrameError::InvalidUtf8);
                    }
                }
                ClientEvent::Data
            }
        })
    }
}

/// How many header bytes the frame starting with `have` needs (2 until the length byte is
/// known).
fn header_len(have: &[u8]) -> usize {
    let Some(&second) = have.get(1) else {
        return 2;
    };
    let masked = if second & 0x80 != 0 { 4 } else { 0 };
    2 + masked
        + match second & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn decode_in_pieces(bytes: &[u8], piece: usize) -> Result<Vec<ClientEvent>, FrameError> {
        let mut d = Decoder::new(4096);
        let mut events = Vec::new();
        for chunk in bytes.chunks(piece) {
            d.feed(chunk, |e| events.push(e))?;
        }
        Ok(events)
    }

    #[test]
    fn headers_use_the_shortest_length_form() {
        assert_eq!(header(TEXT, 5).0[..2], [0x81, 5]);
        let (h, n) = header(TEXT, 300);
        assert_eq!((&h[..n], n), (&[0x81, 126, 1, 44][..], 4));
        let (h, n) = header(TEXT, 70_000);
        assert_eq!(n, 10);
        assert_eq!(h[1], 127);
        assert_eq!(u64::from_be_bytes(h[2..10].try_into().expect("8")), 70_000);
        let frame = close(4008, "slow consumer");
        assert_eq!(frame[..4], [0x88, 15, 0x0f, 0xa8]);
        assert_eq!(&frame[4..], b"slow consumer");
        assert!(close(1000, &"长".repeat(100)).len() <= 2 + MAX_CONTROL);
        assert_eq!(EMPTY_PING.to_vec(), control(PING, b""));
        assert_eq!(echo_code(None), 1000);
        assert_eq!(echo_code(Some(4001)), 4001);
        for forbidden in [0, 999, 1005, 1006, 1015, 2000, 5000] {
            assert_eq!(echo_code(Some(forbidden)), 1002, "{forbidden}");
        }
    }

    #[test]
    fn client_frames_decode_in_any_split() {
        let mut stream = client(true, PING, b"hi");
        stream.extend(client(true, TEXT, &[b'x'; 300]));
        stream.extend(client(false, TEXT, b"ab"));
        stream.extend(client(true, PONG, b""));
        stream.extend(client(true, 0x0, b"cd"));
        stream.extend(client(true, CLOSE, &1000u16.to_be_bytes()));
        let want = vec![
            ClientEvent::Ping(b"hi".to_vec()),
            ClientEvent::Data,
            ClientEvent::Data,
            ClientEvent::Pong,
            ClientEvent::Data,
            ClientEvent::Close(Some(1000)),
        ];
        for piece in [1, 2, 3, 7, 64, stream.len()] {
            assert_eq!(
                decode_in_pieces(&stream, piece),
                Ok(want.clone()),
                "{piece}"
            );
        }
    }

    #[test]
    fn protocol_violations_are_errors_with_their_close_code() {
        let mut unmasked = client(true, TEXT, b"x");
        unmasked[1] &= 0x7f;
        let mut reserved = client(true, TEXT, b"x");
        reserved[0] |= 0x40;
        let cases = [
            (unmasked, FrameError::Unmasked, 1002),
            (reserved, FrameError::Reserved, 1002),
            (client(true, 0x3, b""), FrameError::Opcode(3), 1002),
            (client(true, PING, &[0; 126]), FrameError::Control, 1002),
            (client(false, PING, b""), FrameError::Control, 1002),
            (client(true, CLOSE, b"x"), FrameError::Control, 1002),
            (client(true, 0x0, b"x"), FrameError::Fragmentation, 1002),
            (
                client(true, TEXT, &[0; 5000]),
                FrameError::TooLarge(5000),
                1009,
            ),
        ];
        for (bytes, err, code) in cases {
            assert_eq!(decode_in_pieces(&bytes, 3), Err(err));
            assert_eq!(err.close_code(), code);
        }
        // Text that is not UTF-8 (RFC 6455 § 8.1), in one frame, cut at a message's end, or
        // across fragments; and a close reason (§ 5.5.1): 1007. Binary may hold anything.
        let mut cut_across = client(false, TEXT, "预".as_bytes().get(..2).unwrap_or_default());
        cut_across.extend(client(true, 0x0, b"x"));
        let mut bad_reason = 1000u16.to_be_bytes().to_vec();
        bad_reason.extend_from_slice(b"\xff");
        for bytes in [
            client(true, TEXT, b"ok \xff"),
            client(true, TEXT, "预".as_bytes().get(..2).unwrap_or_default()),
            cut_across,
            client(true, CLOSE, &bad_reason),
        ] {
            assert_eq!(decode_in_pieces(&bytes, 3), Err(FrameError::InvalidUtf8));
        }
        assert_eq!(FrameError::InvalidUtf8.close_code(), 1007);
        let mut split_char = client(false, TEXT, "预".as_bytes().get(..1).unwrap_or_default());
        split_char.extend(client(true, PING, b"between"));
        split_char.extend(client(
            true,
            0x0,
            "预".as_bytes().get(1..).unwrap_or_default(),
        ));
        split_char.extend(client(true, 0x2, b"\xff\xfe"));
        for piece in [1, 2, 5, split_char.len()] {
            assert_eq!(
                decode_in_pieces(&split_char, piece).map(|e| e.len()),
                Ok(4),
                "a character split across fragments, a ping between: {piece}"
            );
        }
        let mut huge = client(true, TEXT, b"");
        huge[1] = 0x80 | 127;
        huge.splice(2..2, (1u64 << 63).to_be_bytes());
        assert_eq!(decode_in_pieces(&huge, 4), Err(FrameError::Length));
        assert_eq!(FrameError::Length.close_code(), 1002);
        // After a close frame, nothing the client sends counts, garbage included.
        let mut closing = client(true, CLOSE, &1000u16.to_be_bytes());
        closing.extend_from_slice(b"\xff\xff garbage");
        closing.extend(client(true, PING, b"late"));
        assert_eq!(
            decode_in_pieces(&closing, 5),
            Ok(vec![ClientEvent::Close(Some(1000))])
        );
        let mut two_starts = client(false, TEXT, b"a");
        two_starts.extend(client(true, TEXT, b"b"));
        assert_eq!(
            decode_in_pieces(&two_starts, 5),
            Err(FrameError::Fragmentation)
        );
        let mut over = client(false, TEXT, &[0; 3000]);
        over.extend(client(true, 0x0, &[0; 3000]));
        assert_eq!(
            decode_in_pieces(&over, 100),
            Err(FrameError::TooLarge(6000))
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Arbitrary bytes, split anywhere, never panic the decoder, and never make it report
        /// more frames than the bytes could hold.
        #[test]
        fn arbitrary_client_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
            split in 0usize..4096,
        ) {
            let mut decoder = Decoder::new(1024);
            let at = split.min(bytes.len());
            let mut events = 0usize;
            for chunk in [&bytes[..at], &bytes[at..]] {
                if decoder.feed(chunk, |_| events += 1).is_err() {
                    break;
                }
            }
            // Every event is a complete masked frame: at least 2 header and 4 mask bytes.
            proptest::prop_assert!(events * 6 <= bytes.len(), "{} events from {} bytes", events, bytes.len());
        }

        /// Valid masked frames of any size up to the limit decode to exactly one event each,
        /// whatever the split.
        #[test]
        fn valid_frames_decode_whatever_the_split(
            sizes in proptest::collection::vec(0usize..1024, 1..8),
            split in 0usize..8192,
        ) {
            let mut stream = Vec::new();
            for &n in &sizes {
                stream.extend(client(true, TEXT, &vec![b'a'; n]));
            }
            let at = split.min(stream.len());
            let mut decoder = Decoder::new(1024);
            let mut data = 0usize;
            for chunk in [&stream[..at], &stream[at..]] {
                decoder
                    .feed(chunk, |e| {
                        if e == ClientEvent::Data {
                            data += 1;
                        }
                    })
                    .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            }
            proptest::prop_assert_eq!(data, sizes.len());
        }
    }
}
