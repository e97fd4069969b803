//! File and stream plumbing: inputs with `-` for stdin, one-line secret files, atomic writes
//! that never clobber by accident, and stdout that treats a closed pipe as a normal end.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Where an input came from, as shown in messages and output (`-` for stdin).
pub fn display_name(path: &Path) -> String {
    if is_stdin(path) {
        "-".to_owned()
    } else {
        path.display().to_string()
    }
}

pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Reads a whole input as UTF-8 text.
pub fn read_text(path: &Path) -> Result<String, String> {
    let mut bytes = Vec::new();
    let read = if is_stdin(path) {
        io::stdin().lock().read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|mut file| file.read_to_end(&mut bytes))
    };
    read.map_err(|e| describe_io(&e))?;
    String::from_utf8(bytes).map_err(|_| "the file is not UTF-8 text".to_owned())
}

/// The first line of a file holding one secret (a TURN secret, a password), without its line
/// end or trailing spaces; `None` when that line is empty.
pub fn read_first_line(path: &Path) -> Result<Option<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| describe_io(&e))?;
    let line = text.lines().next().unwrap_or("").trim_end();
    Ok((!line.is_empty()).then(|| line.to_owned()))
}

/// An I/O error as a lowercase phrase, without the "(os error 2)" noise.
pub fn describe_io(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "no such file".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::AlreadyExists => "already exists; use --force to replace it".to_owned(),
        io::ErrorKind::IsADirectory => "is a directory".to_owned(),
        _ => {
            let text = error.to_string();
            match text.find(" (os error") {
                Some(end) => text[..end].to_owned(),
                None => text,
            }
        }
    }
}

/// File permissions for what is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrecy {
    /// Private keys: owner read/write only (0600).
    Private,
    /// Public keys and lists (0644).
    Public,
}

/// Writes `contents` to `path` through a temporary file in the same directory and a rename,
/// so readers see the old file or the whole new one, never a part. Without `overwrite`, an
/// existing file is left alone and the write fails.
pub fn write_atomically(
    path: &Path,
    contents: &[u8],
    secrecy: Secrecy,
    overwrite: bool,
) -> Result<(), String> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let with_path = |e: io::Error| format!("{}: {}", path.display(), describe_io(&e));
    // tempfile creates the file 0600, so a private key is never readable by others, even
    // for the instant before it is renamed into place.
    let mut temp = tempfile::Builder::new()
        .prefix(".rdv-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(with_path)?;
    #[cfg(unix)]
    if secrecy == Secrecy::Public {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(with_path)?;
    }
    #[cfg(not(unix))]
    let _ = secrecy;
    temp.write_all(contents).map_err(with_path)?;
    temp.as_file().sync_all().map_err(with_path)?;
    let persisted = if overwrite {
        temp.persist(path)
    } else {
        temp.persist_noclobber(path)
    };
    persisted.map(drop).map_err(|e| with_path(e.error))
}

/// Fails early, before any work, if the directory `path` would go into does not exist (the
/// write itself would only say "no such file").
pub fn ensure_directory(path: &Path) -> Result<(), String> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(format!(
            "{}: the directory {} does not exist",
            path.display(),
            dir.display()
        )),
        _ => Ok(()),
    }
}

/// Fails early, before any work, if `path` exists and may not be replaced.
pub fn ensure_writable(path: &Path, overwrite: bool) -> Result<(), String> {
    if !overwrite && path.symlink_metadata().is_ok() {
        return Err(format!(
            "{}: already exists; use --force to replace it",
            path.display()
        ));
    }
    Ok(())
}

/// Writes to stdout. A closed pipe (`rdv … | head`) is the reader's choice and ends the
/// program quietly; other errors are reported.
pub fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("cannot write to stdout: {}", describe_io(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_set_modes_and_refuse_to_clobber() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.jwk");
        write_atomically(&path, b"one", Secrecy::Private, false).unwrap();
        let error = write_atomically(&path, b"two", Secrecy::Private, false).unwrap_err();
        assert!(error.contains("already exists"), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        write_atomically(&path, b"three", Secrecy::Private, true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            let public = dir.path().join("key.pub.jwk");
            write_atomically(&public, b"pub", Secrecy::Public, false).unwrap();
            assert_eq!(mode(&public), 0o644);
        }
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert!(
            names
                .iter()
                .all(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
        );
    }
}
