//! A vassal's jail (ARCHITECTURE.md decision 3), built and entered by the master, as root,
//! before any customer code runs. docs/jail.md lists the steps in the order [`Jail::enter`]
//! and [`Jail::drop_privileges`] take them.
//!
//! - [`hooks`]: uWSGI's `hook-<phase> = action:args` and `exec-`/`mount-`/`umount-<phase>`.
//! - [`layout`]: liege's one-block filesystem (`jail-root`, `jail-home`...): a read-only root,
//!   a new /proc, private /tmp, minimal /dev, the vassal's /run, /opt, the home.
//! - [`mount`]: the mount primitives, every target opened without following symlinks.
//! - [`privileges`]: rlimits, groups, uid/gid, capabilities, no_new_privs.
//! - [`seccomp`]: the filters, compiled from `seccomp/*.policy` at build time.

pub mod seccomp;
