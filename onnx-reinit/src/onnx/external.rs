//! External data (`data_location = EXTERNAL`): where side files may be, and where their
//! rewritten copies go.
//!
//! Rules, checked when a model is opened (so nothing is written for a model that breaks them):
//! - a `location` is relative to the model's folder; absolute locations, locations with a `..`
//!   component, and locations that resolve (through symlinks) outside the model's folder are
//!   refused; the side file must exist and be a regular file, and must not be the model file
//!   itself (checked in [`crate::onnx::storage`]);
//! - `offset + length` must lie inside the side file and `length` must equal numel × element
//!   size, which must not overflow (checked in [`crate::onnx::storage`]).
//!
//! When rewriting to a new path, every side file the model references is copied next to the
//! output under the same relative location (so the `.onnx` bytes, whose locations are relative,
//! need no change) and the target tensors' ranges are patched in the copy; the copy goes through
//! a temporary file in the destination folder and is renamed into place. In place, a temporary
//! copy of each side file holding a target is patched and renamed over the original. See
//! [`crate::rewrite`] for the patching itself (bounded memory: positional reads and writes in
//! chunks of at most a few MiB).

use std::path::{Component, Path, PathBuf};

/// Resolves an external-data `location` against the model's folder and checks that it stays
/// inside it. `dir` is the folder as given, `canonical_dir` its canonical form. Returns the
/// canonical path of the side file, or a one-line reason for refusing it.
pub fn resolve_location(
    dir: &Path,
    canonical_dir: &Path,
    location: &str,
) -> Result<PathBuf, String> {
    let rel = checked_relative(location)?;
    let joined = dir.join(rel);
    let canonical = joined.canonicalize().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("side file {location:?} does not exist")
        } else {
            format!("side file {location:?}: {e}")
        }
    })?;
    if !canonical.starts_with(canonical_dir) {
        return Err(format!(
            "location {location:?} resolves to {}, outside the model's folder (through a symlink)",
            canonical.display()
        ));
    }
    let meta = std::fs::metadata(&canonical).map_err(|e| format!("side file {location:?}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("side file {location:?} is not a regular file"));
    }
    Ok(canonical)
}

/// Checks the lexical form of a `location`: non-empty, relative, no `..`, no NUL; returns it as a
/// relative path.
pub fn checked_relative(location: &str) -> Result<&Path, String> {
    if location.is_empty() {
        return Err("empty location".into());
    }
    if location.contains('\0') {
        return Err(format!("location {location:?} contains a NUL byte"));
    }
    let p = Path::new(location);
    // A Windows-style drive or UNC prefix is as absolute as a leading '/'.
    let windows_absolute =
        location.starts_with('\\') || (location.len() >= 2 && location.as_bytes()[1] == b':');
    if p.is_absolute() || p.has_root() || windows_absolute {
        return Err(format!(
            "absolute location {location:?} refused: locations must be relative to the model's \
             folder"
        ));
    }
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "location {location:?} refused: `..` would leave the model's folder"
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("absolute location {location:?} refused"));
            }
        }
    }
    if location.contains("\\..") || location.starts_with("..\\") {
        return Err(format!(
            "location {location:?} refused: `..` would leave the model's folder"
        ));
    }
    Ok(p)
}
