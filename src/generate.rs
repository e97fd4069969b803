//! Generated documentation: shell completions and man pages, both from [`crate::cli::command`].
//!
//! `completions/` and `man/` in the repository are the output of [`files`]; a test compares
//! them and `RDV_BLESS=1 cargo test` rewrites them.

use clap_complete::Shell;

use crate::cli;

/// A shell completion script.
pub fn completion(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cli::command(), "rdv", &mut out);
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
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    let mut command = cli::command();
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
    let mut out = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut out)
        .expect("rendering to memory cannot fail");
    out
}

/// Every generated file, as (path relative to the repository root, contents).
pub fn files() -> Vec<(String, Vec<u8>)> {
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
                completion(shell),
            )
        })
        .collect();
    files.extend(
        man_pages()
            .into_iter()
            .map(|(name, page)| (format!("man/{name}"), page)),
    );
    files
}
