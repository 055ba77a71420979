/*
 * probe: makes, from inside a jail, the system calls a shell cannot, and prints what each
 * returned. Built static (`cc -static -O2 -Wall probe.c`) so it runs in any jail root.
 *
 *   probe COMMAND [ARGS]
 *
 * prints one line per check, `CHECK RESULT [DETAIL]`: RESULT is `ok` or the errno's name
 * (EPERM, ENOSYS...), or `SIGNAME` when the call killed the process running it. The probe
 * judges nothing: the tests hold the expectations. It exits 0 unless the usage is wrong (2).
 *
 * Commands:
 *   syscalls          each call of the default seccomp policy, with arguments that are harmless
 *                     as root and, where possible, fail otherwise than with EPERM without the
 *                     filter; each runs in a child of its own, so no call changes the next
 *   i386, x32         getpid and mount through the i386 (`int 0x80`) and x32 entries
 *   mknod PATH        a character device 1:3 (removed again if made)
 *   ptrace PID        PTRACE_ATTACH, then open /proc/PID/mem read-write
 *   setns PATH        join the namespace of the file at PATH
 *   sethostname NAME
 *   tiocsti           TIOCSTI, TIOCLINUX and TIOCSTI with bit 32 set, on stdin
 *   fds               every open descriptor: number, kind, link target
 *   statvfs PATH...   the mount flags rdonly, nosuid, nodev, noexec of each PATH
 *   wx                writable-and-executable memory in its four forms, and plain mappings
 *   shm-create KEY    a System V segment (IPC_CREAT, 0600): its id
 *   shm-get KEY       an existing segment's id
 *   connect-abstract NAME, connect-tcp IP PORT
 *   nofile            open /dev/null until it fails: the errno and the count
 *   caps              the effective, permitted, inheritable, bounding and ambient sets
 *   write PATH        open PATH O_WRONLY|O_CREAT, mode 0600
 *   exe-write         open /proc/PID/exe O_WRONLY for each process in /proc
 *   getcwd
 *   unshare FLAG      FLAG: user ns net pid ipc uts cgroup time files fs
 *   mount-tmpfs PATH  (unmounted again if mounted)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/quota.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_open_tree_attr
#define SYS_open_tree_attr 467 /* Linux 6.15, newer than Debian 12's headers */
#endif
#ifndef SYS_lookup_dcookie
#define SYS_lookup_dcookie 212
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#define X32_SYSCALL_BIT 0x40000000L
#define NOWHERE "/nonexistent-liege-probe"

/* ---- reporting ---- */

static const char *errname(int err) {
    static char unknown[16];
    const char *name = strerrorname_np(err);
    if (name != NULL)
        return name;
    snprintf(unknown, sizeof unknown, "E%d", err);
    return unknown;
}

/* One line: CHECK RESULT [DETAIL]; err 0 is `ok`. */
static void report(const char *check, int err, const char *detail) {
    printf("%s %s%s%s\n", check, err == 0 ? "ok" : errname(err), detail ? " " : "",
           detail ? detail : "");
    fflush(stdout);
}

/* 0, or errno, for a call that returns -1 and sets errno on failure. */
static int rc(long ret) { return ret == -1 ? errno : 0; }

/* Runs `check` in a child of its own and reports what it returned (0 or an errno), or the
 * signal that killed it: a call that changes the process (unshare, personality, setns) then
 * leaves the next check as it found it. */
static void isolated(const char *name, int (*check)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        report(name, errno, "(fork failed)");
        return;
    }
    if (pid == 0)
        _exit(check() & 0xff);
    int status;
    if (waitpid(pid, &status, __WALL) < 0) {
        report(name, errno, "(waitpid failed)");
    } else if (WIFSIGNALED(status)) {
        const char *sig = sigabbrev_np(WTERMSIG(status));
        printf("%s SIG%s\n", name, sig ? sig : "?");
        fflush(stdout);
    } else {
        report(name, WEXITSTATUS(status), NULL);
    }
}

/* ---- `syscalls`: one function per check ---- */

/* mounting */
static int c_mount(void) { return rc(mount("none", NOWHERE, "tmpfs", 0, NULL)); }
static int c_umount2(void) { return rc(umount2(NOWHERE, 0)); }
static int c_pivot_root(void) { return rc(syscall(SYS_pivot_root, NOWHERE, NOWHERE)); }
static int c_fsopen(void) { return rc(syscall(SYS_fsopen, "liege-probe-nofs", 0)); }
static int c_fsconfig(void) { return rc(syscall(SYS_fsconfig, -1, 0, "ro", NULL, 0)); }
static int c_fsmount(void) { return rc(syscall(SYS_fsmount, -1, 0, 0)); }
static int c_fspick(void) { return rc(syscall(SYS_fspick, AT_FDCWD, NOWHERE, 0)); }
static int c_move_mount(void) {
    return rc(syscall(SYS_move_mount, AT_FDCWD, NOWHERE, AT_FDCWD, NOWHERE, 0));
}
static int c_open_tree(void) { return rc(syscall(SYS_open_tree, AT_FDCWD, NOWHERE, 0)); }
static int c_open_tree_attr(void) {
    return rc(syscall(SYS_open_tree_attr, AT_FDCWD, NOWHERE, 0, NULL, 0));
}
static int c_mount_setattr(void) {
    uint64_t attr[4] = {0}; /* struct mount_attr: set, clr, propagation, userns_fd */
    return rc(syscall(SYS_mount_setattr, AT_FDCWD, NOWHERE, 0, attr, sizeof attr));
}

/* namespaces */
static int c_unshare_user(void) { return rc(unshare(CLONE_NEWUSER)); }
static int c_unshare_ns(void) { return rc(unshare(CLONE_NEWNS)); }
static int c_unshare_net(void) { return rc(unshare(CLONE_NEWNET)); }
static int c_unshare_pid(void) { return rc(unshare(CLONE_NEWPID)); }
static int c_unshare_ipc(void) { return rc(unshare(CLONE_NEWIPC)); }
static int c_unshare_uts(void) { return rc(unshare(CLONE_NEWUTS)); }
static int c_unshare_cgroup(void) { return rc(unshare(CLONE_NEWCGROUP)); }
static int c_unshare_time(void) { return rc(unshare(CLONE_NEWTIME)); }
static int c_unshare_files(void) { return rc(unshare(CLONE_FILES)); }
static int c_unshare_fs(void) { return rc(unshare(CLONE_FS)); }
static int c_setns(void) {
    int fd = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    return rc(setns(fd, CLONE_NEWUTS));
}

/* A raw clone(flags | SIGCHLD) whose child exits at once; 0 once it is reaped, or errno. */
static int clone_flags(unsigned long flags) {
    long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        syscall(SYS_exit, 0);
    if (pid < 0)
        return errno;
    waitpid((pid_t)pid, NULL, 0);
    return 0;
}
static int c_clone_plain(void) { return clone_flags(0); }
static int c_clone_user(void) { return clone_flags(CLONE_NEWUSER); }
static int c_clone_ns(void) { return clone_flags(CLONE_NEWNS); }
static int c_clone_pid(void) { return clone_flags(CLONE_NEWPID); }
static int c_clone_net(void) { return clone_flags(CLONE_NEWNET); }
static int c_clone_user_high(void) { return clone_flags((1UL << 32) | CLONE_NEWUSER); }

/* clone3 with `flags` (0: the empty clone_args); its child exits at once. */
static int clone3_flags(uint64_t flags) {
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = flags;
    args.exit_signal = SIGCHLD;
    long pid = syscall(SYS_clone3, &args, CLONE_ARGS_SIZE_VER0);
    if (pid == 0)
        syscall(SYS_exit, 0);
    if (pid < 0)
        return errno;
    waitpid((pid_t)pid, NULL, 0);
    return 0;
}
static int c_clone3(void) { return clone3_flags(0); }
static int c_clone3_user(void) { return clone3_flags(CLONE_NEWUSER); }

/* other processes' memory */
static int c_ptrace(void) { return rc(syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0)); }
static char vm_buffer[16] = "liege-probe";
static int c_process_vm_readv(void) {
    char copy[16];
    struct iovec local = {copy, sizeof copy}, remote = {vm_buffer, sizeof vm_buffer};
    return rc(process_vm_readv(getpid(), &local, 1, &remote, 1, 0));
}
static int c_process_vm_writev(void) {
    char copy[16] = "liege-probe";
    struct iovec local = {copy, sizeof copy}, remote = {vm_buffer, sizeof vm_buffer};
    return rc(process_vm_writev(getpid(), &local, 1, &remote, 1, 0));
}

/* the kernel itself (invalid arguments: nothing is loaded or run) */
static int c_kexec_load(void) { return rc(syscall(SYS_kexec_load, 0, 0, NULL, 0xdead0000UL)); }
static int c_kexec_file_load(void) {
    return rc(syscall(SYS_kexec_file_load, -1, -1, 0, NULL, 0xdead0000UL));
}
static int c_init_module(void) { return rc(syscall(SYS_init_module, NULL, 0, "")); }
static int c_finit_module(void) { return rc(syscall(SYS_finit_module, -1, "", 0)); }
static int c_delete_module(void) {
    return rc(syscall(SYS_delete_module, "liege_probe_none", O_NONBLOCK));
}
static int c_bpf(void) { return rc(syscall(SYS_bpf, 0xffff, NULL, 0)); }
static int c_perf_event_open(void) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = 0xfffff; /* no such PMU */
    return rc(syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
}

/* keys, handles, userfaultfd */
static int c_keyctl(void) { return rc(syscall(SYS_keyctl, 0xffff, 0, 0, 0, 0)); }
static int c_add_key(void) {
    return rc(syscall(SYS_add_key, "liege_probe_none", "probe", NULL, 0, -2 /* process */));
}
static int c_request_key(void) {
    return rc(syscall(SYS_request_key, "liege_probe_none", "probe", NULL, 0));
}
static int c_open_by_handle_at(void) {
    struct {
        unsigned int handle_bytes;
        int handle_type;
        unsigned char handle[8];
    } fh = {0, 0, {0}};
    return rc(syscall(SYS_open_by_handle_at, AT_FDCWD, &fh, O_RDONLY));
}
static int c_userfaultfd(void) { return rc(syscall(SYS_userfaultfd, O_CLOEXEC)); }

/* host administration (harmless arguments) */
static int c_swapon(void) { return rc(swapon(NOWHERE, 0)); }
static int c_swapoff(void) { return rc(swapoff(NOWHERE)); }
static int c_reboot(void) { return rc(syscall(SYS_reboot, 0, 0, 0, NULL)); /* bad magic */ }
static int c_acct(void) { return rc(acct(NOWHERE)); }
static int c_quotactl(void) {
    char buf[128];
    return rc(quotactl(QCMD(Q_GETQUOTA, USRQUOTA), NOWHERE, 0, buf));
}
static int c_quotactl_fd(void) {
    return rc(syscall(SYS_quotactl_fd, -1, QCMD(Q_GETQUOTA, USRQUOTA), 0, NULL));
}
static int c_settimeofday(void) { return rc(syscall(SYS_settimeofday, NULL, NULL)); }
static int c_clock_settime(void) {
    struct timespec ts = {1, 0};
    return rc(clock_settime(CLOCK_MONOTONIC, &ts)); /* EINVAL: not settable */
}
static int c_clock_adjtime(void) {
    struct timex tx;
    memset(&tx, 0, sizeof tx); /* modes 0: read only */
    return rc(syscall(SYS_clock_adjtime, CLOCK_REALTIME, &tx));
}
static int c_adjtimex(void) {
    struct timex tx;
    memset(&tx, 0, sizeof tx);
    return rc(adjtimex(&tx));
}
static int c_iopl(void) { return rc(syscall(SYS_iopl, 0)); }
static int c_ioperm(void) { return rc(syscall(SYS_ioperm, 0, 0, 0)); }
static int c_syslog(void) { return rc(syscall(SYS_syslog, 10 /* SIZE_BUFFER */, NULL, 0)); }
static int c_lookup_dcookie(void) { return rc(syscall(SYS_lookup_dcookie, 0, NULL, 0)); }

/* io_uring */
static int c_io_uring_setup(void) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    return rc(syscall(SYS_io_uring_setup, 1, &p));
}
static int c_io_uring_enter(void) { return rc(syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0)); }
static int c_io_uring_register(void) {
    return rc(syscall(SYS_io_uring_register, -1, 0, NULL, 0));
}

/* personality, through the raw call so the upper half of the register is ours */
static int c_personality_query(void) { return rc(syscall(SYS_personality, 0xffffffffUL)); }
static int c_personality_linux(void) { return rc(syscall(SYS_personality, PER_LINUX)); }
static int c_personality_norandom(void) {
    return rc(syscall(SYS_personality, ADDR_NO_RANDOMIZE));
}
static int c_personality_high(void) {
    return rc(syscall(SYS_personality, (1UL << 32) | ADDR_NO_RANDOMIZE));
}

/* sockets */
static int sock(long domain, long type, long protocol) {
    return rc(syscall(SYS_socket, domain, type, protocol));
}
static int c_socket_packet(void) { return sock(AF_PACKET, SOCK_RAW, 0); }
static int c_socket_packet_high(void) { return sock((1L << 32) | AF_PACKET, SOCK_RAW, 0); }
static int c_socket_inet_packet(void) { return sock(AF_INET, SOCK_PACKET, htons(3)); }
static int c_socket_inet_raw(void) { return sock(AF_INET, SOCK_RAW, IPPROTO_ICMP); }
static int c_socket_inet_raw_flags(void) {
    return sock(AF_INET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_ICMP);
}
static int c_socket_inet6_raw(void) { return sock(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6); }
static int c_socket_netlink_audit(void) { return sock(AF_NETLINK, SOCK_RAW, 9); }
static int c_socket_netlink_uevent(void) { return sock(AF_NETLINK, SOCK_DGRAM, 15); }
static int c_socket_netlink_route(void) { return sock(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0); }
static int c_socket_inet_stream(void) { return sock(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); }
static int c_socket_inet_dgram(void) { return sock(AF_INET, SOCK_DGRAM, 0); }
static int c_socket_unix(void) { return sock(AF_UNIX, SOCK_STREAM, 0); }

/* terminal ioctls, on a pty master of our own (stdin if /dev/ptmx cannot be opened) */
static int tty_fd(void) {
    int fd = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    return fd < 0 ? 0 : fd;
}
static int c_ioctl_tiocsti(void) {
    char c = 'x';
    return rc(ioctl(tty_fd(), TIOCSTI, &c));
}
static int c_ioctl_tiocsti_high(void) {
    char c = 'x';
    return rc(syscall(SYS_ioctl, tty_fd(), (1UL << 32) | TIOCSTI, &c));
}
static int c_ioctl_tioclinux(void) {
    char subcode = 7; /* TIOCL_GETSHIFTSTATE */
    return rc(ioctl(tty_fd(), TIOCLINUX, &subcode));
}
static int c_ioctl_tiocgwinsz(void) {
    struct winsize ws;
    return rc(ioctl(tty_fd(), TIOCGWINSZ, &ws));
}

/* what must keep working */
static int c_getpid(void) { return rc(syscall(SYS_getpid)); }
static int c_open(void) { return rc(open("/dev/null", O_RDONLY | O_CLOEXEC)); }
static int c_fork(void) {
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid < 0)
        return errno;
    waitpid(pid, NULL, 0);
    return 0;
}

struct check {
    const char *name;
    int (*run)(void);
};

static const struct check syscall_checks[] = {
    {"mount", c_mount},
    {"umount2", c_umount2},
    {"pivot_root", c_pivot_root},
    {"fsopen", c_fsopen},
    {"fsconfig", c_fsconfig},
    {"fsmount", c_fsmount},
    {"fspick", c_fspick},
    {"move_mount", c_move_mount},
    {"open_tree", c_open_tree},
    {"open_tree_attr", c_open_tree_attr},
    {"mount_setattr", c_mount_setattr},
    {"unshare:user", c_unshare_user},
    {"unshare:ns", c_unshare_ns},
    {"unshare:net", c_unshare_net},
    {"unshare:pid", c_unshare_pid},
    {"unshare:ipc", c_unshare_ipc},
    {"unshare:uts", c_unshare_uts},
    {"unshare:cgroup", c_unshare_cgroup},
    {"unshare:time", c_unshare_time},
    {"unshare:files", c_unshare_files},
    {"unshare:fs", c_unshare_fs},
    {"setns", c_setns},
    {"clone:plain", c_clone_plain},
    {"clone:user", c_clone_user},
    {"clone:ns", c_clone_ns},
    {"clone:pid", c_clone_pid},
    {"clone:net", c_clone_net},
    {"clone:user-high", c_clone_user_high},
    {"clone3", c_clone3},
    {"clone3:user", c_clone3_user},
    {"ptrace", c_ptrace},
    {"process_vm_readv", c_process_vm_readv},
    {"process_vm_writev", c_process_vm_writev},
    {"kexec_load", c_kexec_load},
    {"kexec_file_load", c_kexec_file_load},
    {"init_module", c_init_module},
    {"finit_module", c_finit_module},
    {"delete_module", c_delete_module},
    {"bpf", c_bpf},
    {"perf_event_open", c_perf_event_open},
    {"keyctl", c_keyctl},
    {"add_key", c_add_key},
    {"request_key", c_request_key},
    {"open_by_handle_at", c_open_by_handle_at},
    {"userfaultfd", c_userfaultfd},
    {"swapon", c_swapon},
    {"swapoff", c_swapoff},
    {"reboot", c_reboot},
    {"acct", c_acct},
    {"quotactl", c_quotactl},
    {"quotactl_fd", c_quotactl_fd},
    {"settimeofday", c_settimeofday},
    {"clock_settime", c_clock_settime},
    {"clock_adjtime", c_clock_adjtime},
    {"adjtimex", c_adjtimex},
    {"iopl", c_iopl},
    {"ioperm", c_ioperm},
    {"syslog", c_syslog},
    {"lookup_dcookie", c_lookup_dcookie},
    {"io_uring_setup", c_io_uring_setup},
    {"io_uring_enter", c_io_uring_enter},
    {"io_uring_register", c_io_uring_register},
    {"personality:query", c_personality_query},
    {"personality:linux", c_personality_linux},
    {"personality:no-randomize", c_personality_norandom},
    {"personality:high", c_personality_high},
    {"socket:packet", c_socket_packet},
    {"socket:packet-high", c_socket_packet_high},
    {"socket:inet-packet", c_socket_inet_packet},
    {"socket:inet-raw", c_socket_inet_raw},
    {"socket:inet-raw-flags", c_socket_inet_raw_flags},
    {"socket:inet6-raw", c_socket_inet6_raw},
    {"socket:netlink-audit", c_socket_netlink_audit},
    {"socket:netlink-uevent", c_socket_netlink_uevent},
    {"socket:netlink-route", c_socket_netlink_route},
    {"socket:inet-stream", c_socket_inet_stream},
    {"socket:inet-dgram", c_socket_inet_dgram},
    {"socket:unix", c_socket_unix},
    {"ioctl:tiocsti", c_ioctl_tiocsti},
    {"ioctl:tiocsti-high", c_ioctl_tiocsti_high},
    {"ioctl:tioclinux", c_ioctl_tioclinux},
    {"ioctl:tiocgwinsz", c_ioctl_tiocgwinsz},
    {"getpid", c_getpid},
    {"open", c_open},
    {"fork", c_fork},
};

static void cmd_syscalls(void) {
    for (size_t i = 0; i < sizeof syscall_checks / sizeof syscall_checks[0]; i++)
        isolated(syscall_checks[i].name, syscall_checks[i].run);
}

/* ---- other ABIs ---- */

/* A call through the i386 entry (`int 0x80`), whose arguments are 32-bit: pointers must lie
 * below 4 GiB. Returns the raw result (-errno on failure). */
static long int80(long nr, long a, long b, long c, long d, long e) {
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
                     : "memory", "r8", "r9", "r10", "r11");
    return ret;
}

static void report_raw(const char *check, long ret) {
    char detail[32];
    if (ret < 0 && ret > -4096) {
        report(check, (int)-ret, NULL);
    } else {
        snprintf(detail, sizeof detail, "%ld", ret);
        report(check, 0, detail);
    }
}

static int i386_getpid(void) {
    long ret = int80(20, 0, 0, 0, 0, 0);
    return ret < 0 && ret > -4096 ? (int)-ret : 0;
}
static int i386_mount(void) {
    /* The strings copied below 4 GiB, where 32-bit pointers reach. */
    char *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT,
                     -1, 0);
    if (low == MAP_FAILED)
        return errno;
    strcpy(low, "none");
    strcpy(low + 16, NOWHERE);
    strcpy(low + 64, "tmpfs");
    long ret = int80(21, (long)(uintptr_t)low, (long)(uintptr_t)(low + 16),
                     (long)(uintptr_t)(low + 64), 0, 0);
    return ret < 0 && ret > -4096 ? (int)-ret : 0;
}

static void cmd_i386(void) {
    isolated("i386:getpid", i386_getpid);
    isolated("i386:mount", i386_mount);
}

static void cmd_x32(void) {
    long ret = syscall(X32_SYSCALL_BIT | SYS_getpid);
    report_raw("x32:getpid", ret < 0 ? -errno : ret);
    ret = syscall(X32_SYSCALL_BIT | SYS_mount, "none", NOWHERE, "tmpfs", 0, NULL);
    report_raw("x32:mount", ret < 0 ? -errno : ret);
}

/* ---- the single checks ---- */

static void cmd_mknod(const char *path) {
    int err = rc(mknod(path, S_IFCHR | 0600, makedev(1, 3)));
    report("mknod", err, path);
    if (err == 0)
        unlink(path);
}

static void cmd_ptrace(const char *pid_text) {
    pid_t pid = (pid_t)strtol(pid_text, NULL, 10);
    int err = rc(ptrace(PTRACE_ATTACH, pid, NULL, NULL));
    report("ptrace-attach", err, pid_text);
    if (err == 0)
        waitpid(pid, NULL, __WALL);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    report("proc-mem", fd < 0 ? errno : 0, path);
    if (fd >= 0)
        close(fd);
    if (err == 0)
        ptrace(PTRACE_DETACH, pid, NULL, NULL);
}

static void cmd_setns(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        report("setns", errno, "(open)");
        return;
    }
    report("setns", rc(setns(fd, 0)), path);
}

static void cmd_sethostname(const char *name) {
    report("sethostname", rc(sethostname(name, strlen(name))), name);
}

static void cmd_tiocsti(void) {
    char c = 'x', subcode = 7;
    report("tiocsti", rc(ioctl(0, TIOCSTI, &c)), NULL);
    report("tioclinux", rc(ioctl(0, TIOCLINUX, &subcode)), NULL);
    report("tiocsti-high", rc(syscall(SYS_ioctl, 0, (1UL << 32) | TIOCSTI, &c)), NULL);
}

static const char *kind(mode_t mode) {
    switch (mode & S_IFMT) {
    case S_IFDIR: return "dir";
    case S_IFREG: return "reg";
    case S_IFSOCK: return "sock";
    case S_IFIFO: return "fifo";
    case S_IFCHR: return "chr";
    case S_IFBLK: return "blk";
    case S_IFLNK: return "lnk";
    default: return "anon";
    }
}

static void cmd_fds(void) {
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL) {
        report("fds", errno, NULL);
        return;
    }
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        int fd = atoi(entry->d_name);
        if (fd == dirfd(dir))
            continue;
        char check[32], link[256], target[4096], detail[4400];
        struct stat st;
        snprintf(check, sizeof check, "fd:%d", fd);
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        target[n < 0 ? 0 : n] = '\0';
        if (fstat(fd, &st) < 0) {
            report(check, errno, target);
            continue;
        }
        snprintf(detail, sizeof detail, "%s %s", kind(st.st_mode), target);
        report(check, 0, detail);
    }
    closedir(dir);
}

static void cmd_statvfs(int n, char **paths) {
    for (int i = 0; i < n; i++) {
        char check[4200], flags[64] = "";
        struct statvfs st;
        snprintf(check, sizeof check, "statvfs:%s", paths[i]);
        if (statvfs(paths[i], &st) < 0) {
            report(check, errno, NULL);
            continue;
        }
        static const struct {
            unsigned long bit;
            const char *name;
        } names[] = {{ST_RDONLY, "rdonly"}, {ST_NOSUID, "nosuid"}, {ST_NODEV, "nodev"},
                     {ST_NOEXEC, "noexec"}};
        for (size_t j = 0; j < sizeof names / sizeof names[0]; j++) {
            if (st.f_flag & names[j].bit) {
                if (flags[0] != '\0')
                    strcat(flags, ",");
                strcat(flags, names[j].name);
            }
        }
        report(check, 0, flags[0] ? flags : "-");
    }
}

static int map(int prot) {
    void *p = mmap(NULL, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return errno;
    munmap(p, 4096);
    return 0;
}

static void cmd_wx(void) {
    report("mmap-rw", map(PROT_READ | PROT_WRITE), NULL);
    report("mmap-rx", map(PROT_READ | PROT_EXEC), NULL);
    report("mmap-rwx", map(PROT_READ | PROT_WRITE | PROT_EXEC), NULL);
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        report("mprotect-rx", errno, "(mmap)");
    } else {
        report("mprotect-rx", rc(mprotect(p, 4096, PROT_READ | PROT_EXEC)), NULL);
        report("pkey_mprotect-rx", rc(syscall(SYS_pkey_mprotect, p, 4096, PROT_READ | PROT_EXEC, -1)),
               NULL);
        munmap(p, 4096);
    }
    int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    if (id < 0) {
        report("shmat-exec", errno, "(shmget)");
        return;
    }
    void *shm = shmat(id, NULL, SHM_EXEC);
    report("shmat-exec", shm == (void *)-1 ? errno : 0, NULL);
    if (shm != (void *)-1)
        shmdt(shm);
    shmctl(id, IPC_RMID, NULL);
}

static void cmd_shm(const char *check, const char *key_text, int create) {
    key_t key = (key_t)strtol(key_text, NULL, 0);
    int id = create ? shmget(key, 4096, IPC_CREAT | 0600) : shmget(key, 0, 0);
    char detail[32];
    snprintf(detail, sizeof detail, "%d", id);
    report(check, id < 0 ? errno : 0, id < 0 ? NULL : detail);
}

static void cmd_connect_abstract(const char *name) {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    size_t len = strlen(name);
    if (len > sizeof addr.sun_path - 1)
        len = sizeof addr.sun_path - 1;
    memcpy(addr.sun_path + 1, name, len);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        report("connect-abstract", errno, "(socket)");
        return;
    }
    socklen_t size = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
    report("connect-abstract", rc(connect(fd, (struct sockaddr *)&addr, size)), name);
    close(fd);
}

/* A non-blocking connect given 5 seconds: a dropped SYN reports ETIMEDOUT. */
static void cmd_connect_tcp(const char *ip, const char *port_text) {
    struct sockaddr_storage ss;
    socklen_t size;
    memset(&ss, 0, sizeof ss);
    uint16_t port = htons((uint16_t)atoi(port_text));
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = port;
        size = sizeof *in4;
    } else if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = port;
        size = sizeof *in6;
    } else {
        report("connect-tcp", EINVAL, "(address)");
        return;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        report("connect-tcp", errno, "(socket)");
        return;
    }
    int err = rc(connect(fd, (struct sockaddr *)&ss, size));
    if (err == EINPROGRESS) {
        struct pollfd p = {fd, POLLOUT, 0};
        int n = poll(&p, 1, 5000);
        if (n == 0) {
            err = ETIMEDOUT;
        } else if (n < 0) {
            err = errno;
        } else {
            socklen_t len = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        }
    }
    report("connect-tcp", err, NULL);
    close(fd);
}

static void cmd_nofile(void) {
    int count = 0, err = 0;
    for (;;) {
        if (open("/dev/null", O_RDONLY | O_CLOEXEC) < 0) {
            err = errno;
            break;
        }
        count++;
        if (count > 1 << 20) /* no limit worth the name */
            break;
    }
    char detail[32];
    snprintf(detail, sizeof detail, "%d", count);
    printf("nofile %s %s\n", err ? errname(err) : "unlimited", detail);
    fflush(stdout);
}

static void cmd_caps(void) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &header, data) < 0) {
        report("caps", errno, NULL);
        return;
    }
    uint64_t eff = (uint64_t)data[1].effective << 32 | data[0].effective;
    uint64_t prm = (uint64_t)data[1].permitted << 32 | data[0].permitted;
    uint64_t inh = (uint64_t)data[1].inheritable << 32 | data[0].inheritable;
    uint64_t bnd = 0, amb = 0;
    for (int cap = 0; cap < 64; cap++) {
        int in_bounding = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (in_bounding < 0)
            break; /* past the last capability */
        if (in_bounding)
            bnd |= 1ULL << cap;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1)
            amb |= 1ULL << cap;
    }
    const struct {
        const char *name;
        uint64_t set;
    } sets[] = {{"cap:eff", eff}, {"cap:prm", prm}, {"cap:inh", inh}, {"cap:bnd", bnd},
                {"cap:amb", amb}};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        char hex[20];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)sets[i].set);
        report(sets[i].name, 0, hex);
    }
}

static void cmd_write(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    report("write", fd < 0 ? errno : 0, path);
    if (fd >= 0)
        close(fd);
}

static void cmd_exe_write(void) {
    DIR *dir = opendir("/proc");
    if (dir == NULL) {
        report("exe-write", errno, NULL);
        return;
    }
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] < '1' || entry->d_name[0] > '9')
            continue;
        char check[300], path[300];
        snprintf(check, sizeof check, "exe-write:%s", entry->d_name);
        snprintf(path, sizeof path, "/proc/%s/exe", entry->d_name);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        report(check, fd < 0 ? errno : 0, NULL);
        if (fd >= 0)
            close(fd);
    }
    closedir(dir);
}

static void cmd_getcwd(void) {
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) == NULL)
        report("getcwd", errno, NULL);
    else
        report("getcwd", 0, cwd);
}

static void cmd_unshare(const char *name) {
    static const struct {
        const char *name;
        int flag;
    } flags[] = {{"user", CLONE_NEWUSER}, {"ns", CLONE_NEWNS},         {"net", CLONE_NEWNET},
                 {"pid", CLONE_NEWPID},   {"ipc", CLONE_NEWIPC},       {"uts", CLONE_NEWUTS},
                 {"cgroup", CLONE_NEWCGROUP}, {"time", CLONE_NEWTIME}, {"files", CLONE_FILES},
                 {"fs", CLONE_FS}};
    char check[64];
    snprintf(check, sizeof check, "unshare:%s", name);
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        if (strcmp(flags[i].name, name) == 0) {
            report(check, rc(unshare(flags[i].flag)), NULL);
            return;
        }
    }
    report(check, EINVAL, "(unknown flag name)");
}

static void cmd_mount_tmpfs(const char *path) {
    int err = rc(mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=1m"));
    report("mount-tmpfs", err, path);
    if (err == 0)
        umount2(path, MNT_DETACH);
}

/* ---- the command table ---- */

static int usage(void) {
    fprintf(stderr, "usage: probe syscalls | i386 | x32 | mknod PATH | ptrace PID | setns PATH | "
                    "sethostname NAME | tiocsti | fds | statvfs PATH... | wx | shm-create KEY | "
                    "shm-get KEY | connect-abstract NAME | connect-tcp IP PORT | nofile | caps | "
                    "write PATH | exe-write | getcwd | unshare FLAG | mount-tmpfs PATH\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return usage();
    const char *cmd = argv[1];
    int nargs = argc - 2;
    char **args = argv + 2;
    if (strcmp(cmd, "syscalls") == 0 && nargs == 0)
        cmd_syscalls();
    else if (strcmp(cmd, "i386") == 0 && nargs == 0)
        cmd_i386();
    else if (strcmp(cmd, "x32") == 0 && nargs == 0)
        cmd_x32();
    else if (strcmp(cmd, "mknod") == 0 && nargs == 1)
        cmd_mknod(args[0]);
    else if (strcmp(cmd, "ptrace") == 0 && nargs == 1)
        cmd_ptrace(args[0]);
    else if (strcmp(cmd, "setns") == 0 && nargs == 1)
        cmd_setns(args[0]);
    else if (strcmp(cmd, "sethostname") == 0 && nargs == 1)
        cmd_sethostname(args[0]);
    else if (strcmp(cmd, "tiocsti") == 0 && nargs == 0)
        cmd_tiocsti();
    else if (strcmp(cmd, "fds") == 0 && nargs == 0)
        cmd_fds();
    else if (strcmp(cmd, "statvfs") == 0 && nargs >= 1)
        cmd_statvfs(nargs, args);
    else if (strcmp(cmd, "wx") == 0 && nargs == 0)
        cmd_wx();
    else if (strcmp(cmd, "shm-create") == 0 && nargs == 1)
        cmd_shm("shm-create", args[0], 1);
    else if (strcmp(cmd, "shm-get") == 0 && nargs == 1)
        cmd_shm("shm-get", args[0], 0);
    else if (strcmp(cmd, "connect-abstract") == 0 && nargs == 1)
        cmd_connect_abstract(args[0]);
    else if (strcmp(cmd, "connect-tcp") == 0 && nargs == 2)
        cmd_connect_tcp(args[0], args[1]);
    else if (strcmp(cmd, "nofile") == 0 && nargs == 0)
        cmd_nofile();
    else if (strcmp(cmd, "caps") == 0 && nargs == 0)
        cmd_caps();
    else if (strcmp(cmd, "write") == 0 && nargs == 1)
        cmd_write(args[0]);
    else if (strcmp(cmd, "exe-write") == 0 && nargs == 0)
        cmd_exe_write();
    else if (strcmp(cmd, "getcwd") == 0 && nargs == 0)
        cmd_getcwd();
    else if (strcmp(cmd, "unshare") == 0 && nargs == 1)
        cmd_unshare(args[0]);
    else if (strcmp(cmd, "mount-tmpfs") == 0 && nargs == 1)
        cmd_mount_tmpfs(args[0]);
    else
        return usage();
    return 0;
}
