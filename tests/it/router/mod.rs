//! The HTTP router, through real processes (issue 6).
//!
//! - `gateway`: the emperor's router: vassals reached by their domains, the router process
//!   unprivileged, a second customer's claim refused, routes withdrawn with their vassal.

mod gateway;
