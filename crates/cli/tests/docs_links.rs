//! Every link of the README and the guide (docs/, built as a book by mdBook) reaches its
//! target: relative `.md` links and their `#anchors`, images, and the pages SUMMARY.md lists.
//! mdBook checks neither links nor anchors. Also: the layout page's table of crates and their
//! dependencies is the one the Cargo.toml files give.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

fn repo_root() -> PathBuf {
    lexical(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The text outside fenced code blocks and inline code spans (code replaced by spaces, so
/// that a link written inside code is not taken for one); newlines are kept.
fn prose(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fenced = false;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push('\n');
            continue;
        }
        if fenced {
            out.push('\n');
        } else {
            out.push_str(line);
        }
    }
    // Inline code: a run of n backticks opens a span that the next run of n closes.
    let chars: Vec<char> = out.chars().collect();
    let mut kept = String::with_capacity(out.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '`' {
            let run = chars[i..].iter().take_while(|&&c| c == '`').count();
            let mut j = i + run;
            let mut close = None;
            while j < chars.len() {
                if chars[j] == '`' {
                    let r = chars[j..].iter().take_while(|&&c| c == '`').count();
                    if r == run {
                        close = Some(j);
                        break;
                    }
                    j += r;
                } else {
                    j += 1;
                }
            }
            if let Some(c) = close {
                for &ch in &chars[i..c + run] {
                    kept.push(if ch == '\n' { '\n' } else { ' ' });
                }
                i = c + run;
                continue;
            }
        }
        kept.push(chars[i]);
        i += 1;
    }
    kept
}

/// The targets of the inline links and images `[text](target)` in the prose, with the line
/// each one is on.
fn links(text: &str) -> Vec<(usize, String)> {
    let prose = prose(text);
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = prose[from..].find("](") {
        let start = from + at + 2;
        let target: String = prose[start..]
            .chars()
            .take_while(|&c| c != ')' && !c.is_whitespace())
            .collect();
        let line = prose[..start].matches('\n').count() + 1;
        found.push((line, target));
        from = start;
    }
    found
}

/// The id mdBook (and GitHub) gives a heading: its text without markup, lowercased, letters,
/// digits, `-` and `_` kept, spaces turned into `-`, everything else dropped.
fn heading_id(heading: &str) -> String {
    // a link in a heading counts by its text
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find("](") {
        let close = rest[open..].find(')').map_or(rest.len(), |c| open + c + 1);
        text.push_str(&rest[..open]);
        rest = &rest[close..];
    }
    text.push_str(rest);
    text.trim()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                Some(c.to_lowercase().collect::<String>())
            } else if c.is_whitespace() {
                Some("-".to_string())
            } else {
                None
            }
        })
        .collect()
}

/// The anchors of a page: its headings' ids, a repeated id numbered `-1`, `-2`, … as both
/// mdBook and GitHub number them.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let heading = line[hashes..].trim().replace(['`', '*'], "");
            let id = heading_id(&heading);
            let n = seen.entry(id.clone()).or_insert(0);
            ids.insert(if *n == 0 {
                id.clone()
            } else {
                format!("{id}-{n}")
            });
            *n += 1;
        }
    }
    ids
}

/// `a/b/../c` → `a/c`, without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Every broken link of the README and the pages under `docs/` of `root`, one line each.
fn broken_links(root: &Path) -> Vec<String> {
    let docs = root.join("docs");
    let mut files = vec![root.join("README.md")];
    let mut stack = vec![docs.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut problems = Vec::new();
    let mut anchor_cache: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        let in_book = file.starts_with(&docs);
        for (line, target) in links(&text) {
            if target.is_empty() {
                problems.push(format!("{name}:{line}: an empty link target"));
                continue;
            }
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path_part, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let resolved = if path_part.is_empty() {
                lexical(file)
            } else {
                lexical(&file.parent().unwrap().join(path_part))
            };
            if !resolved.exists() {
                problems.push(format!("{name}:{line}: {target}: no such file"));
                continue;
            }
            // The built book holds only what is under docs/.
            if in_book && !resolved.starts_with(lexical(&docs)) {
                problems.push(format!(
                    "{name}:{line}: {target}: outside docs/, so missing from the built book"
                ));
            }
            if let Some(anchor) = anchor {
                if resolved.extension().is_none_or(|e| e != "md") {
                    problems.push(format!(
                        "{name}:{line}: {target}: an anchor into a non-page"
                    ));
                    continue;
                }
                let ids = anchor_cache.entry(resolved.clone()).or_insert_with(|| {
                    anchors(&std::fs::read_to_string(&resolved).unwrap_or_default())
                });
                if !ids.contains(anchor) {
                    problems.push(format!(
                        "{name}:{line}: {target}: no heading with id #{anchor}"
                    ));
                }
            }
        }
    }
    // Every page is in the book's table of contents, and every entry there is a page.
    let summary = docs.join("SUMMARY.md");
    match std::fs::read_to_string(&summary) {
        Err(_) => problems.push("docs/SUMMARY.md: missing".to_string()),
        Ok(text) => {
            let listed: BTreeSet<PathBuf> = links(&text)
                .into_iter()
                .map(|(_, t)| lexical(&docs.join(t.split('#').next().unwrap())))
                .collect();
            for file in files.iter().filter(|f| f.starts_with(&docs)) {
                let page = lexical(file);
                if page != lexical(&summary) && !listed.contains(&page) {
                    let name = file
                        .strip_prefix(root)
                        .unwrap_or(file)
                        .display()
                        .to_string();
                    problems.push(format!("{name}: not listed in docs/SUMMARY.md"));
                }
            }
        }
    }
    problems
}

#[test]
fn readme_and_guide_links_reach_their_targets() {
    let problems = broken_links(&repo_root());
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

/// The checker itself: a planted broken page link, a missing anchor, a missing image and an
/// unlisted page are found; links inside code are not links.
#[test]
fn the_checker_finds_what_is_broken() {
    let dir = std::env::temp_dir().join(format!("brainrecon-docs-links-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("docs/routes")).unwrap();
    std::fs::write(dir.join("docs/pic.png"), b"png").unwrap();
    std::fs::write(
        dir.join("README.md"),
        "# Top\n\nSee [the route](docs/routes/a.md#the-route-x--y) and [gone](docs/nope.md).\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("docs/SUMMARY.md"),
        "# Summary\n\n- [A](routes/a.md)\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("docs/routes/a.md"),
        "# The route: `x` → y\n\n## Twice\n\n## Twice\n\n![p](../pic.png) [t](#twice-1) \
         [bad](#nowhere) ![q](../missing.png)\n`[code](nope.md)`\n\n```\n[fenced](nope.md)\n```\n",
    )
    .unwrap();
    std::fs::write(dir.join("docs/orphan.md"), "# Orphan\n").unwrap();
    let problems = broken_links(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    let expected = [
        "README.md:3: docs/nope.md: no such file",
        "docs/routes/a.md:7: #nowhere: no heading with id #nowhere",
        "docs/routes/a.md:7: ../missing.png: no such file",
        "docs/orphan.md: not listed in docs/SUMMARY.md",
    ];
    assert_eq!(problems, expected, "{problems:#?}");
}

/// The workspace crates each crate's Cargo.toml depends on (`[dependencies]` and
/// `[target.….dependencies]`), by the folder name under crates/.
fn cargo_dependencies(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(toml) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let mut deps = BTreeSet::new();
        let mut in_deps = false;
        for line in toml.lines().map(str::trim) {
            if line.starts_with('[') {
                in_deps = line == "[dependencies]"
                    || (line.starts_with("[target.") && line.ends_with(".dependencies]"));
            } else if in_deps {
                if let Some(rest) = line.strip_prefix("brainrecon-") {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                        .collect();
                    deps.insert(name);
                }
            }
        }
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        graph.insert(name, deps);
    }
    graph
}

/// The layout page's table (docs/architecture.md) lists every crate with the workspace crates
/// its Cargo.toml depends on and its floor (0 without workspace dependencies, else one above
/// its highest dependency), so the picture of the code cannot drift from the code.
#[test]
fn the_layout_page_lists_the_crates_and_their_dependencies() {
    let root = repo_root();
    let graph = cargo_dependencies(&root);
    fn floor(c: &str, graph: &BTreeMap<String, BTreeSet<String>>) -> usize {
        graph[c]
            .iter()
            .map(|d| 1 + floor(d, graph))
            .max()
            .unwrap_or(0)
    }
    let page = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let mut listed = BTreeMap::new();
    for row in page.lines().filter(|l| l.contains("| `crates/")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let name = cells[2]
            .trim_start_matches("`crates/")
            .split('`')
            .next()
            .unwrap()
            .to_string();
        let deps: BTreeSet<String> = match cells[3] {
            "—" => BTreeSet::new(),
            list => list.split(", ").map(str::to_string).collect(),
        };
        listed.insert(name, (cells[1].parse::<usize>().unwrap(), deps));
    }
    let mut problems = Vec::new();
    for (name, deps) in &graph {
        let want = floor(name, &graph);
        match listed.get(name) {
            None => problems.push(format!("crates/{name} is not in the table")),
            Some((f, d)) => {
                if d != deps {
                    problems.push(format!(
                        "crates/{name}: the table says it depends on {d:?}, Cargo.toml on {deps:?}"
                    ));
                }
                if *f != want {
                    problems.push(format!(
                        "crates/{name}: floor {f} in the table, {want} by its dependencies"
                    ));
                }
            }
        }
    }
    for name in listed.keys().filter(|n| !graph.contains_key(*n)) {
        problems.push(format!(
            "crates/{name} is in the table but has no Cargo.toml"
        ));
    }
    assert!(
        problems.is_empty(),
        "docs/architecture.md (its table, picture and floors) is out of date \
         (python3 tools/docs/architecture.py rewrites it and docs/architecture.svg):\n{}",
        problems.join("\n")
    );
}
