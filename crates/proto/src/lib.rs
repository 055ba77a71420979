//! Wire formats with no I/O: the uwsgi packet (what nginx's `uwsgi_pass` sends), how a master
//! hands its sockets and options to a worker executable, the layout of the scoreboard that
//! master and workers share, and the control channel between an emperor and a vassal's master.
//! Everything here is pure, so it is cheap to test and fuzz.

pub mod emperor;
pub mod handoff;
pub mod router;
pub mod scoreboard;
pub mod subscription;
pub mod uwsgi;
