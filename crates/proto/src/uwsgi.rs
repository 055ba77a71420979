//! The uwsgi packet (docs: Protocol.rst). Filled in by the uwsgi-parser work.
