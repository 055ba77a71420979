//! The response side of a request: the app gives a status and headers, then body bytes or a
//! file; this turns them into HTTP/1.1 on the wire (Content-Length when known, chunked otherwise,
//! `Connection: close` when the connection cannot be kept), and checks what the app gave.

use std::fs::File;
use std::io::{self, Read, Seek};

/// Where a response's bytes go: the connection's output queue, drained by the event loop.
pub trait Output {
    /// Queues bytes for the client.
    fn send(&mut self, data: &[u8]) -> io::Result<()>;
    /// Queues `len` bytes of `file` from `offset`, to go out with sendfile.
    fn send_file(&mut self, file: File, offset: u64, len: u64) -> io::Result<()>;
    /// Pushes what is queued towards the client: called after each chunk of a streamed response,
    /// so each is on its way before the app makes the next. May wait (up to the socket timeout)
    /// when a lot is queued.
    fn flush(&mut self) -> io::Result<()>;
    /// The head went out (harakiri can no longer answer 504).
    fn head_sent(&mut self) {}
}

/// An [`Output`] that keeps what it is sent in memory, files included: for tests and tools
/// that look at the bytes a response makes.
#[derive(Debug, Default)]
pub struct MemoryOutput {
    /// Everything sent, in order.
    pub bytes: Vec<u8>,
    /// How many times [`Output::flush`] was called.
    pub flushes: usize,
}

impl Output for MemoryOutput {
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.bytes.extend_from_slice(data);
        Ok(())
    }
    fn send_file(&mut self, file: File, offset: u64, len: u64) -> io::Result<()> {
        let mut file = file;
        file.seek(io::SeekFrom::Start(offset))?;
        file.take(len).read_to_end(&mut self.bytes)?;
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.flushes += 1;
        Ok(())
    }
}

/// How the response must be framed, from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// `HTTP/1.1` (chunked allowed) rather than `HTTP/1.0`.
    pub http11: bool,
    /// The connection may stay open after this response.
    pub keep_alive: bool,
    /// A HEAD request: the head only.
    pub head_only: bool,
    /// Plain HTTP framing is possible: false on a uwsgi socket, where the response ends when the
    /// connection closes (as nginx's uwsgi module expects) and nothing is chunked.
    pub http: bool,
}

impl Framing {
    /// An HTTP/1.1 request on an http-socket whose connection may stay open: the usual case.
    pub const HTTP11: Framing = Framing {
        http11: true,
        keep_alive: true,
        head_only: false,
        http: true,
    };
}

/// What the app gave that HTTP cannot carry (PEP 3333's rules, which PSGI and Rack share).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("status `{0}` is not a three-digit code, a space and a reason")]
    BadStatus(String),
    #[error("header name `{0}` is not a token")]
    BadName(String),
    #[error("header `{name}` has a control character, or one beyond latin-1, in its value")]
    BadValue { name: String },
    #[error("header `{0}` is hop-by-hop: the server manages it")]
    HopByHop(String),
    #[error("Content-Length `{0}` is not a number")]
    BadLength(String),
    #[error("the response was not started (start_response was not called)")]
    NotStarted,
    #[error("the response head was already sent")]
    AlreadySent,
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// Appends text as latin-1, one byte a character, as HTTP heads carry it (PEP 3333's rule for
/// header values); `start` refused any character beyond U+00FF.
fn push_latin1(out: &mut Vec<u8>, text: &str) {
    if text.is_ascii() {
        out.extend_from_slice(text.as_bytes());
    } else {
        out.extend(
            text.chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')),
        );
    }
}

/// A response being written.
pub struct Response<'a> {
    out: &'a mut dyn Output,
    framing: Framing,
    status: Option<(u16, String)>,
    headers: Vec<(String, String)>,
    content_length: Option<u64>,
    chunked: bool,
    head_sent: bool,
    body_sent: u64,
    keep_alive: bool,
    finished: bool,
}

impl std::fmt::Debug for Response<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("head_sent", &self.head_sent)
            .field("body_sent", &self.body_sent)
            .finish_non_exhaustive()
    }
}

impl<'a> Response<'a> {
    pub fn new(out: &'a mut dyn Output, framing: Framing) -> Self {
        Response {
            out,
            framing,
            status: None,
            headers: Vec::new(),
            content_length: None,
            chunked: false,
            head_sent: false,
            body_sent: 0,
            keep_alive: framing.keep_alive && framing.http,
            finished: false,
        }
    }

    /// Sets the status from its code (PSGI and Rack give a number), with the standard reason
    /// phrase (`Unknown` for a code without one), and the headers, as [`Response::start`].
    pub fn start_code(
        &mut self,
        code: u16,
        headers: Vec<(String, String)>,
    ) -> Result<(), HeaderError> {
        let reason = http::StatusCode::from_u16(code)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Unknown");
        self.start(&format!("{code} {reason}"), headers)
    }

    /// Sets the status (`200 OK`) and headers. Until the head is sent it may be called again
    /// (WSGI's `exc_info`), replacing both.
    pub fn start(
        &mut self,
        status: &str,
        headers: Vec<(String, String)>,
    ) -> Result<(), HeaderError> {
        if self.head_sent {
            return Err(HeaderError::AlreadySent);
        }
        let b = status.as_bytes();
        let ok = b.len() >= 5
            && b[..3].iter().all(u8::is_ascii_digit)
            && b[0] != b'0'
            && b[3] == b' '
            && !status
                .chars()
                .any(|c| c < ' ' || c == '\x7f' || u32::from(c) > 0xff);
        if !ok {
            return Err(HeaderError::BadStatus(status.to_string()));
        }
        let code = status[..3]
            .parse()
            .map_err(|_| HeaderError::BadStatus(status.to_string()))?;
        let mut length = None;
        for (name, value) in &headers {
            if !is_token(name) {
                return Err(HeaderError::BadName(name.clone()));
            }
            if value
                .chars()
                .any(|c| (c < ' ' && c != '\t') || c == '\x7f' || u32::from(c) > 0xff)
            {
                return Err(HeaderError::BadValue { name: name.clone() });
            }
            let lower = name.to_ascii_lowercase();
            if HOP_BY_HOP.contains(&lower.as_str()) {
                return Err(HeaderError::HopByHop(name.clone()));
            }
            if lower == "content-length" {
                length = Some(
                    value
                        .trim()
                        .parse()
                        .map_err(|_| HeaderError::BadLength(value.clone()))?,
                );
            }
        }
        self.status = Some((code, status.to_string()));
        self.headers = headers;
        self.content_length = length;
        Ok(())
    }

    /// Whether `start` was called.
    pub fn is_started(&self) -> bool {
        self.status.is_some()
    }

    /// Whether the head went out (then the status can no longer change).
    pub fn is_head_sent(&self) -> bool {
        self.head_sent
    }

    /// The status code given, if any.
    pub fn status_code(&self) -> Option<u16> {
        self.status.as_ref().map(|s| s.0)
    }

    /// Body bytes sent so far.
    pub fn body_bytes(&self) -> u64 {
        self.body_sent
    }

    /// Whether the connection can serve another request after this response.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    fn send_head(&mut self) -> io::Result<()> {
        let Some((code, line)) = &self.status else {
            return Err(io::Error::other(HeaderError::NotStarted));
        };
        let no_body = self.framing.head_only || *code == 204 || *code == 304 || *code < 200;
        if self.content_length.is_none() && !no_body {
            if self.framing.http11 && self.framing.http {
                self.chunked = true;
            } else {
                self.keep_alive = false;
            }
        }
        let mut head = Vec::with_capacity(128 + self.headers.len() * 32);
        head.extend_from_slice(if self.framing.http11 {
            b"HTTP/1.1 "
        } else {
            b"HTTP/1.0 "
        });
        push_latin1(&mut head, line);
        head.extend_from_slice(b"\r\n");
        for (n, v) in &self.headers {
            head.extend_from_slice(n.as_bytes());
            head.extend_from_slice(b": ");
            push_latin1(&mut head, v);
            head.extend_from_slice(b"\r\n");
        }
        if self.chunked {
            head.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        if self.framing.http {
            if !self.keep_alive {
                head.extend_from_slice(b"Connection: close\r\n");
            } else if !self.framing.http11 {
                head.extend_from_slice(b"Connection: keep-alive\r\n");
            }
        }
        head.extend_from_slice(b"\r\n");
        self.head_sent = true;
        self.out.head_sent();
        self.out.send(&head)
    }

    fn body_allowed(&self) -> bool {
        !self.framing.head_only && self.status_has_body()
    }

    /// Whether the status allows a body at all: not 1xx, 204 or 304 (RFC 9110 8.6: no
    /// Content-Length on 1xx and 204; a 304's would describe the response it stands for). A
    /// HEAD answer does get its Content-Length.
    fn status_has_body(&self) -> bool {
        let code = self.status.as_ref().map_or(200, |s| s.0);
        !(code == 204 || code == 304 || code < 200)
    }

    fn queue(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if !self.head_sent {
            self.send_head()?;
        }
        if !self.body_allowed() {
            return Ok(());
        }
        // Never send more than the Content-Length the app announced.
        let data = match self.content_length {
            Some(len) => {
                let room =
                    usize::try_from(len.saturating_sub(self.body_sent)).unwrap_or(usize::MAX);
                &data[..data.len().min(room)]
            }
            None => data,
        };
        self.body_sent += data.len() as u64;
        if self.chunked {
            self.out.send(format!("{:x}\r\n", data.len()).as_bytes())?;
            self.out.send(data)?;
            self.out.send(b"\r\n")
        } else {
            self.out.send(data)
        }
    }

    /// Sends a piece of a streamed body and pushes it out before returning.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.status.is_none() {
            return Err(io::Error::other(HeaderError::NotStarted));
        }
        if data.is_empty() {
            return Ok(());
        }
        self.queue(data)?;
        self.out.flush()
    }

    /// Sends the whole body (or its last piece) at once: when the head has not gone out and the
    /// app gave no Content-Length, the response gets one, so the connection can be kept alive.
    pub fn write_last(&mut self, data: &[u8]) -> io::Result<()> {
        if self.status.is_none() {
            return Err(io::Error::other(HeaderError::NotStarted));
        }
        if !self.head_sent && self.content_length.is_none() && self.status_has_body() {
            self.content_length = Some(data.len() as u64);
            self.headers
                .push(("Content-Length".into(), data.len().to_string()));
        }
        self.queue(data)
    }

    /// Sends `len` bytes of `file` from `offset` (to its end when `None`) with sendfile. When
    /// nothing was sent yet and the app gave no Content-Length, the response gets one.
    pub fn send_file(&mut self, file: File, offset: u64, len: Option<u64>) -> io::Result<()> {
        if self.status.is_none() {
            return Err(io::Error::other(HeaderError::NotStarted));
        }
        let size = file.metadata()?.len();
        let mut len = len.unwrap_or(u64::MAX).min(size.saturating_sub(offset));
        if !self.head_sent && self.content_length.is_none() && self.status_has_body() {
            self.content_length = Some(len);
            self.headers
                .push(("Content-Length".into(), len.to_string()));
        }
        if !self.head_sent {
            self.send_head()?;
        }
        if !self.body_allowed() || len == 0 {
            return Ok(());
        }
        if let Some(cl) = self.content_length {
            len = len.min(cl.saturating_sub(self.body_sent));
        }
        self.body_sent += len;
        if self.chunked {
            self.out.send(format!("{len:x}\r\n").as_bytes())?;
            self.out.send_file(file, offset, len)?;
            self.out.send(b"\r\n")
        } else {
            self.out.send_file(file, offset, len)
        }
    }

    /// Ends the response (once; later calls only answer again): sends the head if the body was
    /// empty, the last chunk if chunked.
    /// Returns whether the connection can be kept alive (not when the app sent less than the
    /// Content-Length it announced).
    pub fn finish(&mut self) -> io::Result<bool> {
        if self.status.is_none() {
            return Err(io::Error::other(HeaderError::NotStarted));
        }
        if self.finished {
            return Ok(self.keep_alive);
        }
        self.finished = true;
        if !self.head_sent {
            if self.content_length.is_none() && self.body_allowed() {
                self.content_length = Some(0);
                self.headers.push(("Content-Length".into(), "0".into()));
            }
            self.send_head()?;
        }
        if self.chunked {
            self.out.send(b"0\r\n\r\n")?;
        }
        if let Some(cl) = self.content_length
            && self.body_allowed()
            && self.body_sent < cl
        {
            self.keep_alive = false;
        }
        Ok(self.keep_alive)
    }

    /// Answers with a plain error page, when nothing was sent yet. Returns false (and sends
    /// nothing) once the head went out: then only closing the connection tells the client.
    pub fn error(&mut self, code: u16, reason: &str) -> io::Result<bool> {
        if self.head_sent {
            self.keep_alive = false;
            return Ok(false);
        }
        let body = format!("{code} {reason}\n");
        self.start(
            &format!("{code} {reason}"),
            vec![("Content-Type".into(), "text/plain".into())],
        )
        .map_err(io::Error::other)?;
        self.write_last(body.as_bytes())?;
        self.finish()?;
        Ok(true)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) type Collect = MemoryOutput;

    const HTTP11: Framing = Framing::HTTP11;

    fn text(c: &Collect) -> String {
        String::from_utf8_lossy(&c.bytes).into_owned()
    }

    #[test]
    fn a_whole_body_gets_a_content_length() {
        let mut c = Collect::default();
        let mut r = Response::new(&mut c, HTTP11);
        r.start("200 OK", vec![("Content-Type".into(), "text/plain".into())])
            .unwrap();
        r.write_last(b"hello").unwrap();
        assert!(r.finish().unwrap());
        assert_eq!(
            text(&c),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
        );
    }

    #[test]
    fn a_streamed_body_is_chunked_and_flushed_per_piece() {
        let mut c = Collect::default();
        let mut r = Response::new(&mut c, HTTP11);
        r.start("200 OK", vec![]).unwrap();
        r.write(b"ab").unwrap();
        r.write(b"").unwrap();
        r.write(b"cde").unwrap();
        assert!(r.finish().unwrap());
        assert_eq!(c.flushes, 2);
        assert_eq!(
            text(&c),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
        );
    }

    #[test]
    fn http10_without_length_closes() {
        let mut c = Collect::default();
        let f = Framing {
            http11: false,
            ..HTTP11
        };
        let mut r = Response::new(&mut c, f);
        r.start("200 OK", vec![]).unwrap();
        r.write(b"x").unwrap();
        assert!(!r.finish().unwrap());
        assert_eq!(text(&c), "HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nx");
    }

    #[test]
    fn head_requests_get_the_head_with_the_length_only() {
        let mut c = Collect::default();
        let f = Framing {
            head_only: true,
            ..HTTP11
        };
        let mut r = Response::new(&mut c, f);
        r.start("200 OK", vec![]).unwrap();
        r.write_last(b"hello").unwrap();
        assert!(r.finish().unwrap());
        assert_eq!(text(&c), "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
    }

    #[test]
    fn a_code_gets_its_reason_phrase() {
        for (code, line) in [
            (404, "HTTP/1.1 404 Not Found\r\n"),
            (299, "HTTP/1.1 299 Unknown\r\n"),
            (1000, ""),
        ] {
            let mut c = Collect::default();
            let mut r = Response::new(&mut c, HTTP11);
            if line.is_empty() {
                assert!(r.start_code(code, vec![]).is_err());
                continue;
            }
            r.start_code(code, vec![]).unwrap();
            r.write_last(b"").unwrap();
            r.finish().unwrap();
            assert!(text(&c).starts_with(line), "{}", text(&c));
        }
    }

    #[test]
    fn no_length_is_added_where_no_body_is_allowed() {
        for status in ["204 No Content", "304 Not Modified"] {
            let mut c = Collect::default();
            let mut r = Response::new(&mut c, HTTP11);
            r.start(status, vec![]).unwrap();
            r.write_last(b"").unwrap();
            assert!(r.finish().unwrap());
            assert_eq!(text(&c), format!("HTTP/1.1 {status}\r\n\r\n"));
        }
    }

    #[test]
    fn short_bodies_close_and_long_ones_are_cut() {
        let mut c = Collect::default();
        let mut r = Response::new(&mut c, HTTP11);
        r.start("200 OK", vec![("Content-Length".into(), "3".into())])
            .unwrap();
        r.write(b"ab").unwrap();
        assert!(!r.finish().unwrap());
        let mut c = Collect::default();
        let mut r = Response::new(&mut c, HTTP11);
        r.start("200 OK", vec![("Content-Length".into(), "3".into())])
            .unwrap();
        r.write(b"abcdef").unwrap();
        assert!(r.finish().unwrap());
        assert!(text(&c).ends_with("\r\n\r\nabc"));
    }

    #[test]
    fn bad_heads_are_refused() {
        let mut c = Collect::default();
        let mut r = Response::new(&mut c, HTTP11);
        assert_eq!(
            r.start("OK", vec![]),
            Err(HeaderError::BadStatus("OK".into()))
        );
        assert_eq!(
            r.start("200", vec![]),
            Err(HeaderError::BadStatus("200".into()))
        );
        assert!(matches!(
            r.start("200 OK", vec![("Bad Name".into(), "x".into())]),
            Err(HeaderError::BadName(_))
        ));
        assert!(matches!(
            r.start("200 OK", vec![("X".into(), "a\r\nb".into())]),
            Err(HeaderError::BadValue { .. })
        ));
        assert!(matches!(
            r.start("200 OK", vec![("Connection".into(), "close".into())]),
            Err(HeaderError::HopByHop(_))
        ));
        assert!(r.write(b"x").is_err(), "writing before start");
    }

    #[test]
    fn header_values_go_out_as_latin1() {
        let mut c = Collect::default();
        let mut r = Response::new(&mut c, HTTP11);
        r.start("200 Caf\u{e9}", vec![("X-Name".into(), "Jos\u{e9}".into())])
            .unwrap();
        r.write_last(b"").unwrap();
        r.finish().unwrap();
        assert!(
            c.bytes
                .starts_with(b"HTTP/1.1 200 Caf\xe9\r\nX-Name: Jos\xe9\r\n")
        );
        let mut r = Response::new(&mut c, HTTP11);
        assert!(matches!(
            r.start("200 OK", vec![("X".into(), "\u{20ac}".into())]),
            Err(HeaderError::BadValue { .. })
        ));
    }

    #[test]
    fn errors_replace_an_unsent_head_only() {
        let mut c = Collect::default();
        let mut r = Response::new(&mut c, HTTP11);
        r.start("200 OK", vec![]).unwrap();
        assert!(r.error(500, "Internal Server Error").unwrap());
        assert!(text(&c).starts_with("HTTP/1.1 500 Internal Server Error\r\n"));
        let mut c = Collect::default();
        let mut r = Response::new(&mut c, HTTP11);
        r.start("200 OK", vec![]).unwrap();
        r.write(b"x").unwrap();
        assert!(!r.error(500, "Internal Server Error").unwrap());
        assert!(!r.keep_alive());
    }

    #[test]
    fn uwsgi_sockets_never_chunk_nor_keep_alive() {
        let mut c = Collect::default();
        let f = Framing {
            http: false,
            ..HTTP11
        };
        let mut r = Response::new(&mut c, f);
        r.start("200 OK", vec![]).unwrap();
        r.write(b"abc").unwrap();
        assert!(!r.finish().unwrap());
        assert_eq!(text(&c), "HTTP/1.1 200 OK\r\n\r\nabc");
    }

    #[test]
    fn files_get_their_length() {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, b"0123456789").unwrap();
        let mut c = Collect::default();
        let mut r = Response::new(&mut c, HTTP11);
        r.start("200 OK", vec![]).unwrap();
        r.send_file(f, 2, Some(3)).unwrap();
        assert!(r.finish().unwrap());
        assert_eq!(text(&c), "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n234");
    }
}
