//! The session's own cost per announce (no sockets, no tokio, no Node): N
//! announces started at once, each instance with its own scope as the 1.2.0
//! class gives them, answered by an in-process echo of aquatic's replies (one
//! shared connect, then an announce reply with no peers per request), in the
//! order the session hands its datagrams out, as the driver does.
//!
//! ```sh
//! cargo bench --bench session -- 20000 [rounds]
//! ```
//! Prints the best and the median round, in ns of this thread's CPU time per
//! announce (wall time where /proc/thread-self/schedstat is missing), so that
//! other processes on the machine do not count.

use std::net::SocketAddr;
use std::time::Instant;

use bittorrent_udp_tracker::session::{Outcome, RequestKind, RequestOptions, Session};

mod common;
use common::{params, reply};

/// This thread's CPU time so far, in ns (Linux), else the time since `origin`.
fn cpu_ns(origin: Instant) -> u128 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| origin.elapsed().as_nanos())
}

/// One burst of `n` announces through a fresh session; ns per announce.
fn round(n: u32, tracker: SocketAddr) -> f64 {
    let kinds: Vec<RequestKind> = (0..n).map(|i| RequestKind::Announce(params(i))).collect();
    let mut session = Session::new();
    let mut out = Vec::with_capacity(64);
    let mut answered = 0;
    let now = Instant::now();
    let started = cpu_ns(now);
    for (i, kind) in (1..).zip(kinds) {
        let options = RequestOptions {
            scope: i,
            ..RequestOptions::default()
        };
        session.start(now, i, tracker, kind, options);
    }
    while let Some(transmit) = session.poll_transmit() {
        reply(&transmit.payload, &mut out);
        session.handle_datagram(now, tracker, &out);
        while let Some(completion) = session.poll_completion() {
            assert!(matches!(completion.outcome, Outcome::Announced(_)));
            answered += 1;
        }
        let _ = session.poll_timeout();
    }
    assert_eq!(answered, n, "every announce answered");
    (cpu_ns(now) - started) as f64 / f64::from(n)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let n = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rounds = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(15);
    let tracker: SocketAddr = "127.0.0.1:6969".parse().unwrap_or_else(|_| unreachable!());
    let mut ns: Vec<f64> = (0..rounds).map(|_| round(n, tracker)).collect();
    ns.sort_by(f64::total_cmp);
    let best = ns.first().copied().unwrap_or(0.0);
    let median = ns.get(ns.len() / 2).copied().unwrap_or(0.0);
    println!("{{\"n\":{n},\"rounds\":{rounds},\"best_ns\":{best:.0},\"median_ns\":{median:.0}}}");
}
