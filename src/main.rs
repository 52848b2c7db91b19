use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mednist::cli;
use mednist::workspace::Workspace;

/// Learn and run deep learning on medical images: the MedNIST lesson in your terminal.
///
/// With no subcommand, opens the interactive app. The subcommands run the same steps
/// headless, for scripts and servers without a terminal.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Workspace folder for datasets, splits and runs [default: the user's data directory]
    #[arg(long, global = true, env = mednist::workspace::HOME_ENV, value_name = "DIR")]
    workdir: Option<PathBuf>,

    /// Print one JSON document (or one JSON object per event) instead of tables
    #[arg(long, global = true)]
    json: bool,

    /// Colours of the interactive app: dark, light, high-contrast, or a theme file (.toml)
    #[arg(long, value_name = "NAME|PATH")]
    theme: Option<String>,

    /// Draw images in the interactive app with half-blocks instead of the terminal's graphics
    #[arg(long)]
    no_graphics: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Versions, LibTorch, CUDA devices and the workspace: what this machine can do
    Doctor,
    /// Get the images: the embedded lesson sample, the full MedNIST, or your own archive or folder
    Fetch(cli::fetch::FetchArgs),
    /// List the classes, their image counts, formats and sizes, and unreadable files
    Classes(cli::classes::ClassesArgs),
    /// Split the images into training and validation sets, reproducibly, and record the split
    Split(cli::split::SplitArgs),
    /// Train the classifier with fit_one_cycle; run again to continue where it left off
    Train(cli::train::TrainArgs),
    /// A training run's table from its event log; -f follows a running one (a detached training) to its end
    Logs(cli::logs::LogsArgs),
    /// The training runs: status, architecture, best epoch; `runs rm NAME`, `runs compare A B ...`
    Runs(cli::runs::RunsArgs),
    /// Confusion matrix, top losses, sensitivity/specificity/AUC with intervals, calibration, Grad-CAM, TTA
    Interpret(cli::interpret::InterpretArgs),
    /// Find a learning rate: a short sweep of growing rates; the learner is left as it was
    LrFind(cli::lr_find::LrFindArgs),
    /// Train every layer from now on (the lesson's learn.unfreeze())
    Unfreeze,
    /// Train only the head and BatchNorm layers from now on (learn.freeze())
    Freeze,
    /// Write the trained model to one file for `predict` (the lesson's learn.export()), or as ONNX
    Export(cli::export::ExportArgs),
    /// Classify images with an exported model
    Predict(cli::predict::PredictArgs),
}

fn main() -> ExitCode {
    mednist::system::reuse_freed_memory();
    let args = Cli::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Not eprintln: stderr may be a terminal that has gone, and that must not panic.
            let _ = writeln!(std::io::stderr(), "error: {}", cli::errors::describe(&error));
            ExitCode::FAILURE
        }
    }
}

fn run(args: Cli) -> anyhow::Result<()> {
    let workspace = Workspace::locate(args.workdir)?;
    refuse_under_torchrun(args.command.as_ref())?;
    match args.command {
        Some(Command::Doctor) => cli::doctor::run(&workspace, args.json),
        Some(Command::Fetch(fetch)) => cli::fetch::run(&workspace, &fetch, args.json),
        Some(Command::Classes(classes)) => cli::classes::run(&workspace, &classes, args.json),
        Some(Command::Split(split)) => cli::split::run(&workspace, &split, args.json),
        Some(Command::Train(train)) => cli::train::run(&workspace, &train, args.json),
        Some(Command::Logs(logs)) => cli::logs::run(&workspace, &logs, args.json),
        Some(Command::Runs(runs)) => cli::runs::run(&workspace, &runs, args.json),
        Some(Command::Interpret(interpret)) => cli::interpret::run(&workspace, &interpret, args.json),
        Some(Command::LrFind(lr_find)) => cli::lr_find::run(&workspace, &lr_find, args.json),
        Some(Command::Unfreeze) => cli::freeze::run(&workspace, false, args.json),
        Some(Command::Freeze) => cli::freeze::run(&workspace, true, args.json),
        Some(Command::Export(export)) => cli::export::run(&workspace, &export, args.json),
        Some(Command::Predict(predict)) => cli::predict::run(&workspace, &predict, args.json),
        None if !std::io::stdout().is_terminal() => {
            // A closed pipe is no error worth a panic.
            let _ = writeln!(
                std::io::stdout(),
                "mednist: stdout is not a terminal, so the interactive app is not started.\n\
                 Run the lesson's steps headless instead: mednist fetch | classes | split | train | interpret (see mednist --help)."
            );
            Ok(())
        }
        None => {
            let options = mednist::tui::Options { theme: args.theme, no_graphics: args.no_graphics };
            mednist::tui::run(&workspace, &options)
        }
    }
}

/// Under torchrun every rank runs the command: only `train` (which trains together) and
/// `doctor` (which says which rank it is) make sense there; the app needs a terminal of its own.
fn refuse_under_torchrun(command: Option<&Command>) -> anyhow::Result<()> {
    if matches!(command, Some(Command::Train(_) | Command::Doctor)) || mednist::dist::Launch::from_env()?.is_none() {
        return Ok(());
    }
    match command {
        None => anyhow::bail!(
            "the interactive app does not run under torchrun (RANK and WORLD_SIZE are set): start `mednist` on its own, and `torchrun ... mednist train` for distributed training"
        ),
        Some(_) => anyhow::bail!(
            "only `train` and `doctor` run under torchrun (RANK and WORLD_SIZE are set): run this step in one process, without torchrun"
        ),
    }
}
