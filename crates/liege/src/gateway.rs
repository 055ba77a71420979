//! `liege router-gateway [--uid UID --gid GID]`: the HTTP router's process, started by the
//! emperor or by a master run by hand (`liege_master::gateway`), never by a person.
//!
//! In this order, while the process is still single-threaded:
//!
//! 1. take the descriptors its parent named in the environment (`liege_proto::router`): the
//!    control socket, the listening sockets (bound by the parent as root) and the subscription
//!    server's socket;
//! 2. raise its soft limit of open files to the hard one (every client is a descriptor);
//! 3. with `--uid`/`--gid` (a parent that is root): `setgroups([gid])`, `setgid`, `setuid`,
//!    every capability dropped (bounding and ambient sets too), `PR_SET_NO_NEW_PRIVS`
//!    (`liege_jail::privileges::Privileges::drop_to`); without them, no_new_privs alone;
//! 4. only then the router itself (`liege_router::run`), whose runtime starts its threads; it
//!    returns once the control socket closes and what it served is finished.

use std::os::fd::OwnedFd;
use std::process::ExitCode;

use liege_proto::router as wire;

use crate::cli::err;

/// Exit status for a bad command line or handoff.
const BAD_HANDOFF: u8 = 2;

/// What the parent handed over.
#[derive(Debug)]
pub(crate) struct Handoff {
    pub(crate) control: std::os::unix::net::UnixStream,
    /// The listening sockets and whether each speaks TLS.
    pub(crate) listeners: Vec<(OwnedFd, bool)>,
    pub(crate) subscription: Option<OwnedFd>,
}

fn fd_var(name: &str, value: &str) -> Result<OwnedFd, String> {
    let fd: i32 = value
        .trim()
        .parse()
        .map_err(|_| format!("`{name}={value}` is not a descriptor number"))?;
    liege_sys::fd::take_inherited(fd).map_err(|e| format!("`{name}`: {e}"))
}

/// Step 1: the descriptors named by the environment.
fn take_handoff(env: &dyn Fn(&str) -> Option<String>) -> Result<Handoff, String> {
    let control = env(wire::CONTROL_FD).ok_or_else(|| {
        format!(
            "`{}` is not set: the router is started by liege",
            wire::CONTROL_FD
        )
    })?;
    let control = std::os::unix::net::UnixStream::from(fd_var(wire::CONTROL_FD, &control)?);
    let mut listeners = Vec::new();
    for item in env(wire::LISTENERS)
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
    {
        let (fd, kind) = item
            .split_once(':')
            .ok_or_else(|| format!("`{}`: `{item}` is not FD:plain or FD:tls", wire::LISTENERS))?;
        let tls = match kind {
            "plain" => false,
            "tls" => true,
            _ => {
                return Err(format!(
                    "`{}`: `{item}` is not FD:plain or FD:tls",
                    wire::LISTENERS
                ));
            }
        };
        listeners.push((fd_var(wire::LISTENERS, fd)?, tls));
    }
    if listeners.is_empty() {
        return Err(format!("`{}` names no listening socket", wire::LISTENERS));
    }
    let subscription = env(wire::SUBSCRIPTION_FD)
        .map(|v| fd_var(wire::SUBSCRIPTION_FD, &v))
        .transpose()?;
    Ok(Handoff {
        control,
        listeners,
        subscription,
    })
}

/// `--uid UID --gid GID`, both or neither.
fn parse_args(args: &[String]) -> Result<Option<(u32, u32)>, String> {
    let mut uid = None;
    let mut gid = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut number = |what: &str| -> Result<u32, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("`{what}` needs a number"))
        };
        match a.as_str() {
            "--uid" => uid = Some(number("--uid")?),
            "--gid" => gid = Some(number("--gid")?),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    match (uid, gid) {
        (Some(u), Some(g)) => Ok(Some((u, g))),
        (None, None) => Ok(None),
        _ => Err("`--uid` and `--gid` go together".into()),
    }
}

/// Step 2: as many open files as the hard limit allows.
fn raise_nofile() {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if limit.maximum.is_some() && limit.current != limit.maximum {
        let _ = rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        );
    }
}

/// Step 3.
fn drop_privileges(identity: Option<(u32, u32)>) -> Result<(), String> {
    match identity {
        Some((uid, gid)) => liege_jail::privileges::Privileges::default()
            .drop_to(Some(uid), gid)
            .map_err(|e| format!("cannot drop to uid {uid} gid {gid}: {e}")),
        None => {
            rustix::thread::set_no_new_privs(true).map_err(|e| format!("PR_SET_NO_NEW_PRIVS: {e}"))
        }
    }
}

/// Runs the router's process (see the module).
pub(crate) fn run(args: &[String]) -> ExitCode {
    // Exec'd from /proc/self/fd/N, it would show as N in `ps`.
    let _ = rustix::thread::set_name(c"liege-router");
    let identity = match parse_args(args) {
        Ok(i) => i,
        Err(e) => {
            err(&format!("liege router-gateway: {e}"));
            return ExitCode::from(BAD_HANDOFF);
        }
    };
    let handoff = match take_handoff(&|k| std::env::var(k).ok()) {
        Ok(h) => h,
        Err(e) => {
            err(&format!("liege router-gateway: {e}"));
            return ExitCode::from(BAD_HANDOFF);
        }
    };
    raise_nofile();
    if let Err(e) = drop_privileges(identity) {
        err(&format!("liege router-gateway: {e}"));
        return ExitCode::from(1);
    }
    match serve(handoff) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            err(&format!("liege router-gateway: {e}"));
            ExitCode::from(1)
        }
    }
}

/// Step 4: the router, until its control socket closes.
fn serve(handoff: Handoff) -> Result<(), String> {
    let listeners = handoff
        .listeners
        .into_iter()
        .map(|(fd, tls)| liege_router::Listener { fd, tls })
        .collect();
    liege_router::run(listeners, handoff.control, handoff.subscription).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_identity_comes_whole_or_not_at_all() {
        assert_eq!(parse_args(&[]).unwrap(), None);
        assert_eq!(
            parse_args(&strings(&["--uid", "999", "--gid", "995"])).unwrap(),
            Some((999, 995))
        );
        assert!(parse_args(&strings(&["--uid", "999"])).is_err());
        assert!(parse_args(&strings(&["--uid", "x", "--gid", "1"])).is_err());
        assert!(parse_args(&strings(&["--user", "a"])).is_err());
    }

    #[test]
    fn a_handoff_without_its_variables_is_refused() {
        let none = |_: &str| None;
        assert!(
            take_handoff(&none)
                .unwrap_err()
                .contains("LIEGE_ROUTER_CONTROL_FD")
        );
        let bad = |k: &str| match k {
            wire::CONTROL_FD => Some("x".to_owned()),
            _ => None,
        };
        assert_eq!(
            take_handoff(&bad).unwrap_err(),
            "`LIEGE_ROUTER_CONTROL_FD=x` is not a descriptor number"
        );
    }
}
