//! Static files. Filled in by the static-files work.
