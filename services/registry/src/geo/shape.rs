//! Point-in-polygon for polygons with holes and multipolygons, made fast for repeated lookups: a bounding box
//! rejects most points, and the edges are bucketed into horizontal bands so a lookup tests only the few edges
//! whose latitude range spans the point instead of every edge of the boundary.

/// Longitude/latitude in degrees.
pub type Pt = [f64; 2];
/// A closed ring (last point = first).
pub type Ring = Vec<Pt>;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    pub min: Pt,
    pub max: Pt,
}

impl BBox {
    pub fn contains(&self, p: Pt) -> bool {
        p[0] >= self.min[0] && p[0] <= self.max[0] && p[1] >= self.min[1] && p[1] <= self.max[1]
    }

    pub fn covers(&self, other: &BBox) -> bool {
        self.contains(other.min) && self.contains(other.max)
    }

    pub fn of<'a>(points: impl IntoIterator<Item = &'a Pt>) -> BBox {
        let mut b = BBox { min: [f64::INFINITY; 2], max: [f64::NEG_INFINITY; 2] };
        for p in points {
            b.min = [b.min[0].min(p[0]), b.min[1].min(p[1])];
            b.max = [b.max[0].max(p[0]), b.max[1].max(p[1])];
        }
        b
    }
}

/// An edge stored lower end first, so the two regions sharing it compute bit-identical crossings and a point
/// on the shared line lands in exactly one of them.
#[derive(Debug, Clone, Copy)]
struct Edge {
    y0: f64,
    y1: f64,
    x0: f64,
    dxdy: f64,
}

/// One or more polygons, each an outer ring and its holes, tested with the even-odd rule over all rings:
/// a point in a hole is outside, and disjoint parts of a multipolygon are each inside.
#[derive(Debug, Clone)]
pub struct Shape {
    pub bbox: BBox,
    /// Outer rings minus holes, in square degrees (to prefer the smaller of two overlapping grids).
    pub area: f64,
    edges: Vec<Edge>,
    band_min: f64,
    band_scale: f64,
    /// Band b's edges are `band_edges[band_start[b]..band_start[b + 1]]`.
    band_start: Vec<u32>,
    band_edges: Vec<u32>,
}

impl Shape {
    /// `polygons[i][0]` is an outer ring, `polygons[i][1..]` its holes. Horizontal edges are dropped: with the
    /// half-open rule they never cross a ray.
    pub fn new(polygons: &[Vec<Ring>]) -> Shape {
        let rings = || polygons.iter().flatten();
        let bbox = BBox::of(rings().flatten());
        let area = polygons
            .iter()
            .map(|p| p.iter().enumerate().map(|(i, r)| if i == 0 { ring_area(r) } else { -ring_area(r) }).sum::<f64>())
            .sum();
        let mut edges = Vec::new();
        for ring in rings() {
            for w in ring.windows(2) {
                let (a, b) = if w[0][1] <= w[1][1] { (w[0], w[1]) } else { (w[1], w[0]) };
                if a[1] < b[1] {
                    edges.push(Edge { y0: a[1], y1: b[1], x0: a[0], dxdy: (b[0] - a[0]) / (b[1] - a[1]) });
                }
            }
        }
        // About four edges per band keeps each lookup to a handful of crossing tests.
        let bands = (edges.len() / 4).clamp(1, 1 << 16);
        let height = bbox.max[1] - bbox.min[1];
        let band_scale = if height > 0.0 { bands as f64 / height } else { 0.0 };
        let mut shape = Shape {
            bbox,
            area,
            edges,
            band_min: bbox.min[1],
            band_scale,
            band_start: vec![0; bands + 1],
            band_edges: vec![],
        };
        shape.fill_bands(bands);
        shape
    }

    fn band(&self, y: f64) -> usize {
        let last = self.band_start.len() - 2;
        let b = ((y - self.band_min) * self.band_scale).floor();
        if b <= 0.0 { 0 } else { (b as usize).min(last) }
    }

    /// Counting sort of edges into every band their latitude range touches.
    fn fill_bands(&mut self, bands: usize) {
        let spans: Vec<(usize, usize)> = self.edges.iter().map(|e| (self.band(e.y0), self.band(e.y1))).collect();
        let mut count = vec![0u32; bands + 1];
        for &(lo, hi) in &spans {
            for c in &mut count[lo + 1..=hi + 1] {
                *c += 1;
            }
        }
        for b in 0..bands {
            count[b + 1] += count[b];
        }
        let mut next = count.clone();
        self.band_edges = vec![0; count[bands] as usize];
        for (i, &(lo, hi)) in spans.iter().enumerate() {
            for slot in &mut next[lo..=hi] {
                self.band_edges[*slot as usize] = i as u32;
                *slot += 1;
            }
        }
        self.band_start = count;
    }

    /// Even-odd crossing test of a ray towards +longitude, half-open in latitude (y0 ≤ y < y1) and strict in
    /// longitude: a point exactly on an edge counts as lying just east of it (north of an east–west edge).
    pub fn contains(&self, p: Pt) -> bool {
        if !self.bbox.contains(p) {
            return false;
        }
        let [x, y] = p;
        let b = self.band(y);
        let mut inside = false;
        for &i in &self.band_edges[self.band_start[b] as usize..self.band_start[b + 1] as usize] {
            let e = &self.edges[i as usize];
            if e.y0 <= y && y < e.y1 && x < e.x0 + (y - e.y0) * e.dxdy {
                inside = !inside;
            }
        }
        inside
    }
}

/// Unsigned shoelace area in square degrees.
pub fn ring_area(ring: &[Pt]) -> f64 {
    (ring.windows(2).map(|w| w[0][0] * w[1][1] - w[1][0] * w[0][1]).sum::<f64>() / 2.0).abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x0: f64, y0: f64, x1: f64, y1: f64) -> Ring {
        vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    }

    #[test]
    fn inside_outside_and_the_bbox_corner() {
        // An L shape: its bbox corner (3, 3) is outside.
        let l = Shape::new(&[vec![vec![
            [0.0, 0.0],
            [4.0, 0.0],
            [4.0, 2.0],
            [2.0, 2.0],
            [2.0, 4.0],
            [0.0, 4.0],
            [0.0, 0.0],
        ]]]);
        assert!(l.contains([1.0, 1.0]));
        assert!(l.contains([1.0, 3.0]));
        assert!(!l.contains([3.0, 3.0]));
        assert!(!l.contains([5.0, 1.0]));
        assert!((l.area - 12.0).abs() < 1e-12);
    }

    #[test]
    fn a_hole_is_outside_and_a_multipolygon_has_every_part() {
        let s = Shape::new(&[
            vec![square(0.0, 0.0, 10.0, 10.0), square(4.0, 4.0, 6.0, 6.0)],
            vec![square(20.0, 0.0, 21.0, 1.0)],
        ]);
        assert!(s.contains([1.0, 1.0]));
        assert!(!s.contains([5.0, 5.0]), "in the hole");
        assert!(s.contains([20.5, 0.5]), "in the second part");
        assert!(!s.contains([15.0, 0.5]), "between the parts");
        assert!((s.area - (100.0 - 4.0 + 1.0)).abs() < 1e-12);
    }

    #[test]
    fn boundary_points_belong_to_the_region_east_or_north_of_them() {
        let west = Shape::new(&[vec![square(0.0, 0.0, 1.0, 1.0)]]);
        let east = Shape::new(&[vec![square(1.0, 0.0, 2.0, 1.0)]]);
        for p in [[1.0, 0.5], [1.0, 0.0], [1.0, 0.999]] {
            assert!(!west.contains(p) && east.contains(p), "shared edge point {p:?} goes east only");
        }
        assert!(west.contains([0.0, 0.5]), "own west edge is in");
        assert!(west.contains([0.5, 0.0]), "own south edge is in");
        assert!(!west.contains([0.5, 1.0]), "own north edge is out");
    }

    #[test]
    fn a_slanted_shared_edge_splits_points_exactly_once() {
        let left = Shape::new(&[vec![vec![[0.0, 0.0], [1.0, 0.0], [2.0, 3.0], [0.0, 3.0], [0.0, 0.0]]]]);
        let right = Shape::new(&[vec![vec![[1.0, 0.0], [3.0, 0.0], [3.0, 3.0], [2.0, 3.0], [1.0, 0.0]]]]);
        for i in 0..300 {
            let y = f64::from(i) * 0.01;
            let x = 1.0 + y / 3.0;
            for p in [[x, y], [x - 1e-12, y], [x + 1e-12, y]] {
                assert!(left.contains(p) != right.contains(p), "point {p:?} in exactly one");
            }
        }
    }

    #[test]
    fn many_bands_agree_with_a_brute_force_count() {
        // A 200-gon star: every band path is exercised.
        let ring: Ring = (0..=200)
            .map(|i| {
                let t = f64::from(i % 200) / 200.0 * std::f64::consts::TAU;
                let r = if i % 2 == 0 { 1.0 } else { 0.4 };
                [r * t.cos(), r * t.sin()]
            })
            .collect();
        let s = Shape::new(&[vec![ring.clone()]]);
        let brute = |p: Pt| {
            ring.windows(2)
                .filter(|w| {
                    (w[0][1] > p[1]) != (w[1][1] > p[1])
                        && p[0] < w[0][0] + (p[1] - w[0][1]) * (w[1][0] - w[0][0]) / (w[1][1] - w[0][1])
                })
                .count()
                % 2
                == 1
        };
        for i in 0..100 {
            for j in 0..100 {
                let p = [f64::from(i) * 0.0213 - 1.05, f64::from(j) * 0.0211 - 1.04];
                assert_eq!(s.contains(p), brute(p), "point {p:?}");
            }
        }
    }
}
