//! Sans-IO codec for the BitTorrent UDP tracker protocol.
//!
//! BEP 15 defines the messages, BEP 41 the announce options (URL data).
//! Every parser takes a byte slice and returns `Result`: no input can make it
//! panic or read out of bounds, because all reads go through [`Reader`].

mod request;
mod response;
pub mod socks5;

pub use request::{
    AnnounceEvent, AnnounceParams, AnnounceRequest, Authentication, ConnectRequest,
    LibtorrentExtensions, Request, RequestHeader, ScrapeRequest,
};
pub use response::{
    AnnounceResponse, ConnectResponse, ErrorResponse, Peers, Response, ScrapeResponse, ScrapeStats,
};

use std::fmt;

/// BEP 15: the magic constant a connect request carries in place of a connection id.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;

/// Largest number of info hashes in one scrape over IPv4 (BEP 15).
pub const MAX_SCRAPE_HASHES_V4: usize = 74;
/// Largest number over IPv6: 8 + 60·12 = 728 bytes of reply, and the request
/// (16 + 60·20 = 1216 bytes) fits the 1280-byte IPv6 minimum MTU with headers to spare.
pub const MAX_SCRAPE_HASHES_V6: usize = 60;

/// The action field that starts every message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Connect,
    Announce,
    Scrape,
    Error,
}

impl Action {
    pub const fn to_u32(self) -> u32 {
        match self {
            Action::Connect => 0,
            Action::Announce => 1,
            Action::Scrape => 2,
            Action::Error => 3,
        }
    }
}

/// Chosen by the client, echoed by the tracker; how replies find their request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(pub u32);

/// Issued by the tracker in a connect response; valid for about a minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InfoHash(pub [u8; 20]);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerId(pub [u8; 20]);

/// Why a datagram could not be read as a reply.
///
/// The `Display` texts are the strings bittorrent-udp-tracker 1.2.0 emitted,
/// which its users match on; keep them byte for byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Fewer than 8 bytes: no action and transaction id to even dispatch on.
    TooShort,
    ConnectLength,
    AnnounceLength,
    /// An announce reply whose peer list is not a whole number of entries.
    AnnouncePeersLength,
    ScrapeLength,
    ErrorLength,
    UnknownAction(u32),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooShort => f.write_str("response is shorter than 8 bytes"),
            ParseError::ConnectLength => f.write_str("connect response is not 16 bytes long"),
            ParseError::AnnounceLength => f.write_str("announce response should be 20 bytes"),
            ParseError::AnnouncePeersLength => {
                f.write_str("announce response has a truncated peer entry")
            }
            ParseError::ScrapeLength => {
                f.write_str("scrape response is not 8 + 12 bytes per info hash long")
            }
            ParseError::ErrorLength => f.write_str("error action response is not 9 bytes long"),
            ParseError::UnknownAction(action) => write!(f, "unsupported event:{action}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// A bounds-checked big-endian cursor over a datagram.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }
}

/// The transaction id of any tracker datagram, if it is long enough to have one.
pub fn peek_transaction_id(bytes: &[u8]) -> Option<TransactionId> {
    let mut r = Reader::new(bytes);
    r.take(4)?;
    r.u32().map(TransactionId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_refuses_to_read_past_the_end() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u32(), None);
        assert_eq!(r.u16(), Some(0x0102));
        assert_eq!(r.u16(), None);
        assert_eq!(r.take(1), Some(&[3u8][..]));
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn peek_transaction_id_needs_eight_bytes() {
        assert_eq!(peek_transaction_id(&[0; 7]), None);
        assert_eq!(
            peek_transaction_id(&[0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]),
            Some(TransactionId(0xdead_beef))
        );
    }

    #[test]
    fn parse_error_texts_are_the_1_2_0_strings() {
        assert_eq!(
            ParseError::ConnectLength.to_string(),
            "connect response is not 16 bytes long"
        );
        assert_eq!(
            ParseError::AnnounceLength.to_string(),
            "announce response should be 20 bytes"
        );
        assert_eq!(
            ParseError::ErrorLength.to_string(),
            "error action response is not 9 bytes long"
        );
        assert_eq!(
            ParseError::UnknownAction(7).to_string(),
            "unsupported event:7"
        );
    }
}

#[cfg(test)]
mod proptests;
