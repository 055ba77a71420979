//! The uwsgi packet (uWSGI docs: Protocol.rst; `struct uwsgi_header` and `uwsgi_parse_vars` in
//! uWSGI's `core/protocol.c`): what nginx's `uwsgi_pass` sends a worker. Kept here, pure and
//! without the worker's types, so the worker, the router and the tests share one reading of it.
//!
//! A packet is a 4-byte header — `modifier1` (u8), `datasize` (u16, little-endian), `modifier2`
//! (u8) — then `datasize` bytes. In a request those bytes are the vars block, a run of
//! `u16le keylen, key, u16le vallen, value`; the request body follows the block (its length is the
//! `CONTENT_LENGTH` var).
//!
//! As uWSGI, a var with an empty key is an error; an empty value is fine. Unlike uWSGI, which
//! misreads a key whose length runs past the block's end, every truncation is an error.

use std::fmt::Write as _;

/// Bytes of the packet header.
pub const HEADER_LEN: usize = 4;

/// The largest vars block (and the largest key or value): lengths are 16-bit.
pub const MAX_BLOCK: usize = u16::MAX as usize;

/// A packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the packet is: 0 a WSGI (generic) request, 5 PSGI, 7 Rack, ... (uWSGI's list is in
    /// uwsgi-reference.md 2.1).
    pub modifier1: u8,
    /// Bytes after the header (the vars block, for a request).
    pub datasize: u16,
    /// A sub-kind; 0 for requests.
    pub modifier2: u8,
}

impl Header {
    /// The header's 4 bytes.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let [lo, hi] = self.datasize.to_le_bytes();
        [self.modifier1, lo, hi, self.modifier2]
    }
}

/// Reads a packet header from the start of `b`; `None` if fewer than [`HEADER_LEN`] bytes are
/// there.
pub fn parse_header(b: &[u8]) -> Option<Header> {
    match *b {
        [modifier1, lo, hi, modifier2, ..] => Some(Header {
            modifier1,
            datasize: u16::from_le_bytes([lo, hi]),
            modifier2,
        }),
        _ => None,
    }
}

/// A vars block that cannot be read, or vars that cannot be written into one.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum UwsgiError {
    #[error("uwsgi var at byte {offset}: the block ends inside the key's length")]
    KeyLength { offset: usize },
    #[error("uwsgi var at byte {offset}: the key is empty")]
    EmptyKey { offset: usize },
    #[error("uwsgi var at byte {offset}: the key's {len} bytes run past the end of the block")]
    Key { offset: usize, len: usize },
    #[error("uwsgi var `{key}`: the block ends inside the value's length")]
    ValueLength { key: String },
    #[error("uwsgi var `{key}`: the value's {len} bytes run past the end of the block")]
    Value { key: String, len: usize },
    #[error("uwsgi vars block of {size} bytes does not fit (at most 65535)")]
    BlockTooLarge { size: usize },
}

/// A key for an error message: escaped, and cut at 64 bytes.
fn show(key: &[u8]) -> String {
    let mut s = String::new();
    let _ = write!(s, "{}", key[..key.len().min(64)].escape_ascii());
    if key.len() > 64 {
        s.push_str("...");
    }
    s
}

/// The vars of a block, in order (see [`vars`]).
#[derive(Debug, Clone)]
pub struct VarsIter<'a> {
    block: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> VarsIter<'a> {
    /// Reads a 16-bit length at `pos`.
    fn length(&self, pos: usize) -> Option<usize> {
        let b = self.block.get(pos..pos.checked_add(2)?)?;
        Some(usize::from(u16::from_le_bytes([b[0], b[1]])))
    }

    fn next_var(&mut self) -> Result<(&'a [u8], &'a [u8]), UwsgiError> {
        let offset = self.pos;
        let key_len = self
            .length(offset)
            .ok_or(UwsgiError::KeyLength { offset })?;
        if key_len == 0 {
            return Err(UwsgiError::EmptyKey { offset });
        }
        let key_start = offset + 2;
        let key = self
            .block
            .get(key_start..key_start + key_len)
            .ok_or(UwsgiError::Key {
                offset,
                len: key_len,
            })?;
        let value_at = key_start + key_len;
        let value_len = self
            .length(value_at)
            .ok_or_else(|| UwsgiError::ValueLength { key: show(key) })?;
        let value_start = value_at + 2;
        let value = self
            .block
            .get(value_start..value_start + value_len)
            .ok_or_else(|| UwsgiError::Value {
                key: show(key),
                len: value_len,
            })?;
        self.pos = value_start + value_len;
        Ok((key, value))
    }
}

impl<'a> Iterator for VarsIter<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), UwsgiError>;

    /// The next var; after an error, `None`.
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.block.len() {
            return None;
        }
        let r = self.next_var();
        self.failed = r.is_err();
        Some(r)
    }
}

impl std::iter::FusedIterator for VarsIter<'_> {}

/// The `(key, value)` pairs of a vars block (the `datasize` bytes after the header), in order.
/// A block that ends inside a var yields an error, then nothing more.
pub fn vars(block: &[u8]) -> VarsIter<'_> {
    VarsIter {
        block,
        pos: 0,
        failed: false,
    }
}

/// A whole packet: the header, then the vars block.
pub fn encode(
    modifier1: u8,
    modifier2: u8,
    vars: &[(&[u8], &[u8])],
) -> Result<Vec<u8>, UwsgiError> {
    let size: usize = vars.iter().map(|(k, v)| 4 + k.len() + v.len()).sum();
    let datasize = u16::try_from(size).map_err(|_| UwsgiError::BlockTooLarge { size })?;
    let mut out = Vec::with_capacity(HEADER_LEN + size);
    out.extend_from_slice(
        &Header {
            modifier1,
            datasize,
            modifier2,
        }
        .to_bytes(),
    );
    for (key, value) in vars {
        if key.is_empty() {
            return Err(UwsgiError::EmptyKey {
                offset: out.len() - HEADER_LEN,
            });
        }
        for part in [key, value] {
            // Each part is shorter than the whole block, which fits in 16 bits.
            let len = u16::try_from(part.len()).map_err(|_| UwsgiError::BlockTooLarge { size })?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(part);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Var = (Vec<u8>, Vec<u8>);

    fn collect(block: &[u8]) -> Vec<Result<Var, UwsgiError>> {
        vars(block)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect()
    }

    #[test]
    fn header_reads_little_endian_size() {
        assert_eq!(parse_header(&[0, 0x34]), None);
        let h = parse_header(&[5, 0x34, 0x12, 9, 0xff]).unwrap();
        assert_eq!(
            h,
            Header {
                modifier1: 5,
                datasize: 0x1234,
                modifier2: 9
            }
        );
        assert_eq!(h.to_bytes(), [5, 0x34, 0x12, 9]);
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let list: Vec<(&[u8], &[u8])> = vec![
            (b"REQUEST_METHOD", b"GET"),
            (b"QUERY_STRING", b""),
            (b"PATH_INFO", b"/caf\xc3\xa9"),
            (b"X", &[0u8, 1, 2][..]),
        ];
        let packet = encode(0, 0, &list).unwrap();
        let h = parse_header(&packet).unwrap();
        assert_eq!(h.modifier1, 0);
        assert_eq!(usize::from(h.datasize), packet.len() - HEADER_LEN);
        let back: Vec<(&[u8], &[u8])> = vars(&packet[HEADER_LEN..])
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back, list);
    }

    #[test]
    fn empty_block_has_no_vars() {
        assert!(collect(b"").is_empty());
        assert_eq!(encode(0, 0, &[]).unwrap(), vec![0, 0, 0, 0]);
    }

    #[test]
    fn every_truncation_is_an_error_then_the_end() {
        let packet = encode(0, 0, &[(b"KEY", b"value")]).unwrap();
        let block = &packet[HEADER_LEN..];
        // Whole: one var.
        assert_eq!(
            collect(block),
            vec![Ok((b"KEY".to_vec(), b"value".to_vec()))]
        );
        let expected = [
            None, // 0 bytes: no var at all
            Some(UwsgiError::KeyLength { offset: 0 }),
            Some(UwsgiError::Key { offset: 0, len: 3 }),
            Some(UwsgiError::Key { offset: 0, len: 3 }),
            Some(UwsgiError::Key { offset: 0, len: 3 }),
            Some(UwsgiError::ValueLength { key: "KEY".into() }),
            Some(UwsgiError::ValueLength { key: "KEY".into() }),
        ];
        for cut in 0..block.len() {
            let got = collect(&block[..cut]);
            let want = match expected.get(cut) {
                Some(None) => vec![],
                Some(Some(e)) => vec![Err(e.clone())],
                None => vec![Err(UwsgiError::Value {
                    key: "KEY".into(),
                    len: 5,
                })],
            };
            assert_eq!(got, want, "cut at {cut}");
        }
    }

    #[test]
    fn empty_key_is_an_error_and_stops_the_iterator() {
        let mut block = encode(0, 0, &[(b"A", b"1")]).unwrap()[HEADER_LEN..].to_vec();
        block.extend_from_slice(&[0, 0, 1, 0, b'x', 1, 0, b'B', 0, 0]);
        assert_eq!(
            collect(&block),
            vec![
                Ok((b"A".to_vec(), b"1".to_vec())),
                Err(UwsgiError::EmptyKey { offset: 6 })
            ]
        );
    }

    #[test]
    fn error_messages_name_the_var() {
        let e = vars(&[3, 0, b'K', b'E', b'Y', 9, 0, b'v'])
            .next()
            .unwrap()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "uwsgi var `KEY`: the value's 9 bytes run past the end of the block"
        );
    }

    #[test]
    fn encode_refuses_what_does_not_fit() {
        let big = vec![b'v'; 70_000];
        assert_eq!(
            encode(0, 0, &[(b"K", &big)]),
            Err(UwsgiError::BlockTooLarge { size: 70_005 })
        );
        let half = vec![b'v'; 40_000];
        assert!(matches!(
            encode(0, 0, &[(b"A", &half), (b"B", &half)]),
            Err(UwsgiError::BlockTooLarge { .. })
        ));
        // The largest block that fits.
        let fit = vec![b'v'; MAX_BLOCK - 5];
        let packet = encode(0, 0, &[(b"K", &fit)]).unwrap();
        assert_eq!(parse_header(&packet).unwrap().datasize, u16::MAX);
        assert_eq!(
            encode(0, 0, &[(b"", b"x")]),
            Err(UwsgiError::EmptyKey { offset: 0 })
        );
    }
}
