//! Networks: CNN encoders and MLP heads, initialised the way PyTorch initialises them.
//!
//! tch's default Linear/Conv init is Kaiming-uniform with gain √2, a bound √6/√fan_in, about 2.45×
//! PyTorch's 1/√fan_in. For a tool whose job is judging gradient stability that difference matters,
//! so every layer here uses PyTorch's bound for both weights and biases.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::torch_ext;

fn torch_uniform(fan_in: i64) -> nn::Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    nn::Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// `nn::Linear` with PyTorch's default init.
pub fn linear(p: nn::Path, inp: i64, out: i64) -> nn::Linear {
    let init = torch_uniform(inp);
    nn::linear(
        p,
        inp,
        out,
        nn::LinearConfig {
            ws_init: init,
            bs_init: Some(init),
            bias: true,
        },
    )
}

/// `nn::Conv2D` with PyTorch's default init (fan_in = in_channels · k²).
pub fn conv2d(p: nn::Path, inp: i64, out: i64, k: i64, stride: i64) -> nn::Conv2D {
    let init = torch_uniform(inp * k * k);
    nn::conv2d(
        p,
        inp,
        out,
        k,
        nn::ConvConfig {
            stride,
            ws_init: init,
            bs_init: init,
            ..Default::default()
        },
    )
}

/// Conv stack → flatten → Linear → ReLU. Input is u8 pixels already scaled to [0, 1].
#[derive(Debug)]
pub struct Encoder {
    convs: Vec<nn::Conv2D>,
    fc: nn::Linear,
    /// Width of the output features.
    pub out_dim: i64,
}

/// Shape of the conv stack; comes from `networks.cnn`.
#[derive(Debug, Clone)]
pub struct EncoderShape {
    pub in_channels: i64,
    pub image_size: i64,
    pub channels: Vec<i64>,
    pub kernels: Vec<i64>,
    pub strides: Vec<i64>,
    pub feature_dim: i64,
}

impl EncoderShape {
    /// Spatial side after the conv stack (no padding), or `None` if an image is too small for it.
    pub fn conv_out_side(&self) -> Option<i64> {
        let mut side = self.image_size;
        for (&k, &s) in self.kernels.iter().zip(&self.strides) {
            if side < k {
                return None;
            }
            side = (side - k) / s + 1;
        }
        Some(side)
    }
}

impl Encoder {
    /// Builds the encoder's variables under `p`.
    pub fn new(p: &nn::Path, shape: &EncoderShape) -> Encoder {
        let mut convs = Vec::new();
        let mut c_in = shape.in_channels;
        for (i, ((&c, &k), &s)) in shape
            .channels
            .iter()
            .zip(&shape.kernels)
            .zip(&shape.strides)
            .enumerate()
        {
            convs.push(conv2d(p / format!("conv{i}"), c_in, c, k, s));
            c_in = c;
        }
        let side = shape.conv_out_side().unwrap_or(1);
        let flat = c_in * side * side;
        let fc = linear(p / "fc", flat, shape.feature_dim);
        Encoder {
            convs,
            fc,
            out_dim: shape.feature_dim,
        }
    }
}

impl Module for Encoder {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        // In-place ReLU: a convolution's and a linear layer's backward need their input, not
        // their output, so overwriting the output saves a buffer per layer.
        for c in &self.convs {
            h = h.apply(c).relu_();
        }
        h.flatten(1, -1).apply(&self.fc).relu_()
    }
}

/// Linear layers with ReLU between them; no activation after the last.
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<nn::Linear>,
}

impl Mlp {
    /// `inp → hidden… → out`.
    pub fn new(p: &nn::Path, inp: i64, hidden: &[i64], out: i64) -> Mlp {
        let mut layers = Vec::new();
        let mut d = inp;
        for (i, &h) in hidden.iter().enumerate() {
            layers.push(linear(p / format!("l{i}"), d, h));
            d = h;
        }
        layers.push(linear(p / format!("l{}", hidden.len()), d, out));
        Mlp { layers }
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        let n = self.layers.len();
        let mut h = x.shallow_clone();
        for (i, l) in self.layers.iter().enumerate() {
            h = h.apply(l);
            if i + 1 < n {
                h = h.relu_();
            }
        }
        h
    }
}

/// The L2 norm of each variable's gradient, as one vector tensor (0 where a variable has no
/// gradient). One libtorch call when every variable has a gradient. Stays on the device: no host
/// sync.
pub fn grad_norms(vars: &[Tensor]) -> Tensor {
    let device = vars.first().map(|v| v.device()).unwrap_or(tch::Device::Cpu);
    let grads: Vec<Tensor> = vars.iter().map(|v| v.grad()).collect();
    if grads.iter().all(|g| g.defined()) {
        return torch_ext::foreach_norm(&grads.iter().collect::<Vec<_>>()).to_device(device);
    }
    let norms: Vec<Tensor> = grads
        .iter()
        .map(|g| {
            if g.defined() {
                g.norm()
            } else {
                Tensor::zeros([], (Kind::Float, device))
            }
        })
        .collect();
    Tensor::stack(&norms, 0)
}

/// L2 norm over all gradients of `vars` as one scalar tensor (stays on device; no host sync).
/// Variables without a gradient count as zero; with no variables at all the result is 0.
pub fn grad_norm(vars: &[Tensor]) -> Tensor {
    grad_norms(vars).norm()
}

/// Scales gradients so their joint L2 norm is at most `max_norm` (PyTorch's `clip_grad_norm_`),
/// given the pre-clip norm already computed by [`grad_norm`].
pub fn clip_grads(vars: &[Tensor], total_norm: &Tensor, max_norm: f64) {
    // Same formula as torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), clamped to 1.
    let coef = (total_norm + CLIP_EPS)
        .reciprocal()
        .g_mul_scalar(max_norm)
        .clamp_max(1.0);
    let grads: Vec<Tensor> = vars
        .iter()
        .map(|v| v.grad())
        .filter(|g| g.defined())
        .collect();
    torch_ext::foreach_mul(&grads.iter().collect::<Vec<_>>(), &coef);
}

/// The `1e-6` torch's `clip_grad_norm_` adds to the norm before dividing.
const CLIP_EPS: f64 = 1e-6;

/// Whether [`clip_grads`] scales gradients of pre-clip norm `norm` down (its coefficient
/// `max_norm / (norm + 1e-6)` is below 1), i.e. the clip engages: `norm > max_norm`, up to that
/// `1e-6`. False for a NaN norm (no update applies then).
pub fn clip_engages(norm: f64, max_norm: f64) -> bool {
    max_norm / (norm + CLIP_EPS) < 1.0
}

/// L2 norm over all parameters' values (finite iff every parameter is finite, for realistic sizes).
pub fn param_norm(vars: &[Tensor]) -> Tensor {
    torch_ext::foreach_norm(&vars.iter().collect::<Vec<_>>()).norm()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn::OptimizerConfig, Device};

    #[test]
    fn init_matches_pytorch_bound() {
        let vs = nn::VarStore::new(Device::Cpu);
        let l = linear(vs.root() / "l", 400, 300);
        let bound = 1.0 / 400f64.sqrt();
        let max = l.ws.abs().max().double_value(&[]);
        assert!(
            max <= bound + 1e-7 && max > 0.9 * bound,
            "max {max} bound {bound}"
        );
        let c = conv2d(vs.root() / "c", 3, 16, 5, 2);
        let bound = 1.0 / (3.0f64 * 25.0).sqrt();
        let max = c.ws.abs().max().double_value(&[]);
        assert!(
            max <= bound + 1e-7 && max > 0.9 * bound,
            "conv max {max} bound {bound}"
        );
    }

    #[test]
    fn clipping_bounds_the_gradient_norm() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Mlp::new(&vs.root(), 8, &[32], 4);
        let x = Tensor::randn([16, 8], (Kind::Float, Device::Cpu)) * 1000.0;
        let loss = m.forward(&x).pow_tensor_scalar(2).sum(Kind::Float);
        loss.backward();
        let vars = vs.trainable_variables();
        let before = grad_norm(&vars);
        assert!(before.double_value(&[]) > 10.0);
        clip_grads(&vars, &before, 1.0);
        let after = grad_norm(&vars).double_value(&[]);
        assert!(after <= 1.0 + 1e-4, "after clipping {after}");
        assert!(
            after > 0.99,
            "clipping should scale to max_norm, got {after}"
        );
        // Below the threshold nothing changes.
        let small = grad_norm(&vars);
        clip_grads(&vars, &small, 10.0);
        assert!((grad_norm(&vars).double_value(&[]) - after).abs() < 1e-5);
        let _ = nn::Adam::default().build(&vs, 1e-3).unwrap();
    }

    #[test]
    fn the_clip_engages_exactly_when_it_scales_gradients() {
        assert!(clip_engages(1.5, 1.0));
        assert!(!clip_engages(0.74, 1.0));
        assert!(!clip_engages(0.0, 1.0));
        assert!(!clip_engages(f64::NAN, 1.0));
        for (norm, max) in [(2.0, 1.0), (0.5, 1.0), (10.01, 10.0)] {
            // d(norm * g)/dg = norm: a gradient whose norm is `norm`.
            let g = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
            (&g * norm).sum(Kind::Float).backward();
            let v = [g.shallow_clone()];
            let scaled = |grad: Tensor| grad.abs().double_value(&[0]);
            let before = scaled(g.grad());
            clip_grads(&v, &Tensor::from(before as f32), max);
            let changed = scaled(g.grad()) < before;
            assert_eq!(clip_engages(norm, max), changed, "norm {norm} max {max}");
        }
    }

    #[test]
    fn encoder_output_shape() {
        let vs = nn::VarStore::new(Device::Cpu);
        let shape = EncoderShape {
            in_channels: 3,
            image_size: 48,
            channels: vec![16, 32, 32],
            kernels: vec![5, 3, 3],
            strides: vec![2, 2, 1],
            feature_dim: 64,
        };
        assert_eq!(shape.conv_out_side(), Some(8));
        let e = Encoder::new(&vs.root(), &shape);
        let y = e.forward(&Tensor::zeros([2, 3, 48, 48], (Kind::Float, Device::Cpu)));
        assert_eq!(y.size(), vec![2, 64]);
    }
}
