//! The router's tests: one binary, a router per test served in this process (see `support`).
//!
//! - `routing`: Host matching (exact, wildcard, case, port), unknown hosts, `http-to`.
//! - `nodes`: balancing, failover, waiting while a vassal starts, 502/503, refused sockets.
//! - `forwarding`: the uwsgi vars and HTTP headers the router sets, spoofing dropped.
//! - `streaming`: 50 MB both ways without buffering, chunked bodies.
//! - `hardening`: smuggling, limits, timeouts, per-address limits (raw sockets).
//! - `tls`: SNI, HTTP/2 by ALPN, h2c.
//! - `websocket`: upgrades spliced.
//! - `control`: settings and certificates swapped while requests run, counters, stopping.
//! - `subscriptions`: uWSGI subscription packets add and withdraw nodes.
//! - `memory`: what an idle keep-alive connection costs (a measurement, run by hand).

mod support;

mod control;
mod forwarding;
mod hardening;
mod memory;
mod nodes;
mod routing;
mod streaming;
mod subscriptions;
mod tls;
mod websocket;
