//! The rewrite: the command line without a subcommand, and its run.

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::analysis::AnalysisOptions;
use crate::error::Error;
use crate::pipeline::{self, DEFAULT_SEED, Destination, RewriteConfig, RunError};
use clap::Args;
use clap::builder::TypedValueParser;

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

    /// Output file [default: <stem>.reinit.onnx beside the input]; a missing path or a regular
    /// file (never a device, FIFO or folder; `-` is refused: the output needs a real file).
    #[arg(short, long, value_name = "OUT", conflicts_with_all = ["in_place", "dry_run"],
          value_parser = TypedValueParser::try_map(clap::builder::OsStringValueParser::new(), output_path))]
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
}

/// `-o`'s parser: `-` is refused rather than read as a file named `-` in the working folder.
/// A model cannot go to stdout: the output is written in parallel at positions, flushed and
/// renamed into place, which a pipe cannot do, and a half-written model on a pipe would look
/// like a whole one to the reader.
fn output_path(s: std::ffi::OsString) -> Result<PathBuf, String> {
    if s == "-" {
        Err("the output cannot be stdout (`-`); give a file path (./- for a file named `-`)".into())
    } else {
        Ok(PathBuf::from(s))
    }
}

impl RewriteArgs {
    /// The library's configuration, and whether to print JSON; `MODEL` is required by clap
    /// whenever there is no subcommand.
    fn into_config(self) -> (RewriteConfig, bool) {
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
            self.json,
        )
    }
}

/// Runs the rewrite and prints its report (the table, or JSON with `--json`); returns the exit
/// code (see [`super`]).
pub(crate) fn run(args: RewriteArgs) -> ExitCode {
    let (mut config, json) = args.into_config();
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
            eprintln!(
                "{REWRITE}: note: {} has {} hard links; the other links keep the old contents",
                config.model.display(),
                m.nlink()
            );
        }
    }
    if !json && io::stderr().is_terminal() && file_len(&config.model) > PROGRESS_MIN_BYTES {
        config.progress = Some(progress_bar());
    }
    match pipeline::run(&config) {
        Ok(outcome) => {
            let text = if json {
                output::json(&outcome.report)
                    .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}\n"))
            } else {
                outcome.report.table()
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
