//! Installing a compiled seccomp filter (`seccomp(SECCOMP_SET_MODE_FILTER)`): the program is the
//! `struct sock_filter` array as libseccomp exports it (8 bytes an instruction, little-endian).
//! The filters themselves are compiled at build time by the jail crate.

use std::os::unix::process::CommandExt as _;
use std::process::Command;

/// The size of one `struct sock_filter` instruction.
const INSN: usize = 8;

/// Installs `program` as a seccomp filter on the calling thread, inherited by every process and
/// thread it creates from then on. Filters stack: a later one cannot loosen an earlier one.
///
/// The kernel accepts it only if no_new_privs is set (`PR_SET_NO_NEW_PRIVS`) or the caller has
/// `CAP_SYS_ADMIN`, and fails with `EACCES` otherwise; this does not set it. Other threads of
/// the process are not filtered (no `SECCOMP_FILTER_FLAG_TSYNC`): install before starting any.
/// A program that is empty, not a whole number of instructions, or longer than a `u16` can
/// count fails with `EINVAL` before the kernel is asked.
///
/// Async-signal-safe: it neither allocates nor takes a lock, so a child may call it between
/// fork and exec.
pub fn install_filter(program: &[u8]) -> std::io::Result<()> {
    let einval = || std::io::Error::from_raw_os_error(libc::EINVAL);
    if program.is_empty() || !program.len().is_multiple_of(INSN) {
        return Err(einval());
    }
    let len = u16::try_from(program.len() / INSN).map_err(|_| einval())?;
    let fprog = libc::sock_fprog {
        len,
        // The kernel only reads through this pointer (copy_from_user, which takes any
        // alignment); nothing on this side ever dereferences it as a `sock_filter`.
        filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: `fprog` lives on this stack frame for the whole call and describes `len * 8`
    // readable bytes of `program`, which the borrow keeps alive; the kernel copies the program
    // before returning and keeps no pointer to either. The flags argument is 0.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_uint,
            &raw const fprog,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Arranges for `cmd`'s child to set no_new_privs and install each program of `programs`, in
/// order, between fork and exec: the program it runs is filtered from its first instruction.
/// A failure makes `spawn` fail with the error.
pub fn install_on_exec(cmd: &mut Command, programs: Vec<&'static [u8]>) {
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe work is allowed: prctl(PR_SET_NO_NEW_PRIVS) and `install_filter` are
    // plain syscalls that neither allocate nor take a lock, and the iteration reads `programs`,
    // which the closure (owned by `cmd`) already holds; building the error from an errno does
    // not allocate either.
    unsafe {
        cmd.pre_exec(move || {
            rustix::thread::set_no_new_privs(true)?;
            for program in &programs {
                install_filter(program)?;
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `if nr == execve: ERRNO(EPERM) else ALLOW` (no arch check: a test of installing only).
    const NO_EXECVE: [u8; 32] = [
        0x20, 0, 0, 0, 0, 0, 0, 0, // ld [nr]
        0x15, 0, 0, 1, 59, 0, 0, 0, // jeq 59 (execve), else skip one
        0x06, 0, 0, 0, 0x01, 0x00, 0x05, 0x00, // ret ERRNO(EPERM)
        0x06, 0, 0, 0, 0x00, 0x00, 0xff, 0x7f, // ret ALLOW
    ];

    #[test]
    fn malformed_programs_are_refused_before_the_kernel() {
        for program in [
            &[][..],
            &[0u8; 7][..],
            &[0u8; 12][..],
            &vec![0u8; 8 * 65536][..],
        ] {
            let err = install_filter(program).unwrap_err();
            assert_eq!(
                err.raw_os_error(),
                Some(libc::EINVAL),
                "{} bytes",
                program.len()
            );
        }
    }

    #[test]
    fn an_installed_filter_answers_for_the_exec_d_program() {
        let mut cmd = Command::new("/bin/true");
        install_on_exec(&mut cmd, vec![&NO_EXECVE]);
        // The exec itself is refused by the filter just installed.
        let err = cmd.status().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    }
}
