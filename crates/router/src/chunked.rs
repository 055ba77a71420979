//! The chunked transfer coding (RFC 9112 7.1), decoded strictly and incrementally: a chunk size
//! is 1 to 16 hex digits, then a `;` extension or CRLF; every line ends in CRLF (a bare LF or
//! CR is an error); chunk data is followed by CRLF; trailers are read and dropped (at most
//! [`MAX_TRAILERS`] bytes). Used for request bodies from clients and response bodies from
//! nodes; pure, and fuzzed with the head checks.

/// The most bytes of chunk extensions on one chunk line.
pub const MAX_EXTENSION: usize = 1024;
/// The most bytes of trailer lines.
pub const MAX_TRAILERS: usize = 8192;

/// A chunked body that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("a chunk size is not 1 to 16 hex digits")]
    Size,
    #[error("a chunk line holds a byte it may not, or ends in a bare CR or LF")]
    Line,
    #[error("chunk data is not followed by CRLF")]
    DataEnd,
    #[error("a chunk extension is longer than {MAX_EXTENSION} bytes")]
    ExtensionTooLong,
    #[error("the trailers are longer than {MAX_TRAILERS} bytes")]
    TrailersTooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a size: how many digits so far, and the value.
    Size { digits: u8, value: u64 },
    /// In a chunk extension, this many bytes long.
    Ext { len: usize, value: u64 },
    /// After the CR of a size line.
    SizeLf { value: u64 },
    /// This many bytes of chunk data to come.
    Data { left: u64 },
    /// After chunk data, before its CR.
    DataCr,
    /// After chunk data's CR.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// In a trailer line.
    Trailer,
    /// After a trailer line's CR.
    TrailerLf,
    /// After the final empty line's CR.
    EndLf,
    /// The body ended.
    Done,
}

/// What one call of [`Decoder::step`] found at the start of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Framing bytes (sizes, CRLFs, extensions, trailers) read before the data.
    pub framing: usize,
    /// Data bytes right after the framing (`input[framing..framing + data]`).
    pub data: usize,
    /// The body ended (after `framing + data` bytes).
    pub done: bool,
}

impl Step {
    /// Bytes of input used.
    pub fn consumed(&self) -> usize {
        self.framing + self.data
    }
}

/// A chunked body's decoder.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    trailers: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Decoder {
            state: State::Size {
                digits: 0,
                value: 0,
            },
            trailers: 0,
        }
    }

    /// Whether the body ended.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Reads framing from the start of `input` up to the next data, the end of the body, or the
    /// end of `input`, and says how much data follows it there. Each byte is read once: call
    /// again with the input after [`Step::consumed`] bytes. A step that consumed nothing (with
    /// a non-empty input) does not happen; an empty step means more input is needed.
    pub fn step(&mut self, input: &[u8]) -> Result<Step, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let c = input[i];
            self.state = match self.state {
                State::Done => break,
                State::Data { left } => {
                    let avail = input.len() - i;
                    let n = usize::try_from(left).map_or(avail, |l| l.min(avail));
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { left }
                    };
                    return Ok(Step {
                        framing: i,
                        data: n,
                        done: false,
                    });
                }
                State::Size { digits, value } => match c {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits == 16 {
                            return Err(ChunkError::Size);
                        }
                        let d = (c as char).to_digit(16).unwrap_or(0);
                        State::Size {
                            digits: digits + 1,
                            value: (value << 4) | u64::from(d),
                        }
                    }
                    b';' if digits > 0 => State::Ext { len: 0, value },
                    b'\r' if digits > 0 => State::SizeLf { value },
                    _ => return Err(ChunkError::Size),
                },
                State::Ext { len, value } => match c {
                    b'\r' => State::SizeLf { value },
                    b'\n' => return Err(ChunkError::Line),
                    c if c < 0x20 && c != b'\t' || c == 0x7f => return Err(ChunkError::Line),
                    _ if len >= MAX_EXTENSION => return Err(ChunkError::ExtensionTooLong),
                    _ => State::Ext {
                        len: len + 1,
                        value,
                    },
                },
                State::SizeLf { value } => match c {
                    b'\n' if value == 0 => State::TrailerStart,
                    b'\n' => State::Data { left: value },
                    _ => return Err(ChunkError::Line),
                },
                State::DataCr => match c {
                    b'\r' => State::DataLf,
                    _ => return Err(ChunkError::DataEnd),
                },
                State::DataLf => match c {
                    b'\n' => State::Size {
                        digits: 0,
                        value: 0,
                    },
                    _ => return Err(ChunkError::DataEnd),
                },
                State::TrailerStart => match c {
                    b'\r' => State::EndLf,
                    b' ' | b'\t' | b'\n' => return Err(ChunkError::Line),
                    _ => self.trailer_byte(c)?,
                },
                State::Trailer => match c {
                    b'\r' => State::TrailerLf,
                    _ => self.trailer_byte(c)?,
                },
                State::TrailerLf => match c {
                    b'\n' => State::TrailerStart,
                    _ => return Err(ChunkError::Line),
                },
                State::EndLf => match c {
                    b'\n' => {
                        self.state = State::Done;
                        return Ok(Step {
                            framing: i + 1,
                            data: 0,
                            done: true,
                        });
                    }
                    _ => return Err(ChunkError::Line),
                },
            };
            i += 1;
        }
        Ok(Step {
            framing: i,
            data: 0,
            done: self.state == State::Done,
        })
    }

    /// A byte of a trailer line (not CR).
    fn trailer_byte(&mut self, c: u8) -> Result<State, ChunkError> {
        if c == b'\n' || (c < 0x20 && c != b'\t') || c == 0x7f {
            return Err(ChunkError::Line);
        }
        self.trailers += 1;
        if self.trailers > MAX_TRAILERS {
            return Err(ChunkError::TrailersTooLong);
        }
        Ok(State::Trailer)
    }
}

/// Decodes `input` whole (for tests and the fuzz target): the data and the bytes used, or
/// `None` data when the body did not end.
pub fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ChunkError> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let s = d.step(&input[at..])?;
        out.extend_from_slice(&input[at + s.framing..at + s.consumed()]);
        at += s.consumed();
        if s.done || at == input.len() || s.consumed() == 0 {
            return Ok((out, at, s.done));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_whole_and_byte_by_byte() {
        let body = b"5;a=b\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let (out, used, done) = decode_all(body).unwrap();
        assert!(done);
        assert_eq!(used, body.len() - 4);
        assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz");
        let mut d = Decoder::new();
        let mut out2 = Vec::new();
        for (i, b) in body.iter().enumerate() {
            let s = d.step(std::slice::from_ref(b)).unwrap();
            out2.extend_from_slice(&[*b][s.framing..s.consumed()]);
            if s.done {
                assert_eq!(i + 1, used);
                break;
            }
        }
        assert_eq!(out2, out);
    }

    #[test]
    fn bad_chunks_are_refused() {
        let cases: &[(&[u8], ChunkError)] = &[
            (b"x\r\n", ChunkError::Size),
            (b"\r\n", ChunkError::Size),
            (b"+5\r\nhello\r\n", ChunkError::Size),
            (b"-1\r\n", ChunkError::Size),
            (b"0x5\r\n", ChunkError::Size),
            (b"5 \r\nhello\r\n", ChunkError::Size),
            (b"10000000000000000\r\n", ChunkError::Size),
            (b"5\nhello\r\n", ChunkError::Size),
            (b"5\r\rhello", ChunkError::Line),
            (b"5;a\nb\r\n", ChunkError::Line),
            (b"5\r\nhelloX\r\n", ChunkError::DataEnd),
            (b"5\r\nhello\n0\r\n\r\n", ChunkError::DataEnd),
            (b"0\r\nX: 1\n\r\n", ChunkError::Line),
            (b"0\r\n\n", ChunkError::Line),
            (b"0\r\n\rX", ChunkError::Line),
        ];
        for (input, e) in cases {
            assert_eq!(
                decode_all(input).map(|_| ()),
                Err(*e),
                "{:?}",
                input.escape_ascii().to_string()
            );
        }
        let long = format!("1;{}\r\n", "a".repeat(MAX_EXTENSION + 1));
        assert_eq!(
            decode_all(long.as_bytes()).map(|_| ()),
            Err(ChunkError::ExtensionTooLong)
        );
        let long = format!("0\r\nX: {}\r\n\r\n", "a".repeat(MAX_TRAILERS));
        assert_eq!(
            decode_all(long.as_bytes()).map(|_| ()),
            Err(ChunkError::TrailersTooLong)
        );
        // Sixteen digits (leading zeros included) are fine.
        assert!(decode_all(b"0000000000000001\r\na\r\n0\r\n\r\n").unwrap().2);
    }

    #[test]
    fn unfinished_bodies_wait() {
        let (out, used, done) = decode_all(b"5\r\nhel").unwrap();
        assert_eq!((out.as_slice(), used, done), (&b"hel"[..], 6, false));
    }
}
