//! `mednist unfreeze` and `mednist freeze`: the lesson's `learn.unfreeze()`, kept in the
//! learner's checkpoint so the next `mednist train` trains the whole model (or the head only).

use anyhow::Result;
use serde_json::json;

use crate::cli::progress::StderrProgress;
use crate::learn::checkpoint::Which;
use crate::learn::device::DeviceChoice;
use crate::learn::open::open_saved;
use crate::workspace::Workspace;

pub fn run(workspace: &Workspace, frozen: bool, json: bool) -> Result<()> {
    let mut learner = open_saved(workspace, Which::Last, DeviceChoice::Cpu, &StderrProgress::new())?;
    let was_frozen = learner.is_frozen();
    learner.set_frozen(frozen);
    learner.save()?;
    if json {
        return crate::cli::print_json(&json!({ "arch": learner.arch, "frozen": frozen, "was_frozen": was_frozen }));
    }
    if frozen {
        println!("the {}'s body is frozen: `mednist train` trains the head and the BatchNorm layers", learner.arch);
    } else {
        println!(
            "the {}'s body is trainable: `mednist train` trains every layer; give the body smaller rates, \
             e.g. mednist train --epochs 5 --max-lr 3e-6..3e-5",
            learner.arch
        );
    }
    Ok(())
}
