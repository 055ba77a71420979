//! The HTTP router, through real processes (issue 6).
//!
//! - `gateway`: the emperor's router: vassals reached by their domains, the router process
//!   unprivileged, a second customer's claim refused, routes withdrawn with their vassal.
//! - `matrix`: the routing matrix: vassals of two customers (one jailed), five domains with a
//!   wildcard, a shared domain balanced, a refused claim, routes following the vassal files; a
//!   client's X-Forwarded-For not passed on; a socket swapped for a symlink refused.
//! - `support`: a master run by hand in a network namespace, sockets made in a namespace,
//!   certificates, test servers behind `http-to`, the websocket handshake (no tests but its
//!   own digest check).

mod gateway;
mod matrix;
mod robust;
mod support;
mod tls;
