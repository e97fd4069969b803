//! `rdv serve --config FILE`: every serve setting in a TOML file, under the flag's own name
//! (`max-connections = 20000`, `allow-origin = ["https://a.example"]`). Relative file names
//! in it are relative to the file's own directory.
//!
//! The file's values become the command line's defaults before it is parsed, so clap keeps
//! deciding precedence — flag, then `RDV_*` variable, then file, then built-in default — and
//! checks every value with the same parser as the flag. Unknown keys and wrong types are
//! errors naming the file, the line and the key. `--check-config` then prints the effective
//! configuration with where each value came from.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::ArgAction;
use clap::parser::ValueSource;
use toml::de::{DeTable, DeValue};

use crate::exit::CommandError;

/// Settings that exist only on the command line.
const NOT_IN_FILES: [&str; 3] = ["config", "check-config", "help"];

/// The file's settings, applied to `serve`.
#[derive(Debug, Default)]
pub struct FileSettings {
    pub path: Option<PathBuf>,
    /// Arg ids the file set.
    pub keys: Vec<String>,
}

/// The `--config` file named on the command line (or in `RDV_CONFIG`), if `serve` runs.
pub fn config_path(args: &[OsString]) -> Option<PathBuf> {
    if args.get(1).and_then(|a| a.to_str()) != Some("serve")
        && !args.iter().skip(1).any(|a| a == "serve")
    {
        return None;
    }
    let mut words = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    while let Some(word) = words.next() {
        if word == "--config" {
            return words.next().map(PathBuf::from);
        }
        if let Some(path) = word.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("RDV_CONFIG").map(PathBuf::from)
}

/// Reads `path` and makes its values the defaults of `serve`'s arguments in `command`.
pub fn apply(
    command: clap::Command,
    path: &Path,
) -> Result<(clap::Command, FileSettings), CommandError> {
    let shown = path.display().to_string();
    let text = crate::files::read_text(path)
        .map_err(|e| CommandError::failure(format!("{shown}: {e}")))?;
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let table = DeTable::parse(&text)
        .map_err(|e| CommandError::failure(format!("{shown}: not TOML: {e}")))?;

    let mut serve = command
        .find_subcommand("serve")
        .expect("rdv has a serve command")
        .clone();
    serve.build();
    let mut problems = Vec::new();
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in table.get_ref() {
        let name = key.get_ref().as_ref();
        let line = line_of(key.span().start);
        let at = |problem: String| (line, format!("{shown}:{line}: {name}: {problem}"));
        let arg = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(name) && !NOT_IN_FILES.contains(&name));
        let Some(arg) = arg else {
            problems.push((
                line,
                format!(
                    "{shown}:{line}: unknown setting {name:?} (settings are rdv serve's flags \
                     without the dashes, e.g. max-connections)"
                ),
            ));
            continue;
        };
        let is_flag = matches!(arg.get_action(), ArgAction::SetTrue);
        let repeatable = matches!(arg.get_action(), ArgAction::Append);
        let texts: Result<Vec<String>, String> = match value.get_ref() {
            DeValue::Boolean(b) if is_flag => Ok(vec![b.to_string()]),
            DeValue::Boolean(_) => Err("expected a value, not true or false".into()),
            _ if is_flag => Err("expected true or false".into()),
            DeValue::String(s) => Ok(vec![s.to_string()]),
            DeValue::Integer(i) if i.radix() == 10 => Ok(vec![i.as_str().replace('_', "")]),
            DeValue::Array(items) if repeatable => items
                .iter()
                .map(|item| match item.get_ref() {
                    DeValue::String(s) => Ok(s.to_string()),
                    _ => Err("expected a list of strings".to_owned()),
                })
                .collect(),
            DeValue::Array(_) => Err("takes one value, not a list".into()),
            _ => Err("expected a string or a number".into()),
        };
        let texts = match texts {
            Ok(texts) => texts,
            Err(problem) => {
                problems.push(at(problem));
                continue;
            }
        };
        // Files named in the file are found next to it, like nginx's and systemd's.
        let names_a_file = arg
            .get_value_names()
            .is_some_and(|names| names.iter().any(|n| n.as_str() == "FILE"));
        let texts: Vec<String> = if names_a_file {
            let base = path.parent().unwrap_or(Path::new("."));
            texts
                .into_iter()
                .map(|t| base.join(&t).to_string_lossy().into_owned())
                .collect()
        } else {
            texts
        };
        // The flag's own parser decides, so the file accepts exactly what the flag does.
        if !is_flag {
            let check = clap::Command::new("config").no_binary_name(true).arg(
                clap::Arg::new("value")
                    .long("value")
                    .action(ArgAction::Set)
                    .value_parser(arg.get_value_parser().clone()),
            );
            for text in &texts {
                if let Err(error) = check.clone().try_get_matches_from(["--value", text]) {
                    // Everything up to clap's blank line and its hint: a value parser's
                    // message may span lines (a regex error shows where it broke).
                    let message = error.to_string();
                    let message = message
                        .split("\n\n")
                        .next()
                        .unwrap_or("")
                        .trim_end()
                        .trim_start_matches("error: ")
                        .replace(" for '--value <value>'", "");
                    problems.push(at(message));
                }
            }
        }
        values.insert(arg.get_id().to_string(), texts);
    }
    if !problems.is_empty() {
        problems.sort();
        let lines: Vec<String> = problems.into_iter().map(|(_, p)| p).collect();
        return Err(CommandError::failure(lines.join("\nrdv: ")));
    }
    let keys: Vec<String> = values.keys().cloned().collect();
    let command = command.mut_subcommand("serve", |serve| {
        values.into_iter().fold(serve, |serve, (id, texts)| {
            serve.mut_arg(id, |arg| arg.default_values(texts))
        })
    });
    Ok((
        command,
        FileSettings {
            path: Some(path.to_owned()),
            keys,
        },
    ))
}

/// A size or duration as written and as the server reads it (`64kb` is 64,000 bytes, not
/// 64 KiB: worth seeing before it is in force).
fn resolved(arg: &clap::Arg, written: &str) -> String {
    let kind = arg
        .get_value_names()
        .and_then(|names| names.first())
        .map(|name| name.as_str());
    match kind {
        Some("SIZE")
            if !written
                .trim_end_matches(['B', 'b'])
                .bytes()
                .all(|b| b.is_ascii_digit()) =>
        {
            match crate::units::parse_total_size(written) {
                Ok(bytes) => format!("{written} ({bytes} bytes)"),
                Err(_) => written.to_owned(),
            }
        }
        Some("DURATION") => match crate::units::parse_duration(written) {
            Ok(duration) => {
                let canonical = humantime::format_duration(duration).to_string();
                if canonical == written {
                    canonical
                } else {
                    format!("{written} ({canonical})")
                }
            }
            Err(_) => written.to_owned(),
        },
        _ => written.to_owned(),
    }
}

/// `--check-config`'s listing: every serve setting, its effective value, and where it came
/// from (flag, env, file or default).
pub fn describe(serve: &clap::Command, matches: &clap::ArgMatches, file: &FileSettings) -> String {
    let mut out = String::new();
    for arg in serve.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(long) = arg.get_long() else { continue };
        if NOT_IN_FILES.contains(&long) {
            continue;
        }
        let values: Vec<String> = matches
            .get_raw(id)
            .map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => "flag",
            Some(ValueSource::EnvVariable) => "env",
            Some(ValueSource::DefaultValue) if file.keys.iter().any(|k| k == id) => "file",
            _ => "default",
        };
        let shown = match values.as_slice() {
            [] => "(none)".to_owned(),
            // A password in the cluster URL is never printed.
            [one] if long == "cluster" => crate::server::redact_cluster_url(one),
            [one] => resolved(arg, one),
            many => format!("[{}]", many.join(", ")),
        };
        // The source before the value, so a long path does not push it out of its column.
        out.push_str(&format!("{long:<26} {source:<8} {shown}\n"));
    }
    out
}
