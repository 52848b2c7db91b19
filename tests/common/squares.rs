//! A made-up dataset for Grad-CAM: a bright 32x32 square in one corner of a 64x64 image of
//! noise, and a dimmer square of the same size in another corner chosen at random. The class
//! says whether the bright square is in a top or a bottom corner; nothing else tells the
//! classes apart. Left and right corners share a class because training flips images
//! horizontally, as fastai's `aug_transforms` do; the dim decoy keeps an empty or filled
//! corner from saying anything, so the model has to find the bright square.
// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use mednist::data::scan;
use mednist::data::settings::DatasetSettings;
use mednist::data::split::{self, SplitOptions};
use mednist::job::CancelToken;
use mednist::workspace::Workspace;

pub const SIDE: usize = 64;
pub const SQUARE: usize = 32;
pub const CLASSES: [&str; 2] = ["top", "bottom"];

/// Columns and rows `[x0, x1) x [y0, y1)` of corner `(column, row)`, each 0 or 1.
fn corner((column, row): (usize, usize)) -> ((usize, usize), (usize, usize)) {
    ((column * SQUARE, (column + 1) * SQUARE), (row * SQUARE, (row + 1) * SQUARE))
}

/// The bright square of image number `index` of class number `class`: even images have it on
/// the left, odd ones on the right.
pub fn square_of(class: usize, index: usize) -> ((usize, usize), (usize, usize)) {
    corner((index % 2, class))
}

/// The decoy: half the time the other corner of the square's row, else one of the other row's,
/// so that where the decoy lies says nothing of the class (the row of a decoy chosen among
/// all three other corners would: two of the three are in the other row).
fn decoy_of(class: usize, index: usize) -> ((usize, usize), (usize, usize)) {
    let column = index % 2;
    let (other_column, other_row) = (1 - column, 1 - class);
    corner(match index / 2 % 4 {
        0 | 1 => (other_column, class),
        2 => (column, other_row),
        _ => (other_column, other_row),
    })
}

/// The square of a file this module wrote, from its path (`bottom/007.png`).
pub fn square_of_file(path: &std::path::Path) -> ((usize, usize), (usize, usize)) {
    let class = path.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap();
    let index = path.file_stem().and_then(|s| s.to_str()).unwrap().parse().unwrap();
    square_of(CLASSES.iter().position(|c| *c == class).unwrap(), index)
}

/// The decoy of a file this module wrote, from its path.
pub fn decoy_of_file(path: &std::path::Path) -> ((usize, usize), (usize, usize)) {
    let class = path.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap();
    let index = path.file_stem().and_then(|s| s.to_str()).unwrap().parse().unwrap();
    decoy_of(CLASSES.iter().position(|c| *c == class).unwrap(), index)
}

/// Writes `per_class` images of each class and records a stratified split (25% valid).
pub fn make_workspace(per_class: usize) -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let workspace = Workspace::at(dir.path());
    for (class, name) in CLASSES.iter().enumerate() {
        let folder = workspace.dataset_dir().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..per_class {
            let inside = |((x0, x1), (y0, y1)): ((usize, usize), (usize, usize)), x, y| {
                (x0..x1).contains(&x) && (y0..y1).contains(&y)
            };
            let (square, decoy) = (square_of(class, i), decoy_of(class, i));
            let image = image::GrayImage::from_fn(SIDE as u32, SIDE as u32, |x, y| {
                let (x, y) = (x as usize, y as usize);
                let noise = ((x * 37 + y * 91 + i * 53 + (x * y) % 7 * 29) % 90) as u8;
                let level = if inside(square, x, y) {
                    165 + noise
                } else if inside(decoy, x, y) {
                    70 + noise / 2
                } else {
                    noise / 2
                };
                image::Luma([level])
            });
            image.save(folder.join(format!("{i:03}.png"))).unwrap();
        }
    }
    let scanned =
        scan::scan(&workspace.dataset_dir(), &DatasetSettings::default(), &|_| {}, &CancelToken::new()).unwrap();
    split::split(&scanned, &SplitOptions { valid_pct: 0.25, seed: 1, stratify: true, group: None })
        .unwrap()
        .save(&workspace)
        .unwrap();
    (dir, workspace)
}
