//! Device slots: where runs may execute concurrently.

use std::fmt;

/// Where a slot's runs execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotDevice {
    Cpu,
    /// A GPU index, exported to the child as `CUDA_VISIBLE_DEVICES`.
    Gpu(usize),
}

/// One place a run can execute; `threads` is libtorch's intra-op thread count in the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub index: usize,
    pub device: SlotDevice,
    pub threads: usize,
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.device {
            SlotDevice::Cpu => write!(
                f,
                "slot {} (cpu, {} thread{})",
                self.index,
                self.threads,
                plural(self.threads)
            ),
            SlotDevice::Gpu(g) => write!(f, "slot {} (gpu {g})", self.index),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Which devices a sweep asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRequest {
    /// GPUs when there are any, else CPU cores.
    Auto,
    Cpu,
    /// These GPU indices.
    Gpus(Vec<usize>),
}

/// Computes the slots: one per GPU × `runs_per_device`, or `cores / threads_per_run` on CPU.
/// `jobs` overrides the count (cycling over the devices).
pub fn plan_slots(
    req: &DeviceRequest,
    runs_per_device: usize,
    threads_per_run: usize,
    jobs: Option<usize>,
    gpu_count: usize,
    cores: usize,
) -> Vec<Slot> {
    let threads = threads_per_run.max(1);
    let gpus: Vec<usize> = match req {
        DeviceRequest::Auto => (0..gpu_count).collect(),
        DeviceRequest::Cpu => Vec::new(),
        DeviceRequest::Gpus(g) => g.clone(),
    };
    let devices: Vec<SlotDevice> = if gpus.is_empty() {
        vec![SlotDevice::Cpu; (cores / threads).max(1)]
    } else {
        gpus.iter()
            .flat_map(|&g| std::iter::repeat_n(SlotDevice::Gpu(g), runs_per_device.max(1)))
            .collect()
    };
    let n = jobs.unwrap_or(devices.len()).max(1);
    (0..n)
        .map(|i| Slot {
            index: i,
            device: devices[i % devices.len()],
            threads,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_table() {
        let cpu = |n| plan_slots(&DeviceRequest::Auto, 2, 1, None, 0, n);
        assert_eq!(cpu(2).len(), 2);
        assert_eq!(cpu(16).len(), 16);
        assert_eq!(
            plan_slots(&DeviceRequest::Auto, 2, 4, None, 0, 2).len(),
            1,
            "never zero slots"
        );
        let g = plan_slots(&DeviceRequest::Auto, 2, 1, None, 3, 16);
        assert_eq!(g.len(), 6);
        assert_eq!(
            g.iter().filter(|s| s.device == SlotDevice::Gpu(2)).count(),
            2
        );
        let pick = plan_slots(&DeviceRequest::Gpus(vec![1]), 3, 1, None, 4, 16);
        assert!(pick.iter().all(|s| s.device == SlotDevice::Gpu(1)) && pick.len() == 3);
        assert_eq!(
            plan_slots(&DeviceRequest::Cpu, 2, 1, None, 4, 8).len(),
            8,
            "cpu ignores GPUs"
        );
        let j = plan_slots(&DeviceRequest::Auto, 1, 1, Some(5), 2, 16);
        assert_eq!(j.len(), 5);
        assert_eq!(j[4].device, SlotDevice::Gpu(0));
    }
}
