//! The emperor's own options, read and checked before anything starts.

use std::path::PathBuf;
use std::time::Duration;

use liege_config::{Options, Origin};

/// An emperor option that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: `{key}`: {reason}")]
pub struct SettingsError {
    pub origin: Origin,
    pub key: String,
    pub reason: String,
}

/// What the emperor's options say about its loop and its folders (what they say about vassals
/// is [`crate::policy::Settings`]).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `emperor` values: folders or globs.
    pub sources: Vec<String>,
    pub run_dir: PathBuf,
    pub cgroup_root: String,
    pub log_dir: PathBuf,
    pub freq: Duration,
    pub throttle: Duration,
    pub max_throttle: Duration,
    pub curse: Duration,
    pub required_heartbeat: Duration,
    pub stats: Option<String>,
    pub metrics: Option<String>,
}

fn number(options: &Options, key: &str, default: u64) -> Result<u64, SettingsError> {
    match options.last(key) {
        None => Ok(default),
        Some(o) => o.value.trim().parse().map_err(|_| SettingsError {
            origin: o.origin.clone(),
            key: key.to_owned(),
            reason: format!("`{}` is not a whole number", o.value),
        }),
    }
}

fn text(options: &Options, key: &str, default: &str) -> String {
    options
        .last(key)
        .map_or_else(|| default.to_owned(), |o| o.value.trim().to_owned())
}

impl Settings {
    /// Reads the emperor's options.
    pub fn from_options(options: &Options) -> Result<Settings, SettingsError> {
        let sources: Vec<String> = options
            .all("emperor")
            .map(|o| o.value.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect();
        let freq = number(options, "emperor-freq", 3)?.max(1);
        Ok(Settings {
            sources,
            run_dir: PathBuf::from(text(options, "emperor-run-dir", "/run/liege")),
            cgroup_root: text(options, "emperor-cgroup-root", "liege"),
            log_dir: PathBuf::from(text(options, "emperor-log-dir", "/var/log/liege")),
            freq: Duration::from_secs(freq),
            throttle: Duration::from_millis(number(options, "emperor-throttle", 1000)?),
            max_throttle: Duration::from_millis(number(options, "emperor-max-throttle", 180_000)?),
            curse: Duration::from_secs(number(options, "emperor-curse-tolerance", 30)?),
            required_heartbeat: Duration::from_secs(
                number(options, "emperor-required-heartbeat", 30)?.max(1),
            ),
            stats: options
                .last("emperor-stats")
                .map(|o| o.value.trim().to_owned()),
            metrics: options
                .last("emperor-metrics")
                .map(|o| o.value.trim().to_owned()),
        })
    }
}
