//! A coarse cell index over many shapes: each shape is listed under every cell its bounding box touches, so a
//! lookup tests only the shapes near the point, whether there are twelve counties or a country's grids.

use std::collections::HashMap;

use super::shape::{Pt, Shape};

/// A shape whose bounding box would span more cells than this is kept in a short list tested every time,
/// so one huge polygon cannot blow up the index.
const MAX_CELLS_PER_SHAPE: i64 = 4096;

#[derive(Debug)]
pub struct Layer<T> {
    items: Vec<(Shape, T)>,
    cell: f64,
    cells: HashMap<(i32, i32), Vec<u32>>,
    wide: Vec<u32>,
}

impl<T> Layer<T> {
    /// `cell` is the cell size in degrees: about the size of a typical shape.
    pub fn new(items: Vec<(Shape, T)>, cell: f64) -> Self {
        let mut layer = Layer { items, cell, cells: HashMap::new(), wide: Vec::new() };
        for (i, (shape, _)) in layer.items.iter().enumerate() {
            let (lo, hi) = (layer.key(shape.bbox.min), layer.key(shape.bbox.max));
            let n = (i64::from(hi.0) - i64::from(lo.0) + 1) * (i64::from(hi.1) - i64::from(lo.1) + 1);
            if n > MAX_CELLS_PER_SHAPE {
                layer.wide.push(i as u32);
                continue;
            }
            for cx in lo.0..=hi.0 {
                for cy in lo.1..=hi.1 {
                    layer.cells.entry((cx, cy)).or_default().push(i as u32);
                }
            }
        }
        layer
    }

    pub fn empty() -> Self {
        Self::new(Vec::new(), 1.0)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn key(&self, p: Pt) -> (i32, i32) {
        // `as` saturates, so a point far outside any sane range still maps to some (empty) cell.
        ((p[0] / self.cell).floor() as i32, (p[1] / self.cell).floor() as i32)
    }

    /// Every shape containing the point, with its value.
    pub fn containing(&self, p: Pt) -> impl Iterator<Item = (&Shape, &T)> {
        let near = self.cells.get(&self.key(p)).map(Vec::as_slice).unwrap_or_default();
        near.iter()
            .chain(&self.wide)
            .map(|&i| &self.items[i as usize])
            .filter(move |(shape, _)| shape.contains(p))
            .map(|(s, v)| (s, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x0: f64, y0: f64, side: f64) -> Shape {
        let (x1, y1) = (x0 + side, y0 + side);
        Shape::new(&[vec![vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]])
    }

    #[test]
    fn finds_every_containing_shape_and_only_those() {
        let layer = Layer::new(
            vec![(square(0.0, 0.0, 1.0), "a"), (square(0.5, 0.5, 1.0), "b"), (square(-90.0, -45.0, 180.0), "huge")],
            0.1,
        );
        let found = |p: Pt| {
            let mut v: Vec<&str> = layer.containing(p).map(|(_, v)| *v).collect();
            v.sort_unstable();
            v
        };
        assert_eq!(found([0.75, 0.75]), vec!["a", "b", "huge"]);
        assert_eq!(found([0.25, 0.25]), vec!["a", "huge"]);
        assert_eq!(found([1.25, 1.25]), vec!["b", "huge"]);
        assert_eq!(found([100.0, 0.0]), Vec::<&str>::new());
        assert_eq!(layer.wide.len(), 1, "the huge square is kept out of the cells");
    }
}
