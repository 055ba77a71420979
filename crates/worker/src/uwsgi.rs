//! uwsgi requests. (Temporary interface stub; the parser work replaces it.)

use crate::http::{HttpError, Limits};
use crate::request::Vars;

/// A parsed uwsgi request head.
#[derive(Debug)]
pub struct UwsgiHead {
    pub vars: Vars,
    pub body_len: u64,
    pub head_only: bool,
    pub label: Vec<u8>,
    pub https: bool,
}

pub fn parse_request(
    _buf: &[u8],
    _limits: &Limits,
) -> Result<Option<(UwsgiHead, usize)>, HttpError> {
    Err(HttpError)
}
