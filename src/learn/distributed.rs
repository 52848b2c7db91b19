//! A learner as one rank of a data-parallel training, as PyTorch's DistributedDataParallel
//! makes a model one: rank 0's learner is copied to every rank, each rank trains on its share
//! of every epoch (the global batch is the batch size times the ranks), gradients are averaged
//! across ranks after every backward pass, and validation is sharded with its sums added up, so
//! every rank sees the same table. Only rank 0 writes checkpoints.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use burn::optim::GradientsParams;
use serde::{Deserialize, Serialize};
use tch::Kind;

use super::checkpoint::CyclePosition;
use super::data::TrainData;
use super::learner::Learner;
use super::metrics::Tally;
use super::open::{OpenOptions, Opened, open_learner};
use super::precision::gradient_tensors;
use super::step::PendingLoss;
use crate::data::batches::{BatchPlan, deal};
use crate::data::window::Window;
use crate::dist::{BUCKET_BYTES, ProcessGroup, Reduce, SyncBatchNorm};
use crate::event::Emit;
use crate::job::CancelToken;
use crate::model::{Arch, Classifier};
use crate::workspace::Workspace;

/// A learner's place in a process group.
pub struct Distributed {
    group: Arc<ProcessGroup>,
    /// BatchNorm over the whole group's batch (`--sync-bn`), else over each rank's.
    sync_bn: bool,
    /// This rank's request to stop (its Ctrl-C): sent with the next step's gradients.
    request: CancelToken,
    /// The group's stop flag of the last step, still on the device: read at the next step, once
    /// that step's all-reduce is queued, so that no step waits for the device to read it.
    pending_stop: Option<tch::Tensor>,
    /// Some rank asked to stop: every rank stops before the next batch.
    agreed_stop: bool,
}

impl Distributed {
    pub fn new(group: Arc<ProcessGroup>, sync_bn: bool, request: CancelToken) -> Self {
        Self { group, sync_bn, request, pending_stop: None, agreed_stop: false }
    }

    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    pub fn size(&self) -> usize {
        self.group.size()
    }

    /// Images each rank trains on per epoch, out of `images`.
    pub(super) fn training_share(&self, images: usize) -> usize {
        images / self.size()
    }

    /// This rank's share of an epoch's batches.
    pub(super) fn shard(&self, plan: BatchPlan) -> BatchPlan {
        plan.shard(self.rank(), self.size())
    }

    /// This rank's share of the validation images: every image is validated by one rank.
    pub(super) fn validation_share(&self, items: &[usize]) -> Vec<usize> {
        deal(items, self.rank(), self.size())
    }

    /// Entered around a step's forward and backward passes: BatchNorm then synchronises.
    pub(super) fn batch_norm_scope(&self) -> Option<SyncBatchNorm> {
        self.sync_bn.then(|| SyncBatchNorm::enter(self.group.clone()))
    }

    /// Averages the step's gradients over the ranks, in place, bucket by bucket; the step's loss
    /// and this rank's stop request travel with them, so every rank reads the group's mean loss
    /// and every rank learns of a stop at the same step (read one step late, like the losses).
    pub(super) fn average(
        &mut self,
        model: &Classifier,
        grads: &GradientsParams,
        loss: &mut PendingLoss,
    ) -> Result<()> {
        self.group.check_earlier_failure()?;
        let mut tensors = gradient_tensors(model, grads);
        let device = tensors.first().map_or(tch::Device::Cpu, tch::Tensor::device);
        let stop = f32::from(u8::from(self.request.is_cancelled()));
        let extras = tch::Tensor::cat(
            &[loss.tensor().to_kind(Kind::Float).reshape([1]), tch::Tensor::from_slice(&[stop]).to_device(device)],
            0,
        );
        tensors.push(extras.shallow_clone());
        self.group.all_reduce(&tensors, Reduce::Mean, BUCKET_BYTES, "the gradient all-reduce")?;
        loss.replace(&extras.narrow(0, 0, 1));
        if let Some(flag) = self.pending_stop.replace(extras.narrow(0, 1, 1)) {
            self.agreed_stop = flag.double_value(&[0]) > 0.0;
        }
        Ok(())
    }

    /// Whether the ranks agreed to stop before the next batch.
    pub(super) fn stop_agreed(&self) -> bool {
        self.agreed_stop
    }

    /// The whole validation set's tally from each rank's.
    pub(super) fn sum_tally(&self, tally: Tally) -> Result<Tally> {
        let sums = tch::Tensor::from_slice(&tally.sums());
        self.group.all_reduce(std::slice::from_ref(&sums), Reduce::Sum, BUCKET_BYTES, "the validation all-reduce")?;
        let mut summed = [0.0; 3];
        sums.copy_data(&mut summed, 3);
        Ok(Tally::from_sums(summed))
    }
}

/// What every rank takes of rank 0's learner besides its weights and optimizer state.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SharedState {
    pub arch: Arch,
    pub image_size: usize,
    pub window: Window,
    pub split_fingerprint: String,
    pub frozen: bool,
    pub epochs_done: usize,
    pub cycle: Option<CyclePosition>,
}

/// Opens this rank's learner: rank 0 opens the workspace's as one process would and sends it;
/// every other rank loads the same data and takes rank 0's learner. A failure on rank 0 is
/// sent too, so the others fail with it rather than wait.
pub fn open_rank(
    workspace: &Workspace,
    options: &OpenOptions,
    distributed: Distributed,
    emit: &dyn Emit,
    cancel: &CancelToken,
) -> Result<Opened> {
    let group = distributed.group.clone();
    let mut opened = if group.is_root() {
        let opened = open_learner(workspace, options, emit, cancel);
        let message = match &opened {
            Ok(opened) => opened.learner.share().map(|(state, model, optimizer)| pack(Ok(&state), &model, &optimizer)),
            Err(error) => Ok(pack(Err(&format!("{error:#}")), &[], &[])),
        };
        let message = message?;
        group.broadcast_bytes(0, &message, "sending rank 0's learner")?;
        opened?
    } else {
        let message = group.broadcast_bytes(0, &[], "receiving rank 0's learner")?;
        let (state, model, optimizer) = unpack(&message)?;
        let data = TrainData::load(workspace, state.image_size, &state.window, emit, cancel)?;
        if data.split_fingerprint != state.split_fingerprint {
            bail!(
                "rank {}'s dataset split differs from rank 0's: every machine needs the same dataset and split.json in its workspace",
                group.rank()
            );
        }
        let (device, device_label) = options.device.resolve()?;
        let settings = options.settings.clone();
        let run_dir = workspace.current_run_dir();
        let mut learner = Learner::new(state.arch, &data, (device, device_label.clone()), run_dir, settings);
        learner.adopt(state, model, optimizer).context("cannot take rank 0's learner")?;
        let resumed = learner.epochs_done() > 0;
        Opened { learner, data, resumed, device: device_label }
    };
    opened.learner.join(distributed);
    Ok(opened)
}

/// `[header length][header JSON][weights length][weights][optimizer state]`; the header is
/// rank 0's state, or the error that kept it from opening its learner.
fn pack(state: Result<&SharedState, &String>, model: &[u8], optimizer: &[u8]) -> Vec<u8> {
    let header = serde_json::to_vec(&state).expect("the shared state serialises");
    let mut message = Vec::with_capacity(16 + header.len() + model.len() + optimizer.len());
    for part in [&header[..], model] {
        message.extend_from_slice(&(part.len() as u64).to_le_bytes());
        message.extend_from_slice(part);
    }
    message.extend_from_slice(optimizer);
    message
}

fn unpack(message: &[u8]) -> Result<(SharedState, Vec<u8>, Vec<u8>)> {
    let mut rest = message;
    let mut part = || -> Result<&[u8]> {
        let length = rest.get(..8).context("rank 0's learner arrived cut short")?;
        let length = u64::from_le_bytes(length.try_into().expect("8 bytes")) as usize;
        let body = rest.get(8..8 + length).context("rank 0's learner arrived cut short")?;
        rest = &rest[8 + length..];
        Ok(body)
    };
    let header: Result<SharedState, String> =
        serde_json::from_slice(part()?).context("rank 0's learner cannot be read")?;
    let model = part()?.to_vec();
    let state = header.map_err(|message| anyhow::anyhow!("rank 0 could not open the learner: {message}"))?;
    Ok((state, model, rest.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_learner_unpacks_whole_and_a_failure_is_passed_on() {
        let state = SharedState {
            arch: Arch::Resnet18,
            image_size: 32,
            window: Window::default(),
            split_fingerprint: "abc".into(),
            frozen: true,
            epochs_done: 2,
            cycle: None,
        };
        let (back, model, optimizer) = unpack(&pack(Ok(&state), &[1, 2, 3], &[4, 5])).unwrap();
        assert_eq!((back.arch, back.image_size, back.frozen, back.epochs_done), (Arch::Resnet18, 32, true, 2));
        assert_eq!((model, optimizer), (vec![1, 2, 3], vec![4, 5]));
        let failed = unpack(&pack(Err(&"no dataset in /w".to_string()), &[], &[])).unwrap_err();
        assert_eq!(failed.to_string(), "rank 0 could not open the learner: no dataset in /w");
        assert!(unpack(&[3, 0]).is_err());
    }
}
