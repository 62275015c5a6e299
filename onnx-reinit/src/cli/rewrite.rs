//! The rewrite: the command line without a subcommand, and its run.

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::analysis::AnalysisOptions;
use crate::error::Error;
use crate::pipeline::{self, DEFAULT_SEED, Destination, RewriteConfig, RunError};
use crate::plan::ActivationClass;
use crate::preset::Preset;
use clap::Args;

use super::output::{self, PROGRESS_MIN_BYTES, REWRITE, file_len, progress_bar};
use super::rules::RuleArgs;
use super::{Compat, EXIT_CANCELLED};

/// The rewrite's arguments: the top level of the command line (flattened into
/// [`super::Cli`], whose doc is the help text).
#[derive(Debug, Args)]
pub(crate) struct RewriteArgs {
    /// The ONNX model to re-initialize.
    #[arg(required = true)]
    model: Option<PathBuf>,

    /// Output file [default: <stem>.reinit.onnx beside the input].
    #[arg(short, long, value_name = "OUT", conflicts_with_all = ["in_place", "dry_run"])]
    output: Option<PathBuf>,

    /// Rewrite the input file itself (through a temporary file and an atomic rename).
    #[arg(long, conflicts_with = "dry_run")]
    in_place: bool,

    /// Overwrite OUT if it exists.
    #[arg(long)]
    force: bool,

    /// Print the plan and write nothing.
    #[arg(long)]
    dry_run: bool,

    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,

    /// Seed of the random streams: the same seed and rules give byte-identical output.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,

    /// Fan convention: true connectivity, or reproduce PyTorch's fans (groups ignored,
    /// ConvTranspose axes swapped).
    #[arg(long, value_enum, default_value_t = Compat::True)]
    compat: Compat,

    #[command(flatten)]
    rules: RuleArgs,

    /// An initialization recipe: bert, gpt2, llama, t5, resnet, vit, with optional knobs
    /// (`gpt2(initializer_range=0.02,n_layer=12)`); `--rule` and the rule flags given keep
    /// precedence over it.
    #[arg(long, value_name = "NAME", value_parser = parse_preset,
          help_heading = "Rules (a scheme name or `keep`)")]
    preset: Option<Preset>,

    /// A knob of --preset, NAME=VALUE (repeatable): initializer_range, n_layer,
    /// initializer_factor, d_kv, zero_init_residual.
    #[arg(
        long,
        value_name = "NAME=VALUE",
        requires = "preset",
        help_heading = "Rules (a scheme name or `keep`)"
    )]
    preset_arg: Vec<String>,

    /// Data-driven init (LSUV): plan weights orthogonal (unless a weight rule is given), then
    /// scale each weight layer in graph order until its output std on seeded N(0,1) inputs is
    /// 1 within 0.01 (at most 10 scalings); prints each layer's std before and after.
    #[cfg(feature = "forward")]
    #[arg(long, help_heading = "Rules (a scheme name or `keep`)")]
    lsuv: bool,

    /// With --lsuv: the input shape, `[NAME=]D1,D2,…` (symbolic dimensions are 1 otherwise;
    /// a larger batch gives steadier stds).
    #[cfg(feature = "forward")]
    #[arg(long, value_name = "[NAME=]DIMS", requires = "lsuv",
          value_parser = super::inspect::parse_input_shape)]
    input_shape: Vec<(Option<String>, Vec<usize>)>,

    /// With --preset resnet: zero each residual branch's last norm scale (torchvision's
    /// zero_init_residual).
    #[arg(
        long,
        requires = "preset",
        help_heading = "Rules (a scheme name or `keep`)"
    )]
    zero_init_residual: bool,
}

/// `--lsuv`'s options when the flag is given (always `None` without the `forward` feature).
#[cfg(feature = "forward")]
type Lsuv = Option<crate::inspect::lsuv::LsuvOptions>;
#[cfg(not(feature = "forward"))]
type Lsuv = Option<()>;

fn parse_preset(s: &str) -> Result<Preset, String> {
    s.parse()
}

impl RewriteArgs {
    /// The library's configuration, and whether to print JSON; `MODEL` is required by clap
    /// whenever there is no subcommand.
    fn into_config(self) -> Result<(RewriteConfig, bool, Lsuv), String> {
        #[cfg(feature = "forward")]
        let lsuv = self.lsuv.then(|| crate::inspect::lsuv::LsuvOptions {
            seed: self.seed,
            input_shapes: self.input_shape.clone(),
            ..Default::default()
        });
        #[cfg(not(feature = "forward"))]
        let lsuv = None;
        let model = self
            .model
            .expect("clap requires MODEL without a subcommand");
        let destination = if self.dry_run {
            Destination::DryRun
        } else if self.in_place {
            Destination::InPlace
        } else {
            Destination::Path(
                self.output
                    .unwrap_or_else(|| pipeline::default_output(&model)),
            )
        };
        let mut rules = self.rules.into_rules();
        if lsuv.is_some() {
            // LSUV starts from orthogonal weights unless the user chose a weight scheme.
            let given: Vec<_> = rules.activation.iter().map(|(c, _)| *c).collect();
            for c in ActivationClass::ALL {
                if !given.contains(&c) {
                    rules.activation.push((
                        c,
                        crate::plan::Rule::parse("orthogonal").map_err(|e| e.to_string())?,
                    ));
                }
            }
        }
        if let Some(mut preset) = self.preset {
            for a in &self.preset_arg {
                preset.set_arg(a).map_err(|e| format!("--preset-arg {e}"))?;
            }
            if self.zero_init_residual {
                preset
                    .set_arg("zero_init_residual=1")
                    .map_err(|e| format!("--zero-init-residual: {e}"))?;
            }
            rules.preset = Some(preset);
        }
        Ok((
            RewriteConfig {
                model,
                destination,
                force: self.force,
                rules,
                seed: self.seed,
                analysis: AnalysisOptions {
                    compat: self.compat.into(),
                },
                cancel: None,
                progress: None,
            },
            self.json,
            lsuv,
        ))
    }
}

/// Runs the rewrite and prints its report (the table, or JSON with `--json`); returns the exit
/// code (see [`super`]).
pub(crate) fn run(args: RewriteArgs) -> ExitCode {
    let (mut config, json, lsuv) = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            output::error(REWRITE, &e);
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    // Ctrl-C (and SIGTERM, SIGHUP) stops the rewrite at the next piece; the library then removes
    // its temporary files, so the input stays intact and no partial output is left.
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    if ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).is_ok() {
        config.cancel = Some(cancel);
    }
    if !json && io::stderr().is_terminal() && file_len(&config.model) > PROGRESS_MIN_BYTES {
        config.progress = Some(progress_bar());
    }
    #[cfg(feature = "forward")]
    let result = match &lsuv {
        Some(opts) => crate::inspect::lsuv::run(&config, opts).map(|(o, r)| {
            let text = crate::inspect::lsuv::summary(&r, opts);
            (o, Some((text, crate::inspect::lsuv::to_json(&r, opts))))
        }),
        None => pipeline::run(&config).map(|o| (o, None)),
    };
    #[cfg(not(feature = "forward"))]
    let result = {
        let _: Lsuv = lsuv;
        pipeline::run(&config).map(|o| (o, None::<(String, serde_json::Value)>))
    };
    match result {
        Ok((outcome, lsuv_summary)) => {
            let text = if json && (outcome.preset.is_some() || lsuv_summary.is_some()) {
                // The report's document with the preset's and LSUV's members added.
                serde_json::to_value(&outcome.report)
                    .map(|mut v| {
                        if let Some(o) = v.as_object_mut() {
                            if let Some(p) = &outcome.preset {
                                o.insert("preset".into(), p.to_json());
                            }
                            if let Some((_, l)) = &lsuv_summary {
                                o.insert("lsuv".into(), l.clone());
                            }
                        }
                        v
                    })
                    .and_then(|v| output::json(&v))
                    .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}\n"))
            } else if json {
                output::json(&outcome.report)
                    .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}\n"))
            } else {
                let mut t = outcome.report.table();
                if let Some(p) = &outcome.preset {
                    t.push_str(&p.summary());
                }
                if let Some((l, _)) = &lsuv_summary {
                    t.push_str(l);
                }
                t
            };
            match output::print_stdout(REWRITE, &text) {
                Ok(()) => ExitCode::SUCCESS,
                Err(code) => code,
            }
        }
        Err(e) => {
            output::error(REWRITE, &e);
            if matches!(e, RunError::Model(Error::Cancelled { .. })) {
                ExitCode::from(EXIT_CANCELLED)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
