//! liege's options, each defined once. Keep them grouped by part and in a sensible reading
//! order: docs/options.md lists them in this order (`cargo run -p liege -- docs options` writes it).

use super::{Arg, Kind, Part, Spec};

const fn opt(name: &'static str, part: Part, kind: Kind, doc: &'static str) -> Spec {
    let arg = match kind {
        Kind::Flag => Arg::None,
        _ => Arg::Required,
    };
    Spec {
        name,
        aliases: &[],
        arg,
        kind,
        default: None,
        part,
        uwsgi: Some(name),
        repeatable: false,
        immediate: false,
        privileged: false,
        doc,
    }
}

impl Spec {
    const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }
    const fn immediate(mut self) -> Self {
        self.immediate = true;
        self
    }
    const fn repeatable(mut self) -> Self {
        self.repeatable = true;
        self
    }
    const fn default(mut self, default: &'static str) -> Self {
        self.default = Some(default);
        self
    }
    const fn own(mut self) -> Self {
        self.uwsgi = None;
        self
    }
    const fn privileged(mut self) -> Self {
        self.privileged = true;
        self
    }
    const fn optional_arg(mut self) -> Self {
        self.arg = Arg::Optional;
        self
    }
}

use Kind::*;
use Part::*;

/// Every option liege implements.
pub static OPTIONS: &[Spec] = &[
    // Loading files.
    opt("ini", Config, Path, "Read options from an ini file (`file.ini:section` picks a section; `:section` re-reads the last ini file) at this point of the list").immediate().repeatable(),
    opt("xml", Config, Path, "Read options from an xml file (`file.xml:id` picks `<uwsgi id=\"id\">`) at this point").aliases(&["xmlconfig"]).immediate().repeatable(),
    opt("yaml", Config, Path, "Read options from a yaml file (`file.yaml:section` picks a mapping) at this point").aliases(&["yml"]).immediate().repeatable(),
    opt("json", Config, Path, "Read options from a json file (`file.json:section` picks an object) at this point").aliases(&["js"]).immediate().repeatable(),
    opt("include", Config, Path, "Read another file, in the notation its extension names, at this point of the list").immediate().repeatable(),
    opt("inherit", Config, Path, "Read a template file after the list has been expanded: its options go at the end, and `$()`, `@()`, `%()` in it stay as written").repeatable(),
    opt("max-config-size", Config, Size, "Refuse a config file (or `@()` file, or `exec://` output) larger than this, by its size, before reading it").own().default("4m").immediate(),
    opt("strict", Config, Flag, "Make every later key that is no option an error, instead of a placeholder").immediate(),
    // Placeholders.
    opt("set", Config, Assignment, "Add `name = value` to the list (an option or a placeholder)").immediate().repeatable(),
    opt("set-placeholder", Config, Assignment, "Add a placeholder `name = value` that is not an option, for `%(name)`; its value is not expanded").aliases(&["set-ph"]).immediate().repeatable(),
    // Logic, evaluated while the file is read, on the raw value (only magic variables applied).
    opt("for", Config, Logic, "Repeat each following line, up to `endfor`, once per space-separated item, with `%(_)` as the item; line by line").immediate().repeatable(),
    opt("for-glob", Config, Logic, "Like `for`, over the paths a glob pattern matches (directories end in `/`; no match: the pattern)").immediate().repeatable(),
    opt("for-times", Config, Logic, "Like `for`, over the numbers 1 to N").immediate().repeatable(),
    opt("for-readline", Config, Logic, "Like `for`, over the lines of a file").immediate().repeatable(),
    opt("endfor", Config, Logic, "End a `for` block").aliases(&["end-for"]).optional_arg().immediate().repeatable(),
    opt("if-env", Config, Logic, "Keep the following lines, up to `endif`, when the environment variable is set (`NAME=VALUE`: has that value); `%(_)` is its value").aliases(&["ifenv"]).immediate().repeatable(),
    opt("if-not-env", Config, Logic, "Keep the following lines when the environment variable is not set (`NAME=VALUE`: has not that value)").immediate().repeatable(),
    opt("if-exists", Config, Logic, "Keep the following lines when the path exists; `%(_)` is the path").aliases(&["ifexists"]).immediate().repeatable(),
    opt("if-not-exists", Config, Logic, "Keep the following lines when the path does not exist").immediate().repeatable(),
    opt("if-file", Config, Logic, "Keep the following lines when the path is a regular file").immediate().repeatable(),
    opt("if-not-file", Config, Logic, "Keep the following lines when the path is not a regular file").immediate().repeatable(),
    opt("if-dir", Config, Logic, "Keep the following lines when the path is a directory").aliases(&["ifdir", "if-directory"]).immediate().repeatable(),
    opt("if-not-dir", Config, Logic, "Keep the following lines when the path is not a directory").immediate().repeatable(),
    opt("if-opt", Config, Logic, "Keep the following lines when an option (or placeholder) was set before (`NAME=VALUE`: to that value); `%(_)` is its value").immediate().repeatable(),
    opt("if-not-opt", Config, Logic, "Keep the following lines when an option was not set before (`NAME=VALUE`: not to that value)").immediate().repeatable(),
    opt("if-reload", Config, Logic, "Keep the following lines when the instance is reloading").optional_arg().immediate().repeatable(),
    opt("if-not-reload", Config, Logic, "Keep the following lines when the instance is starting, not reloading").optional_arg().immediate().repeatable(),
    opt("if-hostname", Config, Logic, "Keep the following lines when the host is named so").immediate().repeatable(),
    opt("if-not-hostname", Config, Logic, "Keep the following lines when the host is not named so").immediate().repeatable(),
    opt("endif", Config, Logic, "End an `if-*` block").aliases(&["end-if"]).optional_arg().immediate().repeatable(),
    // The command.
    opt("help", Command, Flag, "Print the options liege knows, grouped by the part that uses them").aliases(&["usage"]),
    opt("version", Command, Flag, "Print liege's version"),
    // The master.
    opt("master", Master, Flag, "Run a master that supervises the workers (liege always does; accepted for uWSGI command lines)"),
    opt("processes", Master, Number, "How many worker processes serve requests").aliases(&["workers"]).default("1"),
    opt("threads", Master, Number, "How many interpreter threads each worker runs, each with its own connections").default("1"),
    opt("lazy-apps", Master, Flag, "Load the app in each worker (liege's default, unlike uWSGI); `lazy-apps = false` loads it once in a zygote process that forks the workers (prefork; on the command line `--lazy-apps=false`)").default("true").optional_arg(),
    opt("plugin", Master, Text, "The language worker to run: `python3` runs `liege-python`, `python311` runs `liege-python3.11` (looked up beside `liege`, then in `plugins-dir`); the first language plugin named wins").aliases(&["plugins"]).repeatable(),
    opt("plugins-dir", Master, Path, "Another folder where language workers (`liege-python3.11`...) are looked up").aliases(&["plugin-dir"]).repeatable(),
    opt("harakiri", Master, Number, "Kill a worker whose request has run longer than this many seconds; the client gets 504 and a new worker takes its place"),
    opt("max-requests", Master, Number, "Recycle a worker gracefully after this many requests (with up to `max-requests-delta` more, so workers do not all recycle at once)"),
    opt("max-requests-delta", Master, Number, "The most extra requests a worker may serve past `max-requests` (liege picks each worker's share at random; default a tenth of `max-requests`)"),
    opt("reload-on-rss", Master, Number, "Recycle a worker gracefully once its resident memory passes this many megabytes (checked after each request)"),
    opt("worker-reload-mercy", Master, Number, "How many seconds a worker that is told to stop may go on finishing its requests before it is killed").default("60"),
    opt("touch-reload", Master, Path, "Reload gracefully when this file is touched or changed").repeatable(),
    opt("die-on-term", Master, Flag, "Make SIGTERM stop the instance (uWSGI's default makes it a brutal reload)"),
    opt("need-app", Master, Flag, "Exit with status 22 when the app cannot be loaded, instead of serving errors"),
    opt("stats", Master, Text, "Serve the stats JSON (uWSGI's layout) to whoever connects: `HOST:PORT` or a unix path").aliases(&["stats-server"]),
    opt("heartbeat", Master, Number, "Under an emperor, tell it every this many seconds that the master is alive (see `emperor-required-heartbeat`)"),
    // Sockets and protocols.
    opt("socket", Sockets, Text, "Listen on `HOST:PORT` or a unix path, speaking the uwsgi protocol (what nginx `uwsgi_pass` sends)").aliases(&["uwsgi-socket"]).repeatable(),
    opt("http-socket", Sockets, Text, "Listen on `HOST:PORT` or a unix path, speaking HTTP/1.1 (keep-alive, pipelining, chunked bodies)").repeatable(),
    opt("chmod-socket", Sockets, Text, "Set the mode of the unix sockets (octal; without a value `666`)").optional_arg(),
    opt("chown-socket", Sockets, Text, "Give the unix sockets to `USER[:GROUP]` (names or numbers)"),
    opt("vacuum", Sockets, Flag, "Remove the unix sockets when the instance stops"),
    opt("listen", Sockets, Number, "The listen queue of each socket").default("1024"),
    opt("buffer-size", Sockets, Size, "The largest request head (request line and headers, or uwsgi vars) accepted; past it: 431 (HTTP) or 400").default("4096"),
    opt("limit-post", Sockets, Size, "The largest request body accepted; past it: 413 (0: no limit). The router enforces a vassal's too, before the body reaches it").default("0"),
    opt("post-buffering", Sockets, Size, "Request bodies up to this size are kept in memory; larger ones go to an unnamed temporary file").default("65536"),
    opt("socket-timeout", Sockets, Number, "Seconds a client may take to send a request, or to accept the response, before its connection is closed").default("4"),
    opt("http-keepalive-timeout", Sockets, Number, "Seconds an idle keep-alive connection is kept open: by the workers on an `http-socket` (15 by default), and by the router (`http`, `https`: 60 by default)").own().default("15 (router: 60)"),
    // Static files.
    opt("static-map", Static, Assignment, "Serve `/MOUNT=/DIR`: a request under MOUNT is the file at DIR plus the rest of the path").repeatable(),
    opt("static-map2", Static, Assignment, "Serve `/MOUNT=/DIR`: a request under MOUNT is the file at DIR plus the whole path").repeatable(),
    opt("static-index", Static, Text, "For a directory, serve this file in it (tried in order)").repeatable(),
    opt("static-expires", Static, Text, "`REGEX SECONDS`: add an Expires header, SECONDS after now, to static files whose path matches").repeatable(),
    opt("static-safe", Static, Path, "Also serve files whose real path (after symlinks) is under this folder").repeatable(),
    // Request logging.
    opt("disable-logging", Logging, Flag, "Log no line per request"),
    opt("logto", Logging, Path, "Write the log to this file instead of stderr"),
    opt("log-format", Logging, Text, "The request line's format, with uWSGI's variables (`%(method)`, `%(uri)`, `%(status)`, `%(size)`, `%(msecs)`, `%(addr)`...)").aliases(&["logformat"]),
    // The app, whatever its language.
    opt("chdir", App, Path, "Change to this folder before loading the app"),
    opt("env", App, Assignment, "Set the environment variable `NAME=VALUE` before loading the app").repeatable(),
    // Python.
    opt("module", Python, Text, "The WSGI module to import (`pkg.mod` or `pkg.mod:callable`)").aliases(&["wsgi"]),
    opt("wsgi-file", Python, Path, "The WSGI file to load").aliases(&["file"]),
    opt("callable", Python, Text, "The name of the WSGI callable").default("application"),
    opt("pythonpath", Python, Path, "Add this folder (or glob) to `sys.path`").aliases(&["python-path", "pp"]).repeatable(),
    opt("home", Python, Path, "The virtualenv to use").aliases(&["virtualenv", "venv", "pyhome"]),
    // Perl.
    opt("psgi", Perl, Path, "The PSGI app file to load (`app.psgi`: the value of its last statement is the app); the workers are `liege-perl`"),
    opt("perl-local-lib", Perl, Path, "A local::lib folder: its `lib/perl5` goes first in `@INC`"),
    opt("perl-args", Perl, Text, "Words (split on spaces) added to the app's `@ARGV`"),
    opt("perl-arg", Perl, Text, "One word added to the app's `@ARGV`").repeatable(),
    // Ruby.
    opt("rack", Ruby, Path, "The Rack app file to load (`config.ru`, read as Rack::Builder reads it); the workers are `liege-ruby`"),
    opt("rbrequire", Ruby, Text, "Require this Ruby library before loading the app").aliases(&["rb-require", "ruby-require", "rubyrequire"]).repeatable(),
    opt("rb-gc-freq", Ruby, Number, "Run Ruby's full GC every N requests (0: only when Ruby decides; uWSGI's rack plugin runs one after every request by default)").aliases(&["ruby-gc-freq"]).default("0"),
    // The emperor.
    opt("emperor", Emperor, Text, "Run an emperor: watch this folder (or glob) for vassal files (`*.ini *.xml *.yaml *.yml *.json`) with inotify, spawn one vassal per file, reload it when the file changes, stop it when the file goes away").repeatable(),
    opt("emperor-run-dir", Emperor, Path, "Where the emperor keeps its runtime files: `emperor/` (root-only control sockets, one per vassal), `vassals/NAME` (each vassal's /run)").own().default("/run/liege"),
    opt("emperor-cgroup-root", Emperor, Text, "The cgroup, under each cgroup hierarchy (v1 and v2, found from /proc/self/mountinfo), that holds one cgroup per vassal (`ROOT/NAME`)").own().default("liege"),
    opt("emperor-log-dir", Emperor, Path, "Where each vassal's output is written, to `NAME.log` (rotated at `log-maxsize` to `NAME.log.1`)").own().default("/var/log/liege"),
    opt("emperor-freq", Emperor, Number, "Seconds between two rescans of the vassal folders, a safety net behind inotify (uWSGI has no inotify and scans only this way)").default("3"),
    opt("emperor-throttle", Emperor, Number, "Milliseconds to wait before respawning a vassal that died without serving a request; doubled at each such death, up to `emperor-max-throttle`, and forgotten once the vassal serves a request (uWSGI: milliseconds too, but applied as microseconds the first time and then grown by one second per death)").default("1000"),
    opt("emperor-max-throttle", Emperor, Number, "The longest wait, in milliseconds, before respawning a crash-looping vassal").default("180000"),
    opt("emperor-curse-tolerance", Emperor, Number, "Seconds a vassal told to stop (its file removed, the emperor stopping) may take to finish its requests before the emperor kills every process in its cgroup").default("30"),
    opt("emperor-graceful-shutdown", Emperor, Flag, "Accepted for uWSGI files: liege always stops vassals gracefully (uWSGI's stop without it is brutal), bounded by `emperor-curse-tolerance`"),
    opt("emperor-required-heartbeat", Emperor, Number, "Once a vassal has sent a heartbeat (`heartbeat`), kill and respawn it when none comes for this many seconds").default("30"),
    opt("emperor-use-clone", Emperor, Text, "The namespaces every vassal gets, comma-separated: `fs` (or `mount`, `mnt`, `ns`), `ipc`, `uts`, `net`, `pid`, `cgroup`; `none` for none (warned about). liege's default, unlike uWSGI's (none), isolates").default("fs,ipc,uts,net,pid"),
    opt("emperor-tyrant", Emperor, Flag, "Run each vassal as the owner (uid and gid) of its file; root-owned files are refused, and root-only options come only from `vassals-inherit`"),
    opt("emperor-stats", Emperor, Text, "Serve the emperor's stats JSON (each vassal's name, pid, state, restarts, last error, memory and CPU) to whoever connects: `HOST:PORT` or a unix path").aliases(&["emperor-stats-server"]),
    opt("emperor-metrics", Emperor, Text, "Serve Prometheus metrics over HTTP at `/metrics` on `HOST:PORT` or a unix path: per vassal memory, CPU, pids, restarts, state").own(),
    opt("vassals-inherit", Emperor, Path, "Add this file's options to every vassal, after the vassal's own (a root-owned template: it may hold root-only options)").repeatable(),
    // The HTTP router: the gateway's own options (the emperor's, or an instance's run by hand),
    // then what a vassal file tells it.
    opt("http", Router, Text, "Run the HTTP router on `ADDR` (`:80`, `127.0.0.1:8080`), bound as root, in front of the vassals (the emperor's options: routes by `domain`) or of this instance's workers (run by hand: to `http-to`, else to an HTTP socket file made for the router alone, `TMPDIR/liege-router-PID/http.sock`)").repeatable().privileged(),
    opt("https", Router, Text, "Run the HTTP router with TLS on `ADDR,CRT,KEY` (PEM files, read as root; HTTP/2 by ALPN); the default certificate, more by `sni`").repeatable().privileged(),
    opt("sni", Router, Text, "`DOMAIN,CRT,KEY`: the certificate the router's TLS listeners show for DOMAIN (`*.example.com` too). In a vassal file its files are read as the vassal's user; the domain must be one the vassal routes").repeatable(),
    opt("http-to", Router, Text, "A fixed backend (`HOST:PORT` or a unix path, spoken to in HTTP/1.1) for requests whose Host no vassal serves (repeat for round robin)").repeatable().privileged(),
    opt("http-subscription-server", Router, Text, "Accept uWSGI subscription packets (UDP) on `ADDR`, which no jail can reach").privileged(),
    opt("http-connect-timeout", Router, Number, "Seconds a request waits for a vassal: connecting, or while the vassal (re)starts; then 503").default("5"),
    opt("http-headers-timeout", Router, Number, "Seconds a client may take to send a request's head (slowloris); then the connection is closed").default("10"),
    opt("http-keepalive", Router, Flag, "Accepted for uWSGI files: the router always keeps HTTP/1.1 connections alive, for `http-keepalive-timeout` seconds").optional_arg(),
    opt("http-max-header-size", Router, Size, "The largest request head (request line and headers) the router takes; past it: 431").own().default("16k"),
    opt("http-max-conns-per-ip", Router, Number, "The most connections one client address may hold open at once; more are closed at once").own().default("256"),
    opt("http-trusted-proxies", Router, Text, "Addresses or CIDR blocks (`10.0.0.0/8`, `::1`; comma-separated) whose `X-Forwarded-For`/`X-Forwarded-Proto` the router believes; from anyone else they are dropped").own().repeatable(),
    opt("http-balance", Router, Text, "How a domain served by several vassals is shared: `least-conn` (the node with the fewest requests in flight) or `round-robin`").own().default("least-conn"),
    opt("http-uid", Router, Text, "The user (name or number) the router runs as once its ports are bound, with its group, no capability and no_new_privs").default("liege-router").privileged(),
    opt("http-access-log", Router, Flag, "Log one line per request (client, domain, vassal, status, bytes, duration) on the router's output (`LOGDIR/_router.log` under an emperor)").own().default("true").optional_arg(),
    opt("domain", Router, Text, "In a vassal file: a domain (`example.com`, `*.example.com`; several comma-separated) the router sends to this vassal's first socket in its run dir; a domain belongs to one customer (`domain-owners`, else its first claimant)").own().repeatable(),
    opt("domain-owners", Router, Path, "The emperor's file of `DOMAIN USER` lines (`#` comments): DOMAIN and its subdomains belong to USER, whose vassals alone may claim them").own().privileged(),
    opt("subscribe-to", Router, Text, "uWSGI's `[NAME=]ADDR:DOMAIN[,...]` (or `ADDR:@FILE`, a domain a line): in a vassal file, DOMAIN is routed to the vassal as `domain` is; liege's emperor sends the router the route, the vassal sends no packet").aliases(&["st", "subscribe"]).repeatable(),
    opt("subscribe2", Router, Text, "uWSGI's `key=DOMAIN,server=ADDR,...`: in a vassal file, DOMAIN is routed to the vassal as `domain` is (the vassal sends no packet)").repeatable(),
    // Vassal identity, namespaces and limits.
    opt("uid", Vassal, Text, "Run the instance's processes as this user (name or number), from the moment its sockets are bound").privileged(),
    opt("gid", Vassal, Text, "Run the instance's processes with this group (name or number; default the user's group)").privileged(),
    opt("unshare", Vassal, Text, "Namespaces a vassal gets besides `emperor-use-clone` (same names); the emperor creates them when it spawns the vassal").privileged(),
    opt("memory-limit", Vassal, Size, "The most memory the vassal's processes may use together, swap included (cgroup v1 `memory.limit_in_bytes` and `memory.memsw.limit_in_bytes`, v2 `memory.max` and `memory.swap.max`); past it the kernel's OOM killer acts inside the vassal. uWSGI: `cgroup-opt = memory.limit_in_bytes=...`").own().privileged(),
    opt("cpu-limit", Vassal, Number, "The most CPU the vassal may use, in percent of one core (200: two cores), as a CFS quota over 100 ms (v1 `cpu.cfs_quota_us`, v2 `cpu.max`). uWSGI: `cgroup-opt = cpu.cfs_quota_us=...`").own().privileged(),
    opt("pids-limit", Vassal, Number, "The most processes and threads the vassal may have at once (`pids.max`); a fork bomb stops there. uWSGI: `cgroup-opt = pids.max=...`").own().privileged(),
    opt("cgroup", Vassal, Path, "Also place the vassal in this cgroup folder (created if missing; one per hierarchy, as in uWSGI)").repeatable().privileged(),
    opt("cgroup-opt", Vassal, Assignment, "Write `FILE=VALUE` (or `FILE:VALUE`) in the vassal's cgroup, in the hierarchy that has FILE (`memory.swappiness=0`, `cpu.shares=512`)").repeatable().privileged(),
    opt("cgroup-dir-mode", Vassal, Text, "The mode (octal) of the cgroup folders the emperor creates").default("0700").privileged(),
    opt("log-maxsize", Vassal, Size, "Rotate the vassal's log file (kept by the emperor) to `NAME.log.1` once it passes this size, so one vassal cannot fill the disk (in the emperor's options: the default for every vassal, `16m` unless set)").privileged(),
    // The jail, built by the master (docs/jail.md lists its steps in order).
    opt("jail-root", Jail, Path, "The vassal's root filesystem, mounted read-only at `/`: a distro folder (debootstrap'd), or `host` for a root made of the host's /usr and /etc (tests, demo). Turns on the whole layout: new /proc (hidepid), private /tmp, minimal /dev, /run, /opt, the home").own().privileged(),
    opt("jail-tmp-size", Jail, Size, "The size of the jail's private /tmp (a tmpfs)").own().default("64m").privileged(),
    opt("jail-shm-size", Jail, Size, "The size of the jail's /dev/shm (a tmpfs)").own().default("64m").privileged(),
    opt("jail-opt", Jail, Path, "A host folder shown read-only at /opt in the jail (shared tools)").own().privileged(),
    opt("jail-home", Jail, Path, "The customer's host folder, mounted read-write at `/home/NAME` (NAME: the vassal's) in the jail").own().privileged(),
    opt("jail-home-target", Jail, Path, "Where `jail-home` appears in the jail, instead of `/home/NAME`").own().privileged(),
    opt("jail-seccomp", Jail, Text, "The seccomp filter of the jailed processes: `default` (EPERM to what apps never need; docs/jail.md lists it) or `none`").own().default("default").privileged(),
    opt("jail-deny-wx", Jail, Flag, "Refuse memory that is both writable and executable (systemd's MemoryDenyWriteExecute): hardens, but breaks JITs such as PyPy's").own().privileged(),
    opt("jailed", Jail, Flag, "Run the `post-jail` hooks even though nothing was unshared here (uWSGI needs it when the emperor made the namespaces; liege knows, and runs them then anyway)").privileged(),
    opt("pivot-root", Jail, Text, "`NEW OLD`: make NEW (a mount point, bind it in a post-jail hook) the root, the old root going to NEW/OLD (unmount it in an as-root hook), as uWSGI does").privileged(),
    opt("chroot", Jail, Path, "chroot into this folder after the post-jail hooks").privileged(),
    opt("hostname", Jail, Text, "Set the hostname (in the vassal's uts namespace; the emperor sets the vassal's name by default). uWSGI: `hook-as-root = hostname:NAME`").own().privileged(),
    opt("cap", Jail, Text, "Capabilities to keep after the switch to `uid` (comma-separated, libcap names: `net_bind_service,sys_nice`); every other is dropped, bounding and ambient sets too").privileged(),
    opt("max-fd", Jail, Number, "RLIMIT_NOFILE of the instance's processes (as root, before the switch to `uid`)").privileged(),
    opt("limit-as", Jail, Number, "RLIMIT_AS of the instance's processes, in megabytes").privileged(),
    opt("limit-nproc", Jail, Number, "RLIMIT_NPROC: the most processes the instance's user may have").privileged(),
    opt("binsh", Jail, Path, "The shell `exec` hooks run with (`SHELL -c COMMAND`)").default("/bin/sh").privileged(),
    opt("hook-asap", Jail, Text, "Run `action:args` right after the options are read (actions: docs/jail.md)").repeatable().privileged(),
    opt("exec-asap", Jail, Text, "Run a shell command right after the options are read").repeatable().privileged(),
    opt("mount-asap", Jail, Text, "Mount `FSTYPE SOURCE TARGET [FLAGS [DATA]]` right after the options are read").repeatable().privileged(),
    opt("umount-asap", Jail, Text, "Unmount `TARGET [FLAGS]` right after the options are read").repeatable().privileged(),
    opt("hook-pre-jail", Jail, Text, "Run `action:args` before any jail step, on the host's filesystem (actions: docs/jail.md)").repeatable().privileged(),
    opt("exec-pre-jail", Jail, Text, "Run a shell command before any jail step, on the host's filesystem").repeatable().privileged(),
    opt("mount-pre-jail", Jail, Text, "Mount `FSTYPE SOURCE TARGET [FLAGS [DATA]]` before any jail step, on the host's filesystem").repeatable().privileged(),
    opt("umount-pre-jail", Jail, Text, "Unmount `TARGET [FLAGS]` before any jail step, on the host's filesystem").repeatable().privileged(),
    opt("hook-in-jail", Jail, Text, "Run `action:args` before `unshare` (actions: docs/jail.md)").repeatable().privileged(),
    opt("exec-in-jail", Jail, Text, "Run a shell command before `unshare`").repeatable().privileged(),
    opt("mount-in-jail", Jail, Text, "Mount `FSTYPE SOURCE TARGET [FLAGS [DATA]]` before `unshare`").repeatable().privileged(),
    opt("umount-in-jail", Jail, Text, "Unmount `TARGET [FLAGS]` before `unshare`").repeatable().privileged(),
    opt("hook-post-jail", Jail, Text, "Run `action:args` once the namespaces exist, before the new root (bind it here) (actions: docs/jail.md)").repeatable().privileged(),
    opt("exec-post-jail", Jail, Text, "Run a shell command once the namespaces exist, before the new root (bind it here)").repeatable().privileged(),
    opt("mount-post-jail", Jail, Text, "Mount `FSTYPE SOURCE TARGET [FLAGS [DATA]]` once the namespaces exist, before the new root (bind it here)").repeatable().privileged(),
    opt("umount-post-jail", Jail, Text, "Unmount `TARGET [FLAGS]` once the namespaces exist, before the new root (bind it here)").repeatable().privileged(),
    opt("hook-as-root", Jail, Text, "Run `action:args` inside the new root, still root, before the sockets are bound (actions: docs/jail.md)").repeatable().privileged(),
    opt("exec-as-root", Jail, Text, "Run a shell command inside the new root, still root, before the sockets are bound").repeatable().privileged(),
    opt("mount-as-root", Jail, Text, "Mount `FSTYPE SOURCE TARGET [FLAGS [DATA]]` inside the new root, still root, before the sockets are bound").repeatable().privileged(),
    opt("umount-as-root", Jail, Text, "Unmount `TARGET [FLAGS]` inside the new root, still root, before the sockets are bound").repeatable().privileged(),
    opt("hook-as-user", Jail, Text, "Run `action:args` as the instance's user, once privileges are dropped, before any worker").repeatable(),
    opt("exec-as-user", Jail, Text, "Run a shell command as the instance's user, once privileges are dropped, before any worker").repeatable(),
];
