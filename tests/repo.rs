//! The repository stands alone: a fresh clone with nothing beside it has every file a test,
//! an example or a document refers to. (`.ci/run` also runs the whole suite from such a
//! clone; this test catches the mistake on a developer's machine, where the folder beside
//! the checkout may happen to exist.)

use std::path::{Path, PathBuf};

/// Text files of the repository, without build output, installed packages and test data.
fn text_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | "node_modules" | ".git" | "data") {
                text_files(&path, found);
            }
        } else if let Some("rs" | "md" | "toml" | "js" | "mjs" | "html" | "json" | "sh") =
            path.extension().and_then(|e| e.to_str())
        {
            found.push(path);
        } else if name == "run" {
            found.push(path);
        }
    }
}

#[test]
fn nothing_refers_to_a_path_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("Cargo.toml"), root.join("README.md")];
    for dir in [
        "src", "tests", "docs", "examples", ".ci", "clients", "deploy", "benches",
    ] {
        if root.join(dir).is_dir() {
            text_files(&root.join(dir), &mut files);
        }
    }
    // Spelled in pieces so this file does not match itself.
    let outside = [
        format!("..{}shared", '/'),
        format!("{}/{}", "CARGO_MANIFEST_DIR\"), \"", ".."),
    ];
    let mut hits = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (number, line) in text.lines().enumerate() {
            if outside
                .iter()
                .any(|pattern| line.contains(pattern.as_str()))
            {
                hits.push(format!(
                    "{}:{}: {}",
                    file.strip_prefix(root).unwrap().display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(files.len() > 50, "the walk found the sources");
    assert!(
        hits.is_empty(),
        "paths outside the repository (copy the data into tests/data/):\n{}",
        hits.join("\n")
    );
}

#[test]
fn licenses_match_the_manifest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains(r#"license = "MIT OR Apache-2.0""#));
    let mit = std::fs::read_to_string(root.join("LICENSE-MIT")).unwrap();
    assert!(mit.contains("Permission is hereby granted, free of charge"));
    let apache = std::fs::read_to_string(root.join("LICENSE-APACHE")).unwrap();
    assert!(apache.contains("Apache License") && apache.contains("Version 2.0"));
}

/// Every `.rs` file under `src/DIR` (or the file `src/DIR.rs`), as (path, text).
fn sources(under: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let file = root.join(format!("{under}.rs"));
    if file.is_file() {
        files.push(file);
    }
    let dir = root.join(under);
    if dir.is_dir() {
        text_files(&dir, &mut files);
    }
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path.display().to_string(), text)
        })
        .collect()
}

/// The layer rule of CONTRIBUTING.md: dependencies point one way.
#[test]
fn dependencies_point_one_way() {
    let mut broken = Vec::new();
    let mut check = |under: &str, forbidden: &[&str]| {
        let files = sources(under);
        assert!(!files.is_empty(), "src/{under} exists");
        for (path, text) in files {
            for pattern in forbidden {
                if text.contains(pattern) {
                    broken.push(format!("{path} uses {pattern}"));
                }
            }
        }
    };
    // Nothing imports the command line: it sits on top.
    for module in [
        "identity", "protocol", "server", "peer", "bench", "commands",
    ] {
        check(module, &["crate::cli"]);
    }
    for leaf in ["units", "exit", "color", "files"] {
        check(leaf, &["crate::"]);
    }
    // Key and wire code know nothing of sockets, files, terminals or the layers above.
    let io_and_above = [
        "tokio",
        "std::fs",
        "std::net",
        "crate::server",
        "crate::peer",
        "crate::bench",
        "crate::commands",
        "crate::files",
    ];
    check("identity", &io_and_above);
    check("protocol", &io_and_above);
    // The clients do not reach into the server beyond what it exports for them.
    check("peer", &["crate::server"]);
    for (path, text) in sources("bench") {
        for line in text.lines().filter(|l| l.contains("crate::server::")) {
            let allowed = [
                "crate::server::stack",
                "crate::server::listening_line",
                "crate::server::parse_listening_line",
            ]
            .iter()
            .any(|ok| line.contains(ok));
            if !allowed {
                broken.push(format!("{path}: {}", line.trim()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "layer rule broken:\n{}",
        broken.join("\n")
    );
}

/// `src/server/` in layers, lowest first: each folder imports only the ones before it.
const SERVER_LAYERS: [&str; 6] = [
    "operations",
    "admission",
    "rooms",
    "config",
    "connection",
    "accept",
];

#[test]
fn server_folders_import_only_lower_layers() {
    let mut broken = Vec::new();
    for (level, layer) in SERVER_LAYERS.iter().enumerate() {
        for (path, text) in sources(&format!("server/{layer}")) {
            for higher in &SERVER_LAYERS[level + 1..] {
                let pattern = format!("crate::server::{higher}");
                if text.contains(&format!("{pattern}::")) || text.contains(&format!("{pattern};")) {
                    broken.push(format!("{path} (layer {layer}) uses {pattern}"));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "server layers broken (CONTRIBUTING.md):\n{}",
        broken.join("\n")
    );
}

/// The module path of a folder under `src/`, as `crate::a::b`.
fn module_path(dir: &Path) -> String {
    let relative = dir
        .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
        .unwrap();
    let mut path = String::from("crate");
    for part in relative.components() {
        path.push_str("::");
        path.push_str(&part.as_os_str().to_string_lossy());
    }
    path
}

/// Which sibling modules `text` names: `super::NAME` (not `super::super::NAME`, which is a
/// test module reaching past its file) or the sibling's full path.
fn sibling_uses(text: &str, siblings: &[String], full: &str) -> Vec<String> {
    siblings
        .iter()
        .filter(|name| {
            let relative = format!("super::{name}");
            let by_path = format!("{full}::{name}");
            text.match_indices(&relative).any(|(at, _)| {
                let before = &text[..at];
                let after = text[at + relative.len()..].chars().next();
                !before.ends_with("::")
                    && !before.ends_with(|c: char| c.is_alphanumeric() || c == '_')
                    && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
            }) || text.match_indices(&by_path).any(|(at, _)| {
                let after = text[at + by_path.len()..].chars().next();
                !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
        })
        .cloned()
        .collect()
}

/// No two files of one folder import each other, directly or round a loop: a folder's files
/// form layers too.
#[test]
fn no_import_cycles_between_sibling_files() {
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    let mut cycles = Vec::new();
    while let Some(dir) = dirs.pop() {
        let mut siblings = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Some(stem) = path.file_stem().map(|s| s.to_string_lossy().into_owned())
                && path.extension().is_some_and(|e| e == "rs")
                && !matches!(stem.as_str(), "mod" | "lib" | "main")
            {
                siblings.push(stem);
            }
        }
        let full = module_path(&dir);
        let uses: std::collections::HashMap<String, Vec<String>> = siblings
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(dir.join(format!("{name}.rs"))).unwrap();
                let others: Vec<String> = siblings.iter().filter(|s| *s != name).cloned().collect();
                (name.clone(), sibling_uses(&text, &others, &full))
            })
            .collect();
        // Depth-first search for a path back to where it started.
        for start in &siblings {
            let mut stack = vec![(start.clone(), vec![start.clone()])];
            let mut seen = std::collections::HashSet::new();
            while let Some((at, trail)) = stack.pop() {
                for next in &uses[&at] {
                    if next == start {
                        let mut cycle = trail.clone();
                        cycle.push(start.clone());
                        cycles.push(format!("{}: {}", dir.display(), cycle.join(" -> ")));
                    } else if seen.insert(next.clone()) {
                        let mut longer = trail.clone();
                        longer.push(next.clone());
                        stack.push((next.clone(), longer));
                    }
                }
            }
        }
    }
    cycles.sort();
    cycles.dedup();
    assert!(
        cycles.is_empty(),
        "import cycles between files of one folder:\n{}",
        cycles.join("\n")
    );
}
