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
        // About four edges per band keeps each lookup to a handful of crossing tests. An edge is listed in every
        // band it spans, so edges that each span most of the height (a zig-zag across the box) would make the
        // index edges × bands; fewer bands are taken until it holds at most MAX_ENTRIES_PER_EDGE per edge.
        let height = bbox.max[1] - bbox.min[1];
        let cap = edges.len() * MAX_ENTRIES_PER_EDGE + 64;
        let mut bands = (edges.len() / 4).clamp(1, 1 << 16);
        let band_scale = loop {
            let scale = if height > 0.0 { bands as f64 / height } else { 0.0 };
            let entries: usize = edges
                .iter()
                .map(|e| band_of(e.y1, bbox.min[1], scale, bands) - band_of(e.y0, bbox.min[1], scale, bands) + 1)
                .sum();
            if entries <= cap || bands == 1 {
                break scale;
            }
            bands /= 2;
        };
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

    /// Entries in the band index, for bounding and testing its size.
    pub fn index_entries(&self) -> usize {
        self.band_edges.len()
    }

    fn band(&self, y: f64) -> usize {
        band_of(y, self.band_min, self.band_scale, self.band_start.len() - 1)
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

/// The band index holds at most this many entries per edge (plus a little), whatever the shape.
const MAX_ENTRIES_PER_EDGE: usize = 8;

fn band_of(y: f64, min: f64, scale: f64, bands: usize) -> usize {
    let b = ((y - min) * scale).floor();
    if b <= 0.0 { 0 } else { (b as usize).min(bands - 1) }
}

/// Whether a closed ring crosses or touches itself anywhere but at the shared vertex of consecutive edges
/// (an edge that doubles back along the previous one counts as touching). Consecutive repeated points are
/// ignored. A sweep along the ring's longer side tests only edges whose extents overlap on both axes: linear
/// for real boundaries, whose edges are short; quadratic at worst, which the caller's vertex limit bounds.
pub fn self_intersects(ring: &[Pt]) -> bool {
    let mut pts: Vec<Pt> = Vec::with_capacity(ring.len());
    for &p in ring {
        if pts.last() != Some(&p) {
            pts.push(p);
        }
    }
    let b = BBox::of(&pts);
    if b.max[1] - b.min[1] > b.max[0] - b.min[0] {
        for p in &mut pts {
            p.swap(0, 1);
        }
    }
    let m = pts.len().saturating_sub(1);
    if m < 3 {
        return false;
    }
    let seg = |i: usize| (pts[i], pts[i + 1]);
    let lo_x = |i: usize| pts[i][0].min(pts[i + 1][0]);
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| lo_x(a).total_cmp(&lo_x(b)));
    let mut active: Vec<usize> = Vec::new();
    for &i in &order {
        let (a0, a1) = seg(i);
        let x = lo_x(i);
        active.retain(|&j| pts[j][0].max(pts[j + 1][0]) >= x);
        let (ylo, yhi) = (a0[1].min(a1[1]), a0[1].max(a1[1]));
        for &j in &active {
            let (b0, b1) = seg(j);
            if b0[1].max(b1[1]) < ylo || b0[1].min(b1[1]) > yhi {
                continue;
            }
            let adjacent = j + 1 == i || i + 1 == j || (i == 0 && j == m - 1) || (j == 0 && i == m - 1);
            if if adjacent { doubles_back(i, j, &pts, m) } else { segments_meet(a0, a1, b0, b1) } {
                return true;
            }
        }
        active.push(i);
    }
    false
}

/// Consecutive edges i and j meet at their shared vertex; they overlap beyond it only when collinear and
/// pointing back along each other.
fn doubles_back(i: usize, j: usize, pts: &[Pt], m: usize) -> bool {
    let (first, second) = if (i + 1) % m == j { (i, j) } else { (j, i) };
    let d1 = [pts[first + 1][0] - pts[first][0], pts[first + 1][1] - pts[first][1]];
    let d2 = [pts[second + 1][0] - pts[second][0], pts[second + 1][1] - pts[second][1]];
    d1[0] * d2[1] - d1[1] * d2[0] == 0.0 && d1[0] * d2[0] + d1[1] * d2[1] < 0.0
}

fn orient(a: Pt, b: Pt, c: Pt) -> f64 {
    (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
}

fn on_segment(a: Pt, b: Pt, p: Pt) -> bool {
    p[0] >= a[0].min(b[0]) && p[0] <= a[0].max(b[0]) && p[1] >= a[1].min(b[1]) && p[1] <= a[1].max(b[1])
}

/// Whether two segments share any point (crossing, touching or overlapping).
fn segments_meet(a0: Pt, a1: Pt, b0: Pt, b1: Pt) -> bool {
    let (d1, d2) = (orient(b0, b1, a0), orient(b0, b1, a1));
    let (d3, d4) = (orient(a0, a1, b0), orient(a0, a1, b1));
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0)) && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0)) {
        return true;
    }
    (d1 == 0.0 && on_segment(b0, b1, a0))
        || (d2 == 0.0 && on_segment(b0, b1, a1))
        || (d3 == 0.0 && on_segment(a0, a1, b0))
        || (d4 == 0.0 && on_segment(a0, a1, b1))
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

    /// A comb of `teeth` spikes spanning the whole height: every edge spans every band.
    fn sawtooth(points: usize) -> Ring {
        let mut ring: Ring = (0..points).map(|i| [i as f64 * 0.001, if i % 2 == 0 { 0.0 } else { 1.0 }]).collect();
        let end = ring.last().map_or(0.0, |p| p[0]);
        ring.extend([[end, -0.1], [0.0, -0.1], [0.0, 0.0]]);
        ring
    }

    #[test]
    fn an_edge_spanning_zigzag_keeps_the_band_index_linear() {
        let ring = sawtooth(10_000);
        assert!(!self_intersects(&ring), "a comb is a simple ring");
        let s = Shape::new(&[vec![ring]]);
        assert!(s.index_entries() <= 10_003 * MAX_ENTRIES_PER_EDGE + 64, "{} entries", s.index_entries());
        assert!(s.contains([0.001, 0.5]), "inside a tooth");
        assert!(!s.contains([0.002, 0.5]), "between teeth");
    }

    #[test]
    fn self_intersections_are_found_and_simple_rings_pass() {
        assert!(!self_intersects(&square(0.0, 0.0, 1.0, 1.0)));
        let bowtie = vec![[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]];
        assert!(self_intersects(&bowtie));
        let pinched = vec![[0.0, 0.0], [2.0, 0.0], [1.0, 1.0], [2.0, 2.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]];
        assert!(self_intersects(&pinched), "touching at a vertex");
        let spike = vec![[0.0, 0.0], [2.0, 0.0], [3.0, 0.0], [2.5, 0.0], [2.0, 1.0], [0.0, 1.0], [0.0, 0.0]];
        assert!(self_intersects(&spike), "doubling back along itself");
        let repeated = vec![[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]];
        assert!(!self_intersects(&repeated), "a repeated point is not a crossing");
        let mut star: Ring = (0..=200)
            .map(|i| {
                let t = f64::from(i % 200) / 200.0 * std::f64::consts::TAU;
                let r = if i % 2 == 0 { 1.0 } else { 0.4 };
                [r * t.cos(), r * t.sin()]
            })
            .collect();
        assert!(!self_intersects(&star));
        star.swap(10, 110);
        assert!(self_intersects(&star));
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
