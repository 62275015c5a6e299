//! Persistence: flushing the temporary files, renaming them into place, and cleaning up after
//! an error or a cancellation.

use std::fs::{self, File};
use std::path::PathBuf;

use super::destination::parent_dir;
use super::layout::FileLayout;
use super::{OutputTarget, RewriteStats, Rewriter};
use crate::error::Error;

impl Rewriter<'_> {
    /// Flushes every temporary file, then renames them into place (side files first).
    pub(super) fn persist(
        &self,
        mut layouts: Vec<FileLayout>,
        targets: &[usize],
        total: u64,
    ) -> Result<RewriteStats, Error> {
        for layout in &layouts {
            layout
                .output
                .temp_file()
                .sync_all()
                .map_err(|e| Error::io(&layout.output.dest, "flush the output to disk", e))?;
        }
        // The flush of a big model takes a while: a cancel that arrived meanwhile still stops
        // the run cleanly, as nothing has been renamed yet.
        if self.cancelled() {
            return Err(Error::Cancelled { file: self.dest() });
        }
        // The commit point: nothing is renamed from sources that changed while being copied.
        self.check_sources_unchanged(&layouts)?;
        // The main model last: a reader never sees a new model whose side files are old.
        layouts.sort_by_key(|l| l.output.is_model);
        let mut persisted: Vec<PathBuf> = Vec::new();
        let mut stats = RewriteStats {
            output: self.dest(),
            side_files: Vec::new(),
            tensors: targets.len(),
            elements: targets
                .iter()
                .map(|&i| self.model.tensors()[i].numel())
                .sum(),
            payload_bytes: 0,
            bytes_written: total,
            reframed: 0,
            output_len: self.model.bytes().len() as u64,
        };
        for layout in &layouts {
            stats.payload_bytes += layout
                .fixed
                .iter()
                .map(|t| self.model.tensors()[t.tensor].numel() * t.width)
                .sum::<u64>();
            stats.payload_bytes += layout
                .varint
                .iter()
                .map(|v| v.piece_lens.iter().sum::<u64>())
                .sum::<u64>();
        }
        for layout in layouts {
            // Checked again at the last moment: a path may have become a device node or a
            // folder since the checks before writing.
            if let Ok(m) = fs::metadata(&layout.output.dest)
                && let Err(e) = super::destination::check_replaceable(&layout.output.dest, &m)
            {
                if self.opts.output != OutputTarget::InPlace {
                    for p in &persisted {
                        let _ = fs::remove_file(p);
                    }
                }
                return Err(e);
            }
            let result = layout
                .output
                .temp
                .persist(&layout.output.dest, layout.output.overwrite);
            if let Err(e) = result {
                // Undo what was already renamed into a new output; in place nothing can be
                // undone (the originals are gone), which is why side files go first.
                if self.opts.output != OutputTarget::InPlace {
                    for p in &persisted {
                        let _ = fs::remove_file(p);
                    }
                }
                return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::OutputExists {
                        file: layout.output.dest,
                    }
                } else {
                    Error::io(&layout.output.dest, "rename the output into place", e)
                });
            }
            // Make the rename itself durable; failing to sync a folder is not worth failing for.
            if let Ok(d) = File::open(parent_dir(&layout.output.dest)) {
                let _ = d.sync_all();
            }
            if layout.output.is_model {
                stats.output_len = layout.out_len;
                stats.output.clone_from(&layout.output.dest);
                stats.reframed = layout.varint.len();
            } else {
                stats.side_files.push(layout.output.dest.clone());
            }
            persisted.push(layout.output.dest);
        }
        Ok(stats)
    }
}

/// After a failed or cancelled run: the temporary files are gone (dropped with their layouts),
/// so remove the folders made for side files too, deepest first (`created` is in creation
/// order). `remove_dir` leaves a non-empty folder alone.
pub(super) fn remove_created_dirs(created: &[PathBuf]) {
    for d in created.iter().rev() {
        let _ = fs::remove_dir(d);
    }
}
