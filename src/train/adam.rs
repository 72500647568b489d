//! Adam over a fixed list of tensors, with its state in the open so a checkpoint can hold it.
//!
//! tch's `nn::Optimizer` keeps Adam's moment buffers inside libtorch where they cannot be read
//! or restored, so a resumed run would restart its moments from zero. This is
//! `torch.optim.Adam(fused=True)` with its defaults (betas 0.9/0.999, eps 1e-8, no weight decay,
//! no amsgrad, bias-corrected): one fused libtorch kernel per step over every parameter
//! ([`crate::torch_ext::fused_adam`]), with the moments and step counts held here. As torch does,
//! a parameter without a gradient is skipped and its step count does not advance.

use tch::{Kind, Tensor};

use crate::torch_ext;

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
    /// Updates applied to each parameter (torch keeps one count per parameter), as 0-d float
    /// tensors on the parameter's device, which is what the fused kernel reads.
    steps: Vec<Tensor>,
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
            steps: params
                .iter()
                .map(|p| Tensor::zeros([], (Kind::Float, p.device())))
                .collect(),
        }
    }

    /// Zeroes the gradients that exist (like `optimizer.zero_grad(set_to_none=False)`).
    pub fn zero_grad(&mut self) {
        let grads: Vec<Tensor> = self
            .params
            .iter()
            .map(|p| p.grad())
            .filter(|g| g.defined())
            .collect();
        torch_ext::foreach_zero(&grads.iter().collect::<Vec<_>>());
    }

    /// One Adam step on every parameter that has a gradient.
    pub fn step(&mut self) {
        let grads: Vec<Tensor> = self.params.iter().map(|p| p.grad()).collect();
        let with: Vec<usize> = (0..grads.len()).filter(|&i| grads[i].defined()).collect();
        fn pick<'a>(xs: &'a [Tensor], with: &[usize]) -> Vec<&'a Tensor> {
            with.iter().map(|&i| &xs[i]).collect()
        }
        torch_ext::fused_adam(
            &pick(&self.params, &with),
            &pick(&grads, &with),
            &pick(&self.m, &with),
            &pick(&self.v, &with),
            &pick(&self.steps, &with),
            self.lr,
            (BETA1, BETA2),
            EPS,
        );
    }

    /// Updates applied so far to each parameter.
    pub fn steps(&self) -> Vec<u64> {
        self.steps
            .iter()
            .map(|s| s.double_value(&[]).max(0.0) as u64)
            .collect()
    }

    /// The optimizer state as named tensors (`m.<i>`, `v.<i>`, `step`), for a checkpoint.
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.m.len() + 1);
        for (i, (m, v)) in self.m.iter().zip(&self.v).enumerate() {
            out.push((format!("{prefix}.m.{i}"), m.shallow_clone()));
            out.push((format!("{prefix}.v.{i}"), v.shallow_clone()));
        }
        let steps: Vec<i64> = self.steps().into_iter().map(|s| s as i64).collect();
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
        tch::no_grad(|| {
            for (t, x) in self.steps.iter_mut().zip(s) {
                let _ = t.fill_(x.max(0) as f64);
            }
        });
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
        assert_eq!(other.steps(), vec![1]);
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
        assert_eq!(opt.steps(), vec![0]);
        assert_eq!(Vec::<f32>::try_from(x.detach()).unwrap(), vec![1.0]);
    }

    /// The fused kernel against Adam's textbook update, written out with plain tensor ops, over
    /// five steps with different gradients on tensors of several shapes.
    #[test]
    fn fused_step_matches_the_textbook_update() {
        tch::manual_seed(3);
        let opts = (Kind::Float, tch::Device::Cpu);
        let xs: Vec<Tensor> = [vec![4i64, 3], vec![7], vec![2, 2, 3]]
            .iter()
            .map(|s| Tensor::randn(s.as_slice(), opts).set_requires_grad(true))
            .collect();
        let mut want: Vec<Tensor> = xs.iter().map(|x| x.detach().copy()).collect();
        let mut m: Vec<Tensor> = xs.iter().map(|x| x.zeros_like()).collect();
        let mut v: Vec<Tensor> = xs.iter().map(|x| x.zeros_like()).collect();
        let lr = 3e-3;
        let mut opt = Adam::new(&xs, lr);
        for t in 1..=5 {
            opt.zero_grad();
            let loss: Tensor = xs
                .iter()
                .map(|x| (x * x * t as f64).sin().sum(Kind::Float))
                .fold(Tensor::zeros([], opts), |a, b| a + b);
            loss.backward();
            for i in 0..xs.len() {
                let g = xs[i].grad().detach().copy();
                m[i] = &m[i] * BETA1 + &g * (1.0 - BETA1);
                v[i] = &v[i] * BETA2 + &g * &g * (1.0 - BETA2);
                let mh = &m[i] / (1.0 - BETA1.powi(t));
                let vh = &v[i] / (1.0 - BETA2.powi(t));
                want[i] = &want[i] - mh / (vh.sqrt() + EPS) * lr;
            }
            opt.step();
        }
        assert_eq!(opt.steps(), vec![5, 5, 5]);
        for (x, w) in xs.iter().zip(&want) {
            let d = (x.detach() - w).abs().max().double_value(&[]);
            assert!(
                d < 1e-6,
                "fused Adam differs from the textbook update by {d}"
            );
        }
    }
}
