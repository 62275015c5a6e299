//! The whole rewrite as one call, for the CLI and for pipelines that do not need the stages:
//! load → analyse → plan → prepare values → rewrite → report.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::analysis::{self, Analysis, AnalysisOptions, ConstValues};
use crate::apply::{PlanFiller, ScaledFiller};
use crate::onnx::model::{LoadedModel, Storage};
use crate::plan::{self, Plan, PlanError, Rules};
use crate::report::{self, Report};
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
    /// A `--rule` decides no tensor: its glob matches nothing, only tensors left untouched,
    /// or only tensors an earlier `--rule` already decides (a typo or a stale rule would
    /// otherwise pass silently).
    #[error("{}: --rule '{pattern}' {why}", file.display())]
    UnusedRule {
        /// The model file.
        file: PathBuf,
        /// The rule's glob.
        pattern: String,
        /// Why it decides nothing.
        why: String,
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
    /// A new file as [`Destination::Path`], whose external data goes to one file named
    /// `data_name`, relative to its folder (see
    /// [`RewriteOptions::data_name`](crate::rewrite::RewriteOptions::data_name)).
    PathWithData {
        /// The new model file.
        path: PathBuf,
        /// Its external data file, relative to its folder.
        data_name: String,
    },
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

impl RewriteConfig {
    /// The rewrite's options for this configuration's destination, force, cancellation and
    /// progress; `None` for a dry run, which writes nothing.
    pub fn rewrite_options(&self) -> Option<RewriteOptions> {
        let target = match &self.destination {
            Destination::DryRun => return None,
            Destination::Path(p) | Destination::PathWithData { path: p, .. } => {
                OutputTarget::Path(p.clone())
            }
            Destination::InPlace => OutputTarget::InPlace,
        };
        let mut opts = RewriteOptions::new(target);
        if let Destination::PathWithData { data_name, .. } = &self.destination {
            opts.data_name = Some(data_name.clone());
        }
        opts.force = self.force;
        opts.cancel.clone_from(&self.cancel);
        opts.progress.clone_from(&self.progress);
        Some(opts)
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
    // The analysis shares the entries' names and dims rather than copying them.
    let analysis =
        analysis::analyze_sharing(model.skeleton(), &ModelConsts(model), opts, model.tensors());
    let tensors = model.tensors();
    let first_difference = analysis
        .tensors
        .iter()
        .zip(tensors)
        .position(|(a, t)| a.name != t.name || a.graph != model.graph_of(t))
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
    run_rendered(config, |_, _| ()).map(|(outcome, ())| outcome)
}

/// [`run`], with `render` called on the finished report before anything is written, so that
/// whatever the caller prints afterwards (the table, the JSON document) is ready before the
/// output is renamed into place: no failure, and no panic, can follow the commit point.
/// `render` also gets the resolved `--preset`, if any.
pub fn run_rendered<R>(
    config: &RewriteConfig,
    render: impl FnOnce(&Report, Option<&crate::preset::PresetPlan>) -> R,
) -> Result<(Outcome, R), RunError> {
    let no_stage = |_: &LoadedModel, _: &Analysis, _: &PlanFiller| Ok((Scales::new(), ()));
    run_staged(config, false, no_stage, |report, preset, ()| {
        render(report, preset)
    })
    .map(|(outcome, (), rendered)| (outcome, rendered))
}

/// What a [`run_staged`] stage gives the write: tensor index → the factor its planned values
/// are multiplied by (f32 tensors; see [`ScaledFiller`]).
pub type Scales = HashMap<usize, f32>;

/// [`run_rendered`] with a `stage` between the plan and the write, such as `--lsuv`, which
/// runs the planned model and rescales its weights. The stage gets the loaded model (with its
/// skeleton when `keep_skeleton`; otherwise it is released before planning, as in
/// [`run_rendered`]), the analysis and the plan's filler; it returns the scales the write
/// applies and a result that `render` gets too, and that is returned.
///
/// Everything that can fail runs before the commit point, the stage included: the run is
/// cancellable between every phase, a dry run checks that the model did not change while it
/// was read, and the report (graph order, files written) is rendered before the output is
/// renamed into place.
pub fn run_staged<S, R>(
    config: &RewriteConfig,
    keep_skeleton: bool,
    stage: impl FnOnce(&LoadedModel, &Analysis, &PlanFiller) -> Result<(Scales, S), RunError>,
    render: impl FnOnce(&Report, Option<&crate::preset::PresetPlan>, &S) -> R,
) -> Result<(Outcome, S, R), RunError> {
    // Checked between the phases; the rewrite checks it piece by piece.
    let check_cancel = || match &config.cancel {
        Some(c) if c.load(std::sync::atomic::Ordering::Relaxed) => {
            Err(crate::error::Error::Cancelled {
                file: match &config.destination {
                    Destination::Path(p) | Destination::PathWithData { path: p, .. } => p.clone(),
                    _ => config.model.clone(),
                },
            })
        }
        _ => Ok(()),
    };
    check_cancel()?;
    let mut model = LoadedModel::open(&config.model)?;
    check_cancel()?;
    let mut analysis = analyze_loaded(&model, &config.analysis)?;
    check_cancel()?;
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
            p.give_roles(&mut analysis);
            resolved = Rules {
                preset_plan: Some(Arc::new(p)),
                ..config.rules.clone()
            };
            &resolved
        }
        _ => &config.rules,
    };
    // The report's graph order is all that the rest of the run reads of the skeleton (but
    // for a stage that asks for it).
    let node_order = report::node_order(model.skeleton());
    if !keep_skeleton {
        model.release_skeleton();
    }
    check_rules_apply(&analysis, rules).map_err(|(pattern, why)| RunError::UnusedRule {
        file: config.model.clone(),
        pattern,
        why,
    })?;
    let plan = plan::plan(&analysis, rules, config.seed).map_err(plan_error)?;
    let filler = PlanFiller::new(&analysis, &plan).map_err(plan_error)?;
    let targets = filler.targets();
    check_cancel()?;
    let (scales, staged) = stage(&model, &analysis, &filler)?;
    if keep_skeleton {
        model.release_skeleton();
    }
    check_cancel()?;
    let output = match &config.destination {
        Destination::DryRun => {
            // The plan came from what was read: a model that changed meanwhile has another.
            model.check_unchanged()?;
            check_cancel()?;
            None
        }
        Destination::Path(p) | Destination::PathWithData { path: p, .. } => {
            Some(p.display().to_string())
        }
        Destination::InPlace => Some(config.model.display().to_string()),
    };
    let mut report = Report::new(
        &config.model.display().to_string(),
        &analysis,
        &plan,
        output.is_none(),
        output,
    );
    report.files_written = planned_files(&model, &targets, &config.destination)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    report.order_by_graph(&node_order);
    let rendered = render(&report, rules.preset_plan.as_deref(), &staged);
    if let Some(opts) = config.rewrite_options() {
        let scaled;
        let filler: &dyn rewrite::Filler = if scales.is_empty() {
            &filler
        } else {
            scaled = ScaledFiller::new(&filler, scales);
            &scaled
        };
        // Nothing may follow this call that can fail or panic: it renames the output into
        // place. (`planned_files` is checked against what it wrote by the test suite.)
        rewrite::rewrite(&model, &targets, filler, &opts)?;
    }
    let preset = rules.preset_plan.clone();
    Ok((
        Outcome {
            analysis,
            plan,
            report,
            preset,
        },
        staged,
        rendered,
    ))
}

/// Checks that every `--rule` of `rules` decides at least one tensor with a role (rules are
/// tried in order, the first match wins); the first that does not is returned as (glob, why).
pub fn check_rules_apply(analysis: &Analysis, rules: &Rules) -> Result<(), (String, String)> {
    for (k, rule) in rules.overrides.iter().enumerate() {
        let matched: Vec<&analysis::TensorInfo> = analysis
            .tensors
            .iter()
            .filter(|t| rule.matches(t))
            .collect();
        let with_role: Vec<_> = matched.iter().filter(|t| t.role.is_some()).collect();
        let why = if matched.is_empty() {
            format!(
                "matches no initializer and no node name (of {} initializers; globs match the \
                 whole name: `*` for any run of characters)",
                analysis.tensors.len()
            )
        } else if with_role.is_empty() {
            let t = matched[0];
            format!(
                "matches only tensors left untouched ({} of them, e.g. `{}`: {})",
                matched.len(),
                crate::table::elide_middle(&t.name, 80),
                t.why_untouched()
            )
        } else if let Some(earlier) = with_role
            .iter()
            .all(|t| rules.overrides[..k].iter().any(|o| o.matches(t)))
            .then(|| {
                rules.overrides[..k]
                    .iter()
                    .find(|o| o.matches(with_role[0]))
                    .map(|o| o.pattern.clone())
            })
            .flatten()
        {
            format!(
                "decides nothing: every tensor it matches is decided by the earlier --rule \
                 '{earlier}' (the first matching rule wins)"
            )
        } else {
            continue;
        };
        return Err((rule.pattern.clone(), why));
    }
    Ok(())
}

/// `p` made absolute against the current folder (not resolving symlinks: the path the user
/// named); `p` itself when the current folder is unknown.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The files a rewrite of `targets` to `destination` writes, as absolute paths: the model
/// (unless in place with only external targets, which leaves the `.onnx` alone), then its
/// external data files: to a new path, every side file of the model beside it under its
/// relative location; in place, the side files holding targets.
pub fn planned_files(
    model: &LoadedModel,
    targets: &[usize],
    destination: &Destination,
) -> Vec<PathBuf> {
    let external = |i: usize| match &model.tensors()[i].storage {
        Storage::External(ext) => Some((ext.location.as_str(), ext.path.as_path())),
        _ => None,
    };
    let mut sides = BTreeSet::new();
    let mut files = Vec::new();
    match destination {
        Destination::DryRun => {}
        Destination::Path(dest) | Destination::PathWithData { path: dest, .. } => {
            let renamed = match destination {
                Destination::PathWithData { data_name, .. } => Some(data_name.as_str()),
                _ => None,
            };
            let dest = absolute(dest);
            let dir = dest.parent().map(Path::to_path_buf).unwrap_or_default();
            for i in 0..model.tensors().len() {
                if let Some((location, _)) = external(i) {
                    sides.insert(dir.join(renamed.unwrap_or(location)));
                }
            }
            files.push(dest);
        }
        Destination::InPlace => {
            let inline = targets.iter().any(|&i| {
                !matches!(
                    model.tensors()[i].storage,
                    Storage::External { .. } | Storage::Empty
                )
            });
            if inline {
                files.push(
                    model
                        .path()
                        .canonicalize()
                        .unwrap_or_else(|_| absolute(model.path())),
                );
            }
            for &i in targets {
                if let Some((_, path)) = external(i) {
                    sides.insert(path.to_path_buf());
                }
            }
        }
    }
    files.extend(sides);
    files
}
