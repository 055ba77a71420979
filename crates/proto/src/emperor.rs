//! How an emperor and a vassal's master talk: the environment and descriptors a vassal master
//! is started with, the resolved options it is handed, and the framed messages of the control
//! socket. No I/O here: the emperor and the master do the reading and writing.
//!
//! A vassal master is started with:
//!
//! | variable | value |
//! |---|---|
//! | [`CONTROL_FD`] | a listening unix stream socket; the emperor connects to it (one connection at a time) |
//! | [`CONFIG_FD`] | a sealed memfd holding the resolved options, [`encode_config`]'s format |
//! | [`LOG_FD`] | (optional) a read end of the vassal's log FIFO, drained while no emperor runs |
//! | [`RUN_DIR_FD`] | (optional) an `O_PATH` descriptor of the vassal's run dir on the host, `RUN/vassals/NAME` |
//! | [`VASSAL_NAME`] | the vassal's name (its file name without the extension) |
//!
//! On the control connection each side sends frames: a `u32` big-endian length of the rest,
//! then a `u8` kind, then the payload (at most [`MAX_FRAME`] bytes of kind and payload). The
//! master sends [`ToEmperor`], the emperor sends [`ToMaster`]; a [`Decoder`] turns the bytes
//! read into messages. [`ToMaster::LogFd`] carries a descriptor out of band: its frame is sent
//! in one `sendmsg` together with an `SCM_RIGHTS` message holding exactly one descriptor.

use std::marker::PhantomData;

/// The descriptor number of the listening control socket.
pub const CONTROL_FD: &str = "LIEGE_EMPEROR_CONTROL_FD";
/// The descriptor number of the sealed memfd with the resolved options ([`encode_config`]).
pub const CONFIG_FD: &str = "LIEGE_EMPEROR_CONFIG_FD";
/// The descriptor number of a read end of the vassal's log FIFO, optional: the master drains
/// it while no emperor is connected, so the vassal's writes to its output neither fail nor
/// block while the emperor restarts.
pub const LOG_FD: &str = "LIEGE_EMPEROR_LOG_FD";
/// The descriptor number of the vassal's run dir on the host (`RUN/vassals/NAME`, owned by the
/// vassal's uid), optional: an `O_PATH | O_DIRECTORY` descriptor the emperor opened without
/// following links, which the jail binds at the vassal's /run.
pub const RUN_DIR_FD: &str = "LIEGE_RUN_DIR_FD";
/// The vassal's name.
pub const VASSAL_NAME: &str = "LIEGE_VASSAL_NAME";

/// The most bytes of kind and payload one frame may hold (16 MiB).
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// The first bytes of an encoded config (format version 1).
const CONFIG_MAGIC: &[u8; 4] = b"LGC1";

/// One resolved option, as the emperor hands it to a master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub key: String,
    pub value: String,
    /// Where it was written, as `liege_config::Origin` displays it (`/etc/liege/vassals/a.ini:12`),
    /// so the master's errors still name the file and line.
    pub origin: String,
}

/// Why an encoded config could not be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigDecodeError {
    #[error("not a liege config (it does not start with `LGC1`)")]
    Magic,
    #[error("the config ends in the middle of entry {entry}")]
    Truncated { entry: usize },
    #[error("the config says it holds {count} entries, more than its {len} bytes can")]
    Count { count: u32, len: usize },
    #[error("entry {entry}: the {field} is not UTF-8")]
    NotUtf8 { entry: usize, field: &'static str },
    #[error("entry {entry}: the {field} holds a NUL byte")]
    Nul { entry: usize, field: &'static str },
    #[error("{extra} bytes follow the last entry of the config")]
    Trailing { extra: usize },
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    // Each field is at most a frame (16 MiB) long in practice; saturate rather than wrap.
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_be_bytes());
}

/// Encodes the resolved options: `LGC1`, a `u32` count, then per entry its key, value and
/// origin, each a `u32` big-endian length and UTF-8 bytes.
pub fn encode_config(entries: &[ConfigEntry]) -> Vec<u8> {
    let size: usize = entries
        .iter()
        .map(|e| 12 + e.key.len() + e.value.len() + e.origin.len())
        .sum();
    let mut out = Vec::with_capacity(8 + size);
    out.extend_from_slice(CONFIG_MAGIC);
    put_u32(&mut out, entries.len());
    for e in entries {
        for field in [&e.key, &e.value, &e.origin] {
            put_u32(&mut out, field.len());
            out.extend_from_slice(field.as_bytes());
        }
    }
    out
}

/// Reads what [`encode_config`] wrote. Keys, values and origins holding NUL are refused: the
/// options reach the workers NUL-separated.
pub fn decode_config(bytes: &[u8]) -> Result<Vec<ConfigEntry>, ConfigDecodeError> {
    let rest = bytes
        .strip_prefix(CONFIG_MAGIC.as_slice())
        .ok_or(ConfigDecodeError::Magic)?;
    let (count, mut rest) = take_u32(rest).ok_or(ConfigDecodeError::Truncated { entry: 0 })?;
    // Each entry takes at least its three lengths.
    if usize::try_from(count).map_or(true, |c| c > rest.len() / 12) {
        return Err(ConfigDecodeError::Count {
            count,
            len: bytes.len(),
        });
    }
    let mut entries = Vec::with_capacity(rest.len() / 12);
    for entry in 1..=usize::try_from(count).unwrap_or(0) {
        let mut fields = ["key", "value", "origin"].map(|field| (field, String::new()));
        for (field, text) in &mut fields {
            let (len, after) = take_u32(rest).ok_or(ConfigDecodeError::Truncated { entry })?;
            let len = usize::try_from(len).map_err(|_| ConfigDecodeError::Truncated { entry })?;
            if after.len() < len {
                return Err(ConfigDecodeError::Truncated { entry });
            }
            let (raw, after) = after.split_at(len);
            let s = std::str::from_utf8(raw)
                .map_err(|_| ConfigDecodeError::NotUtf8 { entry, field })?;
            if s.contains('\0') {
                return Err(ConfigDecodeError::Nul { entry, field });
            }
            *text = s.to_string();
            rest = after;
        }
        let [(_, key), (_, value), (_, origin)] = fields;
        entries.push(ConfigEntry { key, value, origin });
    }
    if !rest.is_empty() {
        return Err(ConfigDecodeError::Trailing { extra: rest.len() });
    }
    Ok(entries)
}

fn take_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*head), rest))
}

/// A stable 64-bit digest of an encoded config (FNV-1a): it names what a master runs, so an
/// emperor that adopts a running vassal can tell whether its file changed meanwhile.
pub fn config_digest(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// A frame on the control connection could not be read. The connection cannot be read further
/// after one: close it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("a frame of {len} bytes is over the limit of 16 MiB")]
    TooLarge { len: usize },
    #[error("a frame with no kind byte")]
    Empty,
    #[error("unknown message kind {kind}")]
    UnknownKind { kind: u8 },
    #[error("a `{name}` message with {len} bytes of payload (expected {expected})")]
    BadPayload {
        name: &'static str,
        len: usize,
        expected: usize,
    },
}

/// A message one side of the control connection sends.
pub trait Message: Sized {
    /// Reads the message of `kind` from its payload.
    fn decode(kind: u8, payload: &[u8]) -> Result<Self, FrameError>;
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    put_u32(&mut out, 1 + payload.len());
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

fn no_payload<M>(name: &'static str, payload: &[u8], m: M) -> Result<M, FrameError> {
    if payload.is_empty() {
        Ok(m)
    } else {
        Err(FrameError::BadPayload {
            name,
            len: payload.len(),
            expected: 0,
        })
    }
}

/// What a master tells its emperor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToEmperor {
    /// Sent first on every new connection: the master's pid as the master sees it
    /// (informational: in its own pid namespace it is 1) and the [`config_digest`] of the
    /// options it runs.
    Hello { pid: u32, digest: u64 },
    /// The sockets are bound and the options are good.
    Ready,
    /// A worker of the current generation accepts connections (sent once per generation, and
    /// on a new connection when one does).
    Accepting,
    /// The instance has served a request since the master started (sent once, and on a new
    /// connection when it has).
    Loyal,
    /// Every `heartbeat` seconds, when that option is set.
    Heartbeat,
    /// The master stops (it exits once its workers are gone).
    Stopping,
}

impl ToEmperor {
    const HELLO: u8 = 1;
    const READY: u8 = 2;
    const ACCEPTING: u8 = 3;
    const LOYAL: u8 = 4;
    const HEARTBEAT: u8 = 5;
    const STOPPING: u8 = 6;

    /// The message as a frame.
    pub fn encode(&self) -> Vec<u8> {
        match *self {
            ToEmperor::Hello { pid, digest } => {
                let mut payload = [0u8; 12];
                payload[..4].copy_from_slice(&pid.to_be_bytes());
                payload[4..].copy_from_slice(&digest.to_be_bytes());
                frame(Self::HELLO, &payload)
            }
            ToEmperor::Ready => frame(Self::READY, &[]),
            ToEmperor::Accepting => frame(Self::ACCEPTING, &[]),
            ToEmperor::Loyal => frame(Self::LOYAL, &[]),
            ToEmperor::Heartbeat => frame(Self::HEARTBEAT, &[]),
            ToEmperor::Stopping => frame(Self::STOPPING, &[]),
        }
    }
}

impl Message for ToEmperor {
    fn decode(kind: u8, payload: &[u8]) -> Result<Self, FrameError> {
        match kind {
            Self::HELLO => {
                let bytes: &[u8; 12] = payload.try_into().map_err(|_| FrameError::BadPayload {
                    name: "hello",
                    len: payload.len(),
                    expected: 12,
                })?;
                let (pid, digest) = bytes.split_at(4);
                Ok(ToEmperor::Hello {
                    pid: u32::from_be_bytes(pid.try_into().unwrap_or_default()),
                    digest: u64::from_be_bytes(digest.try_into().unwrap_or_default()),
                })
            }
            Self::READY => no_payload("ready", payload, ToEmperor::Ready),
            Self::ACCEPTING => no_payload("accepting", payload, ToEmperor::Accepting),
            Self::LOYAL => no_payload("loyal", payload, ToEmperor::Loyal),
            Self::HEARTBEAT => no_payload("heartbeat", payload, ToEmperor::Heartbeat),
            Self::STOPPING => no_payload("stopping", payload, ToEmperor::Stopping),
            kind => Err(FrameError::UnknownKind { kind }),
        }
    }
}

/// What an emperor tells a master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToMaster {
    /// Reload gracefully with these options ([`encode_config`]); empty: with the same ones.
    Reload { config: Vec<u8> },
    /// Stop gracefully: the workers finish what they serve, then the master exits 0.
    Stop,
    /// A new stdout/stderr for the master and its workers: the frame travels with one
    /// descriptor in an `SCM_RIGHTS` message of the same `sendmsg`.
    LogFd,
}

impl ToMaster {
    const RELOAD: u8 = 16;
    const STOP: u8 = 17;
    const LOG_FD: u8 = 18;

    /// The message as a frame (for [`ToMaster::LogFd`], without its descriptor).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ToMaster::Reload { config } => frame(Self::RELOAD, config),
            ToMaster::Stop => frame(Self::STOP, &[]),
            ToMaster::LogFd => frame(Self::LOG_FD, &[]),
        }
    }
}

impl Message for ToMaster {
    fn decode(kind: u8, payload: &[u8]) -> Result<Self, FrameError> {
        match kind {
            Self::RELOAD => Ok(ToMaster::Reload {
                config: payload.to_vec(),
            }),
            Self::STOP => no_payload("stop", payload, ToMaster::Stop),
            Self::LOG_FD => no_payload("log-fd", payload, ToMaster::LogFd),
            kind => Err(FrameError::UnknownKind { kind }),
        }
    }
}

/// Turns the bytes read from a control connection, in pieces of any size, into messages.
#[derive(Debug)]
pub struct Decoder<M> {
    buf: Vec<u8>,
    /// Where the unread bytes of `buf` start.
    start: usize,
    _message: PhantomData<fn() -> M>,
}

impl<M> Default for Decoder<M> {
    fn default() -> Self {
        Decoder {
            buf: Vec::new(),
            start: 0,
            _message: PhantomData,
        }
    }
}

impl<M: Message> Decoder<M> {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// How many bytes are buffered that no message took yet.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole message, if one has arrived. A frame that is too large is refused as soon
    /// as its length is read, before its bytes are buffered.
    pub fn next_message(&mut self) -> Result<Option<M>, FrameError> {
        let rest = &self.buf[self.start..];
        let Some((len, after)) = take_u32(rest) else {
            return Ok(None);
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge { len });
        }
        let Some((&kind, payload)) = after.split_first() else {
            return if len == 0 {
                Err(FrameError::Empty)
            } else {
                Ok(None)
            };
        };
        if len == 0 {
            return Err(FrameError::Empty);
        }
        let Some(payload) = payload.get(..len - 1) else {
            return Ok(None);
        };
        let message = M::decode(kind, payload)?;
        self.start += 4 + len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str, origin: &str) -> ConfigEntry {
        ConfigEntry {
            key: key.into(),
            value: value.into(),
            origin: origin.into(),
        }
    }

    #[test]
    fn config_round_trips_and_its_digest_is_stable() {
        let entries = vec![
            entry(
                "http-socket",
                "127.0.0.1:8000",
                "/etc/liege/vassals/a.ini:2",
            ),
            entry("env", "GREETING=héllo; = \n", "/etc/liege/vassals/a.ini:3"),
            entry("", "", "liege"),
        ];
        let bytes = encode_config(&entries);
        assert_eq!(&bytes[..4], b"LGC1");
        assert_eq!(decode_config(&bytes).unwrap(), entries);
        assert_eq!(decode_config(&encode_config(&[])).unwrap(), vec![]);
        // FNV-1a 64: the published test vectors.
        assert_eq!(config_digest(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(config_digest(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(config_digest(b"foobar"), 0x8594_4171_f739_67e8);
        assert_ne!(
            config_digest(&bytes),
            config_digest(&encode_config(&entries[..2]))
        );
    }

    #[test]
    fn a_bad_config_is_refused_and_says_why() {
        let good = encode_config(&[entry("a", "b", "f:1"), entry("c", "d", "f:2")]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                b"".to_vec(),
                "not a liege config (it does not start with `LGC1`)",
            ),
            (
                b"LGC2\0\0\0\0".to_vec(),
                "not a liege config (it does not start with `LGC1`)",
            ),
            (
                b"LGC1\0\0".to_vec(),
                "the config ends in the middle of entry 0",
            ),
            (
                b"LGC1\xff\xff\xff\xff".to_vec(),
                "the config says it holds 4294967295 entries, more than its 8 bytes can",
            ),
            (
                good[..good.len() - 1].to_vec(),
                "the config ends in the middle of entry 2",
            ),
            (
                [good.as_slice(), b"xy"].concat(),
                "2 bytes follow the last entry of the config",
            ),
            (
                b"LGC1\0\0\0\x01\0\0\0\x01\xff\0\0\0\0\0\0\0\0".to_vec(),
                "entry 1: the key is not UTF-8",
            ),
            (
                b"LGC1\0\0\0\x01\0\0\0\0\0\0\0\x01\0\0\0\0\0".to_vec(),
                "entry 1: the value holds a NUL byte",
            ),
            (
                // A length that runs past the end.
                b"LGC1\0\0\0\x01\0\0\0\x20abc\0\0\0\0\0\0\0\0".to_vec(),
                "the config ends in the middle of entry 1",
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(decode_config(&bytes).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn messages_round_trip_through_a_decoder_fed_byte_by_byte() {
        let to_emperor = [
            ToEmperor::Hello {
                pid: 1,
                digest: 0x0123_4567_89ab_cdef,
            },
            ToEmperor::Ready,
            ToEmperor::Accepting,
            ToEmperor::Loyal,
            ToEmperor::Heartbeat,
            ToEmperor::Stopping,
        ];
        let bytes: Vec<u8> = to_emperor.iter().flat_map(ToEmperor::encode).collect();
        let mut d = Decoder::<ToEmperor>::new();
        let mut got = Vec::new();
        for b in &bytes {
            d.feed(std::slice::from_ref(b));
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, to_emperor);
        assert_eq!(d.buffered(), 0);

        let to_master = [
            ToMaster::Reload {
                config: encode_config(&[entry("k", "v", "f:1")]),
            },
            ToMaster::Reload { config: Vec::new() },
            ToMaster::Stop,
            ToMaster::LogFd,
        ];
        let bytes: Vec<u8> = to_master.iter().flat_map(ToMaster::encode).collect();
        let mut d = Decoder::<ToMaster>::new();
        d.feed(&bytes);
        let mut got = Vec::new();
        while let Some(m) = d.next_message().unwrap() {
            got.push(m);
        }
        assert_eq!(got, to_master);
    }

    #[test]
    fn the_wire_format_is_length_kind_payload() {
        assert_eq!(ToEmperor::Ready.encode(), [0, 0, 0, 1, 2]);
        assert_eq!(
            ToEmperor::Hello { pid: 7, digest: 9 }.encode(),
            [0, 0, 0, 13, 1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 9]
        );
        assert_eq!(
            ToMaster::Reload {
                config: b"ab".to_vec()
            }
            .encode(),
            [0, 0, 0, 3, 16, b'a', b'b']
        );
        assert_eq!(ToMaster::Stop.encode(), [0, 0, 0, 1, 17]);
        assert_eq!(ToMaster::LogFd.encode(), [0, 0, 0, 1, 18]);
    }

    #[test]
    fn bad_frames_are_errors() {
        let err = |bytes: &[u8]| {
            let mut d = Decoder::<ToMaster>::new();
            d.feed(bytes);
            d.next_message().unwrap_err().to_string()
        };
        // Too large: refused from the length alone.
        assert_eq!(
            err(&[1, 0, 0, 1]),
            "a frame of 16777217 bytes is over the limit of 16 MiB"
        );
        assert_eq!(err(&[0, 0, 0, 0]), "a frame with no kind byte");
        assert_eq!(err(&[0, 0, 0, 1, 99]), "unknown message kind 99");
        // A master's message sent to a master.
        assert_eq!(err(&ToEmperor::Ready.encode()), "unknown message kind 2");
        assert_eq!(
            err(&[0, 0, 0, 2, 17, 0]),
            "a `stop` message with 1 bytes of payload (expected 0)"
        );
        let mut d = Decoder::<ToEmperor>::new();
        d.feed(&[0, 0, 0, 2, 1, 0]);
        assert_eq!(
            d.next_message().unwrap_err().to_string(),
            "a `hello` message with 1 bytes of payload (expected 12)"
        );
        // The largest frame allowed is fine, and waits for its bytes.
        let mut d = Decoder::<ToMaster>::new();
        let len = u32::try_from(MAX_FRAME).unwrap();
        d.feed(&len.to_be_bytes());
        d.feed(&[16]);
        assert_eq!(d.next_message(), Ok(None));
        d.feed(&vec![b'x'; MAX_FRAME - 1]);
        match d.next_message() {
            Ok(Some(ToMaster::Reload { config })) => assert_eq!(config.len(), MAX_FRAME - 1),
            other => panic!("{other:?}"),
        }
    }
}
