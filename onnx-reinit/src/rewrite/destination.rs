//! Safety of the destination: where each output file goes, the checks that keep every output
//! off the input and inside the output folder, and the temporary file beside each destination
//! that becomes it (unnamed where the file system allows it: see [`Temp`]).

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::Rewriter;
use crate::error::Error;
use crate::onnx::external;
use crate::onnx::model::{Stamp, Storage};

/// One file being written: a patched copy of `src_path`, written to a temporary file beside
/// `dest` that is renamed to `dest` once complete.
pub(super) struct OutputFile {
    /// Whether this is the model file (as opposed to an external side file).
    pub(super) is_model: bool,
    pub(super) src_path: PathBuf,
    pub(super) src: File,
    /// The source's length: the model's mapped (and validated) length, a side file's length when
    /// it was opened.
    pub(super) src_len: u64,
    /// The source's size and times when it was opened, compared again before the commit point.
    pub(super) src_stamp: Stamp,
    pub(super) dest: PathBuf,
    /// Overwrite `dest` if it exists (force, or in place).
    pub(super) overwrite: bool,
    /// The temporary file in `dest`'s folder that becomes `dest`.
    pub(super) temp: Temp,
}

/// The file an output is written to before it becomes its destination.
///
/// Where the file system allows it (Linux, ext4/xfs/btrfs/tmpfs, …) it is an unnamed file
/// (`O_TMPFILE`) in the destination's folder: a process killed with SIGKILL, or a machine that
/// loses power, leaves nothing behind (the kernel frees an unnamed file when its last descriptor
/// closes), where a named temporary file stayed forever at the size of the model. It gets a
/// name only at the commit point ([`Temp::persist`]). Elsewhere it is a named temporary file
/// (`.tmpXXXXXX`), removed on every path but SIGKILL.
pub(super) enum Temp {
    /// `O_TMPFILE`: no name until persisted.
    Unnamed(File),
    /// The portable fallback.
    Named(NamedTempFile),
}

impl Temp {
    /// An unnamed file in `dir` if the system supports it there, else a named one.
    fn new_in(dir: &Path) -> std::io::Result<Temp> {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::OpenOptionsExt;
            match fs::OpenOptions::new()
                .read(true)
                .write(true)
                .mode(0o600)
                .custom_flags(libc::O_TMPFILE)
                .open(dir)
            {
                Ok(f) => return Ok(Temp::Unnamed(f)),
                // Not a folder, no permission, no space: the same error the fallback would give.
                Err(e)
                    if !matches!(
                        e.raw_os_error(),
                        Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
                    ) =>
                {
                    return Err(e);
                }
                // The file system (or kernel) has no O_TMPFILE: a named file.
                Err(_) => {}
            }
        }
        NamedTempFile::new_in(dir).map(Temp::Named)
    }

    pub(super) fn as_file(&self) -> &File {
        match self {
            Temp::Unnamed(f) => f,
            Temp::Named(t) => t.as_file(),
        }
    }

    /// Makes the file `dest`: replacing an existing `dest` if `overwrite`, else failing with
    /// `AlreadyExists` if it exists. Atomic either way: a reader sees the old `dest` or the
    /// whole new file. An unnamed file is linked under a fresh temporary name beside `dest` and
    /// renamed over it (`linkat` cannot replace), or, without `overwrite`, linked as `dest`
    /// directly (which fails if it exists).
    pub(super) fn persist(self, dest: &Path, overwrite: bool) -> std::io::Result<()> {
        match self {
            Temp::Named(t) => {
                let r = if overwrite {
                    t.persist(dest).map(drop)
                } else {
                    t.persist_noclobber(dest).map(drop)
                };
                r.map_err(|e| e.error)
            }
            Temp::Unnamed(f) => {
                if !overwrite {
                    return link_unnamed(&f, dest);
                }
                let dir = parent_dir(dest);
                for _ in 0..100 {
                    let name = dir.join(format!(".tmp{:08x}", random_u32()));
                    match link_unnamed(&f, &name) {
                        Ok(()) => {
                            return fs::rename(&name, dest).inspect_err(|_| {
                                let _ = fs::remove_file(&name);
                            });
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists))
            }
        }
    }
}

/// Gives the unnamed file `f` the name `dest` (`linkat` through `/proc/self/fd`, which needs no
/// privilege; `AT_EMPTY_PATH` where `/proc` is not mounted, which needs `CAP_DAC_READ_SEARCH`).
fn link_unnamed(f: &File, dest: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let to = CString::new(dest.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let from = CString::new(format!("/proc/self/fd/{}", f.as_raw_fd()))
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: two valid NUL-terminated paths; linkat reads them and nothing else.
    let r = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOENT) || Path::new("/proc/self/fd").exists() {
        return Err(e);
    }
    // SAFETY: an open descriptor, an empty path (AT_EMPTY_PATH) and a valid destination path.
    let r = unsafe {
        libc::linkat(
            f.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A random number for temporary names (collisions are retried, so quality does not matter).
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u32
}

impl OutputFile {
    /// Creates the temporary file beside `dest` with the source's permissions (a temporary file
    /// is private by default) and, when `dest` is `src` (in place), its owner.
    pub(super) fn new(
        is_model: bool,
        src_path: PathBuf,
        src: File,
        dest: PathBuf,
        overwrite: bool,
    ) -> Result<Self, Error> {
        let meta = src
            .metadata()
            .map_err(|e| Error::io(&src_path, "read metadata", e))?;
        let dir = parent_dir(&dest);
        let temp =
            Temp::new_in(&dir).map_err(|e| Error::io(&dir, "create a temporary file in", e))?;
        // In place, the replacement keeps the original's owner and group, so that a run as
        // another user (root) does not take the model away from its owner. Best effort: only a
        // privileged process may give a file away, and an unprivileged one owns its files.
        if fs::metadata(&dest).is_ok_and(|d| same_file(&d, &meta)) {
            let _ = std::os::unix::fs::fchown(temp.as_file(), Some(meta.uid()), Some(meta.gid()));
        }
        temp.as_file()
            .set_permissions(meta.permissions())
            .map_err(|e| Error::io(&dest, "set the permissions of the output", e))?;
        Ok(OutputFile {
            is_model,
            src_path,
            src,
            src_len: meta.len(),
            src_stamp: Stamp::of(&meta),
            dest,
            overwrite,
            temp,
        })
    }

    pub(super) fn temp_file(&self) -> &File {
        self.temp.as_file()
    }
}

/// An external-data file to write (the map holding it is keyed by its destination).
pub(super) struct SideFile {
    /// The side file it is a copy of.
    pub(super) src: PathBuf,
    /// The targets stored in it, to be patched.
    pub(super) targets: Vec<usize>,
    /// The first tensor found stored in it, named by errors about its destination.
    pub(super) tensor: usize,
}

impl Rewriter<'_> {
    /// Fails with [`Error::InputChanged`] if the model or a source of `layouts` changed since
    /// it was opened (see [`crate::onnx::model::LoadedModel::check_unchanged`]): what was copied
    /// from it may mix two versions.
    pub(super) fn check_sources_unchanged(
        &self,
        layouts: &[super::layout::FileLayout],
    ) -> Result<(), Error> {
        self.model.check_unchanged()?;
        for l in layouts {
            let o = &l.output;
            let now = o
                .src
                .metadata()
                .map_err(|e| Error::io(&o.src_path, "read metadata", e))?;
            o.src_stamp
                .check(&now)
                .map_err(|what| Error::InputChanged {
                    file: o.src_path.clone(),
                    what,
                })?;
        }
        Ok(())
    }

    /// The model's output: a copy of the model file to `dest`.
    pub(super) fn model_output(&self, dest: PathBuf, overwrite: bool) -> Result<OutputFile, Error> {
        let model = self.model;
        let src = model
            .file
            .try_clone()
            .map_err(|e| Error::io(model.path(), "reopen the model", e))?;
        let mut out = OutputFile::new(true, model.path().to_path_buf(), src, dest, overwrite)?;
        // What was validated is the mapping: bytes appended since are not part of the model
        // (and make the commit-point check fail).
        out.src_len = model.bytes().len() as u64;
        Ok(out)
    }

    /// In place: the side files holding targets, each replaced by a patched copy of itself.
    pub(super) fn sides_in_place(&self, targets: &[usize]) -> BTreeMap<PathBuf, SideFile> {
        let mut sides: BTreeMap<PathBuf, SideFile> = BTreeMap::new();
        for &i in targets {
            if let Storage::External(ext) = &self.model.tensors()[i].storage {
                let path = &ext.path;
                sides
                    .entry(path.clone())
                    .or_insert_with(|| SideFile {
                        src: path.clone(),
                        targets: Vec::new(),
                        tensor: i,
                    })
                    .targets
                    .push(i);
            }
        }
        sides
    }

    /// To a new path: every side file of the model, copied beside `dest` under its relative
    /// location, or under [`super::RewriteOptions::data_name`] when given (with its targets
    /// patched); and the metadata of every input file (the model's, `model_meta`, first), which
    /// no output may be.
    pub(super) fn sides_beside(
        &self,
        dest: &Path,
        targets: &[usize],
        model_meta: Metadata,
    ) -> Result<(BTreeMap<PathBuf, SideFile>, Vec<Metadata>), Error> {
        let dest_dir = parent_dir(dest);
        let mut sides: BTreeMap<PathBuf, SideFile> = BTreeMap::new();
        let mut inputs = vec![model_meta];
        let target_set: HashSet<usize> = targets.iter().copied().collect();
        let renamed = match &self.opts.data_name {
            Some(name) => Some(self.checked_data_name(name)?),
            None => None,
        };
        for (i, t) in self.model.tensors().iter().enumerate() {
            if let Storage::External(ext) = &t.storage {
                let (location, path) = (&ext.location, &ext.path);
                let rel = match &renamed {
                    Some(rel) => rel.as_path(),
                    None => {
                        external::checked_relative(location).map_err(|what| Error::External {
                            file: self.file(),
                            tensor: t.name.to_string(),
                            offset: t.offset() as u64,
                            what,
                        })?
                    }
                };
                let side = sides.entry(dest_dir.join(rel)).or_insert_with(|| SideFile {
                    src: path.clone(),
                    targets: Vec::new(),
                    tensor: i,
                });
                if target_set.contains(&i) {
                    side.targets.push(i);
                }
                let meta =
                    fs::metadata(path).map_err(|e| Error::io(path, "read external data", e))?;
                inputs.push(meta);
            }
        }
        Ok((sides, inputs))
    }

    /// `name` as a relative path for the output's one external data file: refused when it is
    /// not a plain relative path, or when the model keeps its external data in several files
    /// (which one file cannot hold at their offsets).
    fn checked_data_name(&self, name: &str) -> Result<PathBuf, Error> {
        let refuse = |what: String| Error::DataName {
            file: self.file(),
            name: name.to_owned(),
            what,
        };
        let rel = external::checked_relative(name)
            .map_err(refuse)?
            .to_path_buf();
        let mut files: Vec<&str> = self
            .model
            .tensors()
            .iter()
            .filter_map(|t| match &t.storage {
                Storage::External(ext) => Some(ext.location.as_str()),
                _ => None,
            })
            .collect();
        files.sort_unstable();
        files.dedup();
        // Two spellings of one file (`a.bin`, `./a.bin`) are one file.
        let mut paths: Vec<&Path> = self
            .model
            .tensors()
            .iter()
            .filter_map(|t| match &t.storage {
                Storage::External(ext) => Some(ext.path.as_path()),
                _ => None,
            })
            .collect();
        paths.sort_unstable();
        paths.dedup();
        match paths.len() {
            0 => Err(refuse("the model has no external data".into())),
            1 => Ok(rel),
            n => Err(refuse(format!(
                "the model keeps its external data in {n} files ({}), which one file cannot \
                 hold at their offsets",
                files.join(", ")
            ))),
        }
    }

    /// Refuses a new output (the model's, `dest`, or a side file's: [`Error::SideFileIsInput`])
    /// that is one of the `inputs`, a folder, or an existing file without force, and a side file
    /// whose destination is `dest`.
    pub(super) fn check_new_outputs(
        &self,
        dest: &Path,
        sides: &BTreeMap<PathBuf, SideFile>,
        inputs: &[Metadata],
    ) -> Result<(), Error> {
        // `side`: the side file written to `d`, whose collision with an input is said as such.
        let check = |d: &Path, side: Option<&SideFile>| -> Result<(), Error> {
            match fs::metadata(d) {
                Ok(m) => {
                    if inputs.iter().any(|im| same_file(im, &m)) {
                        return Err(match side {
                            Some(side) => {
                                let t = &self.model.tensors()[side.tensor];
                                Error::SideFileIsInput {
                                    file: d.to_path_buf(),
                                    model: self.file(),
                                    tensor: t.name.to_string(),
                                    location: match &t.storage {
                                        Storage::External(ext) => ext.location.clone(),
                                        _ => String::new(),
                                    },
                                }
                            }
                            None => Error::OutputIsInput {
                                file: d.to_path_buf(),
                            },
                        });
                    }
                    check_replaceable(d, &m)?;
                    if !self.opts.force {
                        return Err(Error::OutputExists {
                            file: d.to_path_buf(),
                        });
                    }
                    Ok(())
                }
                Err(_) => Ok(()),
            }
        };
        check(dest, None)?;
        for (side_dest, side) in sides {
            if side_dest == dest {
                return Err(Error::OutputIsSideFile {
                    file: dest.to_path_buf(),
                    model: self.file(),
                    tensor: self.model.tensors()[side.tensor].name.to_string(),
                });
            }
            check(side_dest, Some(side))?;
        }
        Ok(())
    }

    /// Creates the folders of side destinations in sub-folders of `dest`'s (recording them in
    /// `created`), then checks that none led outside `dest`'s folder through a symlink.
    pub(super) fn create_side_folders(
        &self,
        dest: &Path,
        sides: &BTreeMap<PathBuf, SideFile>,
        created: &mut Vec<PathBuf>,
    ) -> Result<(), Error> {
        let dest_dir = parent_dir(dest);
        let canonical_dest_dir = dest_dir
            .canonicalize()
            .map_err(|e| Error::io(&dest_dir, "resolve the output folder", e))?;
        for (side_dest, side) in sides {
            let d = parent_dir(side_dest);
            create_dirs(&d, created)?;
            let cd = d
                .canonicalize()
                .map_err(|e| Error::io(&d, "resolve the folder", e))?;
            if !cd.starts_with(&canonical_dest_dir) {
                return Err(Error::SideFileEscapes {
                    file: side_dest.clone(),
                    model: self.file(),
                    tensor: self.model.tensors()[side.tensor].name.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// Refuses an existing output path `d` (whose metadata, symlinks followed, is `m`) that is not a
/// regular file: the rename into place would replace the device node, FIFO, socket or folder
/// itself. A symlink to a regular file passes (the rename replaces the link).
pub(super) fn check_replaceable(d: &Path, m: &Metadata) -> Result<(), Error> {
    if m.is_file() {
        Ok(())
    } else {
        Err(Error::OutputNotRegular {
            file: d.to_path_buf(),
            kind: crate::onnx::model::file_kind(m),
        })
    }
}

/// Refuses to modify a read-only file in place: replacing it by rename would succeed, so the
/// permission is honoured here instead. Without `force`, refuses a file with other hard links
/// too: the replacement is a new file, and the other names would silently keep the old one.
pub(super) fn check_writable_in_place<'p>(
    files: impl IntoIterator<Item = &'p Path>,
    force: bool,
) -> Result<(), Error> {
    for p in files {
        let meta = fs::metadata(p).map_err(|e| Error::io(p, "read metadata", e))?;
        if meta.nlink() > 1 && !force {
            return Err(Error::HardLinked {
                file: p.to_path_buf(),
                links: meta.nlink(),
            });
        }
        if meta.permissions().readonly() {
            return Err(Error::io(
                p,
                "modify in place",
                std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            ));
        }
    }
    Ok(())
}

/// Whether two metadata describe the same file (device and inode).
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Creates `dir` and its missing ancestors, appending each folder it creates to `created`.
fn create_dirs(dir: &Path, created: &mut Vec<PathBuf>) -> Result<(), Error> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && fs::symlink_metadata(d).is_err())
        .collect();
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => created.push(d.to_path_buf()),
            // Created concurrently by someone else: theirs, not ours to remove.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(Error::io(d, "create the folder", e)),
        }
    }
    Ok(())
}

/// The folder `p` is in (`.` for a bare file name).
pub(super) fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
