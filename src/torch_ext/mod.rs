//! libtorch operators tch does not bind.
//!
//! tch's code generator skips every `_foreach_*` and `_fused_*` operator, so an optimizer written
//! with tch issues one small op per parameter tensor per maths step (issue 9 measured the
//! hand-written Adam at 1.3 ms per step over the default agent's 459k parameters, against 0.25 ms
//! for the fused kernel). `ops.cpp` calls the ATen functions directly; `build.rs` compiles it
//! against the same libtorch headers tch uses.
//!
//! One of the two modules allowed `unsafe` code (Cargo.toml's `[lints]` names both): raw tensor
//! pointers go to C++, which never lets an exception cross back (it returns a message instead).

#![allow(unsafe_code)]

use std::ffi::{c_char, CStr};

use tch::Tensor;
use torch_sys::C_tensor;

extern "C" {
    fn td3_ext_free(p: *mut c_char);
    fn td3_fused_adam(
        params: *const *const C_tensor,
        grads: *const *const C_tensor,
        m: *const *const C_tensor,
        v: *const *const C_tensor,
        steps: *const *const C_tensor,
        n: i64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
    ) -> *mut c_char;
    fn td3_foreach_lerp(
        dst: *const *const C_tensor,
        src: *const *const C_tensor,
        n: i64,
        weight: f64,
    ) -> *mut c_char;
    fn td3_foreach_norm(xs: *const *const C_tensor, n: i64, out: *mut *mut C_tensor)
        -> *mut c_char;
    fn td3_foreach_zero(xs: *const *const C_tensor, n: i64) -> *mut c_char;
    fn td3_foreach_mul(xs: *const *const C_tensor, n: i64, scale: *const C_tensor) -> *mut c_char;
}

fn ptrs(xs: &[&Tensor]) -> Vec<*const C_tensor> {
    xs.iter().map(|t| t.as_ptr()).collect()
}

/// Turns the C++ side's error message into a panic, as tch's infallible ops do.
fn check(op: &str, err: *mut c_char) {
    if err.is_null() {
        return;
    }
    // SAFETY: a non-null return is a NUL-terminated string from strdup, freed exactly once here.
    let msg = unsafe {
        let m = CStr::from_ptr(err).to_string_lossy().into_owned();
        td3_ext_free(err);
        m
    };
    panic!("libtorch {op}: {msg}");
}

fn same_len(op: &str, lens: &[usize]) {
    assert!(
        lens.windows(2).all(|w| w[0] == w[1]),
        "{op}: tensor lists of different lengths {lens:?}"
    );
}

/// One fused Adam step (`torch.optim.Adam(fused=True)`, no weight decay, no amsgrad) over a
/// parameter group: increments every `steps[i]` (a 0-d float tensor on the parameter's device),
/// then updates `params`, `m` and `v` in place from `grads`.
#[allow(clippy::too_many_arguments)]
pub fn fused_adam(
    params: &[&Tensor],
    grads: &[&Tensor],
    m: &[&Tensor],
    v: &[&Tensor],
    steps: &[&Tensor],
    lr: f64,
    betas: (f64, f64),
    eps: f64,
) {
    let n = params.len();
    same_len(
        "fused_adam",
        &[n, grads.len(), m.len(), v.len(), steps.len()],
    );
    if n == 0 {
        return;
    }
    let (p, g, m, v, s) = (ptrs(params), ptrs(grads), ptrs(m), ptrs(v), ptrs(steps));
    // SAFETY: every pointer comes from a live `Tensor` borrowed for the duration of the call;
    // the C++ side only reads the arrays and updates the tensors through libtorch.
    let err = unsafe {
        td3_fused_adam(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            s.as_ptr(),
            n as i64,
            lr,
            betas.0,
            betas.1,
            eps,
        )
    };
    check("_fused_adam_", err);
}

/// `dst[i].lerp_(src[i], weight)` for every `i`, in one call (Polyak averaging: θ' ← θ' + w(θ − θ')).
pub fn foreach_lerp(dst: &[&Tensor], src: &[&Tensor], weight: f64) {
    same_len("foreach_lerp", &[dst.len(), src.len()]);
    if dst.is_empty() {
        return;
    }
    let (d, s) = (ptrs(dst), ptrs(src));
    // SAFETY: as in `fused_adam`.
    let err = unsafe { td3_foreach_lerp(d.as_ptr(), s.as_ptr(), d.len() as i64, weight) };
    check("_foreach_lerp_", err);
}

/// The L2 norm of each tensor, stacked into one vector tensor on their device (no host sync).
/// An empty list gives an empty CPU tensor.
pub fn foreach_norm(xs: &[&Tensor]) -> Tensor {
    if xs.is_empty() {
        return Tensor::zeros([0], (tch::Kind::Float, tch::Device::Cpu));
    }
    let p = ptrs(xs);
    let mut out: *mut C_tensor = std::ptr::null_mut();
    // SAFETY: as in `fused_adam`; on success `out` is a heap `at::Tensor*` whose ownership
    // passes to the returned `Tensor`.
    let err = unsafe { td3_foreach_norm(p.as_ptr(), p.len() as i64, &mut out) };
    check("_foreach_norm", err);
    assert!(!out.is_null(), "_foreach_norm returned no tensor");
    // SAFETY: `out` is non-null and owned (see above).
    unsafe { Tensor::from_ptr(out) }
}

/// `xs[i].zero_()` for every `i`, in one call.
pub fn foreach_zero(xs: &[&Tensor]) {
    if xs.is_empty() {
        return;
    }
    let p = ptrs(xs);
    // SAFETY: as in `fused_adam`.
    let err = unsafe { td3_foreach_zero(p.as_ptr(), p.len() as i64) };
    check("_foreach_zero_", err);
}

/// `xs[i].mul_(scale)` for every `i`, `scale` a 0-d tensor on their device (no host sync).
pub fn foreach_mul(xs: &[&Tensor], scale: &Tensor) {
    if xs.is_empty() {
        return;
    }
    let p = ptrs(xs);
    // SAFETY: as in `fused_adam`.
    let err = unsafe { td3_foreach_mul(p.as_ptr(), p.len() as i64, scale.as_ptr()) };
    check("_foreach_mul_", err);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn vals(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    #[test]
    fn foreach_ops_match_per_tensor_ops() {
        tch::manual_seed(1);
        let a = Tensor::randn([3, 4], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([5], (Kind::Float, Device::Cpu));
        let n = foreach_norm(&[&a, &b]);
        let want = [a.norm().double_value(&[]), b.norm().double_value(&[])];
        let got = vals(&n);
        assert!(
            (f64::from(got[0]) - want[0]).abs() < 1e-5
                && (f64::from(got[1]) - want[1]).abs() < 1e-5
        );

        let (ta, tb) = (a.zeros_like(), b.ones_like());
        foreach_lerp(&[&ta, &tb], &[&a, &b], 0.25);
        assert_eq!(vals(&ta), vals(&(&a * 0.25)));
        let want_b: Vec<f32> = vals(&b).iter().map(|x| 1.0 + 0.25 * (x - 1.0)).collect();
        for (g, w) in vals(&tb).iter().zip(&want_b) {
            assert!((g - w).abs() < 1e-6);
        }

        let s = Tensor::from(0.5f32);
        let c = a.copy();
        foreach_mul(&[&c], &s);
        assert_eq!(vals(&c), vals(&(&a * 0.5)));
        foreach_zero(&[&c, &tb]);
        assert!(vals(&c).iter().chain(vals(&tb).iter()).all(|&x| x == 0.0));
    }

    #[test]
    fn errors_become_panics_with_the_message() {
        let a = Tensor::zeros([2], (Kind::Float, Device::Cpu));
        let b = Tensor::zeros([3], (Kind::Float, Device::Cpu));
        let r = std::panic::catch_unwind(|| foreach_lerp(&[&a], &[&b], 0.5));
        let msg = r
            .err()
            .and_then(|e| e.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(msg.starts_with("libtorch _foreach_lerp_:"), "{msg}");
    }
}
