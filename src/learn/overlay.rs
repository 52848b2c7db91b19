//! A Grad-CAM heatmap drawn over its gray image in Google's Turbo colour map: what the
//! headless commands write as PNGs and the app shows as tiles.

use image::{RgbImage, imageops};

use super::cam::Heatmap;

/// How much of the colour map covers the image.
const OPACITY: f32 = 0.5;

/// The gray image (`side` x `side`, the heatmap's side) with `heatmap` over it, `scale` times
/// larger.
pub fn overlay(gray: &[u8], heatmap: &Heatmap, scale: u32) -> RgbImage {
    let side = heatmap.side as u32;
    let image = RgbImage::from_fn(side, side, |x, y| {
        let at = (y * side + x) as usize;
        let g = f32::from(gray[at]);
        let colour = turbo(heatmap.values[at]);
        image::Rgb(colour.map(|c| ((1.0 - OPACITY) * g + OPACITY * c * 255.0).round() as u8))
    });
    if scale == 1 {
        return image;
    }
    imageops::resize(&image, side * scale, side * scale, imageops::FilterType::Triangle)
}

/// Google's Turbo colour map (Mikhailov's polynomial fit): dark blue at 0 through green and
/// yellow to dark red at 1, as RGB in [0, 1].
fn turbo(value: f32) -> [f32; 3] {
    let x = value.clamp(0.0, 1.0);
    let poly = |c: [f32; 6]| (c[0] + x * (c[1] + x * (c[2] + x * (c[3] + x * (c[4] + x * c[5]))))).clamp(0.0, 1.0);
    [
        poly([0.135_721_38, 4.615_392_6, -42.660_324, 132.131_08, -152.942_4, 59.286_38]),
        poly([0.091_402_61, 2.194_188_4, 4.842_966_6, -14.185_033, 4.277_298_6, 2.829_566]),
        poly([0.106_673_3, 12.641_946, -60.582_05, 110.362_77, -89.903_11, 27.348_25]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_colour_map_runs_from_blue_to_red() {
        let [r0, _, b0] = turbo(0.1);
        assert!(b0 > r0, "cold end is blue");
        let [r1, _, b1] = turbo(0.95);
        assert!(r1 > b1, "hot end is red");
        let [_, g, _] = turbo(0.5);
        assert!(g > 0.8, "the middle is green-yellow");
    }

    #[test]
    fn the_overlay_tints_hot_pixels_red_and_cold_ones_blue() {
        let heatmap = Heatmap { grid: 2, side: 2, values: vec![1.0, 0.1, 0.1, 0.1] };
        let image = overlay(&[128u8; 4], &heatmap, 1);
        let (hot, cold) = (image.get_pixel(0, 0), image.get_pixel(1, 1));
        assert!(hot[0] > hot[2] && cold[2] > cold[0], "{hot:?} {cold:?}");
        assert_eq!(overlay(&[128u8; 4], &heatmap, 3).dimensions(), (6, 6));
    }
}
