//! Public alerts: CAP 1.2 model and validation, durable store (SQLite, Redis), sans-IO fan-out
//! hub, and the HTTP surface (publish, WebSocket, SSE, Atom, archive).
//!
//! Empty until the alerts issue lands; see ARCHITECTURE.md.
