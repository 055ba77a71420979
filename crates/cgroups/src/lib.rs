//! cgroup v1 and v2 behind one interface (being built for issue 4).
