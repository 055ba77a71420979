//! Which worker executable serves the app, and where it is. A language worker is a separate
//! executable (ARCHITECTURE.md decision 1): `plugin = python3` runs `liege-python`,
//! `plugin = python311` runs `liege-python3.11`. It is looked up beside the running `liege`,
//! then in each `plugins-dir`, as uWSGI looks up its plugins.

use std::path::{Path, PathBuf};

/// The worker executable when no option names a language.
pub const DEFAULT_WORKER: &str = "liege-python";
/// The PSGI worker (`psgi`, `plugin = psgi`).
pub const PERL_WORKER: &str = "liege-perl";
/// The Rack worker (`rack`, `plugin = rack`).
pub const RUBY_WORKER: &str = "liege-ruby";

/// The worker executable a language option names (`psgi`, `rack`), if it is one.
pub fn worker_for_option(key: &str) -> Option<&'static str> {
    match key {
        "psgi" => Some(PERL_WORKER),
        "rack" => Some(RUBY_WORKER),
        _ => None,
    }
}

/// The worker executable a `plugin` entry names, or `None` for a plugin that is not a
/// language liege has a worker for (`http`, `logfile`...). Accepts uWSGI's spellings:
/// `python3`, `python311`, `python3_plugin.so`, `/usr/lib/uwsgi/plugins/python311_plugin.so`,
/// `psgi`, `rack`, `rack_ruby31` (Debian's name).
pub fn worker_for_plugin(plugin: &str) -> Option<String> {
    let base = plugin.trim().rsplit('/').next().unwrap_or_default();
    let base = base
        .strip_suffix("_plugin.so")
        .or_else(|| base.strip_suffix(".so"))
        .unwrap_or(base);
    if base == "psgi" || base == "perl" {
        return Some(PERL_WORKER.to_string());
    }
    if base == "rack" || base == "ruby" || base.starts_with("rack_ruby") {
        return Some(RUBY_WORKER.to_string());
    }
    let digits = base.strip_prefix("python")?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match digits.len() {
        0 => DEFAULT_WORKER.to_string(),
        1 if digits == "3" => DEFAULT_WORKER.to_string(),
        1 => format!("liege-python{digits}"),
        _ => format!("liege-python{}.{}", &digits[..1], &digits[1..]),
    })
}

/// The worker executable could not be found.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot find the worker executable `{name}` (looked in {})", looked.join(", "))]
pub struct NotFound {
    pub name: String,
    pub looked: Vec<String>,
}

/// Finds `name` in `exe_dir` (the folder of the running `liege`), then in each of `dirs`: the
/// first executable regular file wins.
pub fn find(name: &str, exe_dir: &Path, dirs: &[PathBuf]) -> Result<PathBuf, NotFound> {
    let mut looked = Vec::new();
    for dir in std::iter::once(exe_dir).chain(dirs.iter().map(PathBuf::as_path)) {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
        looked.push(dir.display().to_string());
    }
    Err(NotFound {
        name: name.to_string(),
        looked,
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs_err::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A worker executable, held open: the master opens it while it is still root, before it drops
/// to the vassal's user, and starts workers from the descriptor (`/proc/self/fd/N`), so the
/// customer never needs the right to reach liege's install, and a jail (issue 5) never needs
/// to show it.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    pub(crate) path: PathBuf,
    /// `None` for a `#!` script (the tests' fake workers): its interpreter opens it by path
    /// after the exec, when a close-on-exec descriptor is gone.
    fd: Option<std::rc::Rc<std::os::fd::OwnedFd>>,
}

impl Program {
    /// Opens `path` (O_PATH, close-on-exec: the descriptor is resolved at exec and never
    /// reaches the worker).
    pub(crate) fn open(path: PathBuf) -> std::io::Result<Program> {
        let mut head = [0u8; 2];
        let script = fs_err::File::open(&path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
            .is_ok_and(|()| head == *b"#!");
        let fd = rustix::fs::open(
            &path,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        Ok(Program {
            path,
            fd: (!script).then(|| std::rc::Rc::new(fd)),
        })
    }

    /// A command that runs it, with the real path as `argv[0]`.
    pub(crate) fn command(&self) -> std::process::Command {
        use std::os::fd::AsRawFd as _;
        use std::os::unix::process::CommandExt as _;
        let Some(fd) = &self.fd else {
            return std::process::Command::new(&self.path);
        };
        let mut cmd = std::process::Command::new(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        cmd.arg0(&self.path);
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn plugin_names_map_to_executables() {
        for (plugin, want) in [
            ("python", Some("liege-python")),
            ("python3", Some("liege-python")),
            ("python311", Some("liege-python3.11")),
            ("python39", Some("liege-python3.9")),
            ("python27", Some("liege-python2.7")),
            ("python3_plugin.so", Some("liege-python")),
            (
                "/usr/lib/uwsgi/plugins/python311_plugin.so",
                Some("liege-python3.11"),
            ),
            ("http", None),
            ("pythonx", None),
            ("psgi", Some("liege-perl")),
            ("psgi_plugin.so", Some("liege-perl")),
            ("rack", Some("liege-ruby")),
            (
                "/usr/lib/uwsgi/plugins/rack_ruby31_plugin.so",
                Some("liege-ruby"),
            ),
            ("rackx", None),
        ] {
            assert_eq!(worker_for_plugin(plugin).as_deref(), want, "{plugin}");
        }
    }

    #[test]
    fn looks_beside_liege_then_in_plugin_dirs() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let c = tempfile::tempdir().unwrap();
        let exe = |dir: &Path, mode| {
            let p = dir.join("liege-python3.11");
            fs_err::write(&p, "#!/bin/sh\n").unwrap();
            fs_err::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        // Not executable in b: skipped.
        exe(b.path(), 0o644);
        let in_c = exe(c.path(), 0o755);
        let dirs = [b.path().to_path_buf(), c.path().to_path_buf()];
        assert_eq!(find("liege-python3.11", a.path(), &dirs).unwrap(), in_c);
        let beside = exe(a.path(), 0o755);
        assert_eq!(find("liege-python3.11", a.path(), &dirs).unwrap(), beside);
        let e = find("liege-python3.9", a.path(), &dirs).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "cannot find the worker executable `liege-python3.9` (looked in {}, {}, {})",
                a.path().display(),
                b.path().display(),
                c.path().display()
            )
        );
    }
}
