//! The augmentation written plainly, pixel by pixel in f64, as fastai's formulas read: the
//! oracle that the fast host sampler and the device path are tested against.

use super::{Draw, Mat3, affine_matrix, warp_homography};

/// Resamples `src` (`side`x`side`, row-major u8) under `draw` into `out` as values in [0, 1].
pub fn apply(draw: &Draw, src: &[u8], side: usize, out: &mut [f32]) {
    assert_eq!(src.len(), side * side);
    assert_eq!(out.len(), side * side);
    let affine = affine_matrix(draw);
    let warp = (draw.warp != (0.0, 0.0)).then(|| warp_homography(draw.warp));
    let lighting = (draw.brightness != 0.5 || draw.contrast != 1.0).then(|| (logit(draw.brightness), draw.contrast));
    let last = (side - 1) as f64;
    for row in 0..side {
        let y = if side > 1 { row as f64 / last * 2.0 - 1.0 } else { 0.0 };
        for col in 0..side {
            let x = if side > 1 { col as f64 / last * 2.0 - 1.0 } else { 0.0 };
            let mut p = mul(&affine, (x, y));
            if let Some(h) = &warp {
                p = mul(h, p);
            }
            let mut v = sample_bilinear_reflect(src, side, (p.0 + 1.0) / 2.0 * last, (p.1 + 1.0) / 2.0 * last) / 255.0;
            if let Some((brightness_logit, contrast)) = lighting {
                v = sigmoid((logit(v) + brightness_logit) * contrast);
            }
            out[row * side + col] = v as f32;
        }
    }
}

pub fn mul(m: &Mat3, (x, y): (f64, f64)) -> (f64, f64) {
    let w = m[2][0] * x + m[2][1] * y + m[2][2];
    let w = if w == 0.0 { 1.0 } else { w };
    ((m[0][0] * x + m[0][1] * y + m[0][2]) / w, (m[1][0] * x + m[1][1] * y + m[1][2]) / w)
}

/// Reflects a pixel coordinate into [0, last], as grid_sample's reflection padding.
pub fn reflect(mut v: f64, last: f64) -> f64 {
    if last <= 0.0 {
        return 0.0;
    }
    let period = 2.0 * last;
    v = v.abs() % period;
    if v > last { period - v } else { v }
}

fn sample_bilinear_reflect(src: &[u8], side: usize, x: f64, y: f64) -> f64 {
    let last = (side - 1) as f64;
    let (x, y) = (reflect(x, last), reflect(y, last));
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(side - 1), (y0 + 1).min(side - 1));
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let px = |r: usize, c: usize| src[r * side + c] as f64;
    let top = px(y0, x0) * (1.0 - fx) + px(y0, x1) * fx;
    let bottom = px(y1, x0) * (1.0 - fx) + px(y1, x1) * fx;
    top * (1.0 - fy) + bottom * fy
}

fn logit(v: f64) -> f64 {
    let v = v.clamp(1e-7, 1.0 - 1e-7);
    (v / (1.0 - v)).ln()
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}
