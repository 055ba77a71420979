//! The options the worker runtime uses, read from the list the master handed over (keys are
//! already the canonical names: `processes`, not `workers`).

use std::path::PathBuf;
use std::time::Duration;

use liege_config::{is_true, parse_size};

/// One `static-map`/`static-map2` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticMap {
    /// The URL prefix (`/static`).
    pub mount: String,
    /// The folder it maps to.
    pub dir: PathBuf,
    /// `static-map2`: the whole path is appended to `dir`, not only what follows `mount`.
    pub keep_mount: bool,
}

/// The worker runtime's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub threads: usize,
    pub buffer_size: usize,
    /// 0: no limit.
    pub limit_post: u64,
    pub post_buffering: u64,
    pub socket_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub static_maps: Vec<StaticMap>,
    pub static_index: Vec<String>,
    /// (path regex, seconds).
    pub static_expires: Vec<(String, u64)>,
    pub static_safe: Vec<PathBuf>,
    pub disable_logging: bool,
    pub log_format: Option<String>,
    /// 0: never.
    pub max_requests: u64,
    pub max_requests_delta: Option<u64>,
    /// Bytes; 0: never.
    pub reload_on_rss: u64,
    pub need_app: bool,
    pub worker_reload_mercy: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            threads: 1,
            buffer_size: 4096,
            limit_post: 0,
            post_buffering: 65536,
            socket_timeout: Duration::from_secs(4),
            keepalive_timeout: Duration::from_secs(15),
            static_maps: Vec::new(),
            static_index: Vec::new(),
            static_expires: Vec::new(),
            static_safe: Vec::new(),
            disable_logging: false,
            log_format: None,
            max_requests: 0,
            max_requests_delta: None,
            reload_on_rss: 0,
            need_app: false,
            worker_reload_mercy: Duration::from_secs(60),
        }
    }
}

/// An option's value that the runtime cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("option `{key}`: {message} (got `{value}`)")]
pub struct SettingsError {
    pub key: String,
    pub value: String,
    pub message: &'static str,
}

impl Settings {
    /// Reads the runtime's options from the list; later entries of a scalar option win.
    pub fn from_options(options: &[(String, String)]) -> Result<Settings, SettingsError> {
        let mut s = Settings::default();
        for (key, value) in options {
            let bad = |message| SettingsError {
                key: key.clone(),
                value: value.clone(),
                message,
            };
            let number = || {
                value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| bad("expected a whole number"))
            };
            let size =
                || parse_size(value).ok_or_else(|| bad("expected a size (bytes, or with k, m, g)"));
            let to_usize = |n: u64| usize::try_from(n).map_err(|_| bad("too large"));
            match key.as_str() {
                "threads" => s.threads = to_usize(number()?)?.max(1),
                "buffer-size" => s.buffer_size = to_usize(size()?)?.clamp(512, 1 << 20),
                "limit-post" => s.limit_post = size()?,
                "post-buffering" => s.post_buffering = size()?,
                "socket-timeout" => s.socket_timeout = Duration::from_secs(number()?.max(1)),
                "http-keepalive-timeout" => s.keepalive_timeout = Duration::from_secs(number()?),
                "static-map" | "static-map2" => {
                    let (mount, dir) = value
                        .split_once('=')
                        .ok_or_else(|| bad("expected /MOUNT=/DIR"))?;
                    s.static_maps.push(StaticMap {
                        mount: mount.trim().to_string(),
                        dir: PathBuf::from(dir.trim()),
                        keep_mount: key == "static-map2",
                    });
                }
                "static-index" => s.static_index.push(value.clone()),
                "static-expires" => {
                    let (re, secs) = value
                        .trim()
                        .rsplit_once(char::is_whitespace)
                        .ok_or_else(|| bad("expected REGEX SECONDS"))?;
                    let secs = secs.parse().map_err(|_| bad("expected REGEX SECONDS"))?;
                    s.static_expires.push((re.trim().to_string(), secs));
                }
                "static-safe" => s.static_safe.push(PathBuf::from(value)),
                "disable-logging" => s.disable_logging = is_true(value),
                "log-format" => s.log_format = Some(value.clone()),
                "max-requests" => s.max_requests = number()?,
                "max-requests-delta" => s.max_requests_delta = Some(number()?),
                "reload-on-rss" => s.reload_on_rss = number()?.saturating_mul(1 << 20),
                "need-app" => s.need_app = is_true(value),
                "worker-reload-mercy" => s.worker_reload_mercy = Duration::from_secs(number()?),
                _ => {}
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_sizes_maps_and_flags() {
        let s = Settings::from_options(&opts(&[
            ("limit-post", "1m"),
            ("static-map", "/s=/srv/static"),
            ("static-map2", "/img=/srv"),
            ("static-expires", "/s/.*\\.css 3600"),
            ("disable-logging", "true"),
            ("threads", "4"),
        ]))
        .unwrap();
        assert_eq!(s.limit_post, 1 << 20);
        assert_eq!(s.static_maps.len(), 2);
        assert!(s.static_maps[1].keep_mount);
        assert_eq!(s.static_expires[0], ("/s/.*\\.css".to_string(), 3600));
        assert!(s.disable_logging);
        assert_eq!(s.threads, 4);
    }

    #[test]
    fn bad_values_name_the_option() {
        let e = Settings::from_options(&opts(&[("limit-post", "lots")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "option `limit-post`: expected a size (bytes, or with k, m, g) (got `lots`)"
        );
    }
}
