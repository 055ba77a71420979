//! Wire formats with no I/O: the uwsgi packet (what nginx's `uwsgi_pass` sends), how a master
//! hands its sockets and options to a worker executable, and the layout of the scoreboard that
//! master and workers share. Everything here is pure, so it is cheap to test and fuzz.

pub mod handoff;
pub mod scoreboard;
pub mod uwsgi;
