//! fastai's `aug_transforms` defaults on one grayscale image: flip, rotate, zoom and warp as
//! one resample (bilinear, reflection padding), then lighting in logit space.
//!
//! Output coordinates in [-1, 1] are mapped to input coordinates by the affine matrix
//! (flip · rotate · zoom) and then the perspective warp, as fastai applies its coordinate
//! transforms to an `affine_grid`; sampling follows `grid_sample(align_corners=True)`.

use rand::Rng;

/// The knobs of fastai's `aug_transforms()`, with its defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augment {
    pub p_flip: f64,
    pub max_rotate_deg: f64,
    pub max_zoom: f64,
    pub max_warp: f64,
    /// Probability of each of rotate, zoom and warp.
    pub p_affine: f64,
    pub max_lighting: f64,
    pub p_lighting: f64,
}

impl Default for Augment {
    fn default() -> Self {
        Self {
            p_flip: 0.5,
            max_rotate_deg: 10.0,
            max_zoom: 1.1,
            max_warp: 0.2,
            p_affine: 0.75,
            max_lighting: 0.2,
            p_lighting: 0.75,
        }
    }
}

/// One image's random draw, kept apart from the resampling so tests can pin it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    pub flip: bool,
    pub rotate_rad: f64,
    pub zoom: f64,
    /// Zoom centre, each in [0, 1].
    pub zoom_centre: (f64, f64),
    pub warp: (f64, f64),
    /// Brightness in (0, 1) (0.5 is neutral) and contrast factor (1 is neutral).
    pub brightness: f64,
    pub contrast: f64,
}

impl Draw {
    pub const IDENTITY: Draw = Draw {
        flip: false,
        rotate_rad: 0.0,
        zoom: 1.0,
        zoom_centre: (0.5, 0.5),
        warp: (0.0, 0.0),
        brightness: 0.5,
        contrast: 1.0,
    };
}

impl Augment {
    pub fn draw(&self, rng: &mut impl Rng) -> Draw {
        let mut on = |p: f64| rng.random_bool(p.clamp(0.0, 1.0));
        let (flip, rotate_on, zoom_on, warp_x_on, warp_y_on, brightness_on, contrast_on) = (
            on(self.p_flip),
            on(self.p_affine),
            on(self.p_affine),
            on(self.p_affine),
            on(self.p_affine),
            on(self.p_lighting),
            on(self.p_lighting),
        );
        let mut uniform = |lo: f64, hi: f64| if hi > lo { rng.random_range(lo..hi) } else { lo };
        let rotate_rad = uniform(-self.max_rotate_deg, self.max_rotate_deg).to_radians();
        let zoom = uniform(1.0, self.max_zoom);
        let zoom_centre = (uniform(0.0, 1.0), uniform(0.0, 1.0));
        let warp = (uniform(-self.max_warp, self.max_warp), uniform(-self.max_warp, self.max_warp));
        let brightness = uniform(0.5 * (1.0 - self.max_lighting), 0.5 * (1.0 + self.max_lighting));
        let log_contrast = (1.0 - self.max_lighting).ln();
        let contrast = uniform(log_contrast, -log_contrast).exp();
        Draw {
            flip,
            rotate_rad: if rotate_on { rotate_rad } else { 0.0 },
            zoom: if zoom_on { zoom } else { 1.0 },
            zoom_centre,
            warp: (if warp_x_on { warp.0 } else { 0.0 }, if warp_y_on { warp.1 } else { 0.0 }),
            brightness: if brightness_on { brightness } else { 0.5 },
            contrast: if contrast_on { contrast } else { 1.0 },
        }
    }
}

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

type Mat3 = [[f64; 3]; 3];

fn affine_matrix(d: &Draw) -> Mat3 {
    let flip = [[if d.flip { -1.0 } else { 1.0 }, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let (sin, cos) = d.rotate_rad.sin_cos();
    let rotate = [[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]];
    let s = 1.0 / d.zoom;
    let zoom = [
        [s, 0.0, (1.0 - s) * (2.0 * d.zoom_centre.0 - 1.0)],
        [0.0, s, (1.0 - s) * (2.0 * d.zoom_centre.1 - 1.0)],
        [0.0, 0.0, 1.0],
    ];
    matmul(&matmul(&flip, &rotate), &zoom)
}

/// fastai's `Warp`: the perspective transform taking its moved corners back to the square's.
fn warp_homography((xt, yt): (f64, f64)) -> Mat3 {
    let orig = [(-1.0, -1.0), (-1.0, 1.0), (1.0, -1.0), (1.0, 1.0)];
    let targ = [(-1.0 - yt, -1.0 - xt), (-1.0 + yt, 1.0 + xt), (1.0 + yt, -1.0 + xt), (1.0 - yt, 1.0 - xt)];
    // Solve for h (8 unknowns) with orig = H(targ), as fastai's find_coeffs(orig, targ).
    let mut a = [[0.0f64; 9]; 8];
    for (i, (&(ox, oy), &(tx, ty))) in orig.iter().zip(&targ).enumerate() {
        a[2 * i] = [tx, ty, 1.0, 0.0, 0.0, 0.0, -ox * tx, -ox * ty, ox];
        a[2 * i + 1] = [0.0, 0.0, 0.0, tx, ty, 1.0, -oy * tx, -oy * ty, oy];
    }
    let h = solve8(a);
    [[h[0], h[1], h[2]], [h[3], h[4], h[5]], [h[6], h[7], 1.0]]
}

/// Gaussian elimination with partial pivoting on an 8x8 system given as augmented rows.
fn solve8(mut a: [[f64; 9]; 8]) -> [f64; 8] {
    for col in 0..8 {
        let pivot = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs())).expect("rows");
        a.swap(col, pivot);
        let pivot_row = a[col];
        for row in a.iter_mut().skip(col + 1) {
            let factor = row[col] / pivot_row[col];
            for (value, pivot) in row.iter_mut().zip(pivot_row).skip(col) {
                *value -= factor * pivot;
            }
        }
    }
    let mut x = [0.0; 8];
    for row in (0..8).rev() {
        let tail: f64 = (row + 1..8).map(|k| a[row][k] * x[k]).sum();
        x[row] = (a[row][8] - tail) / a[row][row];
    }
    x
}

fn matmul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut c = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

fn mul(m: &Mat3, (x, y): (f64, f64)) -> (f64, f64) {
    let w = m[2][0] * x + m[2][1] * y + m[2][2];
    let w = if w == 0.0 { 1.0 } else { w };
    ((m[0][0] * x + m[0][1] * y + m[0][2]) / w, (m[1][0] * x + m[1][1] * y + m[1][2]) / w)
}

/// Reflects a pixel coordinate into [0, last], as grid_sample's reflection padding.
fn reflect(mut v: f64, last: f64) -> f64 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn gradient(side: usize) -> Vec<u8> {
        (0..side * side).map(|i| ((i % side) * 255 / (side - 1)) as u8).collect()
    }

    #[test]
    fn identity_draw_reproduces_the_image() {
        let src = gradient(16);
        let mut out = vec![0.0; 256];
        apply(&Draw::IDENTITY, &src, 16, &mut out);
        for (o, s) in out.iter().zip(&src) {
            assert!((o * 255.0 - *s as f32).abs() < 1e-3);
        }
    }

    #[test]
    fn flip_mirrors_columns() {
        let src = gradient(8);
        let mut out = vec![0.0; 64];
        apply(&Draw { flip: true, ..Draw::IDENTITY }, &src, 8, &mut out);
        for row in 0..8 {
            for col in 0..8 {
                assert!((out[row * 8 + col] * 255.0 - src[row * 8 + 7 - col] as f32).abs() < 1e-3);
            }
        }
    }

    #[test]
    fn quarter_turn_maps_rows_to_columns() {
        let src = gradient(9);
        let mut out = vec![0.0; 81];
        apply(&Draw { rotate_rad: std::f64::consts::FRAC_PI_2, ..Draw::IDENTITY }, &src, 9, &mut out);
        // Output (x, y) samples input (-y, x): every output row is then constant.
        for row in 0..9 {
            let first = out[row * 9];
            assert!(out[row * 9..row * 9 + 9].iter().all(|v| (v - first).abs() < 1e-4), "row {row}");
        }
    }

    #[test]
    fn warp_homography_moves_corners_as_fastai() {
        let h = warp_homography((0.1, -0.05));
        let (x, y) = mul(&h, (-1.0 - -0.05, -1.0 - 0.1));
        assert!((x + 1.0).abs() < 1e-9 && (y + 1.0).abs() < 1e-9);
        let identity = warp_homography((0.0, 0.0));
        assert!((mul(&identity, (0.3, -0.7)).0 - 0.3).abs() < 1e-12);
    }

    #[test]
    fn reflection_stays_inside() {
        assert_eq!(reflect(-2.0, 10.0), 2.0);
        assert_eq!(reflect(12.0, 10.0), 8.0);
        assert_eq!(reflect(25.0, 10.0), 5.0);
    }

    #[test]
    fn draws_respect_ranges_and_probabilities() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let aug = Augment::default();
        let draws: Vec<Draw> = (0..4000).map(|_| aug.draw(&mut rng)).collect();
        let share = |f: &dyn Fn(&Draw) -> bool| draws.iter().filter(|d| f(d)).count() as f64 / draws.len() as f64;
        assert!((share(&|d| d.flip) - 0.5).abs() < 0.04);
        assert!((share(&|d| d.rotate_rad != 0.0) - 0.75).abs() < 0.04);
        assert!((share(&|d| d.brightness != 0.5) - 0.75).abs() < 0.04);
        assert!(draws.iter().all(|d| d.rotate_rad.abs() <= 10f64.to_radians()));
        assert!(draws.iter().all(|d| (1.0..=1.1).contains(&d.zoom)));
        assert!(draws.iter().all(|d| d.warp.0.abs() <= 0.2 && d.warp.1.abs() <= 0.2));
        assert!(draws.iter().all(|d| (0.4..=0.6).contains(&d.brightness) && (0.8..=1.25).contains(&d.contrast)));
    }

    #[test]
    fn lighting_keeps_values_in_range_and_changes_them() {
        let src = gradient(8);
        let mut out = vec![0.0; 64];
        apply(&Draw { brightness: 0.6, contrast: 1.2, ..Draw::IDENTITY }, &src, 8, &mut out);
        assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(out[4] * 255.0 > src[4] as f32, "brighter");
    }
}
