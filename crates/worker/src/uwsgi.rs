//! A uwsgi request (what nginx's `uwsgi_pass` sends) in the runtime's terms, sans-io: the event
//! loop asks [`parse_request`] whether the packet header and its vars block are all there; the
//! body (`CONTENT_LENGTH` bytes) follows the block. The packet format itself is read by
//! [`liege_proto::uwsgi`].
//!
//! As uWSGI (`proto/uwsgi.c`), a vars block larger than `buffer-size` is refused ("invalid
//! request block size"; nginx then shows 502). Only request packets are served: modifier1 0
//! (WSGI, nginx's default), 5 (PSGI) and 7 (Rack) all mean "a request for the app", whatever
//! language the worker runs; anything else (ping, signals, spooler...) is refused.

use liege_proto::uwsgi as proto;

use crate::http::{HttpError, Limits, label, show};
use crate::request::Vars;

/// The modifier1 values that carry an app request.
pub const REQUEST_MODIFIERS: [u8; 3] = [0, 5, 7];

/// A parsed uwsgi request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UwsgiHead {
    /// The vars of the packet, in its order (they are already CGI-style).
    pub vars: Vars,
    /// `CONTENT_LENGTH` (0 when absent or empty); the body's bytes follow the vars block.
    pub body_len: u64,
    /// `REQUEST_METHOD` is `HEAD`.
    pub head_only: bool,
    /// `METHOD REQUEST_URI` (or `PATH_INFO` when there is no `REQUEST_URI`), cut at
    /// [`crate::http::LABEL_MAX`] bytes.
    pub label: Vec<u8>,
    /// The client came over TLS: `HTTPS` is `on` or `1`, or `UWSGI_SCHEME` is `https`.
    pub https: bool,
}

/// Reads a uwsgi request from the start of `buf`: `Ok(None)` until the header and its whole vars
/// block are there; else the head and how many bytes it took (the body starts there).
///
/// When a var appears twice, the last one counts (as [`Vars::get`] returns it); every
/// `CONTENT_LENGTH` must be digits (or empty) and within `limits.body`.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Option<(UwsgiHead, usize)>, HttpError> {
    let Some(header) = proto::parse_header(buf) else {
        return Ok(None);
    };
    if !REQUEST_MODIFIERS.contains(&header.modifier1) {
        return Err(HttpError::UwsgiModifier {
            modifier1: header.modifier1,
        });
    }
    let size = usize::from(header.datasize);
    if size > limits.head {
        return Err(HttpError::UwsgiBlockSize {
            size,
            limit: limits.head,
        });
    }
    let end = proto::HEADER_LEN + size;
    let Some(block) = buf.get(proto::HEADER_LEN..end) else {
        return Ok(None);
    };

    let mut vars = Vars::with_capacity(size, 32);
    let mut body_len = 0;
    let mut https = false;
    for var in proto::vars(block) {
        let (key, value) = var?;
        match key {
            b"CONTENT_LENGTH" => body_len = content_length(value, limits)?,
            b"HTTPS" => https = value.eq_ignore_ascii_case(b"on") || value == b"1",
            b"UWSGI_SCHEME" => https = value.eq_ignore_ascii_case(b"https"),
            // nginx passes these headers twice, as CGI wants them and as HTTP_*; CGI (and PEP
            // 3333, whose validator refuses them) wants only the first.
            b"HTTP_CONTENT_TYPE" | b"HTTP_CONTENT_LENGTH" => continue,
            _ => {}
        }
        vars.push(key, value);
    }
    let method = vars.get(b"REQUEST_METHOD").unwrap_or_default();
    let uri = vars
        .get(b"REQUEST_URI")
        .or_else(|| vars.get(b"PATH_INFO"))
        .unwrap_or_default();
    let head = UwsgiHead {
        body_len,
        head_only: method == b"HEAD",
        label: label(method, uri),
        https,
        vars,
    };
    Ok(Some((head, end)))
}

/// A `CONTENT_LENGTH` var: digits, or empty for none.
fn content_length(value: &[u8], limits: &Limits) -> Result<u64, HttpError> {
    let bad = || HttpError::ContentLength { value: show(value) };
    if !value.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let n = value.iter().try_fold(0u64, |n, &c| {
        n.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    });
    let n = n.ok_or_else(bad)?;
    if limits.body != 0 && n > limits.body {
        return Err(HttpError::BodyTooLarge {
            length: n,
            limit: limits.body,
        });
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        head: 4096,
        body: 0,
    };

    /// What nginx sends with the stock `uwsgi_params` for `POST /app/x?a=1` over TLS.
    fn nginx_vars(content_length: &[u8]) -> Vec<(&'static [u8], Vec<u8>)> {
        vec![
            (b"QUERY_STRING", b"a=1".to_vec()),
            (b"REQUEST_METHOD", b"POST".to_vec()),
            (
                b"CONTENT_TYPE",
                b"application/x-www-form-urlencoded".to_vec(),
            ),
            (b"CONTENT_LENGTH", content_length.to_vec()),
            (b"REQUEST_URI", b"/app/x?a=1".to_vec()),
            (b"PATH_INFO", b"/app/x".to_vec()),
            (b"DOCUMENT_ROOT", b"/usr/share/nginx/html".to_vec()),
            (b"SERVER_PROTOCOL", b"HTTP/1.1".to_vec()),
            (b"REQUEST_SCHEME", b"https".to_vec()),
            (b"HTTPS", b"on".to_vec()),
            (b"REMOTE_ADDR", b"192.0.2.7".to_vec()),
            (b"REMOTE_PORT", b"51234".to_vec()),
            (b"SERVER_PORT", b"443".to_vec()),
            (b"SERVER_NAME", b"example.com".to_vec()),
            (b"HTTP_HOST", b"example.com".to_vec()),
            (b"HTTP_USER_AGENT", b"curl/7.88.1".to_vec()),
        ]
    }

    fn packet(modifier1: u8, vars: &[(&'static [u8], Vec<u8>)]) -> Vec<u8> {
        let list: Vec<(&[u8], &[u8])> = vars.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        proto::encode(modifier1, 0, &list).unwrap()
    }

    #[test]
    fn nginx_packet_with_its_body() {
        let list = nginx_vars(b"5");
        let mut buf = packet(0, &list);
        let block_end = buf.len();
        buf.extend_from_slice(b"hello");
        let (h, n) = parse_request(&buf, &LIMITS).unwrap().unwrap();
        assert_eq!(n, block_end);
        assert_eq!(&buf[n..], b"hello");
        assert_eq!(h.body_len, 5);
        assert!(h.https);
        assert!(!h.head_only);
        assert_eq!(h.label, b"POST /app/x?a=1");
        let got: Vec<(&[u8], &[u8])> = h.vars.iter().collect();
        let want: Vec<(&[u8], &[u8])> = list.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn waits_for_the_whole_block() {
        let buf = packet(0, &nginx_vars(b""));
        for cut in 0..buf.len() {
            assert!(
                parse_request(&buf[..cut], &LIMITS).unwrap().is_none(),
                "cut {cut}"
            );
        }
        let (h, n) = parse_request(&buf, &LIMITS).unwrap().unwrap();
        assert_eq!((h.body_len, n), (0, buf.len()));
    }

    #[test]
    fn psgi_and_rack_modifiers_are_requests_others_are_not() {
        let vars = vec![
            (&b"REQUEST_METHOD"[..], b"HEAD".to_vec()),
            (b"PATH_INFO", b"/p".to_vec()),
        ];
        for m in [5, 7] {
            let (h, _) = parse_request(&packet(m, &vars), &LIMITS).unwrap().unwrap();
            assert!(h.head_only);
            assert_eq!(h.label, b"HEAD /p");
            assert!(!h.https);
        }
        let e = parse_request(&[100, 0, 0, 0], &LIMITS).unwrap_err();
        assert_eq!(e.status().0, 400);
        assert_eq!(
            e.to_string(),
            "uwsgi packet with modifier1 100 (only 0, 5 and 7 are requests)"
        );
    }

    #[test]
    fn block_larger_than_buffer_size() {
        let buf = packet(0, &nginx_vars(b"0"));
        let small = Limits { head: 64, body: 0 };
        // Refused from the header alone, before the block arrives.
        let e = parse_request(&buf[..4], &small).unwrap_err();
        assert_eq!(e.status().0, 400);
        assert_eq!(
            e.to_string(),
            format!(
                "invalid request block size: {} bytes (buffer-size is 64)",
                buf.len() - 4
            )
        );
        let exact = Limits {
            head: buf.len() - 4,
            body: 0,
        };
        assert!(parse_request(&buf, &exact).unwrap().is_some());
    }

    #[test]
    fn content_length_rules() {
        let limited = Limits {
            head: 4096,
            body: 100,
        };
        let (h, _) = parse_request(&packet(0, &nginx_vars(b"100")), &limited)
            .unwrap()
            .unwrap();
        assert_eq!(h.body_len, 100);
        let e = parse_request(&packet(0, &nginx_vars(b"101")), &limited).unwrap_err();
        assert_eq!(e.status().0, 413);
        for bad in [&b"-1"[..], b" 5", b"5x", b"99999999999999999999999"] {
            let e = parse_request(&packet(0, &nginx_vars(bad)), &LIMITS).unwrap_err();
            assert!(matches!(e, HttpError::ContentLength { .. }), "{e}");
        }
        // Twice: the last one counts.
        let mut vars = nginx_vars(b"3");
        vars.push((b"CONTENT_LENGTH", b"4".to_vec()));
        let (h, _) = parse_request(&packet(0, &vars), &LIMITS).unwrap().unwrap();
        assert_eq!(h.body_len, 4);
        assert_eq!(h.vars.get(b"CONTENT_LENGTH"), Some(&b"4"[..]));
    }

    #[test]
    fn scheme_vars() {
        for (key, value, https) in [
            (&b"HTTPS"[..], &b"1"[..], true),
            (b"HTTPS", b"ON", true),
            (b"HTTPS", b"off", false),
            (b"HTTPS", b"", false),
            (b"UWSGI_SCHEME", b"https", true),
            (b"UWSGI_SCHEME", b"http", false),
        ] {
            let buf = proto::encode(0, 0, &[(key, value)]).unwrap();
            let (h, _) = parse_request(&buf, &LIMITS).unwrap().unwrap();
            assert_eq!(
                h.https,
                https,
                "{}={}",
                key.escape_ascii(),
                value.escape_ascii()
            );
        }
    }

    #[test]
    fn label_falls_back_to_path_info_and_empty_packets_parse() {
        let vars = vec![
            (&b"REQUEST_METHOD"[..], b"GET".to_vec()),
            (b"PATH_INFO", b"/only".to_vec()),
        ];
        let (h, _) = parse_request(&packet(0, &vars), &LIMITS).unwrap().unwrap();
        assert_eq!(h.label, b"GET /only");
        let (h, n) = parse_request(&[0, 0, 0, 0, b'x'], &LIMITS)
            .unwrap()
            .unwrap();
        assert_eq!((h.vars.len(), h.body_len, n), (0, 0, 4));
    }

    #[test]
    fn truncated_var_is_a_400() {
        // datasize 5 holding a key length of 9.
        let buf = [0, 5, 0, 0, 9, 0, b'A', b'B', b'C'];
        let e = parse_request(&buf, &LIMITS).unwrap_err();
        assert_eq!(e.status().0, 400);
        assert_eq!(
            e.to_string(),
            "uwsgi var at byte 0: the key's 9 bytes run past the end of the block"
        );
    }

    #[test]
    fn nginx_duplicate_content_headers_are_dropped() {
        let p = proto::encode(
            0,
            0,
            &[
                (b"REQUEST_METHOD", b"POST"),
                (b"CONTENT_TYPE", b"text/plain"),
                (b"CONTENT_LENGTH", b"2"),
                (b"HTTP_CONTENT_TYPE", b"text/plain"),
                (b"HTTP_CONTENT_LENGTH", b"2"),
            ],
        )
        .unwrap();
        let limits = Limits {
            head: 4096,
            body: 0,
        };
        let (head, _) = parse_request(&p, &limits).unwrap().unwrap();
        assert_eq!(head.vars.get(b"CONTENT_TYPE"), Some(&b"text/plain"[..]));
        assert_eq!(head.vars.get(b"HTTP_CONTENT_TYPE"), None);
        assert_eq!(head.vars.get(b"HTTP_CONTENT_LENGTH"), None);
        assert_eq!(head.body_len, 2);
    }
}
