//! `liege request [--run-dir DIR] [--uwsgi] VASSAL SOCKET [PATH]`: a sysadmin's check of a
//! vassal from the host, the way the router and nginx reach it (ARCHITECTURE.md decision 4).
//!
//! It opens `RUN/vassals`, then `VASSAL` in it, without following links; connects to `SOCKET`
//! beneath that folder without following any link (`liege_sys::beneath`); checks that the
//! listener runs as the folder's owner (the emperor made the folder and gave it to the vassal's
//! uid, which the customer cannot change); sends `GET PATH HTTP/1.0` (or, with `--uwsgi`, a
//! uwsgi request packet) and copies the answer to stdout. Exit status 0 when an answer came, 1
//! when none did (naming the folder, the socket and why), 2 for a bad command line.

use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use liege_sys::beneath;

const USAGE: &str = "\
usage: liege request [--run-dir DIR] [--uwsgi] VASSAL SOCKET [PATH]
  connects to SOCKET in the vassal's run dir DIR/vassals/VASSAL (DIR: the emperor's
  `emperor-run-dir`, default /run/liege) without following links, checks the listener runs as
  the folder's owner, sends `GET PATH HTTP/1.0` (PATH: default /) or, with --uwsgi, a uwsgi
  request packet, and prints the answer";

/// The run dir when `--run-dir` is not given (the emperor's default `emperor-run-dir`).
const DEFAULT_RUN_DIR: &str = "/run/liege";

/// How long the answer may take, between two reads (and for each write).
const TIMEOUT: Duration = Duration::from_secs(30);

const BAD_USAGE: u8 = 2;

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    run_dir: PathBuf,
    uwsgi: bool,
    vassal: String,
    socket: String,
    path: String,
}

/// What the command line holds instead of [`Args`].
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Run(Args),
    Help,
}

fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut run_dir = None;
    let mut uwsgi = false;
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--uwsgi" => uwsgi = true,
            "--run-dir" => {
                let dir = it.next().ok_or("`--run-dir` needs a folder")?;
                run_dir = Some(PathBuf::from(dir));
            }
            "--" => positional.extend(it.by_ref().cloned()),
            other => {
                if let Some(dir) = other.strip_prefix("--run-dir=") {
                    run_dir = Some(PathBuf::from(dir));
                } else if other.starts_with('-') && other.len() > 1 {
                    return Err(format!("unknown flag `{other}`"));
                } else {
                    positional.push(other.to_owned());
                }
            }
        }
    }
    let mut positional = positional.into_iter();
    let (Some(vassal), Some(socket)) = (positional.next(), positional.next()) else {
        return Err("name a vassal and a socket".to_owned());
    };
    let path = positional.next().unwrap_or_else(|| "/".to_owned());
    if let Some(extra) = positional.next() {
        return Err(format!("`{extra}` is one argument too many"));
    }
    if vassal.is_empty() || vassal == "." || vassal == ".." || vassal.contains(['/', '\0']) {
        return Err(format!("`{vassal}` is not a vassal name"));
    }
    if socket.is_empty() || socket.starts_with('/') {
        return Err(format!(
            "`{socket}`: the socket is named relative to the vassal's run dir"
        ));
    }
    if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(format!(
            "`{}`: the path starts with `/` and holds no space or control character",
            path.escape_debug()
        ));
    }
    Ok(Parsed::Run(Args {
        run_dir: run_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_RUN_DIR)),
        uwsgi,
        vassal,
        socket,
        path,
    }))
}

/// The bytes of the request.
fn request_bytes(args: &Args) -> Result<Vec<u8>, String> {
    if !args.uwsgi {
        return Ok(format!("GET {} HTTP/1.0\r\nHost: localhost\r\n\r\n", args.path).into_bytes());
    }
    let (path, query) = args.path.split_once('?').unwrap_or((&args.path, ""));
    let vars: [(&[u8], &[u8]); 7] = [
        (b"REQUEST_METHOD", b"GET"),
        (b"REQUEST_URI", args.path.as_bytes()),
        (b"PATH_INFO", path.as_bytes()),
        (b"QUERY_STRING", query.as_bytes()),
        (b"SERVER_PROTOCOL", b"HTTP/1.0"),
        (b"HTTP_HOST", b"localhost"),
        (b"SERVER_NAME", b"localhost"),
    ];
    liege_proto::uwsgi::encode(0, 0, &vars).map_err(|e| e.to_string())
}

/// Opens the vassal's folder `RUN/vassals/VASSAL` without following links (`RUN` itself is the
/// sysadmin's path, followed as given).
fn open_vassal_dir(run_dir: &Path, vassal: &str) -> Result<OwnedFd, String> {
    let run = rustix::fs::open(
        run_dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| {
        format!(
            "cannot open the run dir {}: {}",
            run_dir.display(),
            std::io::Error::from(e)
        )
    })?;
    let vassals = beneath::open_dir_nofollow(run.as_fd(), "vassals")
        .map_err(|e| format!("in {}: {e}", run_dir.display()))?;
    let shown = run_dir.join("vassals");
    beneath::open_dir_nofollow(vassals.as_fd(), vassal)
        .map_err(|e| format!("in {}: {e}", shown.display()))
}

/// Sends the request and copies the answer to stdout; how many bytes came.
fn exchange(args: &Args, folder: &Path) -> Result<u64, String> {
    let dir = open_vassal_dir(&args.run_dir, &args.vassal)?;
    let in_folder = |e: &dyn std::fmt::Display| format!("in {}: {e}", folder.display());
    let owner = rustix::fs::fstat(&dir)
        .map_err(|e| in_folder(&std::io::Error::from(e)))?
        .st_uid;
    let mut stream =
        beneath::connect_vassal(dir.as_fd(), &args.socket, owner).map_err(|e| in_folder(&e))?;
    let io_error = |what: &str, e: std::io::Error| {
        in_folder(&format!("`{}`: cannot {what}: {e}", args.socket))
    };
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| io_error("set its timeouts", e))?;
    let bytes = request_bytes(args).map_err(|e| in_folder(&e))?;
    stream
        .write_all(&bytes)
        .map_err(|e| io_error("send the request", e))?;
    let mut stdout = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(io_error(
                    "read the answer",
                    std::io::Error::other(format!(
                        "nothing more came in {} s (after {total} bytes)",
                        TIMEOUT.as_secs()
                    )),
                ));
            }
            Err(e) => return Err(io_error("read the answer", e)),
        };
        total += n as u64;
        // A closed stdout (`liege request ... | head`) ends the copy, not the check.
        if stdout.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = stdout.flush();
    if total == 0 {
        return Err(in_folder(&format!(
            "`{}`: the connection closed without an answer",
            args.socket
        )));
    }
    Ok(total)
}

/// `liege request ...` (the arguments after `request`).
pub(crate) fn run(args: &[String]) -> ExitCode {
    let args = match parse(args) {
        Ok(Parsed::Run(a)) => a,
        Ok(Parsed::Help) => {
            crate::cli::out(&format!("{USAGE}\n"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            crate::cli::err(&format!("liege request: {e}\n{USAGE}"));
            return ExitCode::from(BAD_USAGE);
        }
    };
    let folder = args.run_dir.join("vassals").join(&args.vassal);
    match exchange(&args, &folder) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            crate::cli::err(&format!("liege: request: {e}"));
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Parsed, String> {
        parse(&a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn the_command_line() {
        assert_eq!(
            args(&["app", "http.sock"]),
            Ok(Parsed::Run(Args {
                run_dir: PathBuf::from("/run/liege"),
                uwsgi: false,
                vassal: "app".into(),
                socket: "http.sock".into(),
                path: "/".into(),
            }))
        );
        assert_eq!(
            args(&[
                "--uwsgi",
                "--run-dir",
                "/tmp/r",
                "app",
                "sub/u.sock",
                "/x?y=1"
            ]),
            Ok(Parsed::Run(Args {
                run_dir: PathBuf::from("/tmp/r"),
                uwsgi: true,
                vassal: "app".into(),
                socket: "sub/u.sock".into(),
                path: "/x?y=1".into(),
            }))
        );
        assert!(matches!(
            args(&["--run-dir=/r", "a", "s"]),
            Ok(Parsed::Run(Args { run_dir, .. })) if run_dir == Path::new("/r")
        ));
        assert_eq!(args(&["-h"]), Ok(Parsed::Help));
        for (bad, why) in [
            (&["app"][..], "name a vassal and a socket"),
            (&["--run-dir"], "`--run-dir` needs a folder"),
            (&["--post", "a", "s"], "unknown flag `--post`"),
            (&["a/b", "s"], "`a/b` is not a vassal name"),
            (&["..", "s"], "`..` is not a vassal name"),
            (
                &["a", "/abs.sock"],
                "`/abs.sock`: the socket is named relative to the vassal's run dir",
            ),
            (
                &["a", "s", "/x y"],
                "`/x y`: the path starts with `/` and holds no space or control character",
            ),
            (
                &["a", "s", "x"],
                "`x`: the path starts with `/` and holds no space or control character",
            ),
            (&["a", "s", "/", "more"], "`more` is one argument too many"),
        ] {
            assert_eq!(args(bad), Err(why.to_owned()), "{bad:?}");
        }
    }

    #[test]
    fn the_uwsgi_request_carries_the_vars() {
        let Ok(Parsed::Run(a)) = args(&["--uwsgi", "app", "u.sock", "/p/q?x=1"]) else {
            panic!("parse");
        };
        let bytes = request_bytes(&a).unwrap();
        let header = liege_proto::uwsgi::parse_header(&bytes).unwrap();
        assert_eq!((header.modifier1, header.modifier2), (0, 0));
        let block = &bytes[liege_proto::uwsgi::HEADER_LEN..];
        assert_eq!(usize::from(header.datasize), block.len());
        let vars: Vec<(String, String)> = liege_proto::uwsgi::vars(block)
            .map(|v| {
                let (k, v) = v.unwrap();
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("REQUEST_METHOD"), Some("GET"));
        assert_eq!(get("REQUEST_URI"), Some("/p/q?x=1"));
        assert_eq!(get("PATH_INFO"), Some("/p/q"));
        assert_eq!(get("QUERY_STRING"), Some("x=1"));
        assert_eq!(get("SERVER_PROTOCOL"), Some("HTTP/1.0"));
        assert_eq!(get("HTTP_HOST"), Some("localhost"));
        let Ok(Parsed::Run(h)) = args(&["app", "h.sock", "/p"]) else {
            panic!("parse");
        };
        assert_eq!(
            request_bytes(&h).unwrap(),
            b"GET /p HTTP/1.0\r\nHost: localhost\r\n\r\n"
        );
    }
}
