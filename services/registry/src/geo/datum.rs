//! GCJ-02 ↔ WGS84. GCJ-02 is the offset datum Chinese web maps must use; the forward transform is the widely
//! published one (Krasovsky ellipsoid constants), and the inverse has no closed form, so it is found by
//! fixed-point iteration to well under a millimetre.

use std::f64::consts::PI;

const A: f64 = 6_378_245.0;
const EE: f64 = 0.006_693_421_622_965_943;

/// The rectangle the transform is applied in; outside it the datum is WGS84 unshifted (as every GCJ-02
/// implementation does, so points abroad round-trip unchanged).
pub fn out_of_china(lon: f64, lat: f64) -> bool {
    !(72.004..=137.8347).contains(&lon) || !(0.8293..=55.8271).contains(&lat)
}

pub fn wgs84_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    if out_of_china(lon, lat) {
        return (lon, lat);
    }
    let (dlon, dlat) = delta(lon, lat);
    (lon + dlon, lat + dlat)
}

/// Iterates w ← w − (forward(w) − g): the shift varies slowly, so each step gains about three digits and a
/// handful of steps reach 1e-10° (about 0.01 mm).
pub fn gcj02_to_wgs84(lon: f64, lat: f64) -> (f64, f64) {
    if out_of_china(lon, lat) {
        return (lon, lat);
    }
    let (mut wlon, mut wlat) = (lon, lat);
    for _ in 0..20 {
        let (glon, glat) = wgs84_to_gcj02(wlon, wlat);
        let (elon, elat) = (glon - lon, glat - lat);
        wlon -= elon;
        wlat -= elat;
        if elon.abs() < 1e-10 && elat.abs() < 1e-10 {
            break;
        }
    }
    (wlon, wlat)
}

fn delta(lon: f64, lat: f64) -> (f64, f64) {
    let x = lon - 105.0;
    let y = lat - 35.0;
    // The same short-wave term of longitude goes into both components.
    let ripple = (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    let mut dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt() + ripple;
    dlat += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    dlat += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    let mut dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt() + ripple;
    dlon += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    dlon += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    let rad = lat / 180.0 * PI;
    let magic = 1.0 - EE * rad.sin() * rad.sin();
    let sqrt_magic = magic.sqrt();
    let dlat = (dlat * 180.0) / ((A * (1.0 - EE)) / (magic * sqrt_magic) * PI);
    let dlon = (dlon * 180.0) / (A / sqrt_magic * rad.cos() * PI);
    (dlon, dlat)
}

/// Metres between two nearby points (equirectangular; exact enough at the scale of a datum shift).
pub fn metres(a: (f64, f64), b: (f64, f64)) -> f64 {
    let k = 6_371_008.8 * PI / 180.0;
    let dx = (a.0 - b.0) * k * ((a.1 + b.1) / 2.0 / 180.0 * PI).cos();
    let dy = (a.1 - b.1) * k;
    (dx * dx + dy * dy).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_under_a_centimetre_across_china() {
        let mut worst: f64 = 0.0;
        for i in 0..=60 {
            for j in 0..=50 {
                let w = (73.0 + f64::from(i), 3.0 + f64::from(j));
                let (glon, glat) = wgs84_to_gcj02(w.0, w.1);
                worst = worst.max(metres(gcj02_to_wgs84(glon, glat), w));
            }
        }
        assert!(worst < 0.01, "worst round-trip error {worst} m");
    }

    #[test]
    fn the_shift_in_dali_is_a_few_hundred_metres() {
        let g = (100.23, 25.59);
        let shift = metres(gcj02_to_wgs84(g.0, g.1), g);
        assert!((100.0..800.0).contains(&shift), "shift {shift} m");
    }

    #[test]
    fn points_outside_china_are_not_shifted() {
        for p in [(2.35, 48.86), (151.2, -33.87), (-74.0, 40.7), (0.0, 0.0)] {
            assert_eq!(wgs84_to_gcj02(p.0, p.1), p);
            assert_eq!(gcj02_to_wgs84(p.0, p.1), p);
        }
    }
}
