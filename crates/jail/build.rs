//! Compiles the seccomp policies (`seccomp/*.policy`) into BPF programs with libseccomp, at
//! build time: `$OUT_DIR/NAME.bpf` (the `sock_filter` array the crate embeds) and
//! `$OUT_DIR/NAME.pfc` (libseccomp's readable pseudo-code of it, for people). libseccomp is
//! needed only here, not at run time.
//!
//! Each program is then run through a BPF interpreter on calls of the other ABIs, so a
//! libseccomp that handled x32 or i386 differently fails the build instead of shipping a filter
//! with a hole.

// Cargo reads a build script's stdout (its directives) and shows its stderr on failure.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterAttr, ScmpFilterContext,
    ScmpSyscall,
};

#[path = "src/seccomp/bpf.rs"]
#[allow(dead_code)]
mod bpf;
#[path = "src/seccomp/policy.rs"]
#[allow(dead_code)]
mod policy;

/// The policies, by the name of their file in `seccomp/` (without `.policy`).
const POLICIES: [&str; 2] = ["default", "deny-wx"];

const EPERM: u16 = 1;

fn main() -> ExitCode {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    for name in POLICIES {
        let path = dir.join("seccomp").join(format!("{name}.policy"));
        println!("cargo::rerun-if-changed={}", path.display());
        if arch != "x86_64" {
            // The rules name x86_64's calls and argument layouts (clone's flags in arg0).
            eprintln!("error: the seccomp policies are written for x86_64, not for {arch}");
            return ExitCode::FAILURE;
        }
        if let Err(message) = compile(&path, &out.join(name)) {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Compiles the policy at `path` into `OUT.bpf` and `OUT.pfc`.
fn compile(path: &Path, out: &Path) -> Result<(), String> {
    let shown = path.display();
    let text = fs_err::read_to_string(path).map_err(|e| e.to_string())?;
    let rules = policy::parse(&text).map_err(|e| format!("{shown}:{}: {}", e.line, e.message))?;
    let libseccomp = |what: &str, e: libseccomp::error::SeccompError| {
        format!("{shown}: libseccomp: cannot {what}: {e}")
    };
    let mut ctx =
        ScmpFilterContext::new(ScmpAction::Allow).map_err(|e| libseccomp("create a filter", e))?;
    // The filter's only ABI is x86_64 (the build host's, which must be the target's). Calls of
    // any other (i386's `int 0x80`) get the bad-arch action; libseccomp gives it to x32's
    // numbers too, which `check_abis` below verifies on the program.
    if ScmpArch::native() != ScmpArch::X8664 {
        return Err(format!(
            "{shown}: libseccomp's native ABI is {:?}, not x86_64: cross-compiling is not supported",
            ScmpArch::native()
        ));
    }
    ctx.set_act_badarch(ScmpAction::Errno(i32::from(EPERM)))
        .map_err(|e| libseccomp("set the bad-arch action", e))?;
    // A binary tree of the call numbers: an allowed call, the common case, passes about six
    // comparisons instead of one per filtered call.
    ctx.set_filter_attr(ScmpFilterAttr::CtlOptimize, 2)
        .map_err(|e| libseccomp("ask for the binary-tree layout", e))?;
    for rule in &rules {
        let at = format!("{shown}:{}", rule.line);
        let syscall = resolve(rule).map_err(|e| format!("{at}: {e}"))?;
        let action = ScmpAction::Errno(i32::from(rule.action.errno()));
        let conds: Vec<ScmpArgCompare> = rule
            .conds
            .iter()
            .map(|c| {
                let op = match c.op {
                    policy::Op::Eq => ScmpCompareOp::Equal,
                    policy::Op::Ne => ScmpCompareOp::NotEqual,
                    policy::Op::Lt => ScmpCompareOp::Less,
                    policy::Op::Le => ScmpCompareOp::LessOrEqual,
                    policy::Op::Gt => ScmpCompareOp::Greater,
                    policy::Op::Ge => ScmpCompareOp::GreaterEqual,
                    policy::Op::MaskedEq(mask) => ScmpCompareOp::MaskedEqual(mask),
                };
                ScmpArgCompare::new(u32::from(c.arg), op, c.value)
            })
            .collect();
        // `exact`: libseccomp must add the rule as written, never rewrite it.
        ctx.add_rule_conditional_exact(action, syscall, &conds)
            .map_err(|e| {
                format!(
                    "{at}: libseccomp refuses the rule for `{}`: {e}",
                    rule.syscall
                )
            })?;
    }
    let bpf_path = out.with_extension("bpf");
    let pfc_path = out.with_extension("pfc");
    let create = |p: &Path| fs_err::File::create(p).map_err(|e| e.to_string());
    ctx.export_bpf(create(&bpf_path)?.file())
        .map_err(|e| libseccomp("export the BPF program", e))?;
    ctx.export_pfc(create(&pfc_path)?.file())
        .map_err(|e| libseccomp("export the pseudo-code", e))?;
    let program = fs_err::read(&bpf_path).map_err(|e| e.to_string())?;
    check_abis(&program).map_err(|e| format!("{shown}: the compiled filter {e}"))
}

/// The call's number: libseccomp's for its name, or the one written as `NAME=NR`, which must
/// agree with libseccomp's when it knows the name.
fn resolve(rule: &policy::Rule) -> Result<ScmpSyscall, String> {
    let name = &rule.syscall;
    // A negative number is one of libseccomp's pseudo-calls: a name x86_64 does not have.
    let known = ScmpSyscall::from_name(name)
        .ok()
        .and_then(|s| u32::try_from(s.as_raw_syscall()).ok());
    match (known, rule.nr) {
        (Some(known), Some(nr)) if known != nr => Err(format!(
            "`{name}` is number {known} for libseccomp, not {nr}"
        )),
        (Some(nr), _) | (None, Some(nr)) => i32::try_from(nr)
            .map(ScmpSyscall::from)
            .map_err(|_| format!("`{name}={nr}`: the number is too large")),
        (None, None) => Err(format!(
            "libseccomp does not know the system call `{name}` (write `{name}=NUMBER` for a \
             call newer than it)"
        )),
    }
}

/// Checks that calls of the other ABIs get EPERM whatever their number, and that the native
/// `getpid` (which no policy filters) is allowed.
fn check_abis(program: &[u8]) -> Result<(), String> {
    let eperm = bpf::RET_ERRNO | u32::from(EPERM);
    let run = |data: bpf::SeccompData| {
        bpf::run(program, &data).map_err(|e| format!("does not run: {e:?}"))
    };
    const GETPID: u32 = 39;
    const MOUNT: u32 = 165;
    let native = bpf::SeccompData::native(GETPID, [0; 6]);
    if run(native)? != bpf::RET_ALLOW {
        return Err("does not allow the native getpid".into());
    }
    for nr in [GETPID, MOUNT, 0, 20, 21, 511, 0x3fff_ffff] {
        let x32 = bpf::SeccompData::native(bpf::X32_SYSCALL_BIT | nr, [0; 6]);
        if run(x32)? != eperm {
            return Err(format!(
                "does not refuse x32 call {:#x} with EPERM",
                bpf::X32_SYSCALL_BIT | nr
            ));
        }
        let i386 = bpf::SeccompData {
            arch: bpf::AUDIT_ARCH_I386,
            ..bpf::SeccompData::native(nr, [0; 6])
        };
        if run(i386)? != eperm {
            return Err(format!("does not refuse i386 call {nr} with EPERM"));
        }
    }
    Ok(())
}
