//! Meetings: scheduling, roster and floor control (a sans-IO state machine), the WebSocket
//! signaling protocol, and the WHIP/WHEP HTTP endpoints.
//!
//! Empty until the meetings and SFU issues land; see ARCHITECTURE.md.
