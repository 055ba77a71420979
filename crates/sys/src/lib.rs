//! The raw syscalls that need `unsafe`, each wrapped in a safe function whose doc states what the
//! caller must keep true. Everything else in liege uses rustix's safe API or these.

pub mod beneath;
pub mod caps;
pub mod clone;
pub mod exec;
pub mod fd;
pub mod fork;
pub mod mount;
pub mod netif;
pub mod pass_fds;
pub mod seccomp;
pub mod shm;
pub mod sock;

pub use clone::{Cloned, Namespaces, UnknownNamespace, clone_vassal};
