//! The HTTP router (ARCHITECTURE.md decisions 4, 5, 6): a process of its own that faces the
//! clients, matches each request's Host to a vassal (routes from the emperor, over the control
//! channel of `liege_proto::router`), and forwards it to the vassal's socket over the uwsgi
//! protocol or HTTP, reached through the vassal's run directory without following a link.
