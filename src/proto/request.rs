//! Requests the client sends (BEP 15), with parsers so that test trackers and
//! fuzzers can read what the writers produce.

use sha1::{Digest, Sha1};

use super::{Action, ConnectionId, InfoHash, PeerId, Reader, TransactionId, PROTOCOL_ID};

/// BEP 15 announce events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnnounceEvent {
    None,
    Completed,
    Started,
    Stopped,
}

impl AnnounceEvent {
    pub const fn to_u32(self) -> u32 {
        match self {
            AnnounceEvent::None => 0,
            AnnounceEvent::Completed => 1,
            AnnounceEvent::Started => 2,
            AnnounceEvent::Stopped => 3,
        }
    }

    pub const fn from_u32(n: u32) -> Option<Self> {
        match n {
            0 => Some(AnnounceEvent::None),
            1 => Some(AnnounceEvent::Completed),
            2 => Some(AnnounceEvent::Started),
            3 => Some(AnnounceEvent::Stopped),
            _ => None,
        }
    }
}

/// libtorrent's older UDP tracker extensions, announced in a u16 bit field at
/// offset 98 (in place of BEP 41 options, which the same tracker would misread).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LibtorrentExtensions {
    /// Bit 0x1: u8 username length, username, then the first 8 bytes of
    /// SHA1(packet ‖ SHA1(password)), where "packet" is every byte of the
    /// datagram except those 8.
    pub auth: Option<Authentication>,
    /// Bit 0x2: u8 length, then the request string (the URL's path and query).
    pub request_string: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authentication {
    /// At most 255 bytes; longer names are cut (the caller rejects them first).
    pub username: Vec<u8>,
    /// SHA1(password): the password itself is never kept.
    pub password_sha1: [u8; 20],
}

const EXTENSION_AUTH: u16 = 0x1;
const EXTENSION_REQUEST_STRING: u16 = 0x2;

impl LibtorrentExtensions {
    fn write(&self, out: &mut Vec<u8>) {
        let mut bits = 0;
        if self.auth.is_some() {
            bits |= EXTENSION_AUTH;
        }
        if self.request_string.is_some() {
            bits |= EXTENSION_REQUEST_STRING;
        }
        out.extend_from_slice(&bits.to_be_bytes());
        let mut hash_at = None;
        if let Some(auth) = &self.auth {
            write_short_string(out, &auth.username);
            hash_at = Some(out.len());
            out.extend_from_slice(&[0; 8]);
        }
        if let Some(request) = &self.request_string {
            write_short_string(out, request);
        }
        if let (Some(at), Some(auth)) = (hash_at, &self.auth) {
            let mut sha = Sha1::new();
            sha.update(&out[..at]);
            sha.update(&out[at + 8..]);
            sha.update(auth.password_sha1);
            let digest = sha.finalize();
            out[at..at + 8].copy_from_slice(&digest[..8]);
        }
    }
}

/// A u8 length and up to 255 bytes.
fn write_short_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let bytes = &bytes[..bytes.len().min(255)];
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

/// BEP 41 option types.
const OPTION_END_OF_OPTIONS: u8 = 0;
const OPTION_NOP: u8 = 1;
const OPTION_URL_DATA: u8 = 2;
/// BEP 41: one URLData option carries at most 255 bytes; longer data is split.
const URL_DATA_CHUNK: usize = 255;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    pub transaction_id: TransactionId,
}

impl ConnectRequest {
    pub const LEN: usize = 16;

    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
        out.extend_from_slice(&Action::Connect.to_u32().to_be_bytes());
        out.extend_from_slice(&self.transaction_id.0.to_be_bytes());
    }

    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(bytes);
        if r.u64()? != PROTOCOL_ID || r.u32()? != Action::Connect.to_u32() {
            return None;
        }
        let transaction_id = TransactionId(r.u32()?);
        (r.remaining() == 0).then_some(ConnectRequest { transaction_id })
    }
}

/// What an announce says, apart from the two ids each send sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceParams {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub downloaded: u64,
    pub left: u64,
    pub uploaded: u64,
    pub event: AnnounceEvent,
    /// IPv4 address in host order; 0 means "the address the datagram came from".
    pub ip: u32,
    pub key: u32,
    /// -1 means "the tracker's default".
    pub num_want: i32,
    pub port: u16,
    /// BEP 41: the announce URL's path and query, sent as URLData options.
    /// Empty means no options are appended at all.
    pub url_data: Vec<u8>,
    /// When set, libtorrent's extension field replaces the BEP 41 options.
    /// Boxed: rarely set, and the parameters of every request started wait
    /// in the driver's command channel (64 B less each).
    pub extensions: Option<Box<LibtorrentExtensions>>,
}

impl AnnounceParams {
    /// The announce datagram with these ids.
    pub fn write(
        &self,
        connection_id: ConnectionId,
        transaction_id: TransactionId,
        out: &mut Vec<u8>,
    ) {
        out.extend_from_slice(&connection_id.0.to_be_bytes());
        out.extend_from_slice(&Action::Announce.to_u32().to_be_bytes());
        out.extend_from_slice(&transaction_id.0.to_be_bytes());
        out.extend_from_slice(&self.info_hash.0);
        out.extend_from_slice(&self.peer_id.0);
        out.extend_from_slice(&self.downloaded.to_be_bytes());
        out.extend_from_slice(&self.left.to_be_bytes());
        out.extend_from_slice(&self.uploaded.to_be_bytes());
        out.extend_from_slice(&self.event.to_u32().to_be_bytes());
        out.extend_from_slice(&self.ip.to_be_bytes());
        out.extend_from_slice(&self.key.to_be_bytes());
        out.extend_from_slice(&self.num_want.to_be_bytes());
        out.extend_from_slice(&self.port.to_be_bytes());
        if let Some(extensions) = &self.extensions {
            extensions.write(out);
        } else if !self.url_data.is_empty() {
            for chunk in self.url_data.chunks(URL_DATA_CHUNK) {
                out.push(OPTION_URL_DATA);
                // chunks() never yields more than URL_DATA_CHUNK (255) bytes.
                out.push(chunk.len() as u8);
                out.extend_from_slice(chunk);
            }
            out.push(OPTION_END_OF_OPTIONS);
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceRequest {
    pub connection_id: ConnectionId,
    pub transaction_id: TransactionId,
    pub params: AnnounceParams,
}

impl AnnounceRequest {
    /// Length of the fixed part, before any BEP 41 options.
    pub const FIXED_LEN: usize = 98;

    pub fn write(&self, out: &mut Vec<u8>) {
        self.params
            .write(self.connection_id, self.transaction_id, out);
    }

    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(bytes);
        let connection_id = ConnectionId(r.u64()?);
        if r.u32()? != Action::Announce.to_u32() {
            return None;
        }
        let transaction_id = TransactionId(r.u32()?);
        let mut params = AnnounceParams {
            info_hash: InfoHash(r.array()?),
            peer_id: PeerId(r.array()?),
            downloaded: r.u64()?,
            left: r.u64()?,
            uploaded: r.u64()?,
            event: AnnounceEvent::from_u32(r.u32()?)?,
            ip: r.u32()?,
            key: r.u32()?,
            num_want: r.i32()?,
            port: r.u16()?,
            url_data: Vec::new(),
            extensions: None,
        };
        // BEP 41 options: read until EndOfOptions or the end of the datagram.
        while let Some(&[kind]) = r.take(1) {
            match kind {
                OPTION_END_OF_OPTIONS => break,
                OPTION_NOP => {}
                _ => {
                    let len = r.take(1)?[0] as usize;
                    let body = r.take(len)?;
                    if kind == OPTION_URL_DATA {
                        params.url_data.extend_from_slice(body);
                    }
                }
            }
        }
        Some(AnnounceRequest {
            connection_id,
            transaction_id,
            params,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeRequest {
    pub connection_id: ConnectionId,
    pub transaction_id: TransactionId,
    pub info_hashes: Vec<InfoHash>,
}

impl ScrapeRequest {
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.connection_id.0.to_be_bytes());
        out.extend_from_slice(&Action::Scrape.to_u32().to_be_bytes());
        out.extend_from_slice(&self.transaction_id.0.to_be_bytes());
        for hash in &self.info_hashes {
            out.extend_from_slice(&hash.0);
        }
    }

    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(bytes);
        let connection_id = ConnectionId(r.u64()?);
        if r.u32()? != Action::Scrape.to_u32() {
            return None;
        }
        let transaction_id = TransactionId(r.u32()?);
        let hashes = r.rest();
        if hashes.is_empty() || !hashes.len().is_multiple_of(20) {
            return None;
        }
        let info_hashes = hashes
            .chunks_exact(20)
            .filter_map(|c| c.try_into().ok().map(InfoHash))
            .collect();
        Some(ScrapeRequest {
            connection_id,
            transaction_id,
            info_hashes,
        })
    }
}

/// The 16 bytes every request starts with: connection id (the protocol id
/// in a connect), action, transaction id. A tracker reads these first, to
/// answer a request it refuses with an error carrying the right transaction id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    pub connection_id: ConnectionId,
    pub action: u32,
    pub transaction_id: TransactionId,
}

impl RequestHeader {
    pub const LEN: usize = 16;

    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(bytes);
        Some(RequestHeader {
            connection_id: ConnectionId(r.u64()?),
            action: r.u32()?,
            transaction_id: TransactionId(r.u32()?),
        })
    }
}

/// Any request a tracker receives, read by its action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Connect(ConnectRequest),
    Announce(AnnounceRequest),
    Scrape(ScrapeRequest),
}

impl Request {
    /// `None` for an unknown action or a malformed body (see each type's `parse`).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        match RequestHeader::parse(bytes)?.action {
            a if a == Action::Connect.to_u32() => {
                ConnectRequest::parse(bytes).map(Request::Connect)
            }
            a if a == Action::Announce.to_u32() => {
                AnnounceRequest::parse(bytes).map(Request::Announce)
            }
            a if a == Action::Scrape.to_u32() => ScrapeRequest::parse(bytes).map(Request::Scrape),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announce(url_data: &[u8]) -> AnnounceRequest {
        AnnounceRequest {
            connection_id: ConnectionId(0x1122_3344_5566_7788),
            transaction_id: TransactionId(0xdead_beef),
            params: AnnounceParams {
                info_hash: InfoHash([0xaa; 20]),
                peer_id: PeerId(*b"-UT0001-012345678901"),
                downloaded: 1,
                left: u64::MAX,
                uploaded: 3,
                event: AnnounceEvent::Started,
                ip: 0,
                key: 0x0102_0304,
                num_want: -1,
                port: 6881,
                url_data: url_data.to_vec(),
                extensions: None,
            },
        }
    }

    #[test]
    fn connect_request_is_protocol_id_action_tid() {
        let mut out = Vec::new();
        ConnectRequest {
            transaction_id: TransactionId(0x0a0b_0c0d),
        }
        .write(&mut out);
        assert_eq!(
            out,
            [0, 0, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d]
        );
        assert_eq!(
            ConnectRequest::parse(&out).unwrap().transaction_id,
            TransactionId(0x0a0b_0c0d)
        );
    }

    #[test]
    fn announce_request_fields_sit_at_bep15_offsets() {
        let mut out = Vec::new();
        announce(b"").write(&mut out);
        assert_eq!(out.len(), AnnounceRequest::FIXED_LEN);
        assert_eq!(&out[0..8], &0x1122_3344_5566_7788u64.to_be_bytes());
        assert_eq!(&out[8..12], &[0, 0, 0, 1]);
        assert_eq!(&out[12..16], &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(&out[16..36], &[0xaa; 20]);
        assert_eq!(&out[36..56], b"-UT0001-012345678901");
        assert_eq!(&out[56..64], &1u64.to_be_bytes());
        assert_eq!(&out[64..72], &[0xff; 8]);
        assert_eq!(&out[72..80], &3u64.to_be_bytes());
        assert_eq!(&out[80..84], &[0, 0, 0, 2]);
        assert_eq!(&out[84..88], &[0, 0, 0, 0]);
        assert_eq!(&out[88..92], &[1, 2, 3, 4]);
        assert_eq!(&out[92..96], &[0xff; 4]);
        assert_eq!(&out[96..98], &6881u16.to_be_bytes());
    }

    #[test]
    fn announce_request_round_trips() {
        for url in [&b""[..], b"/announce?key=1", &[b'x'; 600][..]] {
            let mut out = Vec::new();
            let req = announce(url);
            req.write(&mut out);
            assert_eq!(AnnounceRequest::parse(&out), Some(req));
        }
    }

    #[test]
    fn url_data_is_split_into_255_byte_options_and_terminated() {
        let url: Vec<u8> = (0..600u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut out = Vec::new();
        announce(&url).write(&mut out);
        let opts = &out[AnnounceRequest::FIXED_LEN..];
        assert_eq!(opts[0], 2);
        assert_eq!(opts[1], 255);
        assert_eq!(&opts[2..257], &url[..255]);
        assert_eq!(opts[257], 2);
        assert_eq!(opts[258], 255);
        assert_eq!(opts[514], 2);
        assert_eq!(opts[515], 90);
        assert_eq!(&opts[516..606], &url[510..]);
        assert_eq!(opts[606], 0);
        assert_eq!(opts.len(), 607);
    }

    fn sha1(parts: &[&[u8]]) -> [u8; 20] {
        let mut sha = Sha1::new();
        for part in parts {
            sha.update(part);
        }
        sha.finalize().into()
    }

    #[test]
    fn sha1_is_the_standard_one() {
        // FIPS 180 test vector "abc".
        assert_eq!(
            sha1(&[b"abc"]),
            [
                0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81, 0x6a, 0xba, 0x3e, 0x25, 0x71, 0x78, 0x50,
                0xc2, 0x6c, 0x9c, 0xd0, 0xd8, 0x9d
            ]
        );
    }

    #[test]
    fn authentication_and_request_string_follow_the_libtorrent_layout() {
        let mut req = announce(b"/ignored-when-extensions-are-on");
        req.params.extensions = Some(Box::new(LibtorrentExtensions {
            auth: Some(Authentication {
                username: b"alice".to_vec(),
                password_sha1: sha1(&[b"secret"]),
            }),
            request_string: Some(b"/announce?k=v".to_vec()),
        }));
        let mut out = Vec::new();
        req.write(&mut out);
        let fixed = AnnounceRequest::FIXED_LEN;
        assert_eq!(&out[fixed..fixed + 2], &[0, 3], "both extension bits");
        assert_eq!(out[fixed + 2], 5);
        assert_eq!(&out[fixed + 3..fixed + 8], b"alice");
        let hash_at = fixed + 8;
        assert_eq!(out[hash_at + 8], 13);
        assert_eq!(&out[hash_at + 9..], b"/announce?k=v");
        assert_eq!(out.len(), hash_at + 9 + 13);
        let expected = sha1(&[&out[..hash_at], &out[hash_at + 8..], &sha1(&[b"secret"])]);
        assert_eq!(&out[hash_at..hash_at + 8], &expected[..8]);
    }

    #[test]
    fn request_string_alone_sets_only_bit_two() {
        let mut req = announce(b"");
        req.params.extensions = Some(Box::new(LibtorrentExtensions {
            auth: None,
            request_string: Some(b"/a".to_vec()),
        }));
        let mut out = Vec::new();
        req.write(&mut out);
        assert_eq!(&out[AnnounceRequest::FIXED_LEN..], &[0, 2, 2, b'/', b'a']);
    }

    #[test]
    fn scrape_request_round_trips() {
        let req = ScrapeRequest {
            connection_id: ConnectionId(7),
            transaction_id: TransactionId(9),
            info_hashes: vec![InfoHash([1; 20]), InfoHash([2; 20])],
        };
        let mut out = Vec::new();
        req.write(&mut out);
        assert_eq!(out.len(), 16 + 40);
        assert_eq!(ScrapeRequest::parse(&out), Some(req));
    }

    #[test]
    fn request_parsers_reject_every_truncation() {
        let mut out = Vec::new();
        announce(b"").write(&mut out);
        for n in 0..out.len() {
            assert_eq!(AnnounceRequest::parse(&out[..n]), None, "length {n}");
        }
        let mut out = Vec::new();
        ConnectRequest {
            transaction_id: TransactionId(1),
        }
        .write(&mut out);
        for n in 0..out.len() {
            assert_eq!(ConnectRequest::parse(&out[..n]), None, "length {n}");
        }
    }
    #[test]
    fn request_parse_dispatches_on_the_action() {
        let mut connect = Vec::new();
        ConnectRequest {
            transaction_id: TransactionId(5),
        }
        .write(&mut connect);
        assert!(matches!(
            Request::parse(&connect),
            Some(Request::Connect(_))
        ));
        let mut ann = Vec::new();
        announce(b"/a").write(&mut ann);
        assert_eq!(
            Request::parse(&ann),
            Some(Request::Announce(announce(b"/a")))
        );
        let scrape = ScrapeRequest {
            connection_id: ConnectionId(1),
            transaction_id: TransactionId(2),
            info_hashes: vec![InfoHash([3; 20])],
        };
        let mut out = Vec::new();
        scrape.write(&mut out);
        assert_eq!(Request::parse(&out), Some(Request::Scrape(scrape)));
        // Action 3 (error) and 7 are not requests; the header still reads.
        out[8..12].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(Request::parse(&out), None);
        let header = RequestHeader::parse(&out).unwrap();
        assert_eq!(
            (header.action, header.transaction_id),
            (7, TransactionId(2))
        );
        assert_eq!(RequestHeader::parse(&out[..15]), None);
    }

    #[test]
    fn announce_with_an_unknown_event_or_a_cut_option_is_refused() {
        let mut out = Vec::new();
        announce(b"").write(&mut out);
        out[80..84].copy_from_slice(&4u32.to_be_bytes());
        assert_eq!(Request::parse(&out), None);
        let mut out = Vec::new();
        announce(b"/announce").write(&mut out);
        out.truncate(AnnounceRequest::FIXED_LEN + 5);
        assert_eq!(Request::parse(&out), None);
    }
}
