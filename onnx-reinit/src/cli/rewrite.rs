//! The rewrite: the command line without a subcommand, and its run.

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::analysis::AnalysisOptions;
use crate::error::Error;
use crate::pipeline::{self, DEFAULT_SEED, Destination, RewriteConfig, RunError};
use crate::plan::ActivationClass;
use crate::preset::Preset;
use clap::Args;
use clap::builder::TypedValueParser;

use super::output::{self, PROGRESS_MIN_BYTES, REWRITE, file_len, progress_bar};
use super::rules::RuleArgs;
use super::{Compat, EXIT_CANCELLED, EXIT_USAGE, with_threads};

/// The rewrite's arguments: the top level of the command line (flattened into
/// [`super::Cli`], whose doc is the help text).
#[derive(Debug, Args)]
pub(crate) struct RewriteArgs {
    /// The ONNX model to re-initialize.
    #[arg(required = true)]
    model: Option<PathBuf>,

    /// Output file; `DIR/` (or an existing folder) writes DIR/<the input's file name>
    /// [default: <stem>.reinit.onnx beside the input]. A missing path or a regular file (never a
    /// device, FIFO or socket; `-` is refused: the output needs a real file).
    #[arg(short, long, value_name = "OUT", conflicts_with = "in_place",
          value_parser = TypedValueParser::try_map(clap::builder::OsStringValueParser::new(), parse_output))]
    output: Option<PathBuf>,

    /// Rewrite the input file itself (through a temporary file and an atomic rename).
    #[arg(long)]
    in_place: bool,

    /// Overwrite OUT if it exists.
    #[arg(long)]
    force: bool,

    /// The output's external data file, relative to the output's folder [default: the input's
    /// data file names]: for an output beside the input, whose data file would otherwise
    /// overwrite the input's. The model's external data must be in one file.
    #[arg(long, value_name = "NAME", conflicts_with = "in_place")]
    data_name: Option<String>,

    /// Print the plan and write nothing (also with -o or --in-place: add it to any command to
    /// preview it).
    #[arg(long)]
    dry_run: bool,

    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,

    /// Print no table and no progress: only errors (and the JSON document with --json).
    #[arg(short, long)]
    quiet: bool,

    /// Print the full table, whatever the terminal's width.
    #[arg(long)]
    wide: bool,

    /// Worker threads [default: one per core, or RAYON_NUM_THREADS]; the output is the same
    /// for any count.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,

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
    /// initializer_factor, d_kv, zero_init_residual, pad_token_id (a row or none).
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

    /// With --lsuv: sample inputs from an .npz file (np.savez or np.savez_compressed), one array
    /// per graph input by name, of the input's type (float32, float64, int64, int32) and
    /// static dimensions, instead of seeded N(0, 1) inputs.
    #[cfg(feature = "forward")]
    #[arg(
        long,
        value_name = "FILE.npz",
        requires = "lsuv",
        conflicts_with = "input_shape"
    )]
    inputs: Option<PathBuf>,

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

/// How the report is shown.
#[derive(Clone, Debug)]
struct Show {
    json: bool,
    /// No human lines (`--quiet`, or `--json`, whose document says it all).
    quiet: bool,
    width: Option<usize>,
    /// In a dry run, where the same command without `--dry-run` writes.
    preview: Option<PathBuf>,
}

/// `-o DIR/` or `-o` an existing folder: the input's file name in it; else `out` itself.
fn output_path(out: PathBuf, model: &Path) -> PathBuf {
    let dir_like = out.as_os_str().to_string_lossy().ends_with('/') || out.is_dir();
    match model.file_name() {
        Some(name) if dir_like => out.join(name),
        _ => out,
    }
}

/// `-o`'s parser: `-` is refused rather than read as a file named `-` in the working folder.
/// A model cannot go to stdout: the output is written in parallel at positions, flushed and
/// renamed into place, which a pipe cannot do, and a half-written model on a pipe would look
/// like a whole one to the reader.
fn parse_output(s: std::ffi::OsString) -> Result<PathBuf, String> {
    if s == "-" {
        Err("the output cannot be stdout (`-`); give a file path (./- for a file named `-`)".into())
    } else {
        Ok(PathBuf::from(s))
    }
}

impl RewriteArgs {
    /// The library's configuration and how to show the report; `MODEL` is required by clap
    /// whenever there is no subcommand.
    fn into_config(self) -> Result<(RewriteConfig, Show, Option<usize>, Lsuv), String> {
        #[cfg(feature = "forward")]
        let lsuv = self.lsuv.then(|| crate::inspect::lsuv::LsuvOptions {
            seed: self.seed,
            input_shapes: self.input_shape.clone(),
            inputs: self.inputs.clone(),
            ..Default::default()
        });
        #[cfg(not(feature = "forward"))]
        let lsuv = None;
        let model = self
            .model
            .expect("clap requires MODEL without a subcommand");
        let real = if self.in_place {
            model.clone()
        } else {
            match self.output {
                Some(out) => output_path(out, &model),
                None => pipeline::default_output(&model),
            }
        };
        let destination = if self.dry_run {
            Destination::DryRun
        } else if self.in_place {
            Destination::InPlace
        } else if let Some(data_name) = self.data_name {
            Destination::PathWithData {
                path: real.clone(),
                data_name,
            }
        } else {
            Destination::Path(real.clone())
        };
        let show = Show {
            json: self.json,
            quiet: self.quiet || self.json,
            width: output::table_width(self.wide),
            preview: self.dry_run.then_some(real),
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
            show,
            self.threads.map(usize::from),
            lsuv,
        ))
    }
}

/// Runs the rewrite and prints its report (the table, or JSON with `--json`) on stdout, and
/// what was written on stderr; returns the exit code (see [`super`]).
///
/// The report is rendered before the output is renamed into place and printed after, so that
/// nothing that can fail runs after the commit point.
pub(crate) fn run(args: RewriteArgs) -> ExitCode {
    let (mut config, show, threads, lsuv) = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            output::error(REWRITE, &e);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Destination::Path(out) | Destination::PathWithData { path: out, .. } =
        &config.destination
    {
        // Said here in the user's words; the library would name the temporary file it cannot
        // create in the missing folder.
        let dir = match out.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            output::error(
                REWRITE,
                format_args!(
                    "{}: the folder does not exist (create it first, or choose another -o)",
                    dir.display()
                ),
            );
            return ExitCode::FAILURE;
        }
    }
    // Ctrl-C (and SIGTERM, SIGHUP) exits at once before anything is written, and stops a
    // rewrite at its next piece, which then removes its temporary files (see `cancel`).
    let file = match &config.destination {
        Destination::Path(p) | Destination::PathWithData { path: p, .. } => p.clone(),
        _ => config.model.clone(),
    };
    config.cancel = super::cancel::install(move || {
        output::error(REWRITE, Error::Cancelled { file: file.clone() });
    });
    // --force lets in place replace a hard-linked model (refused without it); say what that
    // means for the other names.
    if config.force && config.destination == Destination::InPlace {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::metadata(&config.model)
            && m.nlink() > 1
        {
            output::note(
                REWRITE,
                show.quiet,
                format_args!(
                    "{} has {} hard links; the other links keep the old contents",
                    config.model.display(),
                    m.nlink()
                ),
            );
        }
    }
    if !show.quiet && io::stderr().is_terminal() && file_len(&config.model) > PROGRESS_MIN_BYTES {
        config.progress = Some(progress_bar());
    }
    // The whole text is rendered before the output is renamed into place (see
    // `pipeline::run_rendered`), the preset's summary and JSON members included.
    // A stage adds its JSON members (`extra`) or the lines after the table (`tail`).
    let render_with = |report: &crate::report::Report,
                       preset: Option<&crate::preset::PresetPlan>,
                       extra: Vec<(String, serde_json::Value)>,
                       tail: &dyn Fn() -> String| {
        if show.json {
            let members = preset.map(|p| ("preset".to_owned(), p.to_json()));
            crate::report::report_json(report, members.into_iter().chain(extra).collect())
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}\n"))
        } else if show.quiet {
            // --quiet: no table; the errors (and the exit code) say what went wrong.
            String::new()
        } else {
            let mut t = report.table_for(show.width);
            if let Some(p) = preset {
                t.push_str(&p.summary());
            }
            t.push_str(&tail());
            t
        }
    };
    let render = |report: &crate::report::Report, preset: Option<&crate::preset::PresetPlan>| {
        render_with(report, preset, Vec::new(), &String::new)
    };
    // LSUV runs between the plan and the write: its summary is rendered with the report,
    // before the output is renamed into place.
    #[cfg(feature = "forward")]
    let run = || match &lsuv {
        Some(opts) => pipeline::run_staged(
            &config,
            true,
            crate::inspect::lsuv::stage(&config, opts),
            |report, preset, r| {
                let member = ("lsuv".to_owned(), crate::inspect::lsuv::to_json(r, opts));
                render_with(report, preset, vec![member], &|| {
                    crate::inspect::lsuv::summary(r, opts)
                })
            },
        )
        .map(|(outcome, _, text)| (outcome, text)),
        None => pipeline::run_rendered(&config, render),
    };
    #[cfg(not(feature = "forward"))]
    let run = || {
        let _: Lsuv = lsuv;
        pipeline::run_rendered(&config, render)
    };
    let result = match with_threads(threads, run) {
        Ok(result) => result,
        Err(msg) => {
            output::error(REWRITE, msg);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match result {
        Ok((outcome, text)) => {
            let code = match output::print_stdout(REWRITE, &text) {
                Ok(()) => ExitCode::SUCCESS,
                Err(code) => code,
            };
            if let Some(real) = &show.preview {
                output::note(
                    REWRITE,
                    show.quiet,
                    format_args!(
                        "dry run: nothing written (without --dry-run: {})",
                        real.display()
                    ),
                );
            }
            for f in &outcome.report.files_written {
                output::note(REWRITE, show.quiet, format_args!("wrote {f}"));
            }
            code
        }
        Err(e) => {
            output::error(REWRITE, output::run_error(&e));
            if matches!(e, RunError::Model(Error::Cancelled { .. })) {
                ExitCode::from(EXIT_CANCELLED)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
