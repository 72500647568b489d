//! Adam over a fixed list of tensors, with its state in the open so a checkpoint can hold it.
//!
//! tch's `nn::Optimizer` keeps Adam's moment buffers inside libtorch where they cannot be read
//! or restored, so a resumed run would restart its moments from zero. This is the same update as
//! `torch.optim.Adam` with its defaults (betas 0.9/0.999, eps 1e-8, no weight decay, no
//! amsgrad, bias-corrected), run parameter by parameter under `no_grad`. As torch does, a
//! parameter without a gradient is skipped and its step count does not advance.

use tch::{Kind, Tensor};

/// First-moment decay (`torch.optim.Adam` default).
pub const BETA1: f64 = 0.9;
/// Second-moment decay (`torch.optim.Adam` default).
pub const BETA2: f64 = 0.999;
/// Denominator epsilon (`torch.optim.Adam` default).
pub const EPS: f64 = 1e-8;

/// Adam for one parameter group.
pub struct Adam {
    /// The learning rate.
    pub lr: f64,
    params: Vec<Tensor>,
    /// First moments, one per parameter, same shape and device.
    m: Vec<Tensor>,
    /// Second moments.
    v: Vec<Tensor>,
    /// Updates applied to each parameter (torch keeps one count per parameter).
    steps: Vec<u64>,
}

impl Adam {
    /// Adam over `params` (shallow clones of the variables) with zeroed moments.
    pub fn new(params: &[Tensor], lr: f64) -> Adam {
        let zeros = || -> Vec<Tensor> { params.iter().map(|p| p.zeros_like()).collect() };
        Adam {
            lr,
            params: params.iter().map(|p| p.shallow_clone()).collect(),
            m: zeros(),
            v: zeros(),
            steps: vec![0; params.len()],
        }
    }

    /// Zeroes the gradients that exist (like `optimizer.zero_grad(set_to_none=False)`).
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_();
                let _ = g.zero_();
            }
        }
    }

    /// One Adam step on every parameter that has a gradient.
    pub fn step(&mut self) {
        tch::no_grad(|| {
            for i in 0..self.params.len() {
                let g = self.params[i].grad();
                if !g.defined() {
                    continue;
                }
                self.steps[i] += 1;
                let t = self.steps[i] as i32;
                let _ = self.m[i].lerp_(&g, 1.0 - BETA1);
                let _ = self.v[i]
                    .g_mul_scalar_(BETA2)
                    .addcmul_(&g, &g.g_mul_scalar(1.0 - BETA2));
                let bc1 = 1.0 - BETA1.powi(t);
                let bc2 = 1.0 - BETA2.powi(t);
                let denom = (self.v[i].sqrt() / bc2.sqrt()).g_add_scalar_(EPS);
                let update = (&self.m[i] / denom).g_mul_scalar_(-self.lr / bc1);
                let _ = self.params[i].g_add_(&update);
            }
        });
    }

    /// The optimizer state as named tensors (`m.<i>`, `v.<i>`, `step`), for a checkpoint.
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.m.len() + 1);
        for (i, (m, v)) in self.m.iter().zip(&self.v).enumerate() {
            out.push((format!("{prefix}.m.{i}"), m.shallow_clone()));
            out.push((format!("{prefix}.v.{i}"), v.shallow_clone()));
        }
        let steps: Vec<i64> = self.steps.iter().map(|&s| s as i64).collect();
        out.push((format!("{prefix}.step"), Tensor::from_slice(&steps)));
        out
    }

    /// Restores [`Adam::state`] from `get(name)`; a missing name or a wrong shape is an error.
    pub fn load_state(
        &mut self,
        prefix: &str,
        get: &dyn Fn(&str) -> Option<Tensor>,
    ) -> Result<(), String> {
        let fetch = |name: String, like: &Tensor| -> Result<Tensor, String> {
            let t = get(&name).ok_or_else(|| format!("missing tensor `{name}`"))?;
            if t.size() != like.size() {
                return Err(format!(
                    "tensor `{name}` has shape {:?}, expected {:?}",
                    t.size(),
                    like.size()
                ));
            }
            Ok(t.to_kind(like.kind()).to_device(like.device()))
        };
        for i in 0..self.m.len() {
            let m = fetch(format!("{prefix}.m.{i}"), &self.m[i])?;
            let v = fetch(format!("{prefix}.v.{i}"), &self.v[i])?;
            tch::no_grad(|| {
                self.m[i].copy_(&m);
                self.v[i].copy_(&v);
            });
        }
        let name = format!("{prefix}.step");
        let s = get(&name).ok_or_else(|| format!("missing tensor `{name}`"))?;
        let s: Vec<i64> = Vec::try_from(s.to_kind(Kind::Int64).view([-1]))
            .map_err(|e| format!("tensor `{name}`: {e}"))?;
        if s.len() != self.steps.len() {
            return Err(format!(
                "tensor `{name}` has {} entries, expected {}",
                s.len(),
                self.steps.len()
            ));
        }
        self.steps = s.into_iter().map(|x| x.max(0) as u64).collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two steps on f(x) = sum(x^2), checked against torch.optim.Adam(lr=0.1) by hand:
    /// the first step moves every coordinate by exactly lr (m̂/√v̂ = sign(g)).
    #[test]
    fn first_step_moves_by_lr_and_state_round_trips() {
        let x = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        let mut opt = Adam::new(&[x.shallow_clone()], 0.1);
        opt.zero_grad();
        (&x * &x).sum(Kind::Float).backward();
        opt.step();
        let v: Vec<f32> = Vec::try_from(x.detach()).unwrap();
        assert!(
            (v[0] - 0.9).abs() < 1e-6 && (v[1] + 1.9).abs() < 1e-6,
            "{v:?}"
        );
        let st = opt.state("a");
        let map: std::collections::HashMap<String, Tensor> = st.into_iter().collect();
        let mut other = Adam::new(&[x.shallow_clone()], 0.1);
        other
            .load_state("a", &|n| map.get(n).map(|t| t.copy()))
            .unwrap();
        assert_eq!(other.steps, vec![1]);
        assert_eq!(
            Vec::<f32>::try_from(&other.m[0]).unwrap(),
            Vec::<f32>::try_from(&opt.m[0]).unwrap()
        );
    }

    #[test]
    fn parameters_without_gradients_are_skipped() {
        let x = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
        let mut opt = Adam::new(&[x.shallow_clone()], 0.1);
        opt.step();
        assert_eq!(opt.steps, vec![0]);
        assert_eq!(Vec::<f32>::try_from(x.detach()).unwrap(), vec![1.0]);
    }
}
