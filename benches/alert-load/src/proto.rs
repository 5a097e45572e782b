//! The line protocol between the parent and its child processes (client workers and ceiling
//! servers): one message per line on the child's stdout, one command per line on its stdin.
//!
//! Child → parent:
//! - `listening ADDR` — a ceiling server's listener.
//! - `ready CONNECTED FAILED` — a worker finished connecting its subscribers.
//! - `got SEQ COUNT FIRST_NS LAST_NS BYTES` — every live subscriber of the worker received
//!   broadcast `SEQ`; stamps are `CLOCK_MONOTONIC` of the first and last delivery, `BYTES` the
//!   payload size of one delivery.
//! - `partial SEQ COUNT FIRST_NS LAST_NS BYTES` — the answer to `query SEQ`.
//! - `closed TOTAL` — subscribers whose connection ended after `ready` (running total).
//! - `sent SEQ WRITTEN FAILED DONE_NS` — a ceiling server wrote broadcast `SEQ`.
//! - `error TEXT`.
//!
//! Parent → child: `query SEQ` (worker), `b SEQ` (ceiling server: broadcast), `quit`.

use std::net::SocketAddr;

/// Deliveries of one broadcast seen by one worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub seq: u64,
    pub count: usize,
    pub first_ns: u64,
    pub last_ns: u64,
    pub bytes: usize,
}

impl Tally {
    /// Adds one delivery stamped `now_ns` of `bytes`.
    pub fn add(&mut self, now_ns: u64, bytes: usize) {
        if self.count == 0 || now_ns < self.first_ns {
            self.first_ns = now_ns;
        }
        self.last_ns = self.last_ns.max(now_ns);
        self.count += 1;
        self.bytes = bytes;
    }

    fn fields(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.seq, self.count, self.first_ns, self.last_ns, self.bytes
        )
    }

    fn parse(fields: &[&str]) -> Option<Tally> {
        let [seq, count, first, last, bytes] = fields else {
            return None;
        };
        Some(Tally {
            seq: seq.parse().ok()?,
            count: count.parse().ok()?,
            first_ns: first.parse().ok()?,
            last_ns: last.parse().ok()?,
            bytes: bytes.parse().ok()?,
        })
    }
}

/// One line from a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Listening(SocketAddr),
    Ready {
        connected: usize,
        failed: usize,
    },
    Got(Tally),
    Partial(Tally),
    Closed(usize),
    Sent {
        seq: u64,
        written: usize,
        failed: usize,
        done_ns: u64,
    },
    Error(String),
}

impl Report {
    /// The line (without newline).
    pub fn line(&self) -> String {
        match self {
            Report::Listening(addr) => format!("listening {addr}"),
            Report::Ready { connected, failed } => format!("ready {connected} {failed}"),
            Report::Got(t) => format!("got {}", t.fields()),
            Report::Partial(t) => format!("partial {}", t.fields()),
            Report::Closed(n) => format!("closed {n}"),
            Report::Sent {
                seq,
                written,
                failed,
                done_ns,
            } => format!("sent {seq} {written} {failed} {done_ns}"),
            // One line: newlines in the text would split the message.
            Report::Error(text) => format!("error {}", text.replace(['\n', '\r'], " ")),
        }
    }

    /// Parses a line; anything unknown becomes `Error` carrying the line.
    pub fn parse(line: &str) -> Report {
        let line = line.trim_end();
        let parsed = (|| {
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            let fields: Vec<&str> = rest.split_whitespace().collect();
            match word {
                "listening" => rest.trim().parse().ok().map(Report::Listening),
                "ready" => match fields[..] {
                    [c, f] => Some(Report::Ready {
                        connected: c.parse().ok()?,
                        failed: f.parse().ok()?,
                    }),
                    _ => None,
                },
                "got" => Tally::parse(&fields).map(Report::Got),
                "partial" => Tally::parse(&fields).map(Report::Partial),
                "closed" => rest.trim().parse().ok().map(Report::Closed),
                "sent" => match fields[..] {
                    [s, w, f, d] => Some(Report::Sent {
                        seq: s.parse().ok()?,
                        written: w.parse().ok()?,
                        failed: f.parse().ok()?,
                        done_ns: d.parse().ok()?,
                    }),
                    _ => None,
                },
                "error" => Some(Report::Error(rest.to_owned())),
                _ => None,
            }
        })();
        parsed.unwrap_or_else(|| Report::Error(format!("unparseable line {line:?}")))
    }
}

/// One command on a child's stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Query(u64),
    Broadcast(u64),
    Quit,
}

impl Command {
    /// The line, with its newline.
    pub fn line(self) -> String {
        match self {
            Command::Query(seq) => format!("query {seq}\n"),
            Command::Broadcast(seq) => format!("b {seq}\n"),
            Command::Quit => "quit\n".to_owned(),
        }
    }

    /// Parses a line (`None`: unknown, ignored).
    pub fn parse(line: &str) -> Option<Command> {
        let mut it = line.split_whitespace();
        match (it.next()?, it.next()) {
            ("query", Some(seq)) => seq.parse().ok().map(Command::Query),
            ("b", Some(seq)) => seq.parse().ok().map(Command::Broadcast),
            ("quit", None) => Some(Command::Quit),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        let t = Tally {
            seq: 7,
            count: 9000,
            first_ns: 10,
            last_ns: 99,
            bytes: 812,
        };
        let all = [
            Report::Listening(SocketAddr::from(([127, 0, 0, 1], 4000))),
            Report::Ready {
                connected: 9000,
                failed: 2,
            },
            Report::Got(t),
            Report::Partial(t),
            Report::Closed(3),
            Report::Sent {
                seq: 4,
                written: 10,
                failed: 0,
                done_ns: 5,
            },
            Report::Error("no route".to_owned()),
        ];
        for r in all {
            assert_eq!(Report::parse(&r.line()), r);
        }
        assert!(matches!(Report::parse("got 1 2"), Report::Error(_)));
        assert!(matches!(Report::parse("gibberish"), Report::Error(_)));
        assert_eq!(
            Report::Error("a\nb".to_owned()).line(),
            "error a b".to_owned()
        );
    }

    #[test]
    fn commands_round_trip() {
        for c in [Command::Query(3), Command::Broadcast(8), Command::Quit] {
            assert_eq!(Command::parse(&c.line()), Some(c));
        }
        assert_eq!(Command::parse("query x"), None);
        assert_eq!(Command::parse(""), None);
    }

    #[test]
    fn a_tally_keeps_first_and_last() {
        let mut t = Tally::default();
        t.add(50, 300);
        t.add(40, 300);
        t.add(70, 300);
        assert_eq!((t.count, t.first_ns, t.last_ns), (3, 40, 70));
    }
}
