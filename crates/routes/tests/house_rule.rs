//! The rule at the top of `src/lib.rs`, held by reading every path in the crate's source: a route
//! uses the spine only, the spine uses no route, and routes never import each other.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The spine's rooms (folders or files directly under `src/`), floor by floor: a room uses
/// rooms on its own floor or below.
const SPINE: [&str; 5] = ["decode", "error", "linear", "progress", "score"];
const FLOORS: [(&str, usize); 5] = [
    ("error", 0),
    ("progress", 0),
    ("decode", 1),
    ("linear", 2),
    ("score", 3),
];

fn floor(room: &str) -> usize {
    FLOORS.iter().find(|(name, _)| *name == room).unwrap().1
}
/// The routes.
const ROUTES: [&str; 11] = [
    "b2c",
    "caption",
    "eeg",
    "encoding",
    "glm",
    "group",
    "music",
    "naturalistic",
    "realtime",
    "stream",
    "video",
];
/// The entries on top, allowed to use every route: the dispatch of a reconstruction and the
/// BIDS App (an orchestration of several routes).
const TOP: [&str; 3] = ["bids_app", "lib", "reconstruct"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The room a file belongs to: its first component under `src/`, without `.rs`.
fn room(src: &Path, file: &Path) -> String {
    let first = file.strip_prefix(src).unwrap().components().next().unwrap();
    let name = first.as_os_str().to_str().unwrap();
    name.strip_suffix(".rs").unwrap_or(name).to_string()
}

/// Every room named as `crate::<room>` in the text (comments and doc links included: a doc
/// link upward is an upward tie too).
fn rooms_used(text: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        if at > 0 {
            let before = text[..at].chars().next_back().unwrap();
            if before.is_alphanumeric() || before == '_' {
                continue; // e.g. `brainrecon_routes::` is not this crate's path
            }
        }
        let rest = &text[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            used.insert(name);
        }
    }
    used
}

#[test]
fn routes_use_the_spine_only_and_the_spine_uses_no_route() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut broken = Vec::new();
    let mut rooms_seen = BTreeSet::new();
    for file in &files {
        let from = room(&src, file);
        rooms_seen.insert(from.clone());
        let text = std::fs::read_to_string(file).unwrap();
        for to in rooms_used(&text) {
            if to == from || !(SPINE.contains(&to.as_str()) || ROUTES.contains(&to.as_str())) {
                continue; // itself, or a re-export at the crate's root (Result, RouteError, …)
            }
            let allowed = if TOP.contains(&from.as_str()) {
                true
            } else if SPINE.contains(&from.as_str()) {
                SPINE.contains(&to.as_str()) && floor(&to) <= floor(&from)
            } else {
                SPINE.contains(&to.as_str())
            };
            if !allowed {
                broken.push(format!(
                    "{} uses crate::{to}",
                    file.strip_prefix(&src).unwrap().display()
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "the house rule is broken:\n{}",
        broken.join("\n")
    );
    // Every room is named in the rule, so a new room has to take a side.
    let named: BTreeSet<String> = SPINE
        .iter()
        .chain(&ROUTES)
        .chain(&TOP)
        .map(|s| s.to_string())
        .collect();
    let unnamed: Vec<_> = rooms_seen.difference(&named).collect();
    assert!(
        unnamed.is_empty(),
        "rooms not named in the rule: {unnamed:?}"
    );
}

#[test]
fn the_reader_sees_paths_and_skips_other_crates() {
    let used =
        rooms_used("use crate::decode::x; // see [`crate::b2c`]\nuse brainrecon_routes::video;");
    assert_eq!(
        used,
        BTreeSet::from(["b2c".to_string(), "decode".to_string()])
    );
}
