//! HDR pictures shown to the detectors as an SDR display would show them.
//!
//! Why: phones record HDR video (iPhones in HLG, many Android phones in PQ, HDR10's curve), and
//! the detectors were trained on SDR pictures. Converted to RGB as they are stored, HDR samples
//! look flat and dim: on crowd_1080p converted to PQ (`zscale`, SDR white at 203 nits, BT.2408's
//! reference), a patch of faces had a standard deviation of 16.9 levels against 48.0 in SDR, and
//! the default found 0.866 of the faces it finds on the SDR clip and 13 of its 36 plates, where a
//! 10-bit SDR copy of the same clip kept 0.914 and all 36; in HLG, 0.875 of the faces
//! (BENCHMARKS.md, "HDR clips seen as SDR"). So detection sees each HDR frame through a table
//! that takes a sample to the light it stands for, then to the SDR signal of that light with
//! reference white at SDR's white, the brighter highlights folded under it. The table is per
//! channel (the picture's own primaries are kept: detection does not need BT.2020's greens
//! exact), and only detection sees the result: the frames written keep their samples and their
//! colour description.

use std::sync::OnceLock;

use image::RgbImage;

/// How a stream's samples encode light, as far as detection cares (the stream's transfer
/// characteristic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Transfer {
    /// SDR (BT.709, BT.601, sRGB and every other non-HDR curve): detected as it is.
    #[default]
    Sdr,
    /// SMPTE ST 2084, "PQ" (HDR10, HDR10+, Dolby Vision's PQ profiles): absolute light, up to
    /// 10,000 nits.
    Pq,
    /// ARIB STD-B67, "HLG" (broadcast HDR, iPhones' HDR video): relative light.
    Hlg,
}

impl std::str::FromStr for Transfer {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> crate::error::Result<Self> {
        match s {
            "sdr" => Ok(Transfer::Sdr),
            "pq" => Ok(Transfer::Pq),
            "hlg" => Ok(Transfer::Hlg),
            _ => Err(crate::error::Error::InvalidSetting {
                name: "transfer",
                value: s.to_string(),
                allowed: "one of sdr, pq, hlg",
            }),
        }
    }
}

/// Light that SDR's white stands for, in nits (BT.2408's HDR reference white).
const REFERENCE_WHITE: f64 = 203.0;
/// Relative light (SDR white = 1) above which highlights are folded in, so that they end at 1
/// instead of clipping whatever lies above white (a face in bright sun).
const KNEE: f64 = 0.6;
/// The peak an HLG signal is shown at, in nits (BT.2100's nominal display), where its reference
/// white (75 % signal) comes out at 203 nits.
const HLG_PEAK: f64 = 1000.0;

impl Transfer {
    /// The table taking an 8-bit sample of this transfer to the 8-bit SDR sample of the same
    /// light; `None` for SDR.
    pub(crate) fn table(self) -> Option<&'static [u8; 256]> {
        static PQ: OnceLock<[u8; 256]> = OnceLock::new();
        static HLG: OnceLock<[u8; 256]> = OnceLock::new();
        match self {
            Transfer::Sdr => None,
            Transfer::Pq => Some(PQ.get_or_init(|| table(pq_nits))),
            Transfer::Hlg => Some(HLG.get_or_init(|| table(hlg_nits))),
        }
    }
}

/// ST 2084's constants m1, m2, c1, c2 and c3.
const PQ_M1: f64 = 2610.0 / 16384.0;
const PQ_M2: f64 = 2523.0 / 4096.0 * 128.0;
const PQ_C1: f64 = 3424.0 / 4096.0;
const PQ_C2: f64 = 2413.0 / 4096.0 * 32.0;
const PQ_C3: f64 = 2392.0 / 4096.0 * 32.0;

/// Light in nits of the PQ signal `e` (0 to 1): ST 2084's EOTF.
fn pq_nits(e: f64) -> f64 {
    let p = e.clamp(0.0, 1.0).powf(1.0 / PQ_M2);
    10000.0 * ((p - PQ_C1).max(0.0) / (PQ_C2 - PQ_C3 * p)).powf(1.0 / PQ_M1)
}

/// BT.709's OETF: the SDR signal (0 to 1) of relative light `r` (0 to 1).
fn bt709_oetf(r: f64) -> f64 {
    if r < 0.018 {
        4.5 * r
    } else {
        1.099 * r.powf(0.45) - 0.099
    }
}

/// Light in nits of the HLG signal `e` (0 to 1) on BT.2100's nominal 1000-nit display: the
/// inverse OETF, then the display's gamma of 1.2 (taken per channel).
fn hlg_nits(e: f64) -> f64 {
    let e = e.clamp(0.0, 1.0);
    let a: f64 = 0.178_832_77;
    let (b, c) = (1.0 - 4.0 * a, 0.5 - a * (4.0 * a).ln());
    let scene = if e <= 0.5 {
        e * e / 3.0
    } else {
        (((e - c) / a).exp() + b) / 12.0
    };
    HLG_PEAK * scene.powf(1.2)
}

/// The table of `nits` (a transfer's light for a signal from 0 to 1): that light relative to
/// the reference white, highlights above [`KNEE`] folded in under 1, then BT.709's OETF.
fn table(nits: fn(f64) -> f64) -> [u8; 256] {
    let mut out = [0u8; 256];
    for (i, o) in out.iter_mut().enumerate() {
        let r = nits(i as f64 / 255.0) / REFERENCE_WHITE;
        let r = if r > KNEE {
            KNEE + (1.0 - KNEE) * (1.0 - (-(r - KNEE) / (1.0 - KNEE)).exp())
        } else {
            r
        };
        *o = (bt709_oetf(r) * 255.0).round().clamp(0.0, 255.0) as u8;
    }
    out
}

/// `rgb` through `table`, channel by channel, into `out` (resized to fit).
pub(crate) fn map_into(rgb: &RgbImage, table: &[u8; 256], out: &mut RgbImage) {
    let (w, h) = rgb.dimensions();
    if out.dimensions() != (w, h) {
        *out = RgbImage::new(w, h);
    }
    for (o, i) in out.iter_mut().zip(rgb.iter()) {
        *o = table[usize::from(*i)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_are_named_as_hosts_name_them() {
        for (name, t) in [
            ("sdr", Transfer::Sdr),
            ("pq", Transfer::Pq),
            ("hlg", Transfer::Hlg),
        ] {
            assert_eq!(name.parse::<Transfer>().unwrap(), t);
        }
        let e = "hdr10".parse::<Transfer>().unwrap_err().to_string();
        assert!(e.contains("hdr10") && e.contains("sdr, pq, hlg"), "{e}");
    }

    #[test]
    fn sdr_has_no_table_and_hdr_tables_rise_from_black_to_white() {
        assert!(Transfer::Sdr.table().is_none());
        for t in [Transfer::Pq, Transfer::Hlg] {
            let table = t.table().unwrap();
            assert_eq!(table[0], 0, "{t:?}");
            assert!(table[255] >= 254, "{t:?}: {}", table[255]);
            assert!(table.windows(2).all(|w| w[0] <= w[1]), "{t:?}: {table:?}");
        }
    }

    /// A light below the knee, coded in PQ or HLG, comes out as SDR codes that light (the SDR
    /// signal a camera would have written), within a level or two of 8-bit rounding.
    #[test]
    fn light_below_the_knee_comes_out_as_its_sdr_code() {
        // PQ's inverse EOTF, for the test's coding.
        let pq_code = |nits: f64| {
            let y = (nits / 10000.0).powf(PQ_M1);
            ((PQ_C1 + PQ_C2 * y) / (1.0 + PQ_C3 * y)).powf(PQ_M2)
        };
        // HLG's reference white: 75 % signal.
        assert!((hlg_nits(0.75) - 203.0).abs() < 1.0, "{}", hlg_nits(0.75));
        for r in [0.02, 0.05, 0.1, 0.2, 0.35, 0.5] {
            let want = bt709_oetf(r) * 255.0;
            let code = (pq_code(r * REFERENCE_WHITE) * 255.0).round() as usize;
            let got = f64::from(Transfer::Pq.table().unwrap()[code]);
            // One level of the PQ code is up to a few SDR levels in the darks.
            assert!((got - want).abs() <= 4.0, "PQ {r}: {got} against {want}");
            assert!((pq_nits(pq_code(r * 203.0)) - r * 203.0).abs() < 1e-6 * 203.0);
        }
        // Highlights above white are folded in, not clipped: 300 nits still comes out brighter
        // than 203 nits, under the top code.
        let (at_203, at_300) = (pq_code(203.0), pq_code(300.0));
        let t = Transfer::Pq.table().unwrap();
        let (a, b) = (
            t[(at_203 * 255.0).round() as usize],
            t[(at_300 * 255.0).round() as usize],
        );
        assert!(a < b && b < 255, "{a} {b}");
    }

    #[test]
    fn mapping_goes_channel_by_channel_into_a_picture_of_the_same_size() {
        let rgb = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 50, y as u8 * 100, 255]));
        let table = Transfer::Hlg.table().unwrap();
        let mut out = RgbImage::new(1, 1);
        map_into(&rgb, table, &mut out);
        assert_eq!(out.dimensions(), (5, 3));
        for (o, i) in out.pixels().zip(rgb.pixels()) {
            assert_eq!(o.0, i.0.map(|c| table[usize::from(c)]));
        }
    }
}
