//! Persistence: flushing the temporary files and renaming them into place.

use std::fs::{self, File};
use std::path::PathBuf;

use super::destination::parent_dir;
use super::layout::FilePlan;
use super::{OutputTarget, RewriteStats, Rewriter};
use crate::error::Error;

impl Rewriter<'_> {
    /// Flushes every temporary file, then renames them into place (side files first).
    pub(super) fn finish(
        &self,
        mut plans: Vec<FilePlan>,
        targets: &[usize],
        total: u64,
    ) -> Result<RewriteStats, Error> {
        for plan in &plans {
            plan.temp_file()
                .sync_all()
                .map_err(|e| Error::io(&plan.dest, "flush the output to disk", e))?;
        }
        // The flush of a big model takes a while: a cancel that arrived meanwhile still stops
        // the run cleanly, as nothing has been renamed yet.
        if self.cancelled() {
            return Err(Error::Cancelled { file: self.dest() });
        }
        // The main model last: a reader never sees a new model whose side files are old.
        plans.sort_by_key(|p| p.is_model);
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
        for plan in &plans {
            stats.payload_bytes += plan
                .fixed
                .iter()
                .map(|t| self.model.tensors()[t.tensor].numel() * t.width)
                .sum::<u64>();
            stats.payload_bytes += plan
                .varint
                .iter()
                .map(|v| v.piece_lens.iter().sum::<u64>())
                .sum::<u64>();
        }
        for plan in plans {
            let temp = plan.temp;
            let result = if plan.overwrite {
                temp.persist(&plan.dest).map(drop)
            } else {
                temp.persist_noclobber(&plan.dest).map(drop)
            };
            if let Err(e) = result {
                // Undo what was already renamed into a new output; in place nothing can be
                // undone (the originals are gone), which is why side files go first.
                if self.opts.output != OutputTarget::InPlace {
                    for p in &persisted {
                        let _ = fs::remove_file(p);
                    }
                }
                return Err(if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::OutputExists { file: plan.dest }
                } else {
                    Error::io(&plan.dest, "rename the output into place", e.error)
                });
            }
            // Make the rename itself durable; failing to sync a folder is not worth failing for.
            if let Ok(d) = File::open(parent_dir(&plan.dest)) {
                let _ = d.sync_all();
            }
            if plan.is_model {
                stats.output_len = plan.out_len;
                stats.output.clone_from(&plan.dest);
                stats.reframed = plan.varint.len();
            } else {
                stats.side_files.push(plan.dest.clone());
            }
            persisted.push(plan.dest);
        }
        Ok(stats)
    }
}
