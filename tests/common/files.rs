//! What a data directory holds, read as raw bytes: the deletion and redaction tests prove what
//! is *not* on disk.

use std::path::{Path, PathBuf};

/// Every file under `directory`, recursively; entries that vanish while listed are skipped (a
/// WAL truncated, a part merged away).
pub fn files_under(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The files under `directory` whose bytes hold any of `needles`, each with the needle found.
pub fn files_holding<'a>(directory: &Path, needles: &[&'a str]) -> Vec<(PathBuf, &'a str)> {
    let mut found = Vec::new();
    for path in files_under(directory) {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for needle in needles {
            if bytes
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
            {
                found.push((path.clone(), *needle));
            }
        }
    }
    found
}
