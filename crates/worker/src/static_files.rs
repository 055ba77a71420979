//! Static files. (Temporary interface stub; the static-files work replaces it.)

use crate::request::Vars;
use crate::response::Response;
use crate::settings::Settings;

/// A static-files setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("bad static setting")]
pub struct StaticError;

/// The static maps.
#[derive(Debug)]
pub struct StaticFiles;

impl StaticFiles {
    pub fn new(_settings: &Settings) -> Result<Self, StaticError> {
        Ok(StaticFiles)
    }
    pub fn is_empty(&self) -> bool {
        true
    }
    pub fn serve(&self, _vars: &Vars, _response: &mut Response<'_>) -> std::io::Result<bool> {
        Ok(false)
    }
}
