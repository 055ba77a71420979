//! A master started by an emperor: it finds the emperor's control socket and the resolved
//! options in descriptors named by its environment (`liege_proto::emperor`), and never reads
//! a config file itself.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt as _;

use liege_config::{Options, Origin};
use liege_proto::emperor::{
    self, CONFIG_FD, CONTROL_FD, ConfigDecodeError, LOG_FD, MAX_FRAME, RUN_DIR_FD, VASSAL_NAME,
};
use liege_sys::fd::InheritError;

/// What an emperor handed its vassal's master.
#[derive(Debug)]
pub struct Vassal {
    /// The vassal's name ([`VASSAL_NAME`]), for the log.
    pub name: Option<String>,
    /// The listening control socket.
    pub(crate) control: OwnedFd,
    /// A read end of the vassal's log FIFO ([`LOG_FD`]), when the emperor gave one.
    pub(crate) log: Option<OwnedFd>,
    /// The vassal's run dir on the host ([`RUN_DIR_FD`]: `RUN/vassals/NAME`, an `O_PATH`
    /// folder descriptor the emperor opened without following links), when the emperor gave
    /// one; close-on-exec. The jail binds it at the vassal's /run.
    pub run_dir: Option<OwnedFd>,
    /// The resolved options.
    pub options: Options,
    /// The [`emperor::config_digest`] of the encoded options.
    pub digest: u64,
}

/// The emperor's handoff could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VassalError {
    #[error("`{set}` is set but `{missing}` is not: both come from the emperor")]
    Half {
        set: &'static str,
        missing: &'static str,
    },
    #[error("`{var}={value}` is not a descriptor number")]
    NotANumber { var: &'static str, value: String },
    #[error("`{var}`: {source}")]
    Inherit {
        var: &'static str,
        source: InheritError,
    },
    #[error("`{var}`: descriptor {fd} is not a listening socket")]
    NotListening { var: &'static str, fd: i32 },
    #[error("cannot read the emperor's options from descriptor {fd}: {source}")]
    Read { fd: i32, source: std::io::Error },
    #[error("the emperor's options are {len} bytes, more than the 16 MiB a reload can carry")]
    TooLarge { len: u64 },
    #[error("the emperor's options: {0}")]
    Decode(#[from] ConfigDecodeError),
    #[error(
        "the emperor's options: entry {entry} (`{key}`) has an origin liege cannot read: `{origin}`"
    )]
    Origin {
        entry: usize,
        key: String,
        origin: String,
    },
}

/// The descriptor number in `var`, if it is set.
fn fd_in_env(var: &'static str) -> Result<Option<i32>, VassalError> {
    let Some(value) = std::env::var_os(var) else {
        return Ok(None);
    };
    let text = value.to_string_lossy();
    text.trim()
        .parse()
        .map(Some)
        .map_err(|_| VassalError::NotANumber {
            var,
            value: text.into_owned(),
        })
}

fn take(var: &'static str, fd: i32) -> Result<OwnedFd, VassalError> {
    liege_sys::fd::take_inherited(fd).map_err(|source| VassalError::Inherit { var, source })
}

impl Vassal {
    /// Takes the emperor's handoff from the environment: `None` when neither descriptor is
    /// named there (an instance run by hand). Both descriptors become this process's own and
    /// close-on-exec (so do the optional log and run dir descriptors); the master's children
    /// never see them, nor the variables (the master removes them from every child's
    /// environment).
    pub fn from_env() -> Result<Option<Vassal>, VassalError> {
        let (control, config) = match (fd_in_env(CONTROL_FD)?, fd_in_env(CONFIG_FD)?) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(VassalError::Half {
                    set: CONTROL_FD,
                    missing: CONFIG_FD,
                });
            }
            (None, Some(_)) => {
                return Err(VassalError::Half {
                    set: CONFIG_FD,
                    missing: CONTROL_FD,
                });
            }
            (Some(a), Some(b)) => (a, b),
        };
        let control_fd = take(CONTROL_FD, control)?;
        let config_fd = take(CONFIG_FD, config)?;
        if !rustix::net::sockopt::socket_acceptconn(&control_fd).unwrap_or(false) {
            return Err(VassalError::NotListening {
                var: CONTROL_FD,
                fd: control,
            });
        }
        // listen() again: the kernel records the listener's credentials at listen(), and an
        // emperor that restarts learns the master's pid from them (SO_PEERCRED) when it
        // connects to adopt the vassal; until now they were the emperor's, who bound it.
        // It listens already (checked above), so this cannot fail but for a closed fd.
        let _ = rustix::net::listen(&control_fd, 16);
        let log = match fd_in_env(LOG_FD)? {
            Some(n) => Some(take(LOG_FD, n)?),
            None => None,
        };
        let run_dir = match fd_in_env(RUN_DIR_FD)? {
            Some(n) => Some(take(RUN_DIR_FD, n)?),
            None => None,
        };
        let bytes = read_all(config_fd.as_fd(), config)?;
        let options = options_from_config(&bytes)?;
        Ok(Some(Vassal {
            name: std::env::var(VASSAL_NAME).ok(),
            control: control_fd,
            log,
            run_dir,
            options,
            digest: emperor::config_digest(&bytes),
        }))
    }
}

/// The whole memfd, read from offset 0 whatever the offset its file description is at (the
/// emperor wrote it through the same description).
fn read_all(fd: std::os::fd::BorrowedFd<'_>, number: i32) -> Result<Vec<u8>, VassalError> {
    let read = |source| VassalError::Read { fd: number, source };
    let file = std::fs::File::from(fd.try_clone_to_owned().map_err(read)?);
    let len = file.metadata().map_err(read)?.len();
    if len > MAX_FRAME as u64 {
        return Err(VassalError::TooLarge { len });
    }
    let mut bytes = vec![0; usize::try_from(len).unwrap_or(0)];
    file.read_exact_at(&mut bytes, 0).map_err(read)?;
    Ok(bytes)
}

/// The options list of an encoded config ([`emperor::encode_config`]), each option with the
/// origin (file and line) the emperor read it from.
pub fn options_from_config(bytes: &[u8]) -> Result<Options, VassalError> {
    let mut options = Options::new();
    for (i, e) in emperor::decode_config(bytes)?.into_iter().enumerate() {
        let Some(origin) = Origin::parse(&e.origin) else {
            return Err(VassalError::Origin {
                entry: i + 1,
                key: e.key,
                origin: e.origin,
            });
        };
        options.push(e.key, e.value, origin);
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use liege_proto::emperor::ConfigEntry;

    fn entry(key: &str, value: &str, origin: &str) -> ConfigEntry {
        ConfigEntry {
            key: key.into(),
            value: value.into(),
            origin: origin.into(),
        }
    }

    #[test]
    fn options_keep_their_file_and_line() {
        let bytes = emperor::encode_config(&[
            entry("http-socket", ":80", "/etc/liege/vassals/a.ini:2"),
            entry("processes", "two", "/etc/liege/vassals/a.ini:3"),
        ]);
        let options = options_from_config(&bytes).unwrap();
        assert_eq!(options.len(), 2);
        let e = crate::Plan::from_options_as(&options, crate::Mode::Vassal).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/liege/vassals/a.ini:3: invalid value `two` for `processes`: expected a whole number"
        );
        let bad = emperor::encode_config(&[entry("processes", "2", "somewhere")]);
        assert_eq!(
            options_from_config(&bad).unwrap_err().to_string(),
            "the emperor's options: entry 1 (`processes`) has an origin liege cannot read: `somewhere`"
        );
        assert_eq!(
            options_from_config(b"nope").unwrap_err().to_string(),
            "the emperor's options: not a liege config (it does not start with `LGC1`)"
        );
    }

    #[test]
    fn the_memfd_is_read_from_its_start() {
        use std::io::Write as _;
        let bytes = emperor::encode_config(&[entry("a", "b", "f:1")]);
        let fd = rustix::fs::memfd_create("t", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        let mut f = std::fs::File::from(fd);
        f.write_all(&bytes).unwrap();
        // The offset is at the end, as the emperor leaves it.
        assert_eq!(read_all(f.as_fd(), 9).unwrap(), bytes);
    }
}
