//! fastai's `aug_transforms` defaults on one grayscale image: flip, rotate, zoom and warp as
//! one resample (bilinear, reflection padding), then lighting in logit space.
//!
//! Output coordinates in [-1, 1] are mapped to input coordinates by the affine matrix
//! (flip · rotate · zoom) and then the perspective warp, as fastai applies its coordinate
//! transforms to an `affine_grid`; sampling follows `grid_sample(align_corners=True)`.

use rand::Rng;

#[cfg(test)]
pub(crate) mod reference;

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
    let sampler = Sampler::new(draw, side);
    for (row, out) in out.chunks_exact_mut(side.max(1)).enumerate() {
        sampler.row(src, row, out);
    }
}

impl Draw {
    /// The map from output to input coordinates in grid_sample's [-1, 1] convention: the affine
    /// part (flip · rotate · zoom), then the perspective warp. Homogeneous: divide by the third
    /// coordinate.
    pub fn sampling_matrix(&self) -> Mat3 {
        let affine = affine_matrix(self);
        if self.warp == (0.0, 0.0) { affine } else { matmul(&warp_homography(self.warp), &affine) }
    }

    /// The brightness as a logit and the contrast factor, when the draw changes the lighting.
    pub fn lighting(&self) -> Option<(f64, f64)> {
        let brightness = self.brightness.clamp(1e-7, 1.0 - 1e-7);
        (self.brightness != 0.5 || self.contrast != 1.0)
            .then(|| ((brightness / (1.0 - brightness)).ln(), self.contrast))
    }
}

/// One image's resampling and lighting, precomputed from its draw, in f32: what a batch worker
/// runs per pixel. The map works in pixel coordinates, so a pixel costs two multiply-adds per
/// coordinate, and a division only under a perspective warp.
#[derive(Debug, Clone)]
pub struct Sampler {
    side: usize,
    /// Output pixel `(col, row, 1)` to input pixel coordinates, homogeneous.
    map: [[f32; 3]; 3],
    /// The third coordinate varies (a warp): divide by it.
    perspective: bool,
    /// The map is the identity: copy the pixels.
    identity: bool,
    lighting: Option<Lighting>,
}

/// `sigmoid((logit(v) + logit(brightness)) * contrast)`, rewritten as
/// `1 / (1 + scale * ((1 - v) / v)^contrast)` with `scale = exp(-contrast * logit(brightness))`.
#[derive(Debug, Clone, Copy)]
struct Lighting {
    contrast: f32,
    scale: f32,
}

impl Lighting {
    fn apply(self, v: f32) -> f32 {
        let v = v.clamp(1e-7, 1.0 - 1e-7);
        1.0 / (1.0 + self.scale * ((1.0 - v) / v).powf(self.contrast))
    }
}

impl Sampler {
    pub fn new(draw: &Draw, side: usize) -> Self {
        let sampling = draw.sampling_matrix();
        let identity = sampling == IDENTITY;
        // Pixel coordinates from grid coordinates: p = (g + 1) / 2 * last.
        let half = side.saturating_sub(1) as f64 / 2.0;
        let to_pixels = [[half, 0.0, half], [0.0, half, half], [0.0, 0.0, 1.0]];
        let map = if side > 1 {
            let to_grid = [[1.0 / half, 0.0, -1.0], [0.0, 1.0 / half, -1.0], [0.0, 0.0, 1.0]];
            matmul(&matmul(&to_pixels, &sampling), &to_grid)
        } else {
            // One pixel: every coordinate reads it.
            [[0.0; 3], [0.0; 3], [0.0, 0.0, 1.0]]
        };
        let lighting = draw.lighting().map(|(brightness_logit, contrast)| Lighting {
            contrast: contrast as f32,
            scale: (-contrast * brightness_logit).exp() as f32,
        });
        Self {
            side,
            map: map.map(|row| row.map(|v| v as f32)),
            perspective: map[2][0] != 0.0 || map[2][1] != 0.0,
            identity,
            lighting,
        }
    }

    /// Output row `row` of `src` into `out` (`side` values in [0, 1]).
    pub fn row(&self, src: &[u8], row: usize, out: &mut [f32]) {
        let side = self.side;
        if self.identity {
            for (o, &p) in out.iter_mut().zip(&src[row * side..(row + 1) * side]) {
                *o = p as f32 / 255.0;
            }
        } else if self.perspective {
            self.resample::<true>(src, row, out);
        } else {
            self.resample::<false>(src, row, out);
        }
        if let Some(lighting) = self.lighting {
            for o in out.iter_mut() {
                *o = lighting.apply(*o);
            }
        }
    }

    /// [`Sampler::row`]'s geometry, one loop for each kind of map so neither tests per pixel.
    fn resample<const PERSPECTIVE: bool>(&self, src: &[u8], row: usize, out: &mut [f32]) {
        const SCALE: f32 = 1.0 / 255.0;
        let side = self.side;
        let last = side.saturating_sub(1) as f32;
        let [mx, my, mw] = self.map;
        let y = row as f32;
        let (x0, y0, w0) = (mx[1] * y + mx[2], my[1] * y + my[2], mw[1] * y + mw[2]);
        for (col, o) in out.iter_mut().enumerate() {
            let x = col as f32;
            let (mut u, mut v) = (x0 + mx[0] * x, y0 + my[0] * x);
            if PERSPECTIVE {
                let w = w0 + mw[0] * x;
                let inverse = if w == 0.0 { 1.0 } else { 1.0 / w };
                (u, v) = (u * inverse, v * inverse);
            }
            *o = bilinear(src, side, reflect(u, last), reflect(v, last)) * SCALE;
        }
    }
}

/// Reflects a pixel coordinate into [0, last], as grid_sample's reflection padding.
#[inline]
fn reflect(v: f32, last: f32) -> f32 {
    if (0.0..=last).contains(&v) {
        return v;
    }
    if last <= 0.0 {
        return 0.0;
    }
    let period = 2.0 * last;
    let v = v.abs() % period;
    if v > last { period - v } else { v }
}

/// The bilinear interpolation of `src` at `(x, y)`, both in [0, side - 1].
#[inline]
fn bilinear(src: &[u8], side: usize, x: f32, y: f32) -> f32 {
    let (x0, y0) = (x as usize, y as usize);
    let (x1, y1) = ((x0 + 1).min(side - 1), (y0 + 1).min(side - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let (top, bottom) = (&src[y0 * side..], &src[y1 * side..]);
    let top = top[x0] as f32 + (top[x1] as f32 - top[x0] as f32) * fx;
    let bottom = bottom[x0] as f32 + (bottom[x1] as f32 - bottom[x0] as f32) * fx;
    top + (bottom - top) * fy
}

pub type Mat3 = [[f64; 3]; 3];

const IDENTITY: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

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
        let (x, y) = reference::mul(&h, (-1.0 - -0.05, -1.0 - 0.1));
        assert!((x + 1.0).abs() < 1e-9 && (y + 1.0).abs() < 1e-9);
        let identity = warp_homography((0.0, 0.0));
        assert!((reference::mul(&identity, (0.3, -0.7)).0 - 0.3).abs() < 1e-12);
    }

    #[test]
    fn reflection_stays_inside() {
        for (v, reflected) in [(-2.0, 2.0), (12.0, 8.0), (25.0, 5.0), (-23.0, 3.0), (4.5, 4.5)] {
            assert_eq!(reflect(v, 10.0), reflected);
            assert_eq!(reference::reflect(v as f64, 10.0), reflected as f64);
        }
    }

    /// Random pixels: the steepest image there is, so coordinate errors show.
    fn noise(side: usize, seed: u64) -> Vec<u8> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..side * side).map(|_| rng.random::<u8>()).collect()
    }

    #[test]
    fn the_fast_sampler_matches_the_plain_formulas() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // Stronger than the defaults, so reflection and steep lighting are exercised too. Not the
        // warp: past about 0.35 the perspective divides by near zero at a corner, where f32 and
        // f64 part ways (as PyTorch's f32 grid would).
        let strong = Augment { max_rotate_deg: 45.0, max_zoom: 2.0, max_lighting: 0.6, ..Augment::default() };
        for side in [1, 2, 7, 64] {
            for (index, augment) in [Augment::default(), strong].iter().cycle().take(40).enumerate() {
                let (src, draw) = (noise(side, index as u64), augment.draw(&mut rng));
                let (mut fast, mut plain) = (vec![0.0; side * side], vec![0.0; side * side]);
                apply(&draw, &src, side, &mut fast);
                reference::apply(&draw, &src, side, &mut plain);
                let difference = fast.iter().zip(&plain).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(difference < 1e-4, "side {side}, {draw:?}: differs by {difference}");
            }
        }
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
