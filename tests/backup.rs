//! `hubcast backup` and `restore` against the real binary: a copy taken while alerts are being
//! published is a whole store (every alert up to its last number, nothing after), checked by
//! `--check`, never written over an existing file; `restore` refuses a running hub, keeps the
//! store it replaces, and a hub started on the copy serves exactly its alerts and numbers on
//! above every number the replaced store gave out (subscribers holding a lost number get the
//! new alerts); `--check` refuses what is not a whole store; the Redis backend is refused
//! with what to back up instead.

mod alerts_live_util;
mod alerts_util;
mod common;

use std::path::Path;
use std::time::Duration;

use alerts_live_util::{Seen, Ws, publish};
use common::{Hub, run};

/// `hubcast backup ARGS… --data-dir DIR`; (success, stdout, stderr).
fn backup(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let dir = dir.display().to_string();
    let mut all = vec!["backup"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", &dir]);
    let (status, out, err) = run(&all, env);
    (status.success(), out, err)
}

/// "…, numbered up to N)" → N.
fn last_number(line: &str) -> u64 {
    line.rsplit("numbered up to ")
        .next()
        .and_then(|rest| rest.trim_end().trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no last number in {line:?}"))
}

/// A hub on `data` holding `n` alerts `{prefix}-0`…, and a province admin's token for it.
async fn hub_with(data: &Path, prefix: &str, n: usize) -> (Hub, String) {
    let hub = Hub::start_in(data, &[], &[]);
    let token = hub.token("province-admin", "330000", &[]);
    for i in 0..n {
        publish(
            &hub,
            &token,
            &format!("{prefix}-{i}"),
            "food",
            "Severe",
            "330106",
        )
        .await;
    }
    (hub, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_publishing_is_whole_and_restores() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let (hub, token) = hub_with(&data, "B", 3).await;
    // Publishing goes on while the copy is taken.
    let publishing = {
        let token = token.clone();
        let addr = hub.addr;
        tokio::spawn(async move {
            for i in 3..40 {
                let xml = alerts_util::cap_xml(&alerts_util::Fixture {
                    identifier: &format!("B-{i}"),
                    kind: "food",
                    severity: "Severe",
                    regions: &["330106"],
                    sent: "2025-07-01T08:00:00+08:00",
                    headline: "并发发布",
                    description: "备份期间发布",
                });
                let len = xml.len().to_string();
                let auth = format!("Bearer {token}");
                let headers = [
                    ("Authorization", auth.as_str()),
                    ("Content-Type", "application/cap+xml"),
                    ("Content-Length", len.as_str()),
                ];
                let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
                let answer = common::request_with_body(
                    stream,
                    "POST",
                    "/api/v1/alerts",
                    &headers,
                    xml.as_bytes(),
                )
                .await;
                assert_eq!(answer.status, 201, "{}", answer.body);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let file = tmp.path().join("backup.sqlite3");
    let target = file.display().to_string();
    let (ok, out, err) = {
        let data = data.clone();
        let target = target.clone();
        tokio::task::spawn_blocking(move || backup(&data, &[&target], &[]))
            .await
            .expect("backup ran")
    };
    assert!(ok, "backup: {out} {err}");
    let last = last_number(&out);
    assert!((3..=40).contains(&last), "{out}");
    publishing.await.expect("publishing");

    let (ok, checked, err) = backup(&data, &["--check", &target], &[]);
    assert!(ok, "{checked} {err}");
    assert!(
        checked.contains("a whole alert store") && last_number(&checked) == last,
        "{checked}"
    );
    let (ok, out, err) = backup(&data, &[&target], &[]);
    assert!(!ok, "an existing backup is not written over: {out}");
    assert!(err.contains("exists"), "{err}");

    // Restore: not while the hub runs; then the copy takes the store's place, the replaced
    // store is kept, and numbers it gave out after the copy are not given out again.
    let (ok, out, err) = restore(&data, &target, &[]);
    assert!(!ok, "restored under a running hub: {out}");
    assert!(err.contains("stop the hub"), "{err}");
    drop(hub);
    let (ok, out, err) = restore(&data, &target, &[]);
    assert!(ok, "{out} {err}");
    assert!(out.contains("the next alert is numbered 41"), "{out}");
    let kept = out
        .rsplit("kept as ")
        .next()
        .map(|p| p.trim().to_owned())
        .expect("names the kept store");
    assert!(Path::new(&kept).is_file(), "{out}");

    let hub = Hub::start_in(&data, &[], &[]);
    let page = alerts_util::archive(&hub, "region=330106&limit=100").await;
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len() as u64, last, "{page}");
    let newest = items[0]["seq"].as_u64().expect("seq");
    assert_eq!(
        newest, last,
        "every alert up to the copy's last, nothing after"
    );
    let served = alerts_util::get(&hub, &format!("/alerts/{last}.xml")).await;
    assert_eq!(served.status, 200);
    let after = alerts_util::get(&hub, &format!("/alerts/{}.xml", last + 1)).await;
    assert_eq!(after.status, 404, "nothing after the copy's last number");
    // A subscriber that saw 40 (lost with the restore) is not ahead, and one from before the
    // lost alerts goes on too: both get the next alert, numbered above every number given out.
    let mut saw_40 = Ws::connect(hub.addr, "region=330106&since=40").await;
    let mut saw_last = Ws::connect(hub.addr, &format!("region=330106&since={last}")).await;
    let next = publish(&hub, &token, "B-next", "food", "Severe", "330106").await;
    assert_eq!(next, 41);
    assert_eq!(saw_40.next().await, Seen::Alert(41, "B-next".to_owned()));
    assert_eq!(saw_last.next().await, Seen::Alert(41, "B-next".to_owned()));
}

/// `hubcast restore FILE ARGS… --data-dir DIR`; (success, stdout, stderr).
fn restore(dir: &Path, file: &str, args: &[&str]) -> (bool, String, String) {
    let dir = dir.display().to_string();
    let mut all = vec!["restore", file];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", &dir]);
    let (status, out, err) = run(&all, &[]);
    (status.success(), out, err)
}

#[tokio::test]
async fn check_refuses_what_is_not_a_whole_store() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let hub = Hub::start_in(&data, &[], &[]);
    let token = hub.token("province-admin", "330000", &[]);
    for i in 0..30 {
        let id = format!("C-{i}");
        alerts_live_util::publish_sized(&hub, &token, &id, "food", "Severe", "330106", 2000).await;
    }
    let good = tmp.path().join("good.sqlite3");
    let (ok, out, err) = backup(&data, &[&good.display().to_string()], &[]);
    assert!(ok, "{out} {err}");
    assert_eq!(last_number(&out), 30, "{out}");

    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "备份说明\n").expect("write");
    let bytes = std::fs::read(&good).expect("read");
    let cut = tmp.path().join("cut.sqlite3");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    // An empty file is a valid SQLite database with no tables: none of ours.
    let empty = tmp.path().join("empty.sqlite3");
    std::fs::write(&empty, b"").expect("write");
    let missing = tmp.path().join("missing.sqlite3");
    let damaged: &[&str] = &["malformed", "integrity check"];
    for (file, why) in [
        (&text, &["not a database"][..]),
        (&cut, damaged),
        (&empty, &["not a hubcast alert store"][..]),
        (&missing, &["does not exist"][..]),
    ] {
        let (ok, out, err) = backup(&data, &["--check", &file.display().to_string()], &[]);
        assert!(!ok, "{} passed: {out}", file.display());
        assert!(
            why.iter().any(|w| err.contains(w)),
            "{}: {err}",
            file.display()
        );
    }
    drop(hub);
}

#[test]
fn the_redis_backend_is_refused_with_what_to_back_up() {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("x.sqlite3");
    let (ok, out, err) = backup(
        tmp.path(),
        &[&file.display().to_string()],
        &[("HUBCAST_ALERTS__BACKEND", "redis")],
    );
    assert!(!ok, "{out}");
    assert!(err.contains("back up Redis"), "{err}");
    assert!(!file.exists(), "nothing written");
}

/// `restore` copies through SQLite, so a backup's own write-ahead log counts (the files of a
/// hub that was killed: its last commits are still in the log); it works onto a host with no
/// data directory yet; stray log files of a store that is gone are moved aside, never
/// applied to the restored one; with no store to read the last number from it warns, and
/// `--floor` puts the next number above the lost store's.
#[tokio::test]
async fn restore_takes_a_backups_own_log_and_never_a_stray_one() {
    let tmp = tempfile::tempdir().expect("tmp");
    let old = tmp.path().join("old");
    let (hub, _) = hub_with(&old, "W", 5).await;
    drop(hub); // SIGKILL: the commits stay in the log
    let wal = old.join("alerts.sqlite3-wal");
    assert!(
        std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0),
        "the killed hub's commits are in its log"
    );
    let copy = tmp.path().join("copy.sqlite3");
    std::fs::copy(old.join("alerts.sqlite3"), &copy).expect("copy");
    std::fs::copy(&wal, tmp.path().join("copy.sqlite3-wal")).expect("copy log");

    // A new host: no data directory, except stray log files of a store that is gone.
    let new = tmp.path().join("new");
    std::fs::create_dir(&new).expect("dir");
    std::fs::write(new.join("alerts.sqlite3-wal"), vec![0x5a; 8192]).expect("stray log");
    std::fs::write(new.join("alerts.sqlite3-shm"), vec![0x5a; 32768]).expect("stray shm");
    let source = copy.display().to_string();
    let (ok, out, err) = restore(&new, &source, &[]);
    assert!(ok, "{out} {err}");
    assert!(out.contains("5 alerts, numbered up to 5"), "{out}");
    assert!(
        err.contains("no store was there to read its last number from"),
        "{err}"
    );
    assert!(
        !new.join("alerts.sqlite3-shm").exists(),
        "stray files cleared"
    );
    assert!(
        std::fs::read(new.join("alerts.sqlite3-wal")).map_or(true, |b| b != vec![0x5a; 8192]),
        "the stray log is not beside the restored store"
    );

    // The lost store had numbered up to 100: restore again with --floor.
    let (ok, out, err) = restore(&new, &source, &["--floor", "100"]);
    assert!(ok, "{out} {err}");
    assert!(out.contains("the next alert is numbered 101"), "{out}");
    // The live set is rebuilt from the last stored alerts, not from below the floor (with a
    // retention of 1 and the floor 95 numbers above them, nothing would be live).
    let hub = Hub::start_in(&new, &[], &[("HUBCAST_ALERTS__RETAIN_COUNT", "1")]);
    let page = alerts_util::archive(&hub, "region=330106&limit=100").await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(5), "{page}");
    let feed = alerts_util::get(&hub, "/feeds/alerts.atom?region=330106").await;
    assert!(
        feed.body.contains("W-4"),
        "the newest restored alert is live: {}",
        feed.body
    );
    let next = publish(
        &hub,
        &hub.token("province-admin", "330000", &[]),
        "W-next",
        "food",
        "Severe",
        "330106",
    )
    .await;
    assert_eq!(next, 101);

    // A backup of that store carries its numbering: restored on yet another host, the next
    // number follows 101, not its 6 alerts.
    let again = tmp.path().join("again.sqlite3").display().to_string();
    let (ok, out, err) = backup(&new, &[&again], &[]);
    assert!(ok, "{out} {err}");
    drop(hub);
    let third = tmp.path().join("third");
    let (ok, out, err) = restore(&third, &again, &[]);
    assert!(ok, "{out} {err}");
    assert!(out.contains("the next alert is numbered 102"), "{out}");
    assert!(err.contains("numbers above 101"), "{err}");
}

/// A readable replaced store's own last number always counts: while another process keeps
/// its log busy (a backup reading it, an `sqlite3` shell), the restore stops with nothing
/// replaced and says to retry, rather than number on from a lower `--floor`; once the reader
/// is gone the restore numbers above the store's last.
#[tokio::test]
async fn a_busy_replaced_store_is_retried_not_overruled_by_floor() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let (hub, _) = hub_with(&data, "R", 10).await;
    let file = tmp.path().join("early.sqlite3");
    let target = file.display().to_string();
    let (ok, out, err) = backup(&data, &[&target], &[]);
    assert!(ok, "{out} {err}");
    drop(hub);

    let reader = rusqlite::Connection::open_with_flags(
        data.join("alerts.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open");
    reader.execute_batch("BEGIN").expect("begin");
    let held: i64 = reader
        .query_row("SELECT COUNT(*) FROM alerts", [], |r| r.get(0))
        .expect("read");
    assert_eq!(held, 10);
    let (ok, out, err) = restore(&data, &target, &["--floor", "7"]);
    assert!(!ok, "restored past a busy log: {out}");
    assert!(err.contains("retry"), "{err}");
    let kept = std::fs::read_dir(&data)
        .expect("dir")
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().contains(".replaced-"));
    assert!(!kept, "nothing was replaced");
    drop(reader);

    let (ok, out, err) = restore(&data, &target, &["--floor", "7"]);
    assert!(ok, "{out} {err}");
    assert!(out.contains("the next alert is numbered 11"), "{out}");
}
