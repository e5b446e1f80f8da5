//! Heartbeats and metric samples: soft state, written in batches (SPEC 3.7, 4.4).

use serde::{Deserialize, Serialize};

use crate::validation::ValidationError;
use crate::{NodeId, Timestamp};

/// A node was heard from at `at` (server time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node_id: NodeId,
    pub at: Timestamp,
}

/// One GPU's readings in a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSample {
    pub index: u32,
    pub temperature_c: f64,
    pub power_w: f64,
    pub utilization_percent: f64,
    pub memory_used_bytes: u64,
}

/// A node's readings carried by one heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSample {
    pub node_id: NodeId,
    pub at: Timestamp,
    pub cpu_percent: f64,
    pub memory_percent: f64,
    pub gpus: Vec<GpuSample>,
}

impl MetricSample {
    /// Mean GPU utilization, or `None` for a node without GPUs.
    pub fn mean_gpu_utilization(&self) -> Option<f64> {
        if self.gpus.is_empty() {
            return None;
        }
        Some(self.gpus.iter().map(|g| g.utilization_percent).sum::<f64>() / self.gpus.len() as f64)
    }

    /// Rejects readings no sensor produces: percentages outside 0..=100, non-finite values.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_percent("cpu_percent", self.cpu_percent)?;
        check_percent("memory_percent", self.memory_percent)?;
        if self.gpus.len() > crate::node::MAX_GPUS {
            return Err(ValidationError::new("gpus", format_args!("more than {} GPUs", crate::node::MAX_GPUS)));
        }
        for (i, gpu) in self.gpus.iter().enumerate() {
            let at = |e: ValidationError| e.within(&format!("[{i}]")).within("gpus");
            check_percent("utilization_percent", gpu.utilization_percent).map_err(at)?;
            check_finite("temperature_c", gpu.temperature_c).map_err(at)?;
            check_finite("power_w", gpu.power_w).map_err(at)?;
            crate::validation::check_stored_int("memory_used_bytes", gpu.memory_used_bytes).map_err(at)?;
        }
        Ok(())
    }
}

fn check_finite(field: &str, value: f64) -> Result<(), ValidationError> {
    if value.is_finite() { Ok(()) } else { Err(ValidationError::new(field, format_args!("{value} is not a number"))) }
}

fn check_percent(field: &str, value: f64) -> Result<(), ValidationError> {
    check_finite(field, value)?;
    if (0.0..=100.0).contains(&value) {
        Ok(())
    } else {
        Err(ValidationError::new(field, format_args!("{value} is outside 0..100")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(utils: &[f64]) -> MetricSample {
        MetricSample {
            node_id: NodeId::new("n1").expect("valid"),
            at: Timestamp::UNIX_EPOCH,
            cpu_percent: 12.5,
            memory_percent: 40.0,
            gpus: utils
                .iter()
                .enumerate()
                .map(|(i, u)| GpuSample {
                    index: i as u32,
                    temperature_c: 45.0,
                    power_w: 300.0,
                    utilization_percent: *u,
                    memory_used_bytes: 1 << 30,
                })
                .collect(),
        }
    }

    #[test]
    fn mean_utilization() {
        assert_eq!(sample(&[]).mean_gpu_utilization(), None);
        assert_eq!(sample(&[50.0, 100.0]).mean_gpu_utilization(), Some(75.0));
    }

    #[test]
    fn rejects_impossible_readings() {
        assert!(sample(&[50.0]).validate().is_ok());
        assert_eq!(sample(&[50.0, 101.0]).validate().unwrap_err().field, "gpus[1].utilization_percent");
        let mut s = sample(&[]);
        s.cpu_percent = f64::NAN;
        assert_eq!(s.validate().unwrap_err().field, "cpu_percent");
    }
}
