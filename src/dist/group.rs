//! The process group: safe wrappers over `c10d.cpp`, and errors that say which rank was lost.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow};
use tch::{Device, Kind, Tensor};
use torch_sys::C_tensor;

use super::launch::Launch;
use crate::runs::process::is_alive;

#[repr(C)]
struct RawGroup {
    _opaque: [u8; 0],
}

unsafe extern "C" {
    fn mednist_free_error(message: *mut c_char);
    fn mednist_dist_connect(
        host: *const c_char,
        port: i32,
        rank: i32,
        size: i32,
        host_store: i32,
        prefix: *const c_char,
        timeout_ms: i64,
        nccl_device: i32,
        group: *mut *mut RawGroup,
    ) -> *mut c_char;
    fn mednist_dist_nccl_built() -> i32;
    fn mednist_dist_free(group: *mut RawGroup);
    fn mednist_dist_store_set(group: *mut RawGroup, key: *const c_char, data: *const u8, length: i64) -> *mut c_char;
    fn mednist_dist_store_get(
        group: *mut RawGroup,
        key: *const c_char,
        data: *mut *mut u8,
        length: *mut i64,
    ) -> *mut c_char;
    fn mednist_dist_free_bytes(data: *mut u8);
    fn mednist_dist_allreduce(
        group: *mut RawGroup,
        tensors: *const *const C_tensor,
        count: i64,
        bucket_bytes: i64,
        average: i32,
    ) -> *mut c_char;
    fn mednist_dist_broadcast(group: *mut RawGroup, target: *const C_tensor, root: i32) -> *mut c_char;
}

/// How an all-reduce combines the ranks' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    Sum,
    /// The sum divided by the number of ranks.
    Mean,
}

/// A process, as the others see it: enough to tell, after a collective failed, whether it died.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Peer {
    host: String,
    pid: u32,
}

/// This process's membership of a group of ranks training together.
pub struct ProcessGroup {
    raw: *mut RawGroup,
    rank: usize,
    size: usize,
    /// Whether CUDA tensors go through NCCL (else everything goes through Gloo).
    nccl: bool,
    timeout: Duration,
    peers: Vec<Peer>,
    /// A collective that failed where no error could be returned (inside a backward pass): the
    /// next collective that can return one does.
    failure: Mutex<Option<String>>,
}

// c10d's process group and store are made for use from several threads; the raw handle is only
// ever used through them.
unsafe impl Send for ProcessGroup {}
unsafe impl Sync for ProcessGroup {}

impl ProcessGroup {
    /// Joins the group `launch` describes: the rendezvous store (hosted by rank 0 unless
    /// torchrun's agent hosts it), Gloo, and for a process that trains on CUDA device
    /// `cuda_device` NCCL when this build has it ([`ProcessGroup::nccl_built`]). Every rank must
    /// call it; it returns once all have. A store wait or collective that has not completed
    /// within `timeout` fails.
    pub fn connect(launch: &Launch, timeout: Duration, cuda_device: Option<usize>) -> Result<Self> {
        let nccl = cuda_device.filter(|_| Self::nccl_built());
        let host = CString::new(launch.master_addr.as_str())?;
        let prefix = CString::new(launch.store_prefix())?;
        let mut raw = std::ptr::null_mut();
        let error = unsafe {
            mednist_dist_connect(
                host.as_ptr(),
                i32::from(launch.master_port),
                launch.rank as i32,
                launch.world_size as i32,
                i32::from(launch.is_root() && !launch.agent_store),
                prefix.as_ptr(),
                timeout.as_millis() as i64,
                nccl.map_or(-1, |device| device as i32),
                &mut raw,
            )
        };
        if let Some(message) = take_error(error) {
            return Err(anyhow!(
                "rank {} of {} could not join the others at {}:{} within {}: {message}",
                launch.rank,
                launch.world_size,
                launch.master_addr,
                launch.master_port,
                seconds(timeout)
            ));
        }
        let mut group = Self {
            raw,
            rank: launch.rank,
            size: launch.world_size,
            nccl: nccl.is_some(),
            timeout,
            peers: Vec::new(),
            failure: Mutex::new(None),
        };
        group.peers = group.exchange_peers()?;
        Ok(group)
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Whether this build can make NCCL groups (it found the CUDA and NCCL headers).
    pub fn nccl_built() -> bool {
        unsafe { mednist_dist_nccl_built() != 0 }
    }

    /// The collectives' backends: `gloo`, or `nccl+gloo` (NCCL for CUDA tensors).
    pub fn backend(&self) -> &'static str {
        if self.nccl { "nccl+gloo" } else { "gloo" }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// Each rank's host and pid, published in the store.
    fn exchange_peers(&self) -> Result<Vec<Peer>> {
        let host = hostname();
        let me = format!("{host} {}", std::process::id());
        self.store_set(&format!("peer/{}", self.rank), me.as_bytes())?;
        (0..self.size)
            .map(|rank| {
                let text = String::from_utf8_lossy(&self.store_get(&format!("peer/{rank}"))?).into_owned();
                let (host, pid) = text.rsplit_once(' ').unwrap_or((&text, "0"));
                Ok(Peer { host: host.to_string(), pid: pid.parse().unwrap_or(0) })
            })
            .collect()
    }

    fn store_set(&self, key: &str, value: &[u8]) -> Result<()> {
        let key = CString::new(key)?;
        let error = unsafe { mednist_dist_store_set(self.raw, key.as_ptr(), value.as_ptr(), value.len() as i64) };
        self.check(error, "the rendezvous store")
    }

    fn store_get(&self, key: &str) -> Result<Vec<u8>> {
        let key_c = CString::new(key)?;
        let (mut data, mut length) = (std::ptr::null_mut(), 0i64);
        let error = unsafe { mednist_dist_store_get(self.raw, key_c.as_ptr(), &mut data, &mut length) };
        self.check(error, "the rendezvous store")?;
        let bytes = unsafe { std::slice::from_raw_parts(data, length as usize) }.to_vec();
        unsafe { mednist_dist_free_bytes(data) };
        Ok(bytes)
    }

    /// All-reduces `tensors` in place, packed into buckets of about `bucket_bytes`.
    pub fn all_reduce(&self, tensors: &[Tensor], reduce: Reduce, bucket_bytes: usize, what: &str) -> Result<()> {
        self.check_earlier_failure()?;
        if tensors.is_empty() {
            return Ok(());
        }
        let handles: Vec<*const C_tensor> = tensors.iter().map(Tensor::as_ptr).collect();
        let average = i32::from(reduce == Reduce::Mean);
        let error = unsafe {
            mednist_dist_allreduce(self.raw, handles.as_ptr(), handles.len() as i64, bucket_bytes as i64, average)
        };
        self.check(error, what)
    }

    /// All-reduces `tensors` in place where no error can be returned (a backward pass): a
    /// failure is kept for the next [`ProcessGroup::all_reduce`] or [`ProcessGroup::check_earlier_failure`],
    /// and the tensors are left as they were.
    pub fn all_reduce_or_defer(&self, tensors: &[Tensor], reduce: Reduce, what: &str) {
        if self.failure.lock().expect("failure lock").is_some() {
            return;
        }
        if let Err(error) = self.all_reduce(tensors, reduce, super::BUCKET_BYTES, what) {
            *self.failure.lock().expect("failure lock") = Some(format!("{error:#}"));
        }
    }

    /// The failure a deferred collective met, if any.
    pub fn check_earlier_failure(&self) -> Result<()> {
        match self.failure.lock().expect("failure lock").take() {
            Some(message) => Err(anyhow!(message)),
            None => Ok(()),
        }
    }

    /// Rank `root`'s bytes on every rank: `bytes` is read on the root only.
    pub fn broadcast_bytes(&self, root: usize, bytes: &[u8], what: &str) -> Result<Vec<u8>> {
        self.check_earlier_failure()?;
        let length = Tensor::from_slice(&[if self.rank == root { bytes.len() as i64 } else { 0 }]);
        self.broadcast(&length, root, what)?;
        let length = length.int64_value(&[0]) as usize;
        let data = if self.rank == root {
            Tensor::from_slice(bytes)
        } else {
            Tensor::zeros([length as i64], (Kind::Uint8, Device::Cpu))
        };
        self.broadcast(&data, root, what)?;
        let mut received = vec![0u8; length];
        data.copy_data(&mut received, length);
        Ok(received)
    }

    fn broadcast(&self, tensor: &Tensor, root: usize, what: &str) -> Result<()> {
        let error = unsafe { mednist_dist_broadcast(self.raw, tensor.as_ptr(), root as i32) };
        self.check(error, what)
    }

    fn check(&self, error: *mut c_char, what: &str) -> Result<()> {
        match take_error(error) {
            None => Ok(()),
            Some(message) => Err(anyhow!("{}", self.describe_failure(what, &message))),
        }
    }

    /// One line: which rank failed at what, and which rank was lost when that can be told (a
    /// process on this machine that is gone), else that none answered within the timeout.
    fn describe_failure(&self, what: &str, message: &str) -> String {
        let me = hostname();
        let dead: Vec<String> = self
            .peers
            .iter()
            .enumerate()
            .filter(|(rank, peer)| *rank != self.rank && peer.host == me && !is_alive(peer.pid))
            .map(|(rank, peer)| format!("rank {rank} (pid {}) has died", peer.pid))
            .collect();
        let cause = if !dead.is_empty() {
            dead.join(", ")
        } else if message.contains("imed out") || message.contains("imeout") {
            format!(
                "another rank did not answer within {} (--dist-timeout): it hangs or is gone",
                seconds(self.timeout)
            )
        } else {
            "another rank has gone".into()
        };
        format!("rank {} of {}: {what} failed: {cause} ({message})", self.rank, self.size)
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        unsafe { mednist_dist_free(self.raw) };
    }
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProcessGroup(rank {} of {})", self.rank, self.size)
    }
}

fn take_error(error: *mut c_char) -> Option<String> {
    if error.is_null() {
        return None;
    }
    let message = unsafe { CStr::from_ptr(error) }.to_string_lossy().trim().to_string();
    unsafe { mednist_free_error(error) };
    Some(message)
}

fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|name| name.trim().to_string()).unwrap_or_default()
}

thread_local! {
    static SYNC_BATCH_NORM: RefCell<Option<Arc<ProcessGroup>>> = const { RefCell::new(None) };
}

/// While alive, BatchNorm layers trained on this thread normalise with the statistics of the
/// whole group's batch (PyTorch's SyncBatchNorm); they see it through [`SyncBatchNorm::group`].
pub struct SyncBatchNorm {
    previous: Option<Arc<ProcessGroup>>,
}

impl SyncBatchNorm {
    pub fn enter(group: Arc<ProcessGroup>) -> Self {
        Self { previous: SYNC_BATCH_NORM.with(|current| current.replace(Some(group))) }
    }

    /// The group this thread's BatchNorm layers synchronise over, if any.
    pub fn group() -> Option<Arc<ProcessGroup>> {
        SYNC_BATCH_NORM.with(|current| current.borrow().clone())
    }
}

impl Drop for SyncBatchNorm {
    fn drop(&mut self) {
        SYNC_BATCH_NORM.with(|current| *current.borrow_mut() = self.previous.take());
    }
}
