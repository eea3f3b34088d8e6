//! Saving and restoring the state of [`AdamW`]: moments as named tensors plus the step count.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::{AdamW, Moments, ParamState, STEP_TENSOR};
use anllm::{Error, Result};

impl AdamW {
    /// The optimizer state as named tensors: `<param>.exp_avg`, `<param>.exp_avg_sq` (on CPU,
    /// f32, or f64 for f64 parameters) and the step count as [`STEP_TENSOR`] (an i64 `[1]`).
    pub fn state_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::with_capacity(2 * self.params.len() + 1);
        let steps = i64::try_from(self.steps).unwrap_or(i64::MAX);
        out.push((
            STEP_TENSOR.to_string(),
            Tensor::new(&[steps], &Device::Cpu)?,
        ));
        for s in &self.params {
            let (m, v) = match &s.moments {
                Moments::Cpu { m, v } => (
                    Tensor::from_slice(m, s.dims.as_slice(), &Device::Cpu)?,
                    Tensor::from_slice(v, s.dims.as_slice(), &Device::Cpu)?,
                ),
                Moments::Tensors { m, v } => {
                    (m.to_device(&Device::Cpu)?, v.to_device(&Device::Cpu)?)
                }
            };
            out.push((format!("{}.exp_avg", s.name), m));
            out.push((format!("{}.exp_avg_sq", s.name), v));
        }
        Ok(out)
    }

    /// Restores a state saved by [`AdamW::state_tensors`]. Every tensor must be present with
    /// the parameter's shape, and nothing else may be; on error the optimizer is unchanged.
    pub fn load_state(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        let mut by_name: HashMap<&str, &Tensor> =
            tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let steps = take_steps(&mut by_name)?;
        let mut loaded = Vec::with_capacity(self.params.len());
        for s in &self.params {
            let m = take_moment(&mut by_name, s, "exp_avg")?;
            let v = take_moment(&mut by_name, s, "exp_avg_sq")?;
            loaded.push(restore_moments(&s.moments, m, v)?);
        }
        if let Some(extra) = by_name.keys().min() {
            return Err(Error::config(
                "optimizer state",
                format!("tensor `{extra}` does not belong to any parameter"),
            ));
        }
        for (s, moments) in self.params.iter_mut().zip(loaded) {
            s.moments = moments;
        }
        self.steps = steps;
        Ok(())
    }
}

/// Removes and reads the step counter.
fn take_steps(by_name: &mut HashMap<&str, &Tensor>) -> Result<u64> {
    let t = by_name
        .remove(STEP_TENSOR)
        .ok_or_else(|| Error::config("optimizer state", format!("no `{STEP_TENSOR}` tensor")))?;
    let values = t.flatten_all()?.to_dtype(DType::I64)?.to_vec1::<i64>()?;
    match values.as_slice() {
        [n] if *n >= 0 => Ok(*n as u64),
        _ => Err(Error::config(
            "optimizer state",
            format!("`{STEP_TENSOR}` is {values:?}, not one non-negative count"),
        )),
    }
}

/// Removes and checks `<param>.<kind>`.
fn take_moment<'a>(
    by_name: &mut HashMap<&str, &'a Tensor>,
    s: &ParamState,
    kind: &str,
) -> Result<&'a Tensor> {
    let name = format!("{}.{kind}", s.name);
    let t = by_name
        .remove(name.as_str())
        .ok_or_else(|| Error::config("optimizer state", format!("tensor `{name}` is missing")))?;
    if t.dims() != s.dims.as_slice() {
        return Err(Error::Shape {
            op: format!("optimizer state `{name}`"),
            expected: format!("{:?}", s.dims),
            got: format!("{:?}", t.dims()),
        });
    }
    Ok(t)
}

/// New moments of the same kind (and device) as `like`, holding `m` and `v`.
fn restore_moments(like: &Moments, m: &Tensor, v: &Tensor) -> Result<Moments> {
    Ok(match like {
        Moments::Cpu { .. } => {
            let read = |t: &Tensor| -> Result<Vec<f32>> {
                Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
            };
            Moments::Cpu {
                m: read(m)?,
                v: read(v)?,
            }
        }
        Moments::Tensors { m: old, .. } => {
            let read = |t: &Tensor| -> Result<Tensor> {
                Ok(t.to_dtype(old.dtype())?.to_device(old.device())?)
            };
            Moments::Tensors {
                m: read(m)?,
                v: read(v)?,
            }
        }
    })
}
