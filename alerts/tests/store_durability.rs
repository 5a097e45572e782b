//! Acknowledged means durable: a writer process appends alerts and prints each acknowledged
//! sequence number; the test SIGKILLs it (`kill -KILL`) at a random moment, reopens the file
//! and checks that every acknowledged alert is there, the numbers are gap-free, and nothing is
//! half-written (each row has its region rows and its full-text row; SQLite's and FTS5's
//! integrity checks pass). Several rounds on one file, so appends after a crash recovery are
//! checked too.
//!
//! The writer is this test binary re-executed with `--exact child_appender` and the database
//! path in `HUBCAST_STORE_CHILD_DB`; without that variable `child_appender` does nothing.
//! SIGKILL tests process death (the page cache survives); power loss is what
//! `synchronous=FULL` adds on top (the WAL is fsynced before `append` returns), which a test
//! on one machine cannot cut.

mod store_util;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alerts::store::{SqliteStore, Store};
use rusqlite::Connection;
use store_util::*;

const CHILD_DB: &str = "HUBCAST_STORE_CHILD_DB";
const CHILD_ROUND: &str = "HUBCAST_STORE_CHILD_ROUND";
/// Appends per child if never killed: more than any kill point, so a kill lands mid-stream.
const PER_CHILD: usize = 400;
const ROUNDS: usize = 4;

/// The writer: appends alerts, printing `ACK <seq>;` after each `append` returned.
#[test]
fn child_appender() {
    let Ok(path) = std::env::var(CHILD_DB) else {
        return; // an ordinary test run: only the re-executed binary writes
    };
    let round = std::env::var(CHILD_ROUND).unwrap_or_default();
    let store = SqliteStore::open(&path).expect("child opens the store");
    let mut out = std::io::stdout().lock();
    for i in 0..PER_CHILD {
        let spec = Spec {
            identifier: format!("D{round}-{i}"),
            regions: &["330106", "330110"],
            description: "西湖区某餐馆使用二氧化硫超标的黄花菜，请消费者注意。",
            ..Spec::default()
        };
        let a = append(&store, &alert(&spec));
        writeln!(out, "ACK {};", a.seq).expect("stdout");
        out.flush().expect("stdout");
    }
}

/// xorshift64*: enough randomness for kill points, seeded from the clock and printed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[test]
fn acknowledged_alerts_survive_sigkill_at_a_random_moment() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    let seed = u64::from(nanos) | 1;
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.db");
    let exe = std::env::current_exe().expect("test binary");
    let mut acked_total: Vec<u64> = Vec::new();

    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "child_appender",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DB, &path)
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the writer");
        let stdout = child.stdout.take().expect("piped stdout");
        let kill_after = 1 + rng.below(150) as usize;
        let pause = Duration::from_micros(rng.below(3_000));
        let mut acked: Vec<u64> = Vec::new();
        let mut lines = BufReader::new(stdout).lines();
        let mut killed = false;
        for line in lines.by_ref() {
            let line = line.expect("read the writer's stdout");
            if let Some(seq) = line.strip_prefix("ACK ").and_then(|s| s.strip_suffix(';')) {
                acked.push(seq.parse().expect("a sequence number"));
            }
            if acked.len() == kill_after {
                std::thread::sleep(pause);
                let status = Command::new("kill")
                    .args(["-KILL", &child.id().to_string()])
                    .status()
                    .expect("run kill");
                assert!(status.success(), "kill -KILL failed");
                killed = true;
                break;
            }
        }
        // Lines written before the kill are acknowledged too; a torn last line has no `;`.
        for line in lines.map_while(Result::ok) {
            if let Some(seq) = line.strip_prefix("ACK ").and_then(|s| s.strip_suffix(';')) {
                acked.push(seq.parse().expect("a sequence number"));
            }
        }
        let status = child.wait().expect("reap the writer");
        assert!(
            killed,
            "seed {seed}: the writer ended before the kill point: {status}"
        );
        let context = format!("seed {seed}, round {round}, kill after {kill_after} + {pause:?}");
        assert!(!acked.is_empty(), "{context}");
        acked_total.extend(&acked);
        verify(&path, &acked_total, &context);
    }
}

/// Every acknowledged seq is stored; seqs are 1..=last; every row is whole.
fn verify(path: &std::path::Path, acked: &[u64], context: &str) {
    let store = SqliteStore::open(path).expect("reopen after SIGKILL");
    let last = store.last_seq().expect("last seq");
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let batch = store.since(after, 500).expect("since");
        let Some(tail) = batch.last() else { break };
        after = tail.seq;
        all.extend(batch);
    }
    let stored = seqs(&all);
    assert_eq!(
        stored,
        (1..=last).collect::<Vec<_>>(),
        "{context}: gap-free"
    );
    for &seq in acked {
        assert!(
            seq <= last,
            "{context}: acknowledged #{seq} lost (last {last})"
        );
    }
    for a in &all {
        let alert = a.alert().expect("stored XML parses");
        assert_eq!(alert.identifier, a.identifier, "{context}");
        assert_eq!(a.regions.len(), 2, "{context}");
    }

    let conn = Connection::open(path).expect("inspect");
    let count = |sql: &str| -> u64 {
        let n: i64 = conn.query_row(sql, [], |r| r.get(0)).expect(sql);
        n.unsigned_abs()
    };
    assert_eq!(count("SELECT count(*) FROM alerts"), last, "{context}");
    assert_eq!(
        count("SELECT count(DISTINCT seq) FROM alert_targets"),
        last,
        "{context}: every row has its target rows"
    );
    assert_eq!(
        count("SELECT count(*) FROM alert_targets"),
        2 * last,
        "{context}"
    );
    assert_eq!(count("SELECT count(*) FROM alerts_fts"), last, "{context}");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok", "{context}");
    conn.execute(
        "INSERT INTO alerts_fts (alerts_fts) VALUES ('integrity-check')",
        [],
    )
    .expect("FTS5 integrity-check");
    let hits = store
        .query(&alerts::store::ArchiveQuery {
            q: Some("二氧化硫".into()),
            limit: 1,
            ..Default::default()
        })
        .expect("full text after recovery");
    assert_eq!(hits.items.first().map(|a| a.seq), Some(last), "{context}");
}
