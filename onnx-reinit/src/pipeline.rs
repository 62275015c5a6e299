//! The whole rewrite as one call, for the CLI and for pipelines that do not need the stages:
//! load → analyse → plan → prepare values → rewrite → report.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::analysis::{self, Analysis, AnalysisOptions, ConstValues};
use crate::apply::PlanFiller;
use crate::onnx::model::LoadedModel;
use crate::plan::{self, Plan, PlanError, Rules};
use crate::report::Report;
use crate::rewrite::{self, OutputTarget, ProgressFn, RewriteOptions};

/// Why a run failed. Every message names the model file and, where it applies, the tensor.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Loading, validating or writing failed.
    #[error(transparent)]
    Model(#[from] crate::error::Error),
    /// A rule cannot apply to a tensor.
    #[error("{}: {error}", file.display())]
    Plan {
        /// The model file.
        file: PathBuf,
        /// The tensor, its rule and what is wrong.
        error: PlanError,
    },
    /// The analysis and the scanner enumerate different initializers (a bug: please report it
    /// with the model).
    #[error("{}: the analysis and the scanner disagree on the initializers ({analysis} vs \
             {scanner}; first difference at #{first_difference})", file.display())]
    AnalysisMismatch {
        /// The model file.
        file: PathBuf,
        /// Initializers the analysis found.
        analysis: usize,
        /// Initializers the scanner found.
        scanner: usize,
        /// Index of the first initializer they disagree on (by graph or name, or the shorter
        /// count).
        first_difference: usize,
    },
}

/// The seed used when none is given; printed in every report so a run can be repeated.
pub const DEFAULT_SEED: u64 = 0x1a17_f0a6;

/// Where the rewritten model goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A new file (must not exist unless `force`, must not be the input).
    Path(PathBuf),
    /// Over the input, through a temporary file and a rename.
    InPlace,
    /// Nothing is written (`--dry-run`).
    DryRun,
}

/// What to do.
#[derive(Clone)]
pub struct RewriteConfig {
    /// The input model.
    pub model: PathBuf,
    /// Where to write.
    pub destination: Destination,
    /// Overwrite an existing output.
    pub force: bool,
    /// The rules.
    pub rules: Rules,
    /// The seed.
    pub seed: u64,
    /// Fan convention.
    pub analysis: AnalysisOptions,
    /// Set to `true` (e.g. from a Ctrl-C handler) to stop the run, leaving no output: checked
    /// between the phases (load, analysis, plan) and by the rewrite piece by piece.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Called with (bytes done, total bytes) while writing.
    pub progress: Option<Arc<ProgressFn>>,
}

impl std::fmt::Debug for RewriteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RewriteConfig")
            .field("model", &self.model)
            .field("destination", &self.destination)
            .field("force", &self.force)
            .field("rules", &self.rules)
            .field("seed", &self.seed)
            .field("analysis", &self.analysis)
            .field("cancel", &self.cancel)
            .field("progress", &self.progress.as_ref().map(|_| "Fn"))
            .finish()
    }
}

/// `<stem>.reinit.onnx` beside the input.
pub fn default_output(model: &Path) -> PathBuf {
    let stem = model
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    model.with_file_name(format!("{stem}.reinit.onnx"))
}

/// Reads small initializers' values for the analysis (Clip bounds, Gelu constants).
#[derive(Debug)]
pub struct ModelConsts<'a>(pub &'a LoadedModel);

impl ConstValues for ModelConsts<'_> {
    fn small_values(&self, graph: &str, name: &str, max_len: usize) -> Option<Vec<f64>> {
        let idx = self.0.find_tensor(graph, name)?;
        self.0.small_values_f64(idx, max_len)
    }
}

/// [`analysis::analyze`] of a loaded model (its skeleton, with its small constants readable),
/// checked against the scanner: both must enumerate the same initializers in the same order
/// (they share the enumeration contract), since plans and fills index tensors by position.
pub fn analyze_loaded(model: &LoadedModel, opts: &AnalysisOptions) -> Result<Analysis, RunError> {
    let analysis = analysis::analyze(model.skeleton(), &ModelConsts(model), opts);
    let tensors = model.tensors();
    let first_difference = analysis
        .tensors
        .iter()
        .zip(tensors)
        .position(|(a, t)| a.name != t.name || a.graph != t.graph)
        .unwrap_or(analysis.tensors.len().min(tensors.len()));
    if first_difference < analysis.tensors.len().max(tensors.len()) {
        return Err(RunError::AnalysisMismatch {
            file: model.path().to_path_buf(),
            analysis: analysis.tensors.len(),
            scanner: tensors.len(),
            first_difference,
        });
    }
    Ok(analysis)
}

/// Everything a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The analysis.
    pub analysis: Analysis,
    /// The plan.
    pub plan: Plan,
    /// The report.
    pub report: Report,
}

/// Run the whole rewrite. On error nothing is written and the input is unchanged.
pub fn run(config: &RewriteConfig) -> Result<Outcome, RunError> {
    // Checked between the phases; the rewrite checks it piece by piece.
    let check_cancel = || match &config.cancel {
        Some(c) if c.load(std::sync::atomic::Ordering::Relaxed) => {
            Err(crate::error::Error::Cancelled {
                file: match &config.destination {
                    Destination::Path(p) => p.clone(),
                    _ => config.model.clone(),
                },
            })
        }
        _ => Ok(()),
    };
    check_cancel()?;
    let mut model = LoadedModel::open(&config.model)?;
    check_cancel()?;
    let analysis = analyze_loaded(&model, &config.analysis)?;
    model.release_skeleton();
    check_cancel()?;
    let plan_error = |error| RunError::Plan {
        file: config.model.clone(),
        error,
    };
    let plan = plan::plan(&analysis, &config.rules, config.seed).map_err(plan_error)?;
    let filler = PlanFiller::new(&analysis, &plan).map_err(plan_error)?;
    let output = match &config.destination {
        Destination::DryRun => {
            // The plan came from what was read: a model that changed meanwhile has another.
            model.check_unchanged()?;
            check_cancel()?;
            None
        }
        dest => {
            let target = match dest {
                Destination::Path(p) => OutputTarget::Path(p.clone()),
                _ => OutputTarget::InPlace,
            };
            let mut opts = RewriteOptions::new(target);
            opts.force = config.force;
            opts.cancel.clone_from(&config.cancel);
            opts.progress.clone_from(&config.progress);
            rewrite::rewrite(&model, &filler.targets(), &filler, &opts)?;
            Some(match dest {
                Destination::Path(p) => p.display().to_string(),
                _ => config.model.display().to_string(),
            })
        }
    };
    // The report needs only the analysis and the plan: free the model's tables (and the
    // mapping) and the fills first, so that they and the report's rows are never all held at
    // once (a model of millions of initializers holds a few hundred bytes of each per tensor).
    drop(filler);
    drop(model);
    let report = Report::new(
        &config.model.display().to_string(),
        &analysis,
        &plan,
        output.is_none(),
        output,
    );
    Ok(Outcome {
        analysis,
        plan,
        report,
    })
}
