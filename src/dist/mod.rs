//! Data-parallel training across processes, on LibTorch's own distributed runtime (c10d): the
//! TCPStore rendezvous that `torchrun` sets up and a Gloo process group for the collectives
//! (`c10d.cpp`). One process per device; each trains on its shard of every batch and the
//! gradients are averaged, as PyTorch's DistributedDataParallel does.
//!
//! Knows nothing of terminals or flags: [`Launch::from_env`] reads what torchrun sets, and
//! [`ProcessGroup`] does the collectives.

mod group;
mod launch;

pub use group::{ProcessGroup, Reduce, SyncBatchNorm};
pub use launch::{Launch, LaunchError};

/// DistributedDataParallel's default bucket: gradients are all-reduced about this many bytes at a time.
pub const BUCKET_BYTES: usize = 25 * 1024 * 1024;
