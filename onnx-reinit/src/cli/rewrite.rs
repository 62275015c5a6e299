//! The rewrite: the command line without a subcommand, and its run.

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::analysis::AnalysisOptions;
use crate::error::Error;
use crate::pipeline::{self, DEFAULT_SEED, Destination, RewriteConfig, RunError};
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
    fn into_config(self) -> (RewriteConfig, Show, Option<usize>) {
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
        } else {
            Destination::Path(real.clone())
        };
        let show = Show {
            json: self.json,
            quiet: self.quiet || self.json,
            width: output::table_width(self.wide),
            preview: self.dry_run.then_some(real),
        };
        (
            RewriteConfig {
                model,
                destination,
                force: self.force,
                rules: self.rules.into_rules(),
                seed: self.seed,
                analysis: AnalysisOptions {
                    compat: self.compat.into(),
                },
                cancel: None,
                progress: None,
            },
            show,
            self.threads.map(usize::from),
        )
    }
}

/// Runs the rewrite and prints its report (the table, or JSON with `--json`) on stdout, and
/// what was written on stderr; returns the exit code (see [`super`]).
///
/// The report is rendered before the output is renamed into place and printed after, so that
/// nothing that can fail runs after the commit point.
pub(crate) fn run(args: RewriteArgs) -> ExitCode {
    let (mut config, show, threads) = args.into_config();
    if let Destination::Path(out) = &config.destination {
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
        Destination::Path(p) => p.clone(),
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
    let render = |report: &crate::report::Report| {
        if show.json {
            output::json(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}\n"))
        } else if show.quiet {
            // --quiet: no table; the errors (and the exit code) say what went wrong.
            String::new()
        } else {
            report.table_for(show.width)
        }
    };
    let result = match with_threads(threads, || pipeline::run_rendered(&config, render)) {
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
