//! HTTP/1.1 request parsing, sans-io. (Temporary interface stub; the parser work replaces it.)

use crate::request::Vars;

/// Limits from the settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub head: usize,
    pub body: u64,
}

/// How the body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub struct Head {
    pub vars: Vars,
    pub body: BodyKind,
    pub http11: bool,
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub head_only: bool,
    pub label: Vec<u8>,
}

/// A request that cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("bad request")]
pub struct HttpError;

impl HttpError {
    pub fn status(&self) -> (u16, &'static str) {
        (400, "Bad Request")
    }
}

pub fn parse_head(_buf: &[u8], _limits: &Limits) -> Result<Option<(Head, usize)>, HttpError> {
    Err(HttpError)
}

/// Chunked body decoder.
#[derive(Debug)]
pub struct ChunkedDecoder;

impl ChunkedDecoder {
    pub fn new(_limit: u64) -> Self {
        ChunkedDecoder
    }
    pub fn decode(
        &mut self,
        _input: &[u8],
        _out: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(usize, bool), HttpError> {
        Err(HttpError)
    }
    pub fn total(&self) -> u64 {
        0
    }
}
