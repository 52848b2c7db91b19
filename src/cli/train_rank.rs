//! `mednist train` as one process of a torchrun launch. Rank 0 trains as `mednist train` does
//! (the lock, the run's record, the table, the checkpoints) with its learner shared and its
//! gradients averaged; every other rank trains silently beside it and writes nothing.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};

use super::train::TrainArgs;
use crate::dist::{Launch, ProcessGroup};
use crate::event::Event;
use crate::job::{CancelToken, is_cancelled};
use crate::learn::device::DeviceChoice;
use crate::learn::distributed::{Distributed, open_rank};
use crate::learn::open::{OpenOptions, Opened};
use crate::workspace::Workspace;

/// What this rank opens its learner with (the GPU of its local rank, when it trains on GPUs),
/// and the process group of this launch, joined by every rank before any training work: NCCL
/// beside Gloo when it trains on a GPU and this build has NCCL.
pub(super) fn join(
    launch: &Launch,
    args: &TrainArgs,
    mut options: OpenOptions,
) -> Result<(OpenOptions, Arc<ProcessGroup>)> {
    options.device = options.device.for_local_rank(launch.local_rank);
    let cuda = match options.device {
        DeviceChoice::Cuda(index) => Some(index),
        DeviceChoice::Auto | DeviceChoice::Cpu => None,
    };
    let group = ProcessGroup::connect(launch, Duration::from_secs(args.dist_timeout), cuda)?;
    Ok((options, Arc::new(group)))
}

/// This rank's learner, opened through the group: rank 0's, everywhere.
pub(super) fn open(
    workspace: &Workspace,
    options: &OpenOptions,
    group: Arc<ProcessGroup>,
    args: &TrainArgs,
    emit: &dyn crate::event::Emit,
    cancel: &CancelToken,
) -> Result<Opened> {
    open_rank(workspace, options, Distributed::new(group, args.sync_bn, cancel.clone()), emit, cancel)
}

/// A rank other than 0: trains its share and prints nothing but its errors.
pub(super) fn run(workspace: &Workspace, args: &TrainArgs, launch: &Launch) -> Result<()> {
    let cancel = CancelToken::new();
    // torchrun passes its Ctrl-C on to every rank; rank 0 says what happens.
    let stop = cancel.clone();
    let _ = ctrlc::set_handler(move || stop.cancel());
    let (options, group) = join(launch, args, super::train::open_options(args))?;
    let silent = |_: Event| {};
    let Opened { mut learner, data, .. } = open(workspace, &options, group, args, &silent, &cancel)?;
    match learner.fit_one_cycle(&data, args.epochs, args.max_lr, &silent, &cancel) {
        Err(error) if is_cancelled(&error) => Err(anyhow!("rank {}: training interrupted", launch.rank)),
        other => other,
    }
}
