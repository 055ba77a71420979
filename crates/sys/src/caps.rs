//! The capability prctls rustix names by enum only: the bounding and ambient sets by number,
//! so that a list of capability numbers (from `cap = ...`, or every number up to
//! `/proc/sys/kernel/cap_last_cap`) can be applied.

use std::io;

fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> io::Result<()> {
    // SAFETY: PR_CAPBSET_DROP and PR_CAP_AMBIENT take integers only (no pointer), and the
    // unused trailing arguments must be zero, as passed.
    let r = unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Removes capability `cap` from the calling thread's bounding set (needs CAP_SETPCAP).
pub fn drop_from_bounding_set(cap: u32) -> io::Result<()> {
    prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0)
}

/// Whether capability `cap` is in the calling thread's bounding set.
pub fn in_bounding_set(cap: u32) -> io::Result<bool> {
    // SAFETY: PR_CAPBSET_READ takes an integer and returns 0 or 1; the rest must be zero.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAPBSET_READ,
            libc::c_ulong::from(cap),
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    match r {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Empties the calling thread's ambient set.
pub fn clear_ambient() -> io::Result<()> {
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
    )
}

/// Raises capability `cap` in the calling thread's ambient set (it must be permitted and
/// inheritable already), so that it survives an exec by a non-root user.
pub fn raise_ambient(cap: u32) -> io::Result<()> {
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
        libc::c_ulong::from(cap),
    )
}
