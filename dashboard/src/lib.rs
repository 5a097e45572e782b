//! Command-center dashboards: embedded web pages (meeting client, wall display, public alerts,
//! publisher console) and the live ops feed for walls.
//!
//! Empty until the dashboard issue lands; see ARCHITECTURE.md.
