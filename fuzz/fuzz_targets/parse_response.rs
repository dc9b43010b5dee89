//! `Response::parse` on arbitrary bytes, over either family: it never panics,
//! and a reply it accepts survives being written back and parsed again.
#![no_main]

use bittorrent_udp_tracker::proto::Response;
use libfuzzer_sys::fuzz_target;

fn write(response: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    response.write(&mut out);
    out
}

fn check(data: &[u8], ipv6: bool) {
    let Ok(first) = Response::parse(data, ipv6) else {
        return;
    };
    let bytes = write(&first);
    match &first {
        // An error reply's text is normalised by the first parse (trailing
        // NULs stripped, invalid UTF-8 replaced): compare after that round.
        Response::Error(_) => {
            let second = Response::parse(&bytes, ipv6).expect("a written error reply parses");
            assert_eq!(second, first, "an error reply is stable after one round");
            assert_eq!(write(&second), bytes);
        }
        // Nothing else is normalised: the very same bytes come back.
        _ => {
            assert_eq!(bytes, data, "{first:?} is written back as it was read");
            assert_eq!(Response::parse(&bytes, ipv6), Ok(first));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data, false);
    check(data, true);
});
