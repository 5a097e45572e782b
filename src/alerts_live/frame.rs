//! One encoding of each alert for both live transports. The hub fans out one `Bytes` per alert
//! (shared by refcount); it holds the alert as a complete Server-Sent Event,
//! `id: <seq>\ndata: <JSON frame>\n\n`, so an SSE subscriber writes it as it is and a
//! WebSocket subscriber writes the JSON inside it ([`ws_body`], a borrowed slice). Encoded once
//! per alert and instance, when the alert enters the live hub ([`for_live`]).

use alerts::hub::PublishedAlert;
#[cfg(test)]
use bytes::Bytes;
use bytes::{BufMut as _, BytesMut};

const DATA: &[u8] = b"\ndata: ";
const END: &[u8] = b"\n\n";

/// `alert` with its JSON frame wrapped as an SSE event. The store's frame is compact JSON
/// (`serde_json` escapes every newline), so it is one `data:` line.
pub fn for_live(mut alert: PublishedAlert) -> PublishedAlert {
    let json = &alert.frame;
    let mut out = BytesMut::with_capacity(json.len() + 32);
    out.put_slice(b"id: ");
    out.put_slice(alert.seq.to_string().as_bytes());
    out.put_slice(DATA);
    out.put_slice(json);
    out.put_slice(END);
    alert.frame = out.freeze();
    alert
}

/// What a WebSocket text frame carries for alert `seq` whose live event is `event`: the JSON
/// inside it, or the whole event if it is not [`for_live`]'s (never the case on the live
/// path). The one definition both writers use (the hub task's direct writes and the
/// connection's), so a frame one of them started is finished byte-exactly by the other.
pub fn ws_body(event: &[u8], seq: u64) -> &[u8] {
    match json_range(event, seq) {
        Some(range) => &event[range],
        None => event,
    }
}

/// Where [`ws_body`] finds the JSON frame in `event`, without touching its refcount (the hub
/// task's direct writes borrow the bytes); `None` if `event` is not [`for_live`]'s for `seq`.
fn json_range(event: &[u8], seq: u64) -> Option<std::ops::Range<usize>> {
    let digits = seq.checked_ilog10().map_or(1, |d| d as usize + 1);
    let start = 4 + digits + DATA.len();
    let framed = event.len() >= start + END.len()
        && event.starts_with(b"id: ")
        && event[start - DATA.len()..start] == *DATA
        && event.ends_with(END);
    framed.then(|| start..event.len() - END.len())
}

/// A food alert for 330100 numbered `seq` carrying `frame` (unit tests of this module, the
/// hub task and the Atom feed).
#[cfg(test)]
pub(crate) fn test_alert(seq: u64, frame: Bytes) -> PublishedAlert {
    use alerts::hub::{AlertKind, MsgType, Severity};
    PublishedAlert {
        seq,
        id: seq.to_string(),
        kind: AlertKind::Food,
        severity: Severity::Severe,
        regions: vec![tiers::RegionCode::from_u32(330_100).expect("code")],
        msg_type: MsgType::Alert,
        references: Vec::new(),
        inherited: Vec::new(),
        expires: None,
        frame,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_encoding_serves_both_transports() {
        let frame =
            Bytes::from_static(br#"{"type":"alert","seq":42,"id":"42","alert":{"a":"x\ny"}}"#);
        let live = for_live(test_alert(42, frame.clone()));
        let text = std::str::from_utf8(&live.frame).expect("utf-8");
        assert!(text.starts_with("id: 42\ndata: {"), "{text}");
        assert!(text.ends_with("}\n\n"));
        assert_eq!(text.matches('\n').count(), 3, "one id line, one data line");
        let inner = ws_body(&live.frame, 42);
        assert_eq!(inner, &frame[..]);
        assert_eq!(
            ws_body(&live.frame, 7),
            &live.frame[..],
            "not the event of that seq: sent as it is"
        );
        assert_eq!(
            inner.as_ptr(),
            live.frame[13..].as_ptr(),
            "a slice, not a copy"
        );
        assert_eq!(
            ws_body(&frame, 42),
            &frame[..],
            "a bare frame passes through"
        );
    }
}
