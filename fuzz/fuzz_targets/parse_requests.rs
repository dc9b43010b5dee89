//! The request parsers (used by test trackers) on arbitrary bytes: they never
//! panic, and a request they accept survives being written back and parsed.
#![no_main]

use bittorrent_udp_tracker::proto::{AnnounceRequest, ConnectRequest, ScrapeRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(request) = ConnectRequest::parse(data) {
        let mut out = Vec::new();
        request.write(&mut out);
        assert_eq!(out, data, "a connect request is exactly 16 bytes");
        assert_eq!(ConnectRequest::parse(&out), Some(request));
    }
    if let Some(request) = AnnounceRequest::parse(data) {
        // The parser reads BEP 41 options only (never libtorrent's extension
        // field), skips NOPs and unknown options and ignores anything after
        // EndOfOptions, so compare values, not bytes.
        assert_eq!(request.params.extensions, None);
        let mut out = Vec::new();
        request.write(&mut out);
        assert!(out.len() >= AnnounceRequest::FIXED_LEN);
        assert_eq!(
            &out[..AnnounceRequest::FIXED_LEN],
            &data[..AnnounceRequest::FIXED_LEN]
        );
        assert_eq!(AnnounceRequest::parse(&out), Some(request));
    }
    if let Some(request) = ScrapeRequest::parse(data) {
        assert!(!request.info_hashes.is_empty());
        let mut out = Vec::new();
        request.write(&mut out);
        assert_eq!(out, data, "a scrape request is 16 + 20 bytes per hash");
        assert_eq!(ScrapeRequest::parse(&out), Some(request));
    }
});
