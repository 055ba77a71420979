//! How a master starts a worker executable (`liege-python`...): every environment variable and
//! inherited file descriptor of that handoff is named here, once.
//!
//! The master execs the worker with the listening sockets, a sealed copy of the options list and
//! the scoreboard as inherited descriptors, and names them in the environment:
//!
//! | variable | value |
//! |---|---|
//! | [`ROLE`] | `worker` (serve requests) or `zygote` (load the app, then fork workers on request) |
//! | [`WORKER_ID`] | the worker's scoreboard slot, 1 to 2 × `processes`: worker *i* alternates between slots *i* and *i* + `processes` from one reload to the next (role `worker` only) |
//! | [`SOCKETS`] | the listening sockets: `FD,PROTO,NAME` entries separated by `;` (see [`Listener`]) |
//! | [`OPTIONS_FD`] | a descriptor to read the options list from, `key\0value\0` pairs (see [`encode_options`]); read it with `pread` from 0 |
//! | [`SCOREBOARD_FD`] | the scoreboard's shared memory (see [`crate::scoreboard`]) |
//! | [`ZYGOTE_FD`] | (role `zygote`) the seqpacket socket the master sends [`ZygoteRequest`]s on |
//!
//! Descriptors are plain numbers, inherited across exec; the worker takes ownership of each.

/// `worker` or `zygote`.
pub const ROLE: &str = "LIEGE_ROLE";
/// The worker's scoreboard slot (1-based).
pub const WORKER_ID: &str = "LIEGE_WORKER_ID";
/// The listening sockets.
pub const SOCKETS: &str = "LIEGE_SOCKETS";
/// The descriptor holding the options list.
pub const OPTIONS_FD: &str = "LIEGE_OPTIONS_FD";
/// The descriptor of the scoreboard.
pub const SCOREBOARD_FD: &str = "LIEGE_SCOREBOARD_FD";
/// The zygote's control socket.
pub const ZYGOTE_FD: &str = "LIEGE_ZYGOTE_FD";

/// What a worker process is asked to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Worker,
    Zygote,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Zygote => "zygote",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "worker" => Some(Role::Worker),
            "zygote" => Some(Role::Zygote),
            _ => None,
        }
    }
}

/// The protocol a listening socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1 (`http-socket`).
    Http,
    /// The uwsgi protocol (`socket`, `uwsgi-socket`).
    Uwsgi,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Http => "http",
            Proto::Uwsgi => "uwsgi",
        }
    }
}

/// One inherited listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub fd: i32,
    pub proto: Proto,
    /// As the option gave it (`127.0.0.1:8000`, `/run/app.sock`), for logs and stats.
    pub name: String,
}

/// Why a handoff value could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandoffError {
    #[error("bad socket entry `{0}` (expected FD,PROTO,NAME)")]
    BadSocket(String),
    #[error("bad options list: {0}")]
    BadOptions(String),
    #[error("bad zygote message `{0}`")]
    BadMessage(String),
}

/// `FD,PROTO,NAME;FD,PROTO,NAME` (a name may hold commas but not `;`).
pub fn encode_listeners(listeners: &[Listener]) -> String {
    listeners
        .iter()
        .map(|l| format!("{},{},{}", l.fd, l.proto.as_str(), l.name))
        .collect::<Vec<_>>()
        .join(";")
}

pub fn decode_listeners(s: &str) -> Result<Vec<Listener>, HandoffError> {
    s.split(';')
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let bad = || HandoffError::BadSocket(entry.to_string());
            let mut parts = entry.splitn(3, ',');
            let fd = parts.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
            let proto = match parts.next() {
                Some("http") => Proto::Http,
                Some("uwsgi") => Proto::Uwsgi,
                _ => return Err(bad()),
            };
            let name = parts.next().ok_or_else(bad)?.to_string();
            Ok(Listener { fd, proto, name })
        })
        .collect()
}

/// The options list as the worker receives it: `key\0value\0` pairs, in order. (Values never
/// hold NUL: they came from text files and argv.)
pub fn encode_options<'a>(options: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in options {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

pub fn decode_options(bytes: &[u8]) -> Result<Vec<(String, String)>, HandoffError> {
    let text = std::str::from_utf8(bytes).map_err(|e| HandoffError::BadOptions(e.to_string()))?;
    let mut fields: Vec<&str> = text.split('\0').collect();
    if fields.last() == Some(&"") {
        fields.pop();
    }
    if !fields.len().is_multiple_of(2) {
        return Err(HandoffError::BadOptions("odd number of fields".into()));
    }
    Ok(fields
        .chunks(2)
        .map(|kv| (kv[0].to_string(), kv[1].to_string()))
        .collect())
}

/// What the master asks of a zygote, one datagram each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZygoteRequest {
    /// Fork the worker of scoreboard slot `id` (as a child of the master: `CLONE_PARENT`).
    Spawn { id: u32 },
}

/// What a zygote answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZygoteReply {
    /// Worker `id` runs as `pid`, a child of the master.
    Spawned { id: u32, pid: i32 },
    /// The fork failed.
    Failed { id: u32, reason: String },
}

impl ZygoteRequest {
    pub fn encode(&self) -> String {
        match self {
            ZygoteRequest::Spawn { id } => format!("spawn {id}"),
        }
    }

    pub fn decode(s: &str) -> Result<Self, HandoffError> {
        let bad = || HandoffError::BadMessage(s.to_string());
        match s.split_once(' ') {
            Some(("spawn", id)) => Ok(ZygoteRequest::Spawn {
                id: id.parse().map_err(|_| bad())?,
            }),
            _ => Err(bad()),
        }
    }
}

impl ZygoteReply {
    pub fn encode(&self) -> String {
        match self {
            ZygoteReply::Spawned { id, pid } => format!("spawned {id} {pid}"),
            ZygoteReply::Failed { id, reason } => format!("failed {id} {reason}"),
        }
    }

    pub fn decode(s: &str) -> Result<Self, HandoffError> {
        let bad = || HandoffError::BadMessage(s.to_string());
        let mut parts = s.splitn(3, ' ');
        let (kind, id, rest) = (parts.next(), parts.next(), parts.next());
        let id: u32 = id.and_then(|i| i.parse().ok()).ok_or_else(bad)?;
        match (kind, rest) {
            (Some("spawned"), Some(pid)) => Ok(ZygoteReply::Spawned {
                id,
                pid: pid.parse().map_err(|_| bad())?,
            }),
            (Some("failed"), reason) => Ok(ZygoteReply::Failed {
                id,
                reason: reason.unwrap_or("").to_string(),
            }),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_round_trip() {
        let l = vec![
            Listener {
                fd: 3,
                proto: Proto::Http,
                name: "127.0.0.1:8000".into(),
            },
            Listener {
                fd: 4,
                proto: Proto::Uwsgi,
                name: "/run/a,b.sock".into(),
            },
        ];
        assert_eq!(decode_listeners(&encode_listeners(&l)).unwrap(), l);
        assert!(decode_listeners("3,ftp,x").is_err());
    }

    #[test]
    fn options_round_trip_in_order() {
        let bytes = encode_options([("a", "1"), ("b", ""), ("a", "2 = x")]);
        let back = decode_options(&bytes).unwrap();
        assert_eq!(
            back,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "".into()),
                ("a".into(), "2 = x".into())
            ]
        );
    }

    #[test]
    fn zygote_messages_round_trip() {
        let r = ZygoteRequest::Spawn { id: 7 };
        assert_eq!(ZygoteRequest::decode(&r.encode()).unwrap(), r);
        let a = ZygoteReply::Spawned { id: 7, pid: 42 };
        assert_eq!(ZygoteReply::decode(&a.encode()).unwrap(), a);
        let f = ZygoteReply::Failed {
            id: 2,
            reason: "no memory left".into(),
        };
        assert_eq!(ZygoteReply::decode(&f.encode()).unwrap(), f);
        assert!(ZygoteRequest::decode("spawn x").is_err());
    }
}
