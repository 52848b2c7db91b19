//! A 2-D convolution computed as one matrix product per kernel tap, over only the output
//! positions where that tap lands inside the input.
//!
//! On the smallest feature maps of a ResNet (2x2 and 4x4 in its last two stages for 64px
//! images) much of a 3x3 window is padding. oneDNN's CPU kernels compute over it, and their
//! weight gradient there is badly shaped: on a 2-core AVX2 CPU, ResNet34's 512-channel 3x3
//! convolutions at 2x2 took 20 ms forward, 27 ms for the input gradient and 76 ms for the
//! weight gradient; by taps 15, 15 and 15 ms. At 4x4 (256 channels) 17 / 15 / 24 ms became
//! 15 / 15 / 15 ms. From 8x8 up, and for strided convolutions from 4x4, oneDNN is faster, so
//! [`suits`] keeps it there (issue 3). On a 2-core AVX-512 CPU (with AMX) the same choice
//! still wins for the whole ResNet34 step: 77-85 img/s against 69-82 with oneDNN everywhere,
//! alternating runs. Where the products are slower than oneDNN's convolutions, [`pays_on`]
//! says so.

use std::sync::OnceLock;

use tch::{Kind, Tensor};

use super::kernels::Conv2dGeometry;

/// Whether the tap method beats oneDNN for a CPU convolution with this output size and
/// geometry (measured for ResNet34 at batch 64 on a 2-core AVX2 CPU): outputs of at most 2x2,
/// and unstrided ones of at most 4x4, ungrouped. A strided convolution's pixels are one
/// matrix product each, too small to win from 4x4 up; at 8x8 oneDNN wins either way.
pub fn suits(output_height: i64, output_width: i64, geometry: &Conv2dGeometry) -> bool {
    let positions = output_height * output_width;
    let unstrided = geometry.stride == [1, 1];
    geometry.groups == 1 && (positions <= 4 || (unstrided && positions <= 16))
}

/// Whether the tap method beats oneDNN on `cpu` for products in `kind`. f32 products are
/// MKL's, which runs its AVX-512 kernels on Intel CPUs only: on another AVX-512 CPU they stay
/// AVX2 while oneDNN's convolutions use AVX-512. On a 2-core AMD EPYC (Zen 5) ResNet34's fp32
/// step took 152 img/s without the taps against 136 with them (medians of 20 repeats,
/// channels-last). 16-bit products are oneDNN's own, and there the taps still win: 257 img/s
/// against 216 in bf16.
pub fn pays_on(cpu: Cpu, kind: Kind) -> bool {
    kind != Kind::Float || !cpu.avx512 || cpu.intel
}

/// What [`pays_on`] needs to know of a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu {
    pub avx512: bool,
    pub intel: bool,
}

impl Cpu {
    /// This machine's, detected once.
    pub fn this() -> Self {
        static THIS: OnceLock<Cpu> = OnceLock::new();
        *THIS.get_or_init(Self::detect)
    }

    #[cfg(target_arch = "x86_64")]
    fn detect() -> Self {
        // The vendor string is leaf 0's EBX, EDX, ECX.
        let leaf = std::arch::x86_64::__cpuid(0);
        let vendor: Vec<u8> = [leaf.ebx, leaf.edx, leaf.ecx].iter().flat_map(|word| word.to_le_bytes()).collect();
        Self { avx512: std::arch::is_x86_feature_detected!("avx512f"), intel: vendor == b"GenuineIntel" }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn detect() -> Self {
        Self { avx512: false, intel: false }
    }
}

/// The operands in the layouts the method multiplies without copying: the input as
/// `[h, w, n, c_in]` (each pixel's batch a `[n, c_in]` matrix, a row of pixels one taller
/// matrix) and the weight as `[kh, kw, c_out, c_in]` (each tap a `[c_out, c_in]` matrix).
/// Fresh tensors: a backward pass may keep them while the optimizer updates the weight.
pub fn operands(input: &Tensor, weight: &Tensor) -> (Tensor, Tensor) {
    (input.permute([2, 3, 0, 1]).contiguous(), weight.permute([2, 3, 0, 1]).contiguous())
}

/// `conv2d(input, weight)` without bias, from [`operands`]; returns `[n, c_out, h, w]`.
pub fn forward(input: &Tensor, weight: &Tensor, geometry: &Conv2dGeometry) -> Tensor {
    let plan = Plan::new(input, weight, geometry);
    let [out_h, out_w] = plan.output;
    let output = Tensor::zeros([out_h, out_w, plan.batch, plan.out_channels], (input.kind(), input.device()));
    plan.for_each_block(|tap, block| {
        let _ = block.output(&output).addmm_(&block.input(input), &tap.weight(weight).tr());
    });
    from_pixels_major(&output)
}

/// Gradients of [`forward`] with respect to its input (`[n, c_in, h, w]`) and weight
/// (`[c_out, c_in, kh, kw]`), given the gradient of its output; each is computed only when
/// wanted.
pub fn backward(
    grad_output: &Tensor,
    input: &Tensor,
    weight: &Tensor,
    geometry: &Conv2dGeometry,
    [want_input, want_weight]: [bool; 2],
) -> [Option<Tensor>; 2] {
    let plan = Plan::new(input, weight, geometry);
    let grad_output = grad_output.permute([2, 3, 0, 1]).contiguous();
    let grad_input = want_input.then(|| input.zeros_like());
    // A tap that lands nowhere has a zero gradient.
    let grad_weight = want_weight.then(|| weight.zeros_like());
    plan.for_each_block(|tap, block| {
        let grad_block = block.output(&grad_output);
        if let Some(grad_input) = &grad_input {
            let _ = block.input(grad_input).addmm_(&grad_block, &tap.weight(weight));
        }
        if let Some(grad_weight) = &grad_weight {
            let _ = tap.weight(grad_weight).addmm_(&grad_block.tr(), &block.input(input));
        }
    });
    [grad_input.map(|grad| from_pixels_major(&grad)), grad_weight.map(|grad| from_pixels_major(&grad))]
}

/// `[h, w, n, c]` back to `[n, c, h, w]` (or a `[kh, kw, c_out, c_in]` weight to `[c_out, c_in,
/// kh, kw]`), laid out channels-last as the CPU's other convolutions take and give their
/// activations and weight gradients (see `layout`).
fn from_pixels_major(tensor: &Tensor) -> Tensor {
    tensor.permute([2, 0, 1, 3]).contiguous().permute([0, 3, 1, 2])
}

/// The shapes of one convolution and the taps that contribute to it.
struct Plan {
    batch: i64,
    out_channels: i64,
    output: [i64; 2],
    /// The input's and output's widths: a block spans several rows only when its rows are
    /// whole in both.
    widths: [i64; 2],
    taps: Vec<Tap>,
}

impl Plan {
    /// From [`operands`].
    fn new(input: &Tensor, weight: &Tensor, geometry: &Conv2dGeometry) -> Self {
        let [h, w, batch, _]: [i64; 4] = input.size().try_into().expect("a 4-D convolution input");
        let [kh, kw, out_channels, _]: [i64; 4] = weight.size().try_into().expect("a 4-D convolution weight");
        assert_eq!(geometry.groups, 1, "the tap method computes ungrouped convolutions");
        let axis = |axis: usize, input, kernel| Axis {
            input,
            kernel,
            stride: geometry.stride[axis],
            padding: geometry.padding[axis],
            dilation: geometry.dilation[axis],
        };
        let (rows, cols) = (axis(0, h, kh), axis(1, w, kw));
        let taps = (0..kh)
            .filter_map(|ky| rows.span(ky).map(|span| (ky, span)))
            .flat_map(|(ky, row)| (0..kw).filter_map(move |kx| cols.span(kx).map(|col| Tap { ky, kx, row, col })))
            .collect();
        Self { batch, out_channels, output: [rows.output(), cols.output()], widths: [w, cols.output()], taps }
    }

    /// Every tap's work as matrix products over contiguous blocks of pixels.
    fn for_each_block(&self, mut work: impl FnMut(&Tap, Block)) {
        for tap in &self.taps {
            let (row, col) = (tap.row, tap.col);
            let whole_rows = row.stride == 1 && col.len == self.widths[0] && col.len == self.widths[1];
            if whole_rows {
                work(
                    tap,
                    Block { output: [row.output_start, 0], input: [row.input_start, 0], rows: row.len, cols: col.len },
                );
                continue;
            }
            for r in 0..row.len {
                let (out_y, in_y) = (row.output_start + r, row.input_start + r * row.stride);
                if col.stride == 1 {
                    work(
                        tap,
                        Block {
                            output: [out_y, col.output_start],
                            input: [in_y, col.input_start],
                            rows: 1,
                            cols: col.len,
                        },
                    );
                    continue;
                }
                for c in 0..col.len {
                    let (out_x, in_x) = (col.output_start + c, col.input_start + c * col.stride);
                    work(tap, Block { output: [out_y, out_x], input: [in_y, in_x], rows: 1, cols: 1 });
                }
            }
        }
    }
}

/// One spatial axis of a convolution.
#[derive(Clone, Copy)]
struct Axis {
    input: i64,
    kernel: i64,
    stride: i64,
    padding: i64,
    dilation: i64,
}

impl Axis {
    fn output(&self) -> i64 {
        (self.input + 2 * self.padding - self.dilation * (self.kernel - 1) - 1) / self.stride + 1
    }

    /// The output positions where kernel offset `k` reads inside the input: output `o` reads
    /// input `o * stride + k * dilation - padding`.
    fn span(&self, k: i64) -> Option<Span> {
        let shift = k * self.dilation - self.padding;
        let first = ceil_div(-shift, self.stride).max(0);
        let end = ((self.input - 1 - shift).div_euclid(self.stride) + 1).min(self.output());
        (end > first).then(|| Span {
            output_start: first,
            len: end - first,
            input_start: first * self.stride + shift,
            stride: self.stride,
        })
    }
}

fn ceil_div(numerator: i64, denominator: i64) -> i64 {
    -(-numerator).div_euclid(denominator)
}

/// A run of output positions along one axis and the input positions they read.
#[derive(Clone, Copy)]
struct Span {
    output_start: i64,
    len: i64,
    input_start: i64,
    stride: i64,
}

/// Kernel position `(ky, kx)` and where it contributes.
struct Tap {
    ky: i64,
    kx: i64,
    row: Span,
    col: Span,
}

impl Tap {
    /// The tap's `[c_out, c_in]` matrix of a `[kh, kw, c_out, c_in]` tensor, a view.
    fn weight(&self, weight: &Tensor) -> Tensor {
        weight.get(self.ky).get(self.kx)
    }
}

/// Pixels that one matrix product covers: `rows` x `cols` from `output` (y, x) in the output
/// and from `input` in the input, contiguous in the `[h, w, n, c]` layout.
struct Block {
    output: [i64; 2],
    input: [i64; 2],
    rows: i64,
    cols: i64,
}

impl Block {
    /// The block's `[pixels * n, c]` matrix of an `[h, w, n, c]` output-side tensor, a view.
    fn output(&self, tensor: &Tensor) -> Tensor {
        self.matrix(tensor, self.output)
    }

    /// The block's `[pixels * n, c]` matrix of an `[h, w, n, c]` input-side tensor, a view.
    fn input(&self, tensor: &Tensor) -> Tensor {
        self.matrix(tensor, self.input)
    }

    fn matrix(&self, tensor: &Tensor, [y, x]: [i64; 2]) -> Tensor {
        let [_, _, n, c]: [i64; 4] = tensor.size().try_into().expect("an [h, w, n, c] tensor");
        // `view` (not `reshape`): products accumulate into the tensor itself.
        tensor.narrow(0, y, self.rows).narrow(1, x, self.cols).view([self.rows * self.cols * n, c])
    }
}

#[cfg(test)]
mod tests {
    //! Against LibTorch's own convolution and its backward, on shapes that exercise padding,
    //! strides, dilation and taps that land nowhere.
    use tch::{Device, Kind};

    use super::*;
    use crate::model::kernels;

    fn assert_close(ours: &Tensor, theirs: &Tensor, what: &str) {
        assert_eq!(ours.size(), theirs.size(), "{what}: shape");
        let difference = (ours - theirs).abs().max().double_value(&[]);
        let scale = theirs.abs().max().double_value(&[]).max(1.0);
        assert!(difference <= 1e-4 * scale, "{what}: differs by {difference} (scale {scale})");
    }

    #[test]
    fn matches_libtorch_forward_and_backward() {
        tch::manual_seed(7);
        let options = (Kind::Float, Device::Cpu);
        // (c_in, c_out, h, w, kernel, stride, padding, dilation)
        for (c_in, c_out, h, w, k, stride, padding, dilation) in [
            (5, 4, 2, 2, 3, 1, 1, 1),
            (3, 6, 4, 4, 3, 2, 1, 1),
            (4, 4, 4, 3, 1, 2, 0, 1),
            (2, 3, 5, 4, 3, 1, 2, 2),
            (3, 2, 1, 1, 3, 1, 1, 1),
            (2, 2, 3, 3, 7, 2, 3, 1),
        ] {
            let geometry =
                Conv2dGeometry { stride: [stride; 2], padding: [padding; 2], dilation: [dilation; 2], groups: 1 };
            let input = Tensor::randn([3, c_in, h, w], options);
            let weight = Tensor::randn([c_out, c_in, k, k], options);
            let expected =
                input.conv2d(&weight, None::<Tensor>, geometry.stride, geometry.padding, geometry.dilation, 1);
            let what = format!("{c_in}->{c_out} {h}x{w} k{k} s{stride} p{padding} d{dilation}");
            let (pixels, taps) = operands(&input, &weight);
            assert_close(&forward(&pixels, &taps, &geometry), &expected, &format!("{what}: output"));

            let grad_output = Tensor::randn(expected.size(), options);
            let [grad_input, grad_weight] = backward(&grad_output, &pixels, &taps, &geometry, [true, true]);
            let [expected_input, expected_weight] =
                kernels::conv2d_backward(&grad_output, &input, &weight, geometry, [true, true]);
            assert_close(&grad_input.unwrap(), &expected_input.unwrap(), &format!("{what}: input gradient"));
            assert_close(&grad_weight.unwrap(), &expected_weight.unwrap(), &format!("{what}: weight gradient"));
        }
    }

    #[test]
    fn computes_only_the_wanted_gradients() {
        let options = (Kind::Float, Device::Cpu);
        let geometry = Conv2dGeometry { stride: [1; 2], padding: [1; 2], dilation: [1; 2], groups: 1 };
        let (input, weight) = (Tensor::randn([2, 3, 2, 2], options), Tensor::randn([4, 3, 3, 3], options));
        let grad_output = Tensor::randn([2, 4, 2, 2], options);
        let (pixels, taps) = operands(&input, &weight);
        let [grad_input, grad_weight] = backward(&grad_output, &pixels, &taps, &geometry, [false, true]);
        assert!(grad_input.is_none());
        assert_eq!(grad_weight.unwrap().size(), [4, 3, 3, 3]);
    }

    #[test]
    fn f32_products_pay_where_mkl_has_the_widest_vectors() {
        let [amd_avx512, intel_avx512, avx2] =
            [(true, false), (true, true), (false, false)].map(|(avx512, intel)| Cpu { avx512, intel });
        assert!(!pays_on(amd_avx512, Kind::Float));
        assert!(pays_on(intel_avx512, Kind::Float) && pays_on(avx2, Kind::Float));
        for kind in [Kind::BFloat16, Kind::Half] {
            assert!(pays_on(amd_avx512, kind) && pays_on(intel_avx512, kind) && pays_on(avx2, kind));
        }
    }

    #[test]
    fn suits_only_the_smallest_feature_maps() {
        let unstrided = Conv2dGeometry { stride: [1; 2], padding: [1; 2], dilation: [1; 2], groups: 1 };
        let strided = Conv2dGeometry { stride: [2; 2], ..unstrided };
        assert!(suits(2, 2, &unstrided) && suits(4, 4, &unstrided));
        assert!(!suits(8, 8, &unstrided) && !suits(4, 8, &unstrided));
        assert!(suits(2, 2, &strided) && !suits(4, 4, &strided));
        assert!(!suits(2, 2, &Conv2dGeometry { groups: 2, ..unstrided }));
    }
}
