//! The ini parser, on any bytes: it either parses or returns a syntax error with a line that
//! exists in the input; it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liege_config::notation::{Notation, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lines = u32::try_from(text.split('\n').count()).unwrap_or(u32::MAX);
    for section in ["uwsgi", "other"] {
        match parse(Notation::Ini, text, section) {
            Ok(parsed) => {
                for e in parsed.entries {
                    assert!(e.line >= 1 && e.line <= lines);
                    assert!(!e.key.contains('\n'));
                }
            }
            Err(e) => assert!(e.line >= 1 && e.line <= lines),
        }
    }
});
