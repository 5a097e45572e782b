//! Fan-out bench (being written).

fn main() {}
