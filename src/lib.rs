//! A BitTorrent UDP tracker client (BEP 15, BEP 41) for Node.js.
//!
//! - [`proto`]: the sans-IO wire codec;
//! - [`session`]: the request state machine, driven by a clock passed in;
//! - `driver`: the tokio thread with the sockets;
//! - `proxy`: the driver's SOCKS5 associations (tracker traffic through a proxy);
//! - [`tracker`]: a small BEP 15 tracker for tests (sans-IO, and its server);
//! - `binding`: the napi surface that `lib/` (the JS side) wraps.
#![deny(clippy::all)]

mod binding;
pub mod driver;
pub mod proto;
pub mod proxy;
pub mod session;
pub mod tracker;
