//! What `emperor-stats` (JSON, on connect) and `emperor-metrics` (Prometheus text over HTTP)
//! say: each vassal's state from the emperor's books, its memory, CPU and processes from its
//! cgroup.

use std::fmt::Write as _;

use serde_json::{Value, json};

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
}

/// The emperor's part of the document.
#[derive(Debug, Clone, Default)]
pub(crate) struct EmperorStat {
    pub(crate) pid: u32,
    pub(crate) sources: Vec<String>,
    pub(crate) tyrant: bool,
    pub(crate) cgroup_root: String,
    pub(crate) run_dir: String,
}

/// The JSON document (uWSGI's emperor stats keys where they mean the same, plus liege's).
pub(crate) fn document(emperor: &EmperorStat, vassals: &[VassalStat]) -> Value {
    let list: Vec<Value> = vassals
        .iter()
        .map(|v| {
            json!({
                "id": v.location,
                "name": v.name,
                "pid": v.pid.unwrap_or(0),
                "state": v.state,
                "respawns": v.restarts,
                "restarts": v.restarts,
                "last_error": v.last_error,
                "uid": v.uid,
                "gid": v.gid,
                "born": v.born.unwrap_or(0),
                "ready": u8::from(v.ready),
                "accepting": u8::from(v.accepting),
                "loyal": u8::from(v.loyal),
                "adopted": v.adopted,
                "last_heartbeat_age": v.heartbeat_age,
                "throttle_ms": v.throttle_ms,
                "namespaces": v.namespaces,
                "memory_bytes": v.usage.memory_bytes,
                "memory_limit": v.usage.memory_limit,
                "cpu_usage_ns": v.usage.cpu_usage_ns,
                "pids": v.usage.pids,
                "pids_limit": v.usage.pids_limit,
                "oom_kills": v.usage.oom_kills,
            })
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": emperor.pid,
        "emperor": emperor.sources,
        "emperor_tyrant": u8::from(emperor.tyrant),
        "cgroup_root": emperor.cgroup_root,
        "run_dir": emperor.run_dir,
        "vassals": list,
    })
}

/// A label value, escaped as the Prometheus text format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition of the same facts.
pub(crate) fn metrics(vassals: &[VassalStat]) -> String {
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let text = metrics(&[v]);
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
