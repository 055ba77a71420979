//! A worker executable's life: read the master's handoff (crate `liege_proto::handoff`), load
//! the app, then either serve (role `worker`) or, as a zygote (role `zygote`, prefork), fork a
//! worker each time the master asks.
//!
//! Signals: SIGHUP or SIGTERM stop a worker gracefully (no new connections; requests being
//! served finish; keep-alive connections close after their next response or once idle); SIGINT
//! and SIGQUIT keep their default action, ending the process at once.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use liege_proto::handoff::{self, Listener, Role, ZygoteReply, ZygoteRequest};
use liege_proto::scoreboard::{Scoreboard, State, WorkerField};
use liege_sys::fd::take_inherited;
use liege_sys::fork::{Forked, fork_sibling};
use liege_sys::shm::SharedWords;

use crate::app::Language;
use crate::event_loop::{Listening, Loop, Shared};
use crate::log;
use crate::settings::Settings;
use crate::static_files::StaticFiles;

/// Exit status of a worker whose app could not be loaded while `need-app` is set (uWSGI's 22).
pub const EXIT_NO_APP: u8 = 22;

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0} is not set: worker executables are started by `liege`, not by hand")]
    NoHandoff(&'static str),
    #[error("bad {var}: {message}")]
    BadHandoff { var: &'static str, message: String },
    #[error("inherited descriptor: {0}")]
    Inherit(#[from] liege_sys::fd::InheritError),
    #[error("cannot read the options list: {0}")]
    ReadOptions(std::io::Error),
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    #[error(transparent)]
    Static(#[from] crate::static_files::StaticError),
    #[error("scoreboard: {0}")]
    Scoreboard(String),
    #[error("socket {name}: {errno}")]
    Socket {
        name: String,
        errno: rustix::io::Errno,
    },
    #[error("cannot set up signals: {0}")]
    Signals(std::io::Error),
    #[error("event loop: {0}")]
    Loop(std::io::Error),
    #[error("zygote: {0}")]
    Zygote(String),
}

fn env(var: &'static str) -> Result<String, RuntimeError> {
    std::env::var(var).map_err(|_| RuntimeError::NoHandoff(var))
}

fn env_fd(var: &'static str) -> Result<OwnedFd, RuntimeError> {
    let n = env(var)?;
    let fd = n.parse().map_err(|_| RuntimeError::BadHandoff {
        var,
        message: format!("`{n}` is not a descriptor"),
    })?;
    Ok(take_inherited(fd)?)
}

/// The entry point of every language worker executable.
pub fn main<L: Language>(lang: L) -> ExitCode {
    // The master starts workers from a descriptor (`/proc/self/fd/N`), which would leave `N` as
    // the process's name in `ps` and /proc/PID/comm: name it for its language instead.
    if let Ok(name) = std::ffi::CString::new(format!("liege-{}", lang.name())) {
        let _ = rustix::thread::set_name(&name);
    }
    match run(&lang) {
        Ok(code) => code,
        Err(e) => {
            log::line(&format!("liege-{}: {e}", lang.name()));
            ExitCode::FAILURE
        }
    }
}

struct Handoff {
    options: Vec<(String, String)>,
    settings: Settings,
    listeners: Vec<Listening>,
    scoreboard: Option<SharedWords>,
}

fn read_handoff() -> Result<Handoff, RuntimeError> {
    let options_fd = env_fd(handoff::OPTIONS_FD)?;
    let file = std::fs::File::from(options_fd);
    let len = file.metadata().map_err(RuntimeError::ReadOptions)?.len();
    let mut bytes = vec![0; usize::try_from(len).unwrap_or(0)];
    // pread from 0: every worker shares this descriptor's file offset.
    file.read_exact_at(&mut bytes, 0)
        .map_err(RuntimeError::ReadOptions)?;
    let options = handoff::decode_options(&bytes).map_err(|e| RuntimeError::BadHandoff {
        var: handoff::OPTIONS_FD,
        message: e.to_string(),
    })?;
    let settings = Settings::from_options(&options)?;
    let sockets = env(handoff::SOCKETS)?;
    let decoded = handoff::decode_listeners(&sockets).map_err(|e| RuntimeError::BadHandoff {
        var: handoff::SOCKETS,
        message: e.to_string(),
    })?;
    let listeners = decoded
        .into_iter()
        .map(listening)
        .collect::<Result<Vec<_>, _>>()?;
    let scoreboard = match std::env::var(handoff::SCOREBOARD_FD) {
        Ok(_) => {
            let fd = env_fd(handoff::SCOREBOARD_FD)?;
            let size = rustix::fs::fstat(&fd)
                .map_err(|e| RuntimeError::Scoreboard(e.to_string()))?
                .st_size;
            let words = usize::try_from(size).unwrap_or(0) / 8;
            Some(
                SharedWords::map(&fd, words)
                    .map_err(|e| RuntimeError::Scoreboard(e.to_string()))?,
            )
        }
        Err(_) => None,
    };
    Ok(Handoff {
        options,
        settings,
        listeners,
        scoreboard,
    })
}

fn listening(l: Listener) -> Result<Listening, RuntimeError> {
    let fd = take_inherited(l.fd)?;
    rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::NONBLOCK).map_err(|errno| {
        RuntimeError::Socket {
            name: l.name.clone(),
            errno,
        }
    })?;
    let addr = rustix::net::getsockname(&fd).map_err(|errno| RuntimeError::Socket {
        name: l.name.clone(),
        errno,
    })?;
    let (server_name, server_port, tcp) = match std::net::SocketAddr::try_from(addr) {
        Ok(a) => (a.ip().to_string(), a.port().to_string(), true),
        Err(_) => (l.name.clone(), String::new(), false),
    };
    Ok(Listening {
        fd,
        proto: l.proto,
        server_name,
        server_port,
        tcp,
    })
}

fn run<L: Language>(lang: &L) -> Result<ExitCode, RuntimeError> {
    let role_text = env(handoff::ROLE)?;
    let role = Role::parse(&role_text).ok_or_else(|| RuntimeError::BadHandoff {
        var: handoff::ROLE,
        message: format!("unknown role `{role_text}`"),
    })?;
    let h = read_handoff()?;
    let statics = StaticFiles::new(&h.settings)?;
    match role {
        Role::Worker => {
            let id: usize =
                env(handoff::WORKER_ID)?
                    .parse()
                    .map_err(|_| RuntimeError::BadHandoff {
                        var: handoff::WORKER_ID,
                        message: "not a number".into(),
                    })?;
            mark(&h, id, State::Loading);
            let app = match loaded(lang, &h.options) {
                Ok(app) => Some(app),
                Err(e) => {
                    log::line(&format!(
                        "liege-{}: worker {id}: cannot load the app: {e}",
                        lang.name()
                    ));
                    if h.settings.need_app {
                        return Ok(ExitCode::from(EXIT_NO_APP));
                    }
                    log::line(
                        "liege: no app loaded: every request gets 500 (set `need-app` to stop instead)",
                    );
                    None
                }
            };
            serve(&h, &statics, app.as_ref(), id)
        }
        Role::Zygote => zygote(lang, &h, &statics),
    }
}

fn mark(h: &Handoff, id: usize, state: State) {
    if let Some(words) = &h.scoreboard
        && let Some((workers, cores)) = Scoreboard::shape(words.words())
        && let Ok(sb) = Scoreboard::new(words.words(), workers, cores)
        && id >= 1
        && id <= workers
    {
        let slot = sb.worker(id);
        slot.set(WorkerField::Pid, u64::from(std::process::id()));
        slot.set_state(state);
    }
}

/// Loads the app with SIGINT and SIGQUIT held, then puts them back to their default action
/// (ending the worker at once, as this module's doc says), whatever the interpreter installed
/// while loading; one sent during the load then ends the worker.
fn loaded<L: Language>(lang: &L, options: &[(String, String)]) -> Result<L::App, crate::LoadError> {
    liege_sys::exec::with_default_action_after(&[libc::SIGINT, libc::SIGQUIT], || {
        lang.load(options)
    })
}

/// Serves as worker `id` until told to stop; returns the exit status.
fn serve<A: crate::App>(
    h: &Handoff,
    statics: &StaticFiles,
    app: Option<&A>,
    id: usize,
) -> Result<ExitCode, RuntimeError> {
    let (stop_read, stop_write) = rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
    )
    .map_err(|e| RuntimeError::Signals(e.into()))?;
    let stop_write_std = std::os::unix::net::UnixStream::from(stop_write);
    for sig in [signal_hook::consts::SIGHUP, signal_hook::consts::SIGTERM] {
        signal_hook::low_level::pipe::register(
            sig,
            stop_write_std.try_clone().map_err(RuntimeError::Signals)?,
        )
        .map_err(RuntimeError::Signals)?;
    }
    let sb = match &h.scoreboard {
        Some(words) => {
            let (workers, cores) = Scoreboard::shape(words.words())
                .ok_or_else(|| RuntimeError::Scoreboard("no scoreboard header".into()))?;
            if id == 0 || id > workers || cores < h.settings.threads {
                return Err(RuntimeError::Scoreboard(format!(
                    "worker {id} with {} threads does not fit {workers} workers of {cores} cores",
                    h.settings.threads
                )));
            }
            Some(
                Scoreboard::new(words.words(), workers, cores)
                    .map_err(|e| RuntimeError::Scoreboard(e.to_string()))?,
            )
        }
        None => None,
    };
    let slot = sb.as_ref().map(|s| s.worker(id));
    let max_requests = match h.settings.max_requests {
        0 => 0,
        n => {
            let delta = h.settings.max_requests_delta.unwrap_or(n / 10);
            n + jitter(delta)
        }
    };
    let stopping = AtomicBool::new(false);
    let shared = Shared {
        app,
        settings: &h.settings,
        statics,
        listeners: &h.listeners,
        slot,
        board: sb,
        worker_id: id,
        stop_pipe: stop_read.as_fd(),
        stopping: &stopping,
        max_requests,
        pid: std::process::id(),
    };
    if let Some(slot) = slot {
        slot.set(WorkerField::Pid, u64::from(std::process::id()));
        slot.set_state(State::Accepting);
    }
    let result = run_cores(h.settings.threads, &stopping, |core| {
        Loop::new(&shared, core).and_then(Loop::run)
    });
    drop(stop_write_std);
    result.map_err(RuntimeError::Loop)?;
    Ok(ExitCode::SUCCESS)
}

/// Tells the other cores to stop when dropped unless disarmed: when a core's loop failed or
/// panicked.
struct StopOthers<'a>(&'a AtomicBool, bool);

impl Drop for StopOthers<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Runs `run_one(core)` for each core (interpreter thread) `0..threads`, core 0 on this thread,
/// and returns the first error. A core that fails or panics tells the others to stop (as a
/// graceful stop), so the worker exits and the master starts another: without this, the others
/// served on and this thread waited for them forever.
fn run_cores(
    threads: usize,
    stopping: &AtomicBool,
    run_one: impl Fn(usize) -> std::io::Result<()> + Sync,
) -> std::io::Result<()> {
    let run_one = |core| {
        let mut guard = StopOthers(stopping, false);
        let result = run_one(core);
        guard.1 = result.is_ok();
        result
    };
    std::thread::scope(|scope| {
        let run_one = &run_one;
        let handles: Vec<_> = (1..threads)
            .map(|core| scope.spawn(move || run_one(core)))
            .collect();
        let mut result = run_one(0);
        for handle in handles {
            match handle.join() {
                Ok(r) => result = result.and(r),
                Err(_) => result = Err(std::io::Error::other("an interpreter thread panicked")),
            }
        }
        result
    })
}

/// A number in `0..=max`, different per process (`max-requests` jitter).
fn jitter(max: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    let t = crate::event_loop::monotonic_micros();
    let mixed =
        (t ^ u64::from(std::process::id()).rotate_left(17)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> 11) % (max + 1)
}

/// Prefork: the app is loaded here once; each worker is forked from this process (as a child of
/// the master) when the master asks. This process stays single-threaded: no event loop and no
/// thread starts before a fork.
fn zygote<L: Language>(
    lang: &L,
    h: &Handoff,
    statics: &StaticFiles,
) -> Result<ExitCode, RuntimeError> {
    let ctl = env_fd(handoff::ZYGOTE_FD)?;
    let app = match loaded(lang, &h.options) {
        Ok(app) => Some(app),
        Err(e) => {
            log::line(&format!(
                "liege-{}: zygote: cannot load the app: {e}",
                lang.name()
            ));
            if h.settings.need_app {
                return Ok(ExitCode::from(EXIT_NO_APP));
            }
            None
        }
    };
    let mut buf = [0u8; 256];
    loop {
        let n = match rustix::net::recv(&ctl, &mut buf, rustix::net::RecvFlags::empty()) {
            Ok((0, _)) => return Ok(ExitCode::SUCCESS),
            Ok((n, _)) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(RuntimeError::Zygote(e.to_string())),
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let request =
            ZygoteRequest::decode(&text).map_err(|e| RuntimeError::Zygote(e.to_string()))?;
        let ZygoteRequest::Spawn { id } = request;
        let reply = match fork_sibling() {
            Ok(Forked::Child) => {
                lang.after_fork_child();
                drop(ctl);
                let worker = usize::try_from(id).unwrap_or(0);
                let code = match serve(h, statics, app.as_ref(), worker) {
                    Ok(_) => 0,
                    Err(e) => {
                        log::line(&format!("liege-{}: worker {id}: {e}", lang.name()));
                        1
                    }
                };
                #[allow(
                    clippy::exit,
                    reason = "a forked worker ends here, never returning into the zygote's loop"
                )]
                std::process::exit(code);
            }
            Ok(Forked::Parent(pid)) => ZygoteReply::Spawned { id, pid },
            Err(e) => ZygoteReply::Failed {
                id,
                reason: e.to_string(),
            },
        };
        rustix::net::send(
            &ctl,
            reply.encode().as_bytes(),
            rustix::net::SendFlags::empty(),
        )
        .map_err(|e| RuntimeError::Zygote(e.to_string()))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A core that serves until told to stop (or fails after 20 seconds, so a test never hangs).
    fn until_stopped(stopping: &AtomicBool) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !stopping.load(Ordering::Relaxed) {
            if Instant::now() > deadline {
                return Err(std::io::Error::other("never told to stop"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    #[test]
    fn a_core_that_fails_stops_the_others() {
        for failing in [0, 2] {
            let stopping = AtomicBool::new(false);
            let stopped = std::sync::atomic::AtomicUsize::new(0);
            let result = run_cores(3, &stopping, |core| {
                if core == failing {
                    return Err(std::io::Error::other("epoll failed"));
                }
                until_stopped(&stopping)?;
                stopped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            });
            assert_eq!(result.unwrap_err().to_string(), "epoll failed");
            assert_eq!(stopped.into_inner(), 2, "core {failing} failed");
        }
    }

    #[test]
    fn a_core_that_panics_stops_the_others() {
        for failing in [0, 1] {
            let stopping = AtomicBool::new(false);
            let stopped = std::sync::atomic::AtomicUsize::new(0);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_cores(2, &stopping, |core| {
                    if core == failing {
                        panic!("the app crashed the thread");
                    }
                    until_stopped(&stopping)?;
                    stopped.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                })
            }));
            match outcome {
                // A spawned core panicked: reported as an error.
                Ok(result) => assert_eq!(
                    result.unwrap_err().to_string(),
                    "an interpreter thread panicked"
                ),
                // Core 0 (this thread) panicked: the panic goes on, once the others ended.
                Err(_) => assert_eq!(failing, 0),
            }
            assert_eq!(stopped.into_inner(), 1, "core {failing} panicked");
        }
    }
}
