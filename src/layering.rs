//! Which module may use which: the rules of the layout, checked on the
//! source text so that a stray import fails the tests, not a review.
//!
//! - `email` takes jobs from its owner and never reaches into the delivery
//!   engine (no import cycle between `delivery` and `email`).
//! - `domain` reads no settings: it is built from plain values. Nor does it
//!   use the store or the delivery engine: they use it.
//! - `store` knows nothing of the breaker's view of a circuit.
//! - The API and the dashboard send test notifications through
//!   `delivery::test_send`, never with an HTTP client of their own.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/<dir>`, with its code lines (comments and
/// doc comments left out: prose may name anything).
fn code_under(dir: &str) -> Vec<(PathBuf, Vec<(usize, String)>)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let mut files = Vec::new();
    walk(&root, &mut files);
    assert!(
        !files.is_empty(),
        "no source files under {}",
        root.display()
    );
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let lines = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim_start().starts_with("//"))
                .map(|(i, l)| (i + 1, l.to_owned()))
                .collect();
            (path, lines)
        })
        .collect()
}

/// Every line of code under `src/<dir>` that names one of `forbidden`.
fn offending(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, lines) in code_under(dir) {
        for (n, line) in lines {
            for f in forbidden {
                if line.contains(f) {
                    found.push(format!("{}:{n}: `{f}` in {}", path.display(), line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn email_never_reaches_into_the_delivery_engine() {
    let found = offending(
        "email",
        &[
            "EngineCtx",
            "deliverer::Job",
            "crate::delivery",
            "super::super::delivery",
        ],
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_domain_reads_no_settings() {
    let found = offending("domain", &["crate::settings", "super::super::settings"]);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_domain_uses_neither_the_store_nor_the_engine() {
    let found = offending(
        "domain",
        &[
            "crate::store",
            "super::super::store",
            "crate::delivery",
            "super::super::delivery",
        ],
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_store_knows_no_breaker_state() {
    let found = offending("store", &["BreakerState"]);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn test_sends_go_through_the_delivery_function() {
    for dir in ["api", "dashboard"] {
        let found = offending(dir, &["delivery::sender", "Sender::new"]);
        assert!(found.is_empty(), "{}", found.join("\n"));
    }
}
