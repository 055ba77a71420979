//! The uwsgi request parser on any bytes: `parse_request` gives a head, waits or gives an error,
//! and never panics. A parsed request's vars are those of the packet, in order, and encoding them
//! again gives back the packet's exact bytes. The vars iterator, on the raw input, ends and keeps
//! within it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liege_proto::uwsgi::{HEADER_LEN, encode, parse_header, vars};
use liege_worker::http::{LABEL_MAX, Limits};
use liege_worker::uwsgi::parse_request;

const LIMITS: Limits = Limits {
    head: 1024,
    body: 1 << 20,
};

fuzz_target!(|data: &[u8]| {
    match parse_request(data, &LIMITS) {
        Ok(Some((head, n))) => {
            let header = parse_header(data).unwrap();
            assert_eq!(n, HEADER_LEN + usize::from(header.datasize));
            assert!(n <= data.len() && n - HEADER_LEN <= LIMITS.head);
            let list: Vec<(&[u8], &[u8])> = vars(&data[HEADER_LEN..n])
                .collect::<Result<_, _>>()
                .expect("a parsed request has readable vars");
            assert!(head.vars.iter().eq(list.iter().copied()));
            let again = encode(header.modifier1, header.modifier2, &list).unwrap();
            assert_eq!(again, &data[..n]);
            assert!(head.label.len() <= LABEL_MAX);
            assert!(head.body_len <= LIMITS.body);
        }
        Ok(None) => {
            let waiting = match parse_header(data) {
                None => true,
                Some(h) => data.len() < HEADER_LEN + usize::from(h.datasize),
            };
            assert!(waiting);
        }
        Err(e) => {
            let status = e.status().0;
            assert!(matches!(status, 400 | 413), "{status} {e}");
        }
    }
    let mut end = 0;
    for var in vars(data) {
        match var {
            Ok((key, value)) => {
                assert!(!key.is_empty());
                end += 4 + key.len() + value.len();
            }
            Err(_) => break,
        }
    }
    assert!(end <= data.len());
});
