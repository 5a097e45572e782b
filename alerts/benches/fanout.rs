//! Criterion bench of the hub's fan-out: one alert to N matching subscribers (1k, 10k, 100k,
//! spread over every region of Zhejiang; the alert is province-wide so all N match). One
//! iteration = `publish` (filter, enqueue a `Bytes` clone per subscriber, one `Ready` each)
//! plus the driver's drain (`poll_event`, `pop` until `None`, the frame dropped as if written).
//! Throughput is in deliveries (elements = N), so criterion reports deliveries per second.
//!
//! `selective`: 100k subscribers, one county alert; only that county's, its city's and the
//! province's buckets are visited (about 3/102 of subscribers), showing that matching is
//! indexed by region, not a scan.
//!
//! Run: `cargo bench -p alerts --bench fanout -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::Instant;

use alerts::hub::{
    AlertKind, Delivery, Filter, Hub, HubConfig, HubEvent, MsgType, PublishedAlert, Severity,
};
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tiers::{RegionCode, RegionTree};

fn setup(n: usize) -> (Hub, RegionTree, Instant) {
    let tree = RegionTree::zhejiang();
    let codes: Vec<RegionCode> = tree.iter().map(|r| r.code).collect();
    let now = Instant::now();
    let mut hub = Hub::new(&tree, HubConfig::default());
    for i in 0..n {
        let filter = Filter::all(codes[i % codes.len()]);
        hub.subscribe(filter, None, now).expect("subscribe");
    }
    (hub, tree, now)
}

fn alert(seq: u64, region: RegionCode, frame: &Bytes) -> PublishedAlert {
    PublishedAlert {
        seq,
        id: format!("alert-{seq}"),
        kind: AlertKind::Food,
        severity: Severity::Severe,
        regions: vec![region],
        msg_type: MsgType::Alert,
        references: Vec::new(),
        inherited: Vec::new(),
        expires: None,
        frame: frame.clone(),
    }
}

/// Publishes one alert and drains every subscriber it reached; returns deliveries.
fn one(hub: &mut Hub, seq: u64, region: RegionCode, frame: &Bytes, now: Instant) -> usize {
    hub.publish(alert(seq, region, frame), now)
        .expect("publish");
    let mut n = 0;
    while let Some(ev) = hub.poll_event() {
        if let HubEvent::Ready { sub } = ev {
            while let Some(d) = hub.pop(sub) {
                if let Delivery::Alert { frame, .. } = d {
                    black_box(frame.len());
                }
                n += 1;
            }
        }
    }
    n
}

fn fanout(c: &mut Criterion) {
    let frame = Bytes::from(vec![b'x'; 300]);
    let mut group = c.benchmark_group("fanout");
    group.sample_size(20);
    for n in [1_000usize, 10_000, 100_000] {
        let (mut hub, tree, now) = setup(n);
        let root = tree.root();
        let mut seq = 0;
        // Warm up queues and the event queue to their working size.
        for _ in 0..3 {
            seq += 1;
            assert_eq!(one(&mut hub, seq, root, &frame, now), n);
        }
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("province_alert", n), &n, |b, _| {
            b.iter(|| {
                seq += 1;
                one(&mut hub, seq, root, &frame, now)
            });
        });
    }
    let n = 100_000;
    let (mut hub, _tree, now) = setup(n);
    let xihu = RegionCode::from_u32(330_106).expect("valid code");
    let mut seq = 0;
    seq += 1;
    let reached = one(&mut hub, seq, xihu, &frame, now);
    group.throughput(Throughput::Elements(reached as u64));
    group.bench_with_input(BenchmarkId::new("county_alert_of", n), &n, |b, _| {
        b.iter(|| {
            seq += 1;
            one(&mut hub, seq, xihu, &frame, now)
        });
    });
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
