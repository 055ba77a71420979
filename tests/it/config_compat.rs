//! Filled in below once the corpus lands.
