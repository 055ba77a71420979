//! HTTP/1.1 request parsing, sans-io. Filled in by the parser work.
