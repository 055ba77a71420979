//! uWSGI's hooks: `hook-<phase> = action:args`, and the shorthands `mount-<phase>`,
//! `umount-<phase>`, `exec-<phase>` (`mount-asap = ARGS` is `hook-asap = mount:ARGS`), for the
//! phases asap, pre-jail, in-jail, post-jail, as-root and as-user.
//!
//! [`Hooks::from_options`] reads and checks every hook of every phase before anything runs;
//! the master then calls [`Hooks::run`] at each phase (ARCHITECTURE.md, docs/jail.md give the
//! order). Within a phase, as in uWSGI, every `hook-<phase>` entry runs first, in file order,
//! then the `mount-`, `umount-` and `exec-<phase>` ones. Every phase here is fatal: the first
//! hook that fails stops the phase and the error names its origin (file:line), its option, the
//! action, and the errno or the exit status.
//!
//! These hooks run as root (but for as-user), on paths that may cross a folder a customer can
//! write: no path is ever resolved through a symlink ([`files`], [`mounts`]).

mod files;
mod mounts;
mod parse;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use liege_config::registry::{self, Known};
use liege_config::{Options, Origin};

use parse::Action;

/// When a hook runs (uWSGI's phase names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Right after the options are read.
    Asap,
    /// Before any jail step, on the host's filesystem (not on reloads).
    PreJail,
    /// Before `unshare`.
    InJail,
    /// Once the namespaces exist, before the new root (bind it here).
    PostJail,
    /// Inside the new root, still root, before the sockets are bound.
    AsRoot,
    /// As the instance's user, once privileges are dropped, before any worker.
    AsUser,
}

impl Phase {
    /// Every phase, in the order they run.
    pub const ALL: [Phase; 6] = [
        Phase::Asap,
        Phase::PreJail,
        Phase::InJail,
        Phase::PostJail,
        Phase::AsRoot,
        Phase::AsUser,
    ];

    /// The phase's name, as in its options (`hook-pre-jail`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Asap => "asap",
            Phase::PreJail => "pre-jail",
            Phase::InJail => "in-jail",
            Phase::PostJail => "post-jail",
            Phase::AsRoot => "as-root",
            Phase::AsUser => "as-user",
        }
    }

    fn index(self) -> usize {
        match self {
            Phase::Asap => 0,
            Phase::PreJail => 1,
            Phase::InJail => 2,
            Phase::PostJail => 3,
            Phase::AsRoot => 4,
            Phase::AsUser => 5,
        }
    }

    /// The option families of the phase, in the order they run. There is no `mount-as-user`
    /// nor `umount-as-user`, in uWSGI either.
    fn families(self) -> &'static [Family] {
        match self {
            Phase::AsUser => &[Family::Hook, Family::Exec],
            _ => &[Family::Hook, Family::Mount, Family::Umount, Family::Exec],
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kind of option a hook came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// `hook-<phase> = action:args`.
    Hook,
    /// `mount-<phase> = ARGS`, `hook-<phase> = mount:ARGS`.
    Mount,
    /// `umount-<phase> = ARGS`.
    Umount,
    /// `exec-<phase> = COMMAND`.
    Exec,
}

impl Family {
    fn prefix(self) -> &'static str {
        match self {
            Family::Hook => "hook",
            Family::Mount => "mount",
            Family::Umount => "umount",
            Family::Exec => "exec",
        }
    }
}

/// A hook could not be read, or failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The entry is not a hook liege can run (checked when the options are read).
    #[error("{origin}: `{option} = {value}`: {why}")]
    Syntax {
        origin: Origin,
        option: String,
        /// The value as written; a private hook's (`!action:`) arguments are left out.
        value: String,
        why: String,
    },
    /// A system call of the hook failed.
    #[error("{origin}: `{option}`: {action}: {what}: {source}")]
    Failed {
        origin: Origin,
        option: String,
        action: String,
        /// What it was doing (the path, `mounting tmpfs on /tmp`...); `(private)` for a
        /// private hook.
        what: String,
        source: io::Error,
    },
    /// An `exec` hook's command failed.
    #[error("{origin}: `{option}`: {action}: `{command}` {}", describe(*.status))]
    Command {
        origin: Origin,
        option: String,
        action: String,
        /// The command; `(private)` for a private hook.
        command: String,
        status: ExitStatus,
    },
    /// An `exec` hook's shell could not be started.
    #[error("{origin}: `{option}`: {action}: cannot start {shell}: {source}", shell = .shell.display())]
    Spawn {
        origin: Origin,
        option: String,
        action: String,
        shell: PathBuf,
        source: io::Error,
    },
    /// An `exit` hook ran: the caller ends the instance with `code`.
    #[error("{origin}: `{option}`: exit:{code} ends the instance")]
    Exit {
        origin: Origin,
        option: String,
        code: i32,
    },
}

impl HookError {
    /// Where the hook was written.
    pub fn origin(&self) -> &Origin {
        match self {
            HookError::Syntax { origin, .. }
            | HookError::Failed { origin, .. }
            | HookError::Command { origin, .. }
            | HookError::Spawn { origin, .. }
            | HookError::Exit { origin, .. } => origin,
        }
    }

    /// The errno of a failed system call (`ELOOP` for a symlink met on the way).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            HookError::Failed { source, .. } | HookError::Spawn { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }

    /// The status an `exit` hook asked for.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            HookError::Exit { code, .. } => Some(*code),
            _ => None,
        }
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => format!("ended: {status}"),
    }
}

/// One hook, read and checked.
#[derive(Debug, Clone)]
struct Hook {
    origin: Origin,
    /// The option it came from (`hook-asap`, `mount-as-root`...).
    option: String,
    /// The action's name as written (`exec`, `chdir`, `creat`...).
    name: String,
    /// What the log shows: `exec:ARGS`; `!exec:(private)` for a private hook.
    shown: String,
    /// `!action:`: its arguments stay out of the log and of error messages.
    private: bool,
    action: Action,
}

impl Hook {
    fn failed(&self, what: impl Into<String>, source: io::Error) -> HookError {
        HookError::Failed {
            origin: self.origin.clone(),
            option: self.option.clone(),
            action: self.name.clone(),
            what: if self.private {
                "(private)".to_string()
            } else {
                what.into()
            },
            source,
        }
    }
}

/// Every hook of every phase, in the order each phase runs them.
#[derive(Debug)]
pub struct Hooks {
    phases: [Vec<Hook>; 6],
    /// The shell of `exec` hooks (`binsh`).
    binsh: PathBuf,
    /// What `putenv` hooks did, in order: `(NAME, Some(VALUE))` set, `(NAME, None)` removed.
    /// liege does not change its own environment (it may have threads); the commands of
    /// `exec` hooks get these, and the master gives them to what it starts
    /// ([`Hooks::apply_environment`]).
    env: RefCell<Vec<(OsString, Option<OsString>)>>,
}

/// The option's canonical name (`registry::lookup`); keys liege does not know stay as they
/// are.
fn canonical(key: &str) -> &str {
    match registry::lookup(key) {
        Known::Liege(spec) => spec.name,
        _ => key,
    }
}

impl Hooks {
    /// Reads and checks every hook option of `options` (and `binsh`): an unknown action,
    /// missing arguments or a bad mount flag is an error naming the entry's origin, its option
    /// and its value.
    pub fn from_options(options: &Options) -> Result<Hooks, HookError> {
        let mut phases: [Vec<Hook>; 6] = Default::default();
        for phase in Phase::ALL {
            for family in phase.families() {
                let option = format!("{}-{phase}", family.prefix());
                for o in options.iter().filter(|o| canonical(&o.key) == option) {
                    phases[phase.index()].push(read(*family, &option, &o.value, &o.origin)?);
                }
            }
        }
        let binsh = options
            .iter()
            .rev()
            .find(|o| canonical(&o.key) == "binsh")
            .map(|o| o.value.trim())
            .filter(|v| !v.is_empty())
            .unwrap_or("/bin/sh");
        Ok(Hooks {
            phases,
            binsh: PathBuf::from(binsh),
            env: RefCell::new(Vec::new()),
        })
    }

    /// Whether `phase` has no hook.
    pub fn is_empty(&self, phase: Phase) -> bool {
        self.phases[phase.index()].is_empty()
    }

    /// Runs the hooks of `phase` in order; the first that fails stops it, and its error is
    /// returned (all these phases are fatal). A `safeexec` whose command fails is only
    /// logged. An `exit` hook returns [`HookError::Exit`], for the caller to end the instance.
    pub fn run(&self, phase: Phase) -> Result<(), HookError> {
        for hook in &self.phases[phase.index()] {
            log(format_args!("running \"{}\" ({phase})", hook.shown));
            self.run_one(hook)?;
        }
        Ok(())
    }

    /// The environment changes of the `putenv` hooks run so far, in order (`None`: removed),
    /// for the processes the master starts later (workers).
    pub fn environment(&self) -> Vec<(OsString, Option<OsString>)> {
        self.env.borrow().clone()
    }

    /// Gives `cmd` the environment changes of the `putenv` hooks run so far, in order.
    pub fn apply_environment(&self, cmd: &mut Command) {
        for (name, value) in self.env.borrow().iter() {
            match value {
                Some(v) => cmd.env(name, v),
                None => cmd.env_remove(name),
            };
        }
    }

    fn run_one(&self, hook: &Hook) -> Result<(), HookError> {
        match &hook.action {
            Action::Exec { command, safe } => match self.exec(hook, command) {
                Err(e) if *safe => {
                    log(format_args!("{e} (safeexec: going on)"));
                    Ok(())
                }
                other => other,
            },
            Action::Mount(m) => mounts::mount(m).map_err(|e| hook.failed(e.what, e.source)),
            Action::Umount(u) => mounts::umount(u).map_err(|e| hook.failed(e.what, e.source)),
            Action::Mkdir(path) => files::mkdir(path).map_err(|e| fail_at(hook, path, e)),
            Action::Hostname(name) => files::hostname(name).map_err(|e| hook.failed(name, e)),
            Action::Write { path, data, append } => {
                files::write(path, data, *append).map_err(|e| fail_at(hook, path, e))
            }
            Action::Symlink { target, link } => files::symlink(target, link).map_err(|e| {
                hook.failed(
                    format!("{} -> {}", link.display(), Path::new(target).display()),
                    e,
                )
            }),
            Action::Unlink(path) => files::unlink(path).map_err(|e| fail_at(hook, path, e)),
            Action::Chmod { path, mode } => {
                files::chmod(path, *mode).map_err(|e| fail_at(hook, path, e))
            }
            Action::Sticky(path) => files::sticky(path).map_err(|e| fail_at(hook, path, e)),
            Action::Chown { path, user, group } => {
                files::chown(path, user, group).map_err(|e| fail_at(hook, path, e))
            }
            Action::Chdir(path) => files::chdir(path).map_err(|e| fail_at(hook, path, e)),
            Action::Putenv { name, value } => {
                self.env.borrow_mut().push((name.clone(), value.clone()));
                Ok(())
            }
            Action::Print(text) => {
                let mut err = io::stderr().lock();
                let _ = writeln!(err, "{text}");
                Ok(())
            }
            Action::Exit(code) => Err(HookError::Exit {
                origin: hook.origin.clone(),
                option: hook.option.clone(),
                code: *code,
            }),
        }
    }

    /// `BINSH -c COMMAND`, stdin /dev/null, stdout and stderr the master's, in the working
    /// folder and environment `cd` and `putenv` hooks made.
    fn exec(&self, hook: &Hook, command: &str) -> Result<(), HookError> {
        let mut cmd = Command::new(&self.binsh);
        cmd.arg("-c").arg(command).stdin(Stdio::null());
        self.apply_environment(&mut cmd);
        let status = cmd.status().map_err(|source| HookError::Spawn {
            origin: hook.origin.clone(),
            option: hook.option.clone(),
            action: hook.name.clone(),
            shell: self.binsh.clone(),
            source,
        })?;
        if status.success() {
            return Ok(());
        }
        Err(HookError::Command {
            origin: hook.origin.clone(),
            option: hook.option.clone(),
            action: hook.name.clone(),
            command: if hook.private {
                "(private)".to_string()
            } else {
                command.to_string()
            },
            status,
        })
    }
}

fn fail_at(hook: &Hook, path: &Path, e: io::Error) -> HookError {
    hook.failed(path.display().to_string(), e)
}

/// Reads one entry of `option` (of `family`).
fn read(family: Family, option: &str, value: &str, origin: &Origin) -> Result<Hook, HookError> {
    let syntax = |shown: &str, why: String| HookError::Syntax {
        origin: origin.clone(),
        option: option.to_string(),
        value: shown.to_string(),
        why,
    };
    let (name, args, private) = match family {
        Family::Hook => {
            let (private, text) = match value.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, value),
            };
            let Some((name, args)) = text.split_once(':') else {
                let shown = if private { "!(private)" } else { value };
                return Err(syntax(shown, "expected `action:args`".to_string()));
            };
            (name.trim(), args, private)
        }
        Family::Mount | Family::Umount | Family::Exec => (family.prefix(), value, false),
    };
    let shown = if private {
        format!("!{name}:(private)")
    } else {
        format!("{name}:{args}")
    };
    let action = parse::action(name, args).map_err(|why| {
        let value = if private { shown.as_str() } else { value };
        syntax(value, why)
    })?;
    Ok(Hook {
        origin: origin.clone(),
        option: option.to_string(),
        name: name.to_string(),
        shown,
        private,
        action,
    })
}

/// One line of the master's log.
fn log(line: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "liege: {line}");
}
