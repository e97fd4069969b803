//! The documentation keeps its promises: every relative link and `#anchor` in the README,
//! docs/, deploy/ and clients/ points at something that exists, and every `--flag` the docs
//! show for an `rdv` subcommand is one that subcommand's `--help` lists (a renamed flag fails
//! here, not in a user's terminal).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown pages a reader follows links through.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![
        root().join("README.md"),
        root().join("CONTRIBUTING.md"),
        root().join("deploy/README.md"),
        root().join("clients/js/README.md"),
    ];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages.sort();
    pages
}

/// The lines of a page outside fenced code blocks, with their numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut in_code = false;
    let mut lines = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            lines.push((number + 1, line));
        }
    }
    lines
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens, and
/// `-1`, `-2`… for repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut found = BTreeSet::new();
    for (_, line) in prose(text) {
        let Some(title) = line.strip_prefix('#') else {
            continue;
        };
        let title = title.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let count = seen.entry(slug.clone()).or_default();
        found.insert(if *count == 0 {
            slug.clone()
        } else {
            format!("{slug}-{count}")
        });
        *count += 1;
    }
    found
}

/// `](target)` links on a line.
fn links(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("](") {
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else { break };
        found.push(after[..end].to_owned());
        rest = &after[end..];
    }
    found
}

#[test]
fn every_relative_link_and_anchor_points_somewhere() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let shown = page.strip_prefix(root()).unwrap().display().to_string();
        for (number, line) in prose(&text) {
            for link in links(line) {
                if link.contains("://") || link.starts_with("mailto:") {
                    continue;
                }
                let (path, anchor) = link.split_once('#').unwrap_or((&link, ""));
                let target = if path.is_empty() {
                    page.clone()
                } else {
                    page.parent().unwrap().join(path)
                };
                if !target.exists() {
                    broken.push(format!("{shown}:{number}: {link}: no such file"));
                    continue;
                }
                // The packed library carries only its own folder.
                if shown.starts_with("clients/js/")
                    && !target
                        .canonicalize()
                        .unwrap()
                        .starts_with(root().join("clients/js").canonicalize().unwrap())
                {
                    broken.push(format!(
                        "{shown}:{number}: {link}: outside the package `npm pack` makes"
                    ));
                }
                if !anchor.is_empty() && target.extension().is_some_and(|e| e == "md") {
                    let text = std::fs::read_to_string(&target).unwrap();
                    if !anchors(&text).contains(anchor) {
                        broken.push(format!("{shown}:{number}: {link}: no heading #{anchor}"));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The `--long` flags in `text`, with where each starts.
fn flags_in(text: &str) -> Vec<(usize, String)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("--") {
        let start = i + at;
        let before = start.checked_sub(1).map(|b| bytes[b]);
        let mut end = start + 2;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'-') {
            end += 1;
        }
        let name = &text[start + 2..end];
        let word_start = before.is_none_or(|b| !(b.is_ascii_alphanumeric() || b == b'-'));
        if word_start && name.len() > 1 && name.as_bytes()[0].is_ascii_lowercase() {
            found.push((start, format!("--{name}")));
        }
        i = end.max(start + 2);
    }
    found
}

/// Every long flag of `rdv ARGS --help`.
fn help_flags(args: &[&str]) -> BTreeSet<String> {
    let output = std::process::Command::new(common::rdv_binary())
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success(), "rdv {args:?} --help");
    flags_in(&String::from_utf8_lossy(&output.stdout))
        .into_iter()
        .map(|(_, flag)| flag)
        .collect()
}

#[test]
fn every_flag_the_docs_show_exists() {
    let mut by_command: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for command in [
        "serve",
        "keygen",
        "fingerprint",
        "peer",
        "token",
        "completions",
    ] {
        by_command.insert(command, help_flags(&[command]));
    }
    let mut bench = help_flags(&["bench"]);
    for scenario in [
        "relay",
        "join",
        "fanout",
        "churn",
        "compare",
        "compare-join",
        "floor",
    ] {
        bench.extend(help_flags(&["bench", scenario]));
    }
    by_command.insert("bench", bench);
    let every: BTreeSet<String> = by_command.values().flatten().cloned().collect();
    // Flags of the other programs the docs show (cargo, Redis, curl, npm…).
    let outside = [
        "--release",
        "--bench",
        "--test",
        "--ignored",
        "--nocapture",
        "--locked",
        "--path",
        "--all-targets",
        "--check",
        "--no-default-features",
        "--features",
        "--no-fail-fast",
        "--port",
        "--save",
        "--maxmemory-policy",
        "--cluster-enabled",
        "--build",
        "--tool",
        "--experimental-websocket",
        "--strict",
        // CONTRIBUTING.md's placeholder for a new flag.
        "--your-flag",
    ];
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let shown = page.strip_prefix(root()).unwrap().display().to_string();
        // A command continued with `\` is one line for this purpose.
        let joined = text.replace("\\\n", " ");
        for (number, line) in joined.lines().enumerate() {
            // A flag after `rdv SUBCOMMAND` on a line is the nearest such subcommand's.
            let mut commands: Vec<(usize, &str)> = Vec::new();
            for command in by_command.keys() {
                for pattern in [format!("rdv {command} "), format!("-- {command} ")] {
                    commands.extend(line.match_indices(&pattern).map(|(at, _)| (at, *command)));
                }
            }
            // Flags after another program's name are that program's.
            for program in ["node ", "redis-server ", "redis-cli ", "npm ", "python3 "] {
                commands.extend(line.match_indices(program).map(|(at, _)| (at, "")));
            }
            for (at, flag) in flags_in(line) {
                let owner = commands
                    .iter()
                    .filter(|(start, _)| *start < at)
                    .max_by_key(|(start, _)| *start);
                let known = outside.contains(&flag.as_str())
                    || match owner {
                        Some((_, "")) => true,
                        Some((_, command)) => by_command[command].contains(&flag),
                        None => every.contains(&flag),
                    };
                if !known {
                    broken.push(format!("{shown}:{}: {flag}", number + 1));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "flags the docs show that `rdv … --help` does not list:\n{}",
        broken.join("\n")
    );
}
