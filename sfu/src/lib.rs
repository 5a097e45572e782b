//! The media plane: a selective forwarding unit on str0m.
//!
//! - [`core`]: sans-IO rooms (forwarding table, simulcast layer choice, RTP rewriting, keyframe
//!   throttle, active speaker), driven with `now` passed in and tested on simulated time.
//! - [`driver`]: the thin I/O layer: one shared UDP socket and one ICE-TCP port, a receiving
//!   thread that demultiplexes datagrams to worker threads, one str0m `Rtc` per peer.
//!
//! This crate never imports the HTTP layer or `alerts`; the binary talks to it through
//! [`driver::Sfu`] (bounded command channels).

pub mod core;
pub mod driver;
