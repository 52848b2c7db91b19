//! Safe wrappers over `kernels.cpp`: LibTorch's convolution and batch-norm backward kernels,
//! the ones PyTorch's autograd runs, GradScaler's unscaling kernel and the fused AdamW step. A
//! LibTorch failure panics with LibTorch's message, as tch's own infallible methods do.

use std::ffi::{CStr, c_char};

use tch::Tensor;
use torch_sys::C_tensor;

unsafe extern "C" {
    fn mednist_free_error(message: *mut c_char);
    fn mednist_conv2d_backward(
        grad_output: *const C_tensor,
        input: *const C_tensor,
        weight: *const C_tensor,
        stride: *const i64,
        padding: *const i64,
        dilation: *const i64,
        groups: i64,
        want_input: i32,
        want_weight: i32,
        grad_input: *mut *mut C_tensor,
        grad_weight: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn mednist_batch_norm_backward(
        grad_output: *const C_tensor,
        input: *const C_tensor,
        weight: *const C_tensor,
        save_mean: *const C_tensor,
        save_invstd: *const C_tensor,
        eps: f64,
        want_input: i32,
        want_weight: i32,
        want_bias: i32,
        grad_input: *mut *mut C_tensor,
        grad_weight: *mut *mut C_tensor,
        grad_bias: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn mednist_fused_adamw(
        param: *const C_tensor,
        grad: *const C_tensor,
        exp_avg: *const C_tensor,
        exp_avg_sq: *const C_tensor,
        step: f64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
    ) -> *mut c_char;
    fn mednist_amp_unscale(
        grads: *const *const C_tensor,
        count: i64,
        found_inf: *const C_tensor,
        inv_scale: *const C_tensor,
    ) -> *mut c_char;
}

/// The geometry of a 2-D convolution, as LibTorch takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dGeometry {
    pub stride: [i64; 2],
    pub padding: [i64; 2],
    pub dilation: [i64; 2],
    pub groups: i64,
}

/// Gradients of `conv2d(input, weight)` (no bias) given the gradient of its output; each is
/// computed only when wanted.
pub fn conv2d_backward(
    grad_output: &Tensor,
    input: &Tensor,
    weight: &Tensor,
    geometry: Conv2dGeometry,
    [want_input, want_weight]: [bool; 2],
) -> [Option<Tensor>; 2] {
    let mut grads = [std::ptr::null_mut(); 2];
    let error = unsafe {
        mednist_conv2d_backward(
            grad_output.as_ptr(),
            input.as_ptr(),
            weight.as_ptr(),
            geometry.stride.as_ptr(),
            geometry.padding.as_ptr(),
            geometry.dilation.as_ptr(),
            geometry.groups,
            want_input.into(),
            want_weight.into(),
            &mut grads[0],
            &mut grads[1],
        )
    };
    check(error, "convolution backward");
    grads.map(owned)
}

/// Gradients of a training-mode batch normalisation with respect to its input, weight and
/// bias, from the batch mean and inverse standard deviation `native_batch_norm` returned.
pub fn batch_norm_backward(
    grad_output: &Tensor,
    input: &Tensor,
    weight: &Tensor,
    save_mean: &Tensor,
    save_invstd: &Tensor,
    eps: f64,
    [want_input, want_weight, want_bias]: [bool; 3],
) -> [Option<Tensor>; 3] {
    let mut grads = [std::ptr::null_mut(); 3];
    let error = unsafe {
        mednist_batch_norm_backward(
            grad_output.as_ptr(),
            input.as_ptr(),
            weight.as_ptr(),
            save_mean.as_ptr(),
            save_invstd.as_ptr(),
            eps,
            want_input.into(),
            want_weight.into(),
            want_bias.into(),
            &mut grads[0],
            &mut grads[1],
            &mut grads[2],
        )
    };
    check(error, "batch norm backward");
    grads.map(owned)
}

/// Multiplies each of `grads` by `inv_scale` (a one-element f32 tensor) in place, and sets
/// `found_inf` (likewise) to 1 when one of them holds an inf or a NaN.
pub fn amp_unscale(grads: &[Tensor], found_inf: &Tensor, inv_scale: &Tensor) {
    // The handles are copied on the C++ side; the kernel writes the tensors' data, not them.
    let handles: Vec<*const C_tensor> = grads.iter().map(Tensor::as_ptr).collect();
    let error =
        unsafe { mednist_amp_unscale(handles.as_ptr(), handles.len() as i64, found_inf.as_ptr(), inv_scale.as_ptr()) };
    check(error, "gradient unscaling");
}

/// AdamW's hyper-parameters for one step.
#[derive(Debug, Clone, Copy)]
pub struct AdamW {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// One AdamW step (`step` counts from 1) on `param` and its moments, in place, by PyTorch's fused
/// kernel: decoupled weight decay, then `param -= lr / (1 - beta1^t) * m / (sqrt(v / (1 -
/// beta2^t)) + eps)`. The four tensors must have one shape and one memory layout.
pub fn fused_adamw(param: &Tensor, grad: &Tensor, moments: [&Tensor; 2], step: usize, hypers: AdamW) {
    let AdamW { lr, beta1, beta2, eps, weight_decay } = hypers;
    let error = unsafe {
        mednist_fused_adamw(
            param.as_ptr(),
            grad.as_ptr(),
            moments[0].as_ptr(),
            moments[1].as_ptr(),
            step as f64,
            lr,
            beta1,
            beta2,
            weight_decay,
            eps,
        )
    };
    check(error, "AdamW step");
}

fn check(error: *mut c_char, what: &str) {
    if error.is_null() {
        return;
    }
    let message = unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned();
    unsafe { mednist_free_error(error) };
    panic!("LibTorch {what} failed: {message}");
}

/// Takes ownership of a tensor handle the C++ side allocated (null when not wanted).
fn owned(handle: *mut C_tensor) -> Option<Tensor> {
    (!handle.is_null()).then(|| unsafe { Tensor::from_ptr(handle) })
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind};

    use super::*;

    const HYPERS: AdamW = AdamW { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-5, weight_decay: 0.0 };

    #[test]
    fn the_fused_step_refuses_tensors_laid_out_apart() {
        let grad = Tensor::randn([4, 3, 2, 2], (Kind::Float, Device::Cpu));
        let moments = [grad.zeros_like(), grad.zeros_like()];
        // The same values, channels-last: read as a flat array it would pair wrong elements.
        let param = crate::model::layout::channels_last(&grad);
        let before = param.copy();
        let outcome = std::panic::catch_unwind(|| fused_adamw(&param, &grad, [&moments[0], &moments[1]], 1, HYPERS));
        let message = *outcome.expect_err("refused").downcast::<String>().expect("a message");
        assert!(message.contains("differ in memory layout"), "{message}");
        assert!(param.equal(&before), "the parameter is left as it was");
    }

    #[test]
    fn the_fused_step_moves_a_parameter_against_its_gradient() {
        let param = Tensor::zeros([5], (Kind::Float, Device::Cpu));
        let grad = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 0.0, 3.0]);
        let moments = [grad.zeros_like(), grad.zeros_like()];
        fused_adamw(&param, &grad, [&moments[0], &moments[1]], 1, HYPERS);
        // Adam's first step moves each weight by about lr against its gradient's sign.
        let moved: Vec<f32> = Vec::try_from(&param).unwrap();
        let expected = [-0.1, 0.1, -0.1, 0.0, -0.1];
        for (got, want) in moved.iter().zip(expected) {
            assert!((got - want).abs() < 1e-4, "{moved:?}");
        }
    }
}
