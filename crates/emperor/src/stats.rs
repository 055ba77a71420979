//! What `emperor-stats` (JSON, on connect) and `emperor-metrics` (Prometheus text over HTTP)
//! say: each vassal's state from the emperor's books, its memory, CPU and processes from its
//! cgroup.

use std::fmt::Write as _;

use liege_proto::router::Counters;

/// What the cgroup of a vassal says, where the host has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) memory_bytes: Option<u64>,
    pub(crate) memory_limit: Option<u64>,
    pub(crate) cpu_usage_ns: Option<u64>,
    pub(crate) pids: Option<u64>,
    pub(crate) pids_limit: Option<u64>,
    pub(crate) oom_kills: Option<u64>,
}

/// One vassal as the stats show it.
#[derive(Debug, Clone, Default)]
pub(crate) struct VassalStat {
    pub(crate) name: String,
    pub(crate) location: String,
    pub(crate) pid: Option<i32>,
    pub(crate) state: &'static str,
    pub(crate) restarts: u64,
    pub(crate) last_error: Option<String>,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    /// Unix time of the current master's spawn.
    pub(crate) born: Option<u64>,
    pub(crate) ready: bool,
    pub(crate) accepting: bool,
    pub(crate) loyal: bool,
    pub(crate) adopted: bool,
    /// Seconds since the last heartbeat, when one came.
    pub(crate) heartbeat_age: Option<u64>,
    pub(crate) throttle_ms: u64,
    pub(crate) namespaces: String,
    pub(crate) usage: Usage,
    /// Its routing warnings and refused claims (when the emperor runs a router).
    pub(crate) warnings: Vec<String>,
    /// Its traffic through the router (when the emperor runs one).
    pub(crate) router: Option<Counters>,
}

/// The router process, as the stats show it.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouterStat {
    pub(crate) pid: Option<i32>,
    pub(crate) restarts: u64,
    pub(crate) running: bool,
    pub(crate) last_exit: Option<String>,
    /// `ADDR` or `ADDR tls`, each listener.
    pub(crate) listeners: Vec<String>,
    /// `http-uid` as given.
    pub(crate) uid: String,
}

/// The emperor's part of the document.
#[derive(Debug, Clone, Default)]
pub(crate) struct EmperorStat {
    pub(crate) pid: u32,
    pub(crate) sources: Vec<String>,
    pub(crate) tyrant: bool,
    pub(crate) cgroup_root: String,
    pub(crate) run_dir: String,
    pub(crate) router: Option<RouterStat>,
}

/// A JSON string literal.
fn quoted(out: &mut String, text: &str) {
    out.push_str(&serde_json::Value::from(text).to_string());
}

fn opt_u64(out: &mut String, key: &str, value: Option<u64>) {
    match value {
        Some(v) => {
            let _ = write!(out, ",\"{key}\":{v}");
        }
        None => {
            let _ = write!(out, ",\"{key}\":null");
        }
    }
}

/// The JSON document (uWSGI's emperor stats keys where they mean the same, plus liege's),
/// written straight into text: with thousands of vassals, building a `serde_json::Value` first
/// took most of the time of a stats request.
pub(crate) fn document(emperor: &EmperorStat, vassals: &[VassalStat]) -> String {
    let mut out = String::with_capacity(512 + vassals.len() * 480);
    let _ = write!(
        out,
        "{{\"version\":\"{}\",\"pid\":{},\"emperor\":[",
        env!("CARGO_PKG_VERSION"),
        emperor.pid
    );
    for (i, s) in emperor.sources.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        quoted(&mut out, s);
    }
    let _ = write!(
        out,
        "],\"emperor_tyrant\":{},\"cgroup_root\":",
        u8::from(emperor.tyrant)
    );
    quoted(&mut out, &emperor.cgroup_root);
    out.push_str(",\"run_dir\":");
    quoted(&mut out, &emperor.run_dir);
    if let Some(r) = &emperor.router {
        let _ = write!(
            out,
            ",\"router\":{{\"pid\":{},\"running\":{},\"restarts\":{},\"uid\":",
            r.pid.unwrap_or(0),
            r.running,
            r.restarts
        );
        quoted(&mut out, &r.uid);
        out.push_str(",\"last_exit\":");
        match &r.last_exit {
            Some(e) => quoted(&mut out, e),
            None => out.push_str("null"),
        }
        out.push_str(",\"listeners\":[");
        for (i, l) in r.listeners.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            quoted(&mut out, l);
        }
        out.push_str("]}");
    }
    out.push_str(",\"vassals\":[");
    for (i, v) in vassals.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"id\":");
        quoted(&mut out, &v.location);
        out.push_str(",\"name\":");
        quoted(&mut out, &v.name);
        let _ = write!(
            out,
            ",\"pid\":{},\"state\":\"{}\",\"respawns\":{},\"restarts\":{},\"last_error\":",
            v.pid.unwrap_or(0),
            v.state,
            v.restarts,
            v.restarts
        );
        match &v.last_error {
            Some(e) => quoted(&mut out, e),
            None => out.push_str("null"),
        }
        opt_u64(&mut out, "uid", v.uid.map(u64::from));
        opt_u64(&mut out, "gid", v.gid.map(u64::from));
        let _ = write!(
            out,
            ",\"born\":{},\"ready\":{},\"accepting\":{},\"loyal\":{},\"adopted\":{}",
            v.born.unwrap_or(0),
            u8::from(v.ready),
            u8::from(v.accepting),
            u8::from(v.loyal),
            v.adopted
        );
        opt_u64(&mut out, "last_heartbeat_age", v.heartbeat_age);
        let _ = write!(
            out,
            ",\"throttle_ms\":{},\"namespaces\":\"{}\"",
            v.throttle_ms, v.namespaces
        );
        opt_u64(&mut out, "memory_bytes", v.usage.memory_bytes);
        opt_u64(&mut out, "memory_limit", v.usage.memory_limit);
        opt_u64(&mut out, "cpu_usage_ns", v.usage.cpu_usage_ns);
        opt_u64(&mut out, "pids", v.usage.pids);
        opt_u64(&mut out, "pids_limit", v.usage.pids_limit);
        opt_u64(&mut out, "oom_kills", v.usage.oom_kills);
        if let Some(c) = &v.router {
            let _ = write!(
                out,
                ",\"router\":{{\"requests\":{},\"bytes_in\":{},\"bytes_out\":{},\"status_4xx\":{},\"status_5xx\":{}}}",
                c.requests, c.bytes_in, c.bytes_out, c.status_4xx, c.status_5xx
            );
            out.push_str(",\"warnings\":[");
            for (i, w) in v.warnings.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quoted(&mut out, w);
            }
            out.push(']');
        }
        out.push('}');
    }
    out.push_str("]}\n");
    out
}

/// A label value, escaped as the Prometheus text format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition of the same facts.
pub(crate) fn metrics(vassals: &[VassalStat], router: Option<&RouterStat>) -> String {
    let mut out = String::new();
    let mut family =
        |name: &str, kind: &str, help: &str, value: &dyn Fn(&VassalStat) -> Option<f64>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for v in vassals {
                if let Some(x) = value(v) {
                    let _ = writeln!(out, "{name}{{vassal=\"{}\"}} {x}", label(&v.name));
                }
            }
        };
    #[allow(clippy::cast_precision_loss)]
    let f = |x: u64| x as f64;
    family(
        "liege_vassal_up",
        "gauge",
        "1 when the vassal's workers accept requests",
        &|v| Some(if v.accepting { 1.0 } else { 0.0 }),
    );
    family(
        "liege_vassal_memory_bytes",
        "gauge",
        "Memory used by the vassal's cgroup",
        &|v| v.usage.memory_bytes.map(f),
    );
    family(
        "liege_vassal_memory_limit_bytes",
        "gauge",
        "The vassal's memory limit",
        &|v| v.usage.memory_limit.map(f),
    );
    family(
        "liege_vassal_cpu_seconds_total",
        "counter",
        "CPU time used by the vassal's cgroup",
        &|v| {
            #[allow(clippy::cast_precision_loss)]
            v.usage.cpu_usage_ns.map(|ns| ns as f64 / 1e9)
        },
    );
    family(
        "liege_vassal_pids",
        "gauge",
        "Processes and threads in the vassal's cgroup",
        &|v| v.usage.pids.map(f),
    );
    family(
        "liege_vassal_oom_kills_total",
        "counter",
        "Processes the OOM killer killed in the vassal's cgroup",
        &|v| v.usage.oom_kills.map(f),
    );
    family(
        "liege_vassal_restarts_total",
        "counter",
        "Times the emperor respawned the vassal",
        &|v| Some(f(v.restarts)),
    );
    if let Some(r) = router {
        family(
            "liege_vassal_router_requests_total",
            "counter",
            "Requests the router answered for the vassal",
            &|v| v.router.as_ref().map(|c| f(c.requests)),
        );
        family(
            "liege_vassal_router_bytes_in_total",
            "counter",
            "Request bytes the router sent to the vassal",
            &|v| v.router.as_ref().map(|c| f(c.bytes_in)),
        );
        family(
            "liege_vassal_router_bytes_out_total",
            "counter",
            "Response bytes the router sent to the vassal's clients",
            &|v| v.router.as_ref().map(|c| f(c.bytes_out)),
        );
        family(
            "liege_vassal_router_responses_4xx_total",
            "counter",
            "Requests for the vassal answered 4xx",
            &|v| v.router.as_ref().map(|c| f(c.status_4xx)),
        );
        family(
            "liege_vassal_router_responses_5xx_total",
            "counter",
            "Requests for the vassal answered 5xx (by it or by the router)",
            &|v| v.router.as_ref().map(|c| f(c.status_5xx)),
        );
        let _ = writeln!(
            out,
            "# HELP liege_router_up 1 while the router process runs\n# TYPE liege_router_up gauge\nliege_router_up {}",
            u8::from(r.running)
        );
        let _ = writeln!(
            out,
            "# HELP liege_router_restarts_total Times the emperor respawned the router\n# TYPE liege_router_restarts_total counter\nliege_router_restarts_total {}",
            r.restarts
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_json_with_every_field() {
        let v = VassalStat {
            name: "a\"b".into(),
            location: "/v/a.ini".into(),
            pid: Some(7),
            state: "accepting",
            last_error: Some("line\nbreak".into()),
            uid: Some(1000),
            accepting: true,
            namespaces: "fs,pid".into(),
            usage: Usage {
                memory_bytes: Some(5),
                ..Usage::default()
            },
            ..VassalStat::default()
        };
        let e = EmperorStat {
            pid: 1,
            sources: vec!["/etc/liege/vassals".into()],
            ..EmperorStat::default()
        };
        let doc: serde_json::Value = serde_json::from_str(&document(&e, &[v.clone(), v])).unwrap();
        assert_eq!(doc["emperor"][0], "/etc/liege/vassals");
        let first = &doc["vassals"][0];
        assert_eq!(first["name"], "a\"b");
        assert_eq!(first["last_error"], "line\nbreak");
        assert_eq!(first["pid"], 7);
        assert_eq!(first["uid"], 1000);
        assert_eq!(first["gid"], serde_json::Value::Null);
        assert_eq!(first["accepting"], 1);
        assert_eq!(first["memory_bytes"], 5);
        assert_eq!(first["pids"], serde_json::Value::Null);
        assert_eq!(doc["vassals"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn metrics_name_each_vassal_and_skip_what_the_host_lacks() {
        let v = VassalStat {
            name: "a\"b".into(),
            accepting: true,
            restarts: 2,
            usage: Usage {
                memory_bytes: Some(1024),
                cpu_usage_ns: Some(1_500_000_000),
                ..Usage::default()
            },
            ..VassalStat::default()
        };
        let text = metrics(&[v], None);
        assert!(
            text.contains("liege_vassal_up{vassal=\"a\\\"b\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("liege_vassal_memory_bytes{vassal=\"a\\\"b\"} 1024\n"));
        assert!(text.contains("liege_vassal_cpu_seconds_total{vassal=\"a\\\"b\"} 1.5\n"));
        assert!(text.contains("liege_vassal_restarts_total{vassal=\"a\\\"b\"} 2\n"));
        assert!(!text.contains("liege_vassal_pids{"));
    }
}
