//! Where things are: the workspace root and the paths the tasks use under it.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

/// The workspace being worked on: the parent of `xtask/`.
pub(crate) struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// The workspace this xtask belongs to, found from `CARGO_MANIFEST_DIR`: set by `cargo run`
    /// at run time, and baked in at build time for when the binary is started directly.
    pub(crate) fn locate() -> Self {
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|| OsString::from(env!("CARGO_MANIFEST_DIR")));
        let manifest_dir = PathBuf::from(manifest_dir);
        let root = manifest_dir
            .parent()
            .map_or_else(|| manifest_dir.clone(), Path::to_path_buf);
        Self { root }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// `relative` under the root.
    pub(crate) fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.root.join(relative)
    }

    /// The shared target directory, `<root>/target`; other builds use subdirectories of it.
    pub(crate) fn target(&self) -> PathBuf {
        self.path("target")
    }

    /// The `members = [...]` of the root Cargo.toml, read plainly (one quoted path per entry);
    /// enough for a summary, not a TOML parser.
    pub(crate) fn members(&self) -> Vec<String> {
        let Ok(manifest) = fs::read_to_string(self.path("Cargo.toml")) else {
            return Vec::new();
        };
        let Some(start) = manifest.find("members") else {
            return Vec::new();
        };
        let rest = &manifest[start..];
        let (Some(open), Some(close)) = (rest.find('['), rest.find(']')) else {
            return Vec::new();
        };
        if close < open {
            return Vec::new();
        }
        rest[open + 1..close]
            .lines()
            .map(|line| line.split('#').next().unwrap_or_default())
            .flat_map(|line| line.split(','))
            .map(|entry| entry.trim().trim_matches('"').to_owned())
            .filter(|entry| !entry.is_empty())
            .collect()
    }
}

/// Files under `dir` (recursively, skipping hidden, `target` and `__pycache__` directories)
/// whose names satisfy `wanted`, sorted. A missing `dir` has none.
pub(crate) fn files_named(dir: &Path, wanted: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !(name.starts_with('.') || name == "target" || name == "__pycache__") {
                found.extend(files_named(&path, wanted));
            }
        } else if wanted(&name) {
            found.push(path);
        }
    }
    found.sort();
    found
}
