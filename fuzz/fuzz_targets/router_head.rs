//! The router's raw request-head checks (`liege_router::head::parse`) and its chunked decoder on
//! any bytes: a head is read, awaited or refused, never with a panic. A head read takes no more
//! than the limit, reads the same from exactly its own bytes (whole, or resumed a byte at a
//! time), is incomplete one byte short, and its spans lie inside it. The chunked decoder
//! gives the same data, end and error whether its input comes whole or in pieces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liege_router::chunked::{self, Decoder};
use liege_router::head::{self, BodyKind, Scan};

const LIMIT: usize = 512;

/// Decodes `input` in pieces of 1 to 16 bytes taken cyclically from `sizes`: the data, the
/// bytes used, whether it ended, or the error.
fn decode(input: &[u8], sizes: &[u8]) -> Result<(Vec<u8>, usize, bool), chunked::ChunkError> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut k = 0;
    while at < input.len() {
        let step = sizes.get(k % sizes.len().max(1)).map_or(input.len(), |s| usize::from(s % 16) + 1);
        k += 1;
        let end = (at + step).min(input.len());
        let mut piece = &input[at..end];
        while !piece.is_empty() {
            let s = d.step(piece)?;
            assert!(s.consumed() <= piece.len() && s.consumed() > 0);
            out.extend_from_slice(&piece[s.framing..s.consumed()]);
            at += s.consumed();
            piece = &piece[s.consumed()..];
            if s.done {
                return Ok((out, at, true));
            }
        }
    }
    Ok((out, at, d.is_done()))
}

fuzz_target!(|data: &[u8]| {
    match head::parse(data, LIMIT, &mut Scan::default()) {
        Ok(Some(h)) => {
            assert!(h.len <= data.len() && h.len <= LIMIT + 8);
            let again = head::parse(&data[..h.len], LIMIT, &mut Scan::default()).unwrap().unwrap();
            assert_eq!(again, h);
            assert_eq!(head::parse(&data[..h.len - 1], LIMIT, &mut Scan::default()), Ok(None));
            // Resumed a byte at a time: the same head.
            let mut scan = Scan::default();
            for n in 0..h.len {
                assert_eq!(head::parse(&data[..n], LIMIT, &mut scan), Ok(None));
            }
            assert_eq!(head::parse(&data[..h.len], LIMIT, &mut scan).unwrap().unwrap(), h);
            for r in [&h.method, &h.target]
                .into_iter()
                .chain(h.host.iter())
                .chain(h.headers.iter().flat_map(|(n, v)| [n, v]))
            {
                assert!(r.start <= r.end && r.end <= h.len);
            }
            assert!(h.headers.len() <= head::MAX_HEADERS);
            if let Some(host) = &h.host {
                assert!(head::valid_host(&data[host.clone()]));
            }
            if h.body == BodyKind::Chunked {
                let rest = &data[h.len..];
                assert_eq!(decode(rest, rest), decode(rest, &[]));
            }
        }
        Ok(None) => assert!(data.len() < LIMIT + 8 + 3),
        Err(e) => {
            assert!(matches!(e.status(), 400 | 405 | 414 | 417 | 431 | 505), "{e}");
            assert!(!e.to_string().is_empty());
        }
    }
    assert_eq!(decode(data, data), decode(data, &[]));
});
