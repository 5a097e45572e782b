//! The media plane: a selective forwarding unit on str0m.
//!
//! `core` (sans-IO rooms, forwarding table, simulcast layer choice, RTP rewriting, keyframe
//! throttle, active speaker) and `driver` (one UDP socket, batched I/O, one `Rtc` per peer).
//! Empty until the SFU issue lands; see ARCHITECTURE.md.
