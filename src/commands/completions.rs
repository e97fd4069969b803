//! `rdv completions` and the generated documentation: shell completions and man pages, both
//! from the command line's one definition (the `cli` module's `command()`, passed in by the caller so
//! that nothing here imports the CLI module).
//!
//! `completions/` and `man/` in the repository are the output of [`files`]; a test compares
//! them and `RDV_BLESS=1 cargo test --test cli` rewrites them.

use clap_complete::Shell;

use crate::exit::{CommandError, Exit};

/// `rdv completions SHELL`: the script on stdout.
pub fn print(shell: Shell, command: &mut clap::Command) -> Exit {
    match crate::files::write_stdout(&completion(shell, command)) {
        Ok(()) => Exit::Ok,
        Err(problem) => CommandError::failure(problem).report(),
    }
}

/// A shell completion script.
pub fn completion(shell: Shell, command: &mut clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, command, "rdv", &mut out);
    out
}

fn completion_file_name(shell: Shell) -> &'static str {
    match shell {
        Shell::Bash => "rdv.bash",
        Shell::Zsh => "_rdv",
        Shell::Fish => "rdv.fish",
        Shell::PowerShell => "_rdv.ps1",
        Shell::Elvish => "rdv.elv",
        _ => "rdv.unknown",
    }
}

/// Man pages: `rdv.1` and `rdv-SUBCOMMAND.1` for each subcommand.
pub fn man_pages(command: &clap::Command) -> Vec<(String, Vec<u8>)> {
    let mut command = command.clone();
    command.build();
    let mut pages = vec![("rdv.1".to_owned(), render_man(command.clone()))];
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = format!("rdv-{}", sub.get_name());
        let page = sub.clone().name(name.clone()).display_name(name.clone());
        pages.push((format!("{name}.1"), render_man(page)));
    }
    pages
}

fn render_man(command: clap::Command) -> Vec<u8> {
    let environment = environment_section(&command);
    let man = clap_mangen::Man::new(command);
    let mut out = Vec::new();
    let rendered: std::io::Result<()> = (|| {
        man.render_title(&mut out)?;
        man.render_name_section(&mut out)?;
        man.render_synopsis_section(&mut out)?;
        man.render_description_section(&mut out)?;
        man.render_options_section(&mut out)?;
        man.render_subcommands_section(&mut out)?;
        man.render_extra_section(&mut out)?;
        out.extend_from_slice(environment.as_bytes());
        man.render_version_section(&mut out)
    })();
    rendered.expect("rendering to memory cannot fail");
    out
}

/// clap_mangen leaves out the `RDV_…` variables that `--help` shows; list them here.
fn environment_section(command: &clap::Command) -> String {
    let mut section = String::new();
    for arg in command.get_arguments() {
        let (Some(variable), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        if section.is_empty() {
            section.push_str(".SH ENVIRONMENT\n");
        }
        section.push_str(&format!(
            ".TP\n\\fB{}\\fR\nSets \\fB\\-\\-{}\\fR; the flag wins when both are given.\n",
            variable.to_string_lossy(),
            long.replace('-', "\\-")
        ));
    }
    section
}

/// Every generated file, as (path relative to the repository root, contents).
pub fn files(command: &clap::Command) -> Vec<(String, Vec<u8>)> {
    let shells = [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::PowerShell,
        Shell::Elvish,
    ];
    let mut files: Vec<_> = shells
        .into_iter()
        .map(|shell| {
            (
                format!("completions/{}", completion_file_name(shell)),
                completion(shell, &mut command.clone()),
            )
        })
        .collect();
    files.extend(
        man_pages(command)
            .into_iter()
            .map(|(name, page)| (format!("man/{name}"), page)),
    );
    files
}
