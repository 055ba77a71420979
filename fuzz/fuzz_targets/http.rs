//! The HTTP request parser on any bytes, with a small head limit: `parse_head` gives a head,
//! waits or gives an error, and never panics. A head takes no more than the limit, parses the
//! same from exactly its own bytes, and is incomplete one byte short. A chunked body (after a
//! chunked head, and the raw input too, so the decoder is reached without a valid head) decodes
//! to the same bytes and the same end or error whether it comes whole or in pieces whose sizes
//! are taken from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liege_worker::http::{BodyKind, ChunkedDecoder, LABEL_MAX, Limits, parse_head};

const LIMITS: Limits = Limits {
    head: 512,
    body: 4096,
};

/// Decodes `input` in pieces of 1 to 32 bytes taken cyclically from `sizes` (whole when `sizes`
/// is empty): the bytes used and whether done, or the error's status; and the body.
fn decode(input: &[u8], sizes: &[u8]) -> (Result<(usize, bool), u16>, Vec<u8>) {
    let mut d = ChunkedDecoder::new(LIMITS.body);
    let mut body = Vec::new();
    let mut used = 0;
    let mut k = 0;
    loop {
        let step = match sizes.get(k % sizes.len().max(1)) {
            Some(s) => usize::from(s % 32) + 1,
            None => input.len(),
        };
        k += 1;
        let end = (used + step).min(input.len());
        let piece = &input[used..end];
        match d.decode(piece, &mut |b| {
            body.extend_from_slice(b);
            Ok(())
        }) {
            Err(e) => return (Err(e.status().0), body),
            Ok((n, done)) => {
                assert!(n <= piece.len());
                if !done {
                    assert_eq!(n, piece.len(), "an unfinished decoder uses every byte");
                }
                used += n;
                assert_eq!(d.total(), body.len() as u64);
                assert!(d.total() <= LIMITS.body);
                if done || end == input.len() {
                    return (Ok((used, done)), body);
                }
            }
        }
    }
}

fn check_decoder(input: &[u8], sizes: &[u8]) {
    let whole = decode(input, &[]);
    if let Err(status) = whole.0 {
        assert!(matches!(status, 400 | 413 | 431), "status {status}");
    }
    assert_eq!(decode(input, sizes), whole);
}

fuzz_target!(|data: &[u8]| {
    match parse_head(data, &LIMITS) {
        Ok(Some((head, n))) => {
            assert!(n >= 1 && n <= data.len() && n <= LIMITS.head);
            let (again, m) = parse_head(&data[..n], &LIMITS).unwrap().unwrap();
            assert_eq!((&again, m), (&head, n));
            assert!(matches!(parse_head(&data[..n - 1], &LIMITS), Ok(None)));
            assert!(head.label.len() <= LABEL_MAX);
            let names: Vec<&[u8]> = head.vars.iter().map(|(k, _)| k).collect();
            assert_eq!(
                names[..5],
                [
                    &b"REQUEST_METHOD"[..],
                    b"REQUEST_URI",
                    b"PATH_INFO",
                    b"QUERY_STRING",
                    b"SERVER_PROTOCOL"
                ]
            );
            assert!(!names.contains(&&b"HTTP_CONTENT_LENGTH"[..]));
            assert!(!names.contains(&&b"HTTP_CONTENT_TYPE"[..]));
            match head.body {
                BodyKind::Length(len) => assert!(len > 0 && len <= LIMITS.body),
                BodyKind::Chunked => {
                    assert!(head.http11);
                    let rest = &data[n..];
                    check_decoder(rest, rest);
                    check_decoder(rest, &data[..n]);
                }
                BodyKind::None => {}
            }
        }
        Ok(None) => assert!(data.len() <= LIMITS.head),
        Err(e) => {
            let (status, reason) = e.status();
            assert!(
                matches!(status, 400 | 413 | 414 | 431 | 501 | 505),
                "{status} {e}"
            );
            assert!(!reason.is_empty() && !e.to_string().is_empty());
        }
    }
    check_decoder(data, data);
});
