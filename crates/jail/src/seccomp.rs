//! The jail's seccomp filters. Each is a policy file in `crates/jail/seccomp/` (data, one rule a
//! line with the reason above it), compiled by `build.rs` with libseccomp into a BPF program that
//! is embedded here; nothing of libseccomp is needed at run time. docs/jail.md lists what each
//! refuses and why.
//!
//! - [`Filter::Default`]: what a jailed vassal's processes are refused once its privileges are
//!   dropped (option `jail-seccomp = default`).
//! - [`Filter::DenyWx`]: no writable and executable memory (option `jail-deny-wx`).
//!
//! Every refusal answers an errno (EPERM; ENOSYS for clone3), never a kill; calls of the i386
//! and x32 ABIs are refused whatever they are.

use std::fmt;
use std::process::Command;

#[cfg(test)]
mod bpf;
#[cfg(test)]
mod policy;

/// A compiled seccomp filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Filter {
    /// `seccomp/default.policy`: mount, namespaces, ptrace, kernel modules, raw sockets,
    /// terminal injection and the rest of what apps never need.
    Default,
    /// `seccomp/deny-wx.policy`: memory both writable and executable, or made executable later.
    DenyWx,
}

impl Filter {
    /// Every filter.
    pub const ALL: [Filter; 2] = [Filter::Default, Filter::DenyWx];

    /// The policy's name: its file is `seccomp/NAME.policy`.
    pub fn name(self) -> &'static str {
        match self {
            Filter::Default => "default",
            Filter::DenyWx => "deny-wx",
        }
    }

    /// The BPF program (`struct sock_filter` array, 8 bytes an instruction).
    pub fn program(self) -> &'static [u8] {
        match self {
            Filter::Default => include_bytes!(concat!(env!("OUT_DIR"), "/default.bpf")),
            Filter::DenyWx => include_bytes!(concat!(env!("OUT_DIR"), "/deny-wx.bpf")),
        }
    }

    /// The policy's source text.
    pub fn policy(self) -> &'static str {
        match self {
            Filter::Default => include_str!("../seccomp/default.policy"),
            Filter::DenyWx => include_str!("../seccomp/deny-wx.policy"),
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a filter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("cannot install the seccomp filter `{filter}`: {source}")]
    Install {
        filter: Filter,
        #[source]
        source: std::io::Error,
    },
}

/// Installs `filters`, in order, on the calling thread; they apply to it and to every process
/// and thread it creates afterwards, and cannot be removed.
///
/// The caller must already have set no_new_privs (the privilege drop does, as its last step) or
/// hold `CAP_SYS_ADMIN`; the kernel refuses with `EACCES` otherwise. Other threads are not
/// filtered: call it before starting any. It allocates nothing, so a child may call it between
/// fork and exec.
pub fn install(filters: &[Filter]) -> Result<(), SeccompError> {
    for &filter in filters {
        liege_sys::seccomp::install_filter(filter.program())
            .map_err(|source| SeccompError::Install { filter, source })?;
    }
    Ok(())
}

/// Arranges for `cmd`'s child to set no_new_privs and install `filters` between fork and exec,
/// so the program it runs is filtered from its first instruction. If that fails, `spawn` fails
/// with the kernel's error.
pub fn install_on_exec(cmd: &mut Command, filters: &[Filter]) {
    let programs = filters.iter().map(|f| f.program()).collect();
    liege_sys::seccomp::install_on_exec(cmd, programs);
}

#[cfg(test)]
mod tests {
    use super::bpf::{self, SeccompData};
    use super::policy::{self, Action, Op, Rule};
    use super::*;

    const ALLOW: u32 = bpf::RET_ALLOW;
    const EPERM: u32 = bpf::RET_ERRNO | 1;
    const ENOSYS: u32 = bpf::RET_ERRNO | 38;

    /// The x86_64 numbers of the calls the tests below make up.
    fn nr(name: &str) -> u32 {
        match name {
            "mmap" => 9,
            "mprotect" => 10,
            "ioctl" => 16,
            "getpid" => 39,
            "socket" => 41,
            "clone" => 56,
            "personality" => 135,
            "unshare" => 272,
            "clone3" => 435,
            _ => panic!("no number for {name}"),
        }
    }

    fn run(filter: Filter, name: &str, args: [u64; 6]) -> u32 {
        let data = SeccompData::native(nr(name), args);
        bpf::run(filter.program(), &data).unwrap()
    }

    fn rules(filter: Filter) -> Vec<Rule> {
        policy::parse(filter.policy()).unwrap()
    }

    /// Arguments that satisfy every condition of `rule` (each at its smallest such value).
    fn matching_args(rule: &Rule) -> [u64; 6] {
        let mut args = [0u64; 6];
        for c in &rule.conds {
            args[usize::from(c.arg)] = match c.op {
                Op::Eq | Op::Ge | Op::Le | Op::MaskedEq(_) => c.value,
                Op::Ne => c.value.wrapping_add(1),
                Op::Gt => c.value + 1,
                Op::Lt => 0,
            };
        }
        args
    }

    /// The x86_64 number of every call the policies name, from the build's own table through
    /// libc (a second source beside libseccomp's).
    fn number_of(rule: &Rule) -> u32 {
        if let Some(nr) = rule.nr {
            return nr;
        }
        let n = match rule.syscall.as_str() {
            "mount" => libc::SYS_mount,
            "umount2" => libc::SYS_umount2,
            "pivot_root" => libc::SYS_pivot_root,
            "fsopen" => libc::SYS_fsopen,
            "fsconfig" => libc::SYS_fsconfig,
            "fsmount" => libc::SYS_fsmount,
            "fspick" => libc::SYS_fspick,
            "move_mount" => libc::SYS_move_mount,
            "open_tree" => libc::SYS_open_tree,
            "mount_setattr" => libc::SYS_mount_setattr,
            "unshare" => libc::SYS_unshare,
            "setns" => libc::SYS_setns,
            "clone" => libc::SYS_clone,
            "clone3" => libc::SYS_clone3,
            "ptrace" => libc::SYS_ptrace,
            "process_vm_readv" => libc::SYS_process_vm_readv,
            "process_vm_writev" => libc::SYS_process_vm_writev,
            "kexec_load" => libc::SYS_kexec_load,
            "kexec_file_load" => libc::SYS_kexec_file_load,
            "init_module" => libc::SYS_init_module,
            "finit_module" => libc::SYS_finit_module,
            "delete_module" => libc::SYS_delete_module,
            "bpf" => libc::SYS_bpf,
            "perf_event_open" => libc::SYS_perf_event_open,
            "keyctl" => libc::SYS_keyctl,
            "add_key" => libc::SYS_add_key,
            "request_key" => libc::SYS_request_key,
            "open_by_handle_at" => libc::SYS_open_by_handle_at,
            "userfaultfd" => libc::SYS_userfaultfd,
            "swapon" => libc::SYS_swapon,
            "swapoff" => libc::SYS_swapoff,
            "reboot" => libc::SYS_reboot,
            "acct" => libc::SYS_acct,
            "quotactl" => libc::SYS_quotactl,
            "quotactl_fd" => libc::SYS_quotactl_fd,
            "settimeofday" => libc::SYS_settimeofday,
            "clock_settime" => libc::SYS_clock_settime,
            "clock_adjtime" => libc::SYS_clock_adjtime,
            "adjtimex" => libc::SYS_adjtimex,
            "iopl" => libc::SYS_iopl,
            "ioperm" => libc::SYS_ioperm,
            "syslog" => libc::SYS_syslog,
            "lookup_dcookie" => libc::SYS_lookup_dcookie,
            "io_uring_setup" => libc::SYS_io_uring_setup,
            "io_uring_enter" => libc::SYS_io_uring_enter,
            "io_uring_register" => libc::SYS_io_uring_register,
            "personality" => libc::SYS_personality,
            "socket" => libc::SYS_socket,
            "ioctl" => libc::SYS_ioctl,
            "mmap" => libc::SYS_mmap,
            "mprotect" => libc::SYS_mprotect,
            "pkey_mprotect" => libc::SYS_pkey_mprotect,
            "shmat" => libc::SYS_shmat,
            other => panic!("the test knows no number for `{other}`"),
        };
        u32::try_from(n).unwrap()
    }

    #[test]
    fn the_policies_parse_and_every_rule_answers_its_errno() {
        for filter in Filter::ALL {
            let rules = rules(filter);
            assert!(!rules.is_empty(), "{filter}");
            for rule in &rules {
                let data = SeccompData::native(number_of(rule), matching_args(rule));
                let want = bpf::RET_ERRNO | u32::from(rule.action.errno());
                let got = bpf::run(filter.program(), &data).unwrap();
                assert_eq!(got, want, "{filter}.policy:{}: {rule:?}", rule.line);
            }
        }
    }

    #[test]
    fn the_default_policy_names_what_the_brief_lists() {
        let rules = rules(Filter::Default);
        let names: Vec<&str> = rules.iter().map(|r| r.syscall.as_str()).collect();
        for call in [
            "mount",
            "umount2",
            "pivot_root",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "unshare",
            "setns",
            "clone",
            "clone3",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "bpf",
            "perf_event_open",
            "keyctl",
            "add_key",
            "request_key",
            "open_by_handle_at",
            "userfaultfd",
            "swapon",
            "swapoff",
            "reboot",
            "acct",
            "quotactl",
            "quotactl_fd",
            "settimeofday",
            "clock_settime",
            "clock_adjtime",
            "adjtimex",
            "iopl",
            "ioperm",
            "syslog",
            "lookup_dcookie",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "personality",
            "socket",
            "ioctl",
        ] {
            assert!(
                names.contains(&call),
                "default.policy has no rule for {call}"
            );
        }
        // Only clone3 answers ENOSYS.
        for rule in &rules {
            let want = if rule.syscall == "clone3" {
                Action::Enosys
            } else {
                Action::Eperm
            };
            assert_eq!(rule.action, want, "line {}", rule.line);
        }
    }

    #[test]
    fn other_abis_are_refused_and_the_native_one_is_not() {
        for filter in Filter::ALL {
            for nr in [0, 20, 39, 165, 435, 0x3fff_ffff] {
                let x32 = SeccompData::native(bpf::X32_SYSCALL_BIT | nr, [0; 6]);
                assert_eq!(
                    bpf::run(filter.program(), &x32),
                    Ok(EPERM),
                    "{filter} x32 {nr}"
                );
                let i386 = SeccompData {
                    arch: bpf::AUDIT_ARCH_I386,
                    ..SeccompData::native(nr, [0; 6])
                };
                assert_eq!(
                    bpf::run(filter.program(), &i386),
                    Ok(EPERM),
                    "{filter} i386 {nr}"
                );
                // Any architecture but x86_64's.
                let arm = SeccompData {
                    arch: 0xc000_00b7,
                    ..SeccompData::native(nr, [0; 6])
                };
                assert_eq!(bpf::run(filter.program(), &arm), Ok(EPERM), "{filter} {nr}");
            }
            assert_eq!(run(filter, "getpid", [0; 6]), ALLOW, "{filter}");
        }
    }

    #[test]
    fn clone_and_unshare_refuse_each_namespace_flag_whatever_else_is_set() {
        const NEW: [u64; 7] = [
            0x0002_0000, // CLONE_NEWNS
            0x0200_0000, // CLONE_NEWCGROUP
            0x0400_0000, // CLONE_NEWUTS
            0x0800_0000, // CLONE_NEWIPC
            0x1000_0000, // CLONE_NEWUSER
            0x2000_0000, // CLONE_NEWPID
            0x4000_0000, // CLONE_NEWNET
        ];
        let thread = 0x003d_0f00; // glibc's pthread_create flags
        let fork = 0x0120_0011; // CLONE_CHILD_SETTID|CLONE_CHILD_CLEARTID|SIGCHLD
        for call in ["clone", "unshare"] {
            for flag in NEW {
                for other in [0, thread, fork, 1 << 32, !flag] {
                    let args = [flag | other, 0, 0, 0, 0, 0];
                    assert_eq!(run(Filter::Default, call, args), EPERM, "{call} {args:x?}");
                }
            }
        }
        for flags in [thread, fork, 0x11] {
            assert_eq!(run(Filter::Default, "clone", [flags, 0, 0, 0, 0, 0]), ALLOW);
        }
        // CLONE_NEWTIME (0x80) is a namespace for unshare, the exit signal's bits for clone.
        assert_eq!(
            run(Filter::Default, "unshare", [0x80, 0, 0, 0, 0, 0]),
            EPERM
        );
        assert_eq!(
            run(Filter::Default, "clone", [0x80 | 0x11, 0, 0, 0, 0, 0]),
            ALLOW
        );
        // CLONE_FILES, CLONE_FS, CLONE_SYSVSEM
        for flags in [0x400, 0x200, 0x40000, 0x40600] {
            assert_eq!(
                run(Filter::Default, "unshare", [flags, 0, 0, 0, 0, 0]),
                ALLOW
            );
        }
        assert_eq!(run(Filter::Default, "clone3", [0; 6]), ENOSYS);
    }

    #[test]
    fn personality_allows_only_the_query_and_per_linux() {
        for persona in [0, 0xffff_ffff] {
            assert_eq!(
                run(Filter::Default, "personality", [persona, 0, 0, 0, 0, 0]),
                ALLOW
            );
        }
        // Every other value the kernel could read, each bit alone and all but one bit, and
        // upper halves the kernel ignores.
        let mut refused: Vec<u64> = vec![0x0040_0000, 0x0800_0000, 0x0010_0000, 8, 0xffff_fffe];
        refused.extend((0..32).map(|i| 1u64 << i));
        refused.extend((0..32).map(|i| 0xffff_ffff & !(1u64 << i)));
        refused.extend([
            1 << 32,
            (1 << 32) | 0xffff_ffff,
            u64::MAX,
            0xdead_beef_0000_0000,
        ]);
        for persona in refused {
            assert_eq!(
                run(Filter::Default, "personality", [persona, 0, 0, 0, 0, 0]),
                EPERM,
                "{persona:#x}"
            );
        }
    }

    #[test]
    fn sockets_are_judged_on_the_low_half_the_kernel_reads() {
        const HIGH: u64 = 0x1234_5678_0000_0000;
        let socket = |domain: u64, ty: u64, protocol: u64| {
            run(Filter::Default, "socket", [domain, ty, protocol, 0, 0, 0])
        };
        let (inet, inet6, unix, netlink, packet) = (2, 10, 1, 16, 17);
        let (stream, dgram, raw, sock_packet) = (1, 2, 3, 10);
        let flags = 0x80000 | 0x800; // SOCK_CLOEXEC | SOCK_NONBLOCK
        for high in [0, HIGH] {
            for ty in [stream, dgram, raw] {
                assert_eq!(socket(packet | high, ty, 0), EPERM);
            }
            for domain in [inet, inet6] {
                assert_eq!(socket(domain | high, raw, 1), EPERM);
                assert_eq!(socket(domain | high, raw | flags, 1), EPERM);
                assert_eq!(socket(domain | high, raw | high, 1), EPERM);
                assert_eq!(socket(domain, stream | flags, 0), ALLOW);
                assert_eq!(socket(domain, dgram, 1), ALLOW); // ping sockets
            }
            assert_eq!(socket(inet | high, sock_packet, 0x300), EPERM);
            for protocol in [9, 15, 12, 1 << 32] {
                assert_eq!(socket(netlink | high, raw, protocol), EPERM);
            }
        }
        assert_eq!(socket(netlink, raw | flags, 0), ALLOW);
        assert_eq!(socket(netlink, dgram, 0), ALLOW);
        assert_eq!(socket(unix, stream, 0), ALLOW);
    }

    #[test]
    fn terminal_injection_is_refused_whatever_the_upper_half() {
        let ioctl = |request: u64| run(Filter::Default, "ioctl", [0, request, 0, 0, 0, 0]);
        for request in [0x5412, 0x541c] {
            for high in [0, 1 << 32, 0xffff_ffff_0000_0000] {
                assert_eq!(ioctl(request | high), EPERM, "{:#x}", request | high);
            }
        }
        // TCGETS, TIOCGWINSZ, FIONBIO
        for request in [0x5401, 0x5413, 0x5421] {
            assert_eq!(ioctl(request), ALLOW);
        }
    }

    #[test]
    fn deny_wx_refuses_writable_code_and_nothing_else() {
        let (r, w, x) = (1u64, 2u64, 4u64);
        let mmap = |prot: u64| run(Filter::DenyWx, "mmap", [0, 4096, prot, 0x22, 0, 0]);
        let mprotect = |prot: u64| run(Filter::DenyWx, "mprotect", [0, 4096, prot, 0, 0, 0]);
        assert_eq!(mmap(r | w | x), EPERM);
        assert_eq!(mmap(w | x), EPERM);
        assert_eq!(mprotect(r | x), EPERM);
        assert_eq!(mprotect(x), EPERM);
        for prot in [0, r, r | w, r | x] {
            assert_eq!(mmap(prot), ALLOW, "mmap {prot}");
        }
        for prot in [0, r, r | w] {
            assert_eq!(mprotect(prot), ALLOW, "mprotect {prot}");
        }
        // The default filter leaves memory alone.
        assert_eq!(
            run(Filter::Default, "mmap", [0, 4096, r | w | x, 0x22, 0, 0]),
            ALLOW
        );
    }

    #[test]
    fn the_install_error_names_the_filter() {
        let err = SeccompError::Install {
            filter: Filter::DenyWx,
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        };
        assert_eq!(
            err.to_string(),
            "cannot install the seccomp filter `deny-wx`: Permission denied (os error 13)"
        );
    }
}
