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
    /// A `--preset` cannot apply to this model (a knob the graph does not give).
    #[error("{}: {error}", file.display())]
    Preset {
        /// The model file.
        file: PathBuf,
        /// What is missing.
        error: crate::preset::PresetError,
    },
    /// `--lsuv` failed: the model cannot run in tract, or a layer cannot be scaled.
    #[error("{}: --lsuv: {message}", file.display())]
    Lsuv {
        /// The model file.
        file: PathBuf,
        /// What went wrong.
        message: String,
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
    /// Set to `true` (e.g. from a Ctrl-C handler) to stop the rewrite, leaving no output.
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
    /// The resolved `--preset`, if one was given: its knobs and the residual structure it used.
    pub preset: Option<Arc<crate::preset::PresetPlan>>,
}

/// Run the whole rewrite. On error nothing is written and the input is unchanged. A
/// [`Rules::preset`] is resolved against the model here ([`crate::preset::resolve`]) unless
/// [`Rules::preset_plan`] is already set.
pub fn run(config: &RewriteConfig) -> Result<Outcome, RunError> {
    let model = LoadedModel::open(&config.model)?;
    let analysis = analyze_loaded(&model, &config.analysis)?;
    let plan_error = |error| RunError::Plan {
        file: config.model.clone(),
        error,
    };
    let resolved;
    let rules = match &config.rules.preset {
        Some(preset) if config.rules.preset_plan.is_none() => {
            let p =
                crate::preset::resolve(preset, model.skeleton(), &analysis).map_err(|error| {
                    RunError::Preset {
                        file: config.model.clone(),
                        error,
                    }
                })?;
            resolved = Rules {
                preset_plan: Some(Arc::new(p)),
                ..config.rules.clone()
            };
            &resolved
        }
        _ => &config.rules,
    };
    let plan = plan::plan(&analysis, rules, config.seed).map_err(plan_error)?;
    let filler = PlanFiller::new(&analysis, &plan).map_err(plan_error)?;
    let output = match &config.destination {
        Destination::DryRun => None,
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
    let report = Report::new(
        &config.model.display().to_string(),
        &analysis,
        &plan,
        output.is_none(),
        output,
    );
    let preset = rules.preset_plan.clone();
    Ok(Outcome {
        analysis,
        plan,
        report,
        preset,
    })
}
