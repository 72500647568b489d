//! Minimal grayscale rasterisation into a square `side x side` u8 image (row-major).
//!
//! Coordinates are in pixels, continuous: pixel `(col, row)` covers `[col, col+1) x [row, row+1)`
//! and its centre is `(col + 0.5, row + 0.5)`. A shape covers a pixel when it contains the pixel's
//! centre (no anti-aliasing). Shapes partly or wholly outside the image are clipped.

/// Fills the disc of radius `r` (pixels) centred at `(cx, cy)` with `value`, one row span at a time.
pub(crate) fn fill_disc(img: &mut [u8], side: usize, cx: f64, cy: f64, r: f64, value: u8) {
    debug_assert_eq!(img.len(), side * side);
    let s = side as f64;
    if r <= 0.0 || cx + r < 0.0 || cy + r < 0.0 || cx - r > s || cy - r > s {
        return;
    }
    // Rows whose centre lies within [cy - r, cy + r].
    let row0 = (cy - r - 0.5).ceil().max(0.0) as usize;
    let row1 = (cy + r - 0.5).floor().min(s - 1.0);
    if row1 < 0.0 {
        return;
    }
    let r2 = r * r;
    for row in row0..=row1 as usize {
        let dy = row as f64 + 0.5 - cy;
        let half = (r2 - dy * dy).max(0.0).sqrt();
        fill_span(img, side, row, cx - half, cx + half, value);
    }
}

/// Fills the pixels of `row` whose centres lie in `[x0, x1]`.
fn fill_span(img: &mut [u8], side: usize, row: usize, x0: f64, x1: f64, value: u8) {
    let c0 = (x0 - 0.5).ceil().max(0.0);
    let c1 = (x1 - 0.5).floor().min(side as f64 - 1.0);
    if c1 < c0 {
        return;
    }
    let start = row * side;
    img[start + c0 as usize..=start + c1 as usize].fill(value);
}

/// Fills the axis-aligned rectangle of pixels whose centres lie in `[x0, x1] x [y0, y1]`.
pub(crate) fn fill_rect(img: &mut [u8], side: usize, x0: f64, y0: f64, x1: f64, y1: f64, v: u8) {
    let row0 = (y0 - 0.5).ceil().max(0.0);
    let row1 = (y1 - 0.5).floor().min(side as f64 - 1.0);
    if row1 < row0 {
        return;
    }
    for row in row0 as usize..=row1 as usize {
        fill_span(img, side, row, x0, x1, v);
    }
}

/// Fills the capsule (all points within `r` of the segment `(x0, y0)-(x1, y1)`): a thick line
/// with round ends. Tests only the pixels in the capsule's bounding box.
pub(crate) fn fill_capsule(
    img: &mut [u8],
    side: usize,
    (x0, y0): (f64, f64),
    (x1, y1): (f64, f64),
    r: f64,
    value: u8,
) {
    let s = side as f64;
    let col0 = (x0.min(x1) - r - 0.5).ceil().max(0.0);
    let col1 = (x0.max(x1) + r - 0.5).floor().min(s - 1.0);
    let row0 = (y0.min(y1) - r - 0.5).ceil().max(0.0);
    let row1 = (y0.max(y1) + r - 0.5).floor().min(s - 1.0);
    if col1 < col0 || row1 < row0 {
        return;
    }
    let (dx, dy) = (x1 - x0, y1 - y0);
    let len2 = dx * dx + dy * dy;
    let r2 = r * r;
    for row in row0 as usize..=row1 as usize {
        let py = row as f64 + 0.5;
        for col in col0 as usize..=col1 as usize {
            let px = col as f64 + 0.5;
            // Parameter of the closest point on the segment, clamped to its ends.
            let t = if len2 > 0.0 {
                (((px - x0) * dx + (py - y0) * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (ex, ey) = (px - (x0 + t * dx), py - (y0 + t * dy));
            if ex * ex + ey * ey <= r2 {
                img[row * side + col] = value;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(img: &[u8], v: u8) -> usize {
        img.iter().filter(|&&p| p == v).count()
    }

    #[test]
    fn disc_covers_pixel_centres_within_radius() {
        let side = 20;
        let mut img = vec![0u8; side * side];
        fill_disc(&mut img, side, 10.0, 10.0, 3.0, 9);
        for row in 0..side {
            for col in 0..side {
                let (dx, dy) = (col as f64 + 0.5 - 10.0, row as f64 + 0.5 - 10.0);
                let inside = dx * dx + dy * dy <= 9.0;
                assert_eq!(img[row * side + col] == 9, inside, "pixel ({col}, {row})");
            }
        }
        // 32 pixel centres (±0.5, ±1.5, ±2.5 offsets) lie within radius 3 of a pixel corner.
        assert_eq!(count(&img, 9), 32);
    }

    #[test]
    fn shapes_are_clipped_at_the_border() {
        let side = 8;
        let mut img = vec![0u8; side * side];
        fill_disc(&mut img, side, 0.0, 0.0, 2.0, 1);
        // Centres (0.5, 0.5), (1.5, 0.5), (0.5, 1.5) are within 2 of the corner; (1.5, 1.5) is
        // at sqrt(4.5) > 2.
        assert_eq!(count(&img, 1), 3);
        fill_disc(&mut img, side, -10.0, 50.0, 2.0, 2);
        assert_eq!(count(&img, 2), 0);
        fill_rect(&mut img, side, 6.0, 6.0, 100.0, 100.0, 3);
        assert_eq!(count(&img, 3), 4);
        fill_capsule(&mut img, side, (-5.0, 4.0), (20.0, 4.0), 0.6, 4);
        assert_eq!(count(&img, 4), 16); // rows 3 and 4 (centres 3.5 and 4.5), all 8 columns
    }

    #[test]
    fn capsule_is_a_thick_segment() {
        let side = 16;
        let mut img = vec![0u8; side * side];
        // Vertical segment x = 8 from y = 4 to y = 12, radius 1: columns 7 and 8 (centres 7.5 and
        // 8.5), rows whose centres are within the segment's y-range plus the round caps.
        fill_capsule(&mut img, side, (8.0, 4.0), (8.0, 12.0), 1.0, 5);
        for row in 4..12 {
            assert_eq!(img[row * side + 7], 5);
            assert_eq!(img[row * side + 8], 5);
            assert_eq!(img[row * side + 6], 0);
            assert_eq!(img[row * side + 9], 0);
        }
        // Caps: (7.5, 3.5) is at distance sqrt(0.5) < 1 from (8, 4); (7.5, 2.5) is not.
        assert_eq!(img[3 * side + 7], 5);
        assert_eq!(img[2 * side + 7], 0);
        assert_eq!(count(&img, 5), 2 * 8 + 2 * 2);
    }
}
