//! The HTTP router, through real processes (issue 6).
//!
//! - `failure`: workers killed mid-stream (the stream is cut, the next request served), a
//!   vassal's master killed, a vassal stopped under load; the router keeps its pid.
//! - `gateway`: the emperor's router: vassals reached by their domains, the router process
//!   unprivileged, a second customer's claim refused, routes withdrawn with their vassal.
//! - `matrix`: the routing matrix: vassals of two customers (one jailed), five domains with a
//!   wildcard, a shared domain balanced, a refused claim, routes following the vassal files; a
//!   client's X-Forwarded-For not passed on; a socket swapped for a symlink refused.
//! - `nginx`: nginx `uwsgi_pass` to a vassal's socket answers as the router does, through a
//!   reload of the vassal and a respawn of the router.
//! - `robust`: the router's hardening (security-checklist section 5) with raw sockets against a
//!   master run by hand in its own network namespace.
//! - `support`: a master run by hand in a network namespace, sockets made in a namespace,
//!   certificates, test servers behind `http-to`, the websocket handshake (no tests but its
//!   own digest check).
//! - `tls`: certificates by SNI, HTTP/2 (curl, h2load), h2c, websockets behind `http-to`.

mod failure;
mod gateway;
mod matrix;
mod nginx;
mod robust;
mod support;
mod tls;
