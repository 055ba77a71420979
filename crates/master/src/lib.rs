//! The vassal master. Filled in by the master work.
