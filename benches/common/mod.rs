//! What `benches/session.rs` and `examples/memory.rs` share: the announces
//! of a burst and a tracker's replies to them, with no I/O. (A directory, so
//! that cargo does not take it for a bench of its own.)

use bittorrent_udp_tracker::proto::{AnnounceEvent, AnnounceParams, InfoHash, PeerId};

/// Instance `i`'s `started` announce, as the benchmark's instances send it:
/// its own info hash and key, no BEP 41 data, no extensions.
pub fn params(i: u32) -> AnnounceParams {
    let mut info_hash = [0u8; 20];
    info_hash[..4].copy_from_slice(&i.to_be_bytes());
    AnnounceParams {
        info_hash: InfoHash(info_hash),
        peer_id: PeerId(*b"-BU2000-abcdefghijkl"),
        downloaded: 0,
        left: 0,
        uploaded: 0,
        event: AnnounceEvent::Started,
        ip: 0,
        key: i,
        num_want: 50,
        port: 6881,
        url_data: Vec::new(),
        extensions: None,
    }
}

/// aquatic's reply to `datagram` (a connect or an announce), with the
/// transaction id it carries, into `out`.
pub fn reply(datagram: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let is_connect = datagram.len() == 16;
    let action: u32 = if is_connect { 0 } else { 1 };
    out.extend_from_slice(&action.to_be_bytes());
    out.extend_from_slice(datagram.get(12..16).unwrap_or(&[0; 4]));
    if is_connect {
        out.extend_from_slice(&0x1234_5678_9abc_def0u64.to_be_bytes());
    } else {
        // interval, leechers, seeders; no peers.
        for field in [1800u32, 0, 1] {
            out.extend_from_slice(&field.to_be_bytes());
        }
    }
}
