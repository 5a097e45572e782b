//! Streaming UTF-8 validation of what clients send as text: RFC 6455 § 8.1 fails the
//! connection (1007) on invalid UTF-8 in a text message, fragments included, and § 5.5.1 in
//! a close frame's reason. The decoder skips data payloads without keeping them, so text is
//! checked piece by piece as it arrives; only a character cut between pieces (≤ 3 bytes) is
//! kept.

/// The validation state of one text message.
#[derive(Debug, Default, Clone, Copy)]
pub struct Utf8Stream {
    /// The start of a character the last piece ended inside.
    cut: [u8; 4],
    len: u8,
}

impl Utf8Stream {
    /// Feeds the message's next bytes; false once the message cannot be UTF-8.
    pub fn feed(&mut self, mut bytes: &[u8]) -> bool {
        if self.len > 0 {
            let have = usize::from(self.len);
            let take = (width(self.cut[0]) - have).min(bytes.len());
            self.cut[have..have + take].copy_from_slice(&bytes[..take]);
            self.len += take as u8;
            bytes = &bytes[take..];
            match std::str::from_utf8(&self.cut[..usize::from(self.len)]) {
                Ok(_) => self.len = 0,
                // Still cut (the piece ended again): nothing more to check in this piece.
                Err(e) if e.error_len().is_none() => return true,
                Err(_) => return false,
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => true,
            Err(e) if e.error_len().is_none() => {
                let rest = &bytes[e.valid_up_to()..];
                self.cut[..rest.len()].copy_from_slice(rest);
                self.len = rest.len() as u8;
                true
            }
            Err(_) => false,
        }
    }

    /// Whether the message may end here: no character left cut.
    pub fn complete(&self) -> bool {
        self.len == 0
    }
}

/// The length of the character a lead byte starts (1 for anything `from_utf8` would refuse
/// as a lead, which is then never kept as cut).
fn width(lead: u8) -> usize {
    match lead {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::Utf8Stream;

    fn check_in_pieces(bytes: &[u8], piece: usize) -> bool {
        let mut stream = Utf8Stream::default();
        bytes.chunks(piece).all(|chunk| stream.feed(chunk)) && stream.complete()
    }

    #[test]
    fn text_is_checked_whatever_the_split() {
        let text = "食品安全预警 ok 🚨 é".as_bytes();
        for piece in 1..=text.len() {
            assert!(check_in_pieces(text, piece), "{piece}");
        }
        let invalid: [&[u8]; 6] = [
            b"\xff",
            b"ok \xc0\xaf",                               // overlong '/'
            b"\xed\xa0\x80",                              // a surrogate
            b"\xf4\x90\x80\x80",                          // above U+10FFFF
            "预".as_bytes().get(..2).unwrap_or_default(), // ends cut
            b"\xe9\xa2x",                                 // a continuation missing
        ];
        for bytes in invalid {
            for piece in 1..=bytes.len() {
                assert!(!check_in_pieces(bytes, piece), "{bytes:x?} in {piece}s");
            }
        }
    }

    proptest::proptest! {
        /// Whatever the bytes and the split, the stream agrees with `str::from_utf8` on the
        /// whole.
        #[test]
        fn agrees_with_from_utf8(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            piece in 1usize..8,
        ) {
            proptest::prop_assert_eq!(
                check_in_pieces(&bytes, piece),
                std::str::from_utf8(&bytes).is_ok()
            );
        }

        /// Valid text, split anywhere, passes.
        #[test]
        fn valid_text_passes(text in "\\PC{0,40}", piece in 1usize..8) {
            proptest::prop_assert!(check_in_pieces(text.as_bytes(), piece));
        }
    }
}
