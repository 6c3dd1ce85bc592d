//! Colour profiles for redacted photos: the colour space of the input's, in a profile bystander
//! writes itself.
//!
//! Why: a phone photo in Display P3 written without its ICC profile shows washed out in every
//! colour-managed viewer. But a profile is a block of bytes from whatever made the photo: its
//! header and tags can name the device's maker and model, the date the profile was made, a
//! calibration. Device metadata is not copied (README), so the input's profile is only read for
//! the colour space it describes: Display P3 (phones, Macs) or Adobe RGB (1998) (cameras) get
//! bystander's own profile of that space, which names nothing else; sRGB needs none (what every
//! viewer assumes without one); any other profile, or one that cannot be read, is dropped.
//!
//! A space is recognised by its red, green and blue colorants (D50, as profiles store them)
//! within 0.003 and its tone curves within 1 % (and 0.001) of linear light at five points, which
//! tells the sRGB curve from a gamma of 2.2; the profiles written are ICC
//! version 2 matrix/TRC display profiles, which every colour-managed viewer reads.

/// The colour spaces a redacted photo can carry a profile of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColourSpace {
    /// sRGB: written without a profile.
    Srgb,
    /// Display P3: P3 primaries, D65 white, the sRGB tone curve.
    DisplayP3,
    /// Adobe RGB (1998): its primaries, D65 white, gamma 563/256.
    AdobeRgb,
}

/// Red, green and blue colorants (X, Y, Z, adapted to D50).
type Colorants = [[f64; 3]; 3];

const SRGB: Colorants = [
    [0.436066, 0.222488, 0.013916],
    [0.385147, 0.716873, 0.097076],
    [0.143066, 0.060608, 0.714096],
];
const DISPLAY_P3: Colorants = [
    [0.515102, 0.241182, -0.001050],
    [0.291965, 0.692236, 0.041882],
    [0.157153, 0.066583, 0.784168],
];
const ADOBE_RGB: Colorants = [
    [0.609741, 0.311111, 0.019470],
    [0.205276, 0.625671, 0.060867],
    [0.149185, 0.063217, 0.744568],
];
/// Adobe RGB (1998)'s gamma.
const ADOBE_GAMMA: f64 = 563.0 / 256.0;
/// The profile connection space's white, D50.
const D50: [f64; 3] = [0.9642, 1.0, 0.8249];

/// The largest profile read: 1 MiB. Display profiles are a few hundred bytes to a few kilobytes.
pub const MAX_PROFILE_BYTES: usize = 1 << 20;

impl ColourSpace {
    fn colorants(self) -> &'static Colorants {
        match self {
            ColourSpace::Srgb => &SRGB,
            ColourSpace::DisplayP3 => &DISPLAY_P3,
            ColourSpace::AdobeRgb => &ADOBE_RGB,
        }
    }

    /// The space's tone curve: encoded value to linear light.
    fn curve(self, x: f64) -> f64 {
        match self {
            ColourSpace::Srgb | ColourSpace::DisplayP3 => srgb_to_linear(x),
            ColourSpace::AdobeRgb => x.powf(ADOBE_GAMMA),
        }
    }

    fn name(self) -> &'static str {
        match self {
            ColourSpace::Srgb => "sRGB (bystander)",
            ColourSpace::DisplayP3 => "Display P3 (bystander)",
            ColourSpace::AdobeRgb => "Adobe RGB (1998) compatible (bystander)",
        }
    }
}

fn srgb_to_linear(x: f64) -> f64 {
    if x >= 0.04045 {
        ((x + 0.055) / 1.055).powf(2.4)
    } else {
        x / 12.92
    }
}

/// The profile a redacted copy carries for the input's `profile`: bystander's own profile of
/// the same colour space (see the module's notes), or `None` for sRGB, another space, or bytes
/// that are not a well-formed RGB display profile.
pub fn profile_for_copy(profile: &[u8]) -> Option<Vec<u8>> {
    match colour_space_of(profile)? {
        ColourSpace::Srgb => None,
        space => Some(profile_of(space)),
    }
}

/// The colour space an ICC profile describes, where it is one of [`ColourSpace`]: a header of
/// 128 bytes with the `acsp` signature, the size it declares equal to its length (at most
/// [`MAX_PROFILE_BYTES`]), RGB data, and colorants and tone curves of the space.
pub fn colour_space_of(p: &[u8]) -> Option<ColourSpace> {
    let be32 = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(p.get(at..at + 4)?.try_into().ok()?))
    };
    if p.len() < 132
        || p.len() > MAX_PROFILE_BYTES
        || be32(0)? as usize != p.len()
        || p[36..40] != *b"acsp"
        || p[16..20] != *b"RGB "
    {
        return None;
    }
    // The tag table: a count, then (signature, offset, size) for each.
    let count = be32(128)? as usize;
    let tag = |sig: &[u8; 4]| -> Option<&[u8]> {
        (0..count.min(1000)).find_map(|i| {
            let at = 132 + 12 * i;
            (p.get(at..at + 4)? == sig).then_some(())?;
            let (offset, size) = (be32(at + 4)? as usize, be32(at + 8)? as usize);
            p.get(offset..offset.checked_add(size)?)
        })
    };
    let colorants = [
        xyz(tag(b"rXYZ")?)?,
        xyz(tag(b"gXYZ")?)?,
        xyz(tag(b"bXYZ")?)?,
    ];
    let curves = [tag(b"rTRC")?, tag(b"gTRC")?, tag(b"bTRC")?];
    [
        ColourSpace::Srgb,
        ColourSpace::DisplayP3,
        ColourSpace::AdobeRgb,
    ]
    .into_iter()
    .find(|space| {
        let near = space
            .colorants()
            .iter()
            .flatten()
            .zip(colorants.iter().flatten())
            .all(|(a, b)| (a - b).abs() <= 0.003);
        near && curves.iter().all(|c| {
            [0.02, 0.1, 0.3, 0.6, 0.9].iter().all(|&x| {
                let want = space.curve(x);
                curve_at(c, x).is_some_and(|y| (y - want).abs() <= 0.001 + 0.01 * want)
            })
        })
    })
}

/// An `XYZ ` tag's first value.
fn xyz(t: &[u8]) -> Option<[f64; 3]> {
    if t.get(0..4)? != b"XYZ " {
        return None;
    }
    let s15 = |at: usize| -> Option<f64> {
        Some(f64::from(i32::from_be_bytes(t.get(at..at + 4)?.try_into().ok()?)) / 65536.0)
    };
    Some([s15(8)?, s15(12)?, s15(16)?])
}

/// A tone curve tag (`curv` or `para`) at `x` in 0..=1: linear light.
fn curve_at(t: &[u8], x: f64) -> Option<f64> {
    let be16 = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes(t.get(at..at + 2)?.try_into().ok()?))
    };
    match t.get(0..4)? {
        b"curv" => {
            let n = u32::from_be_bytes(t.get(8..12)?.try_into().ok()?) as usize;
            match n {
                0 => Some(x),
                1 => Some(x.powf(f64::from(be16(12)?) / 256.0)),
                _ if n > 65536 => None,
                _ => {
                    let at = x * (n - 1) as f64;
                    let i = (at.floor() as usize).min(n - 2);
                    let (a, b) = (f64::from(be16(12 + 2 * i)?), f64::from(be16(14 + 2 * i)?));
                    Some((a + (b - a) * (at - i as f64)) / 65535.0)
                }
            }
        }
        b"para" => {
            let kind = be16(8)?;
            let n = match kind {
                0 => 1,
                1 => 3,
                2 => 4,
                3 => 5,
                4 => 7,
                _ => return None,
            };
            let mut v = [0.0f64; 7];
            for (i, slot) in v.iter_mut().enumerate().take(n) {
                *slot = f64::from(i32::from_be_bytes(
                    t.get(12 + 4 * i..16 + 4 * i)?.try_into().ok()?,
                )) / 65536.0;
            }
            let [g, a, b, c, d, e, f] = v;
            let pow = |base: f64| if base > 0.0 { base.powf(g) } else { 0.0 };
            Some(match kind {
                0 => pow(x),
                1 if x >= -b / a => pow(a * x + b),
                1 => 0.0,
                2 if x >= -b / a => pow(a * x + b) + c,
                2 => c,
                3 if x >= d => pow(a * x + b),
                3 => c * x,
                4 if x >= d => pow(a * x + b) + e,
                _ => c * x + f,
            })
        }
        _ => None,
    }
}

/// bystander's own ICC version 2 display profile of `space`: its colorants, D50 white, its tone
/// curve (a 1024-entry table for the sRGB curve, a gamma for Adobe RGB), a description naming the
/// space, and nothing that names a device, a maker or a date.
pub fn profile_of(space: ColourSpace) -> Vec<u8> {
    fn s15(v: f64) -> [u8; 4] {
        ((v * 65536.0).round() as i32).to_be_bytes()
    }
    fn xyz_tag(v: [f64; 3]) -> Vec<u8> {
        [
            b"XYZ \0\0\0\0".as_slice(),
            &s15(v[0]),
            &s15(v[1]),
            &s15(v[2]),
        ]
        .concat()
    }
    fn text_description(s: &str) -> Vec<u8> {
        let mut t = b"desc\0\0\0\0".to_vec();
        t.extend((s.len() as u32 + 1).to_be_bytes());
        t.extend(s.as_bytes());
        t.push(0);
        // No Unicode description (language, count), no ScriptCode one (code, count, 67 bytes).
        t.extend([0u8; 8 + 3 + 67]);
        t
    }
    let curve = match space {
        ColourSpace::AdobeRgb => [
            b"curv\0\0\0\0".as_slice(),
            &1u32.to_be_bytes(),
            &563u16.to_be_bytes(),
        ]
        .concat(),
        _ => {
            let mut c = [b"curv\0\0\0\0".as_slice(), &1024u32.to_be_bytes()].concat();
            for i in 0..1024 {
                let y = space.curve(f64::from(i) / 1023.0);
                c.extend(((y * 65535.0).round() as u16).to_be_bytes());
            }
            c
        }
    };
    let [r, g, b] = *space.colorants();
    let tags: [(&[u8; 4], Vec<u8>); 9] = [
        (b"desc", text_description(space.name())),
        (b"cprt", b"text\0\0\0\0No copyright, use freely\0".to_vec()),
        (b"wtpt", xyz_tag(D50)),
        (b"rXYZ", xyz_tag(r)),
        (b"gXYZ", xyz_tag(g)),
        (b"bXYZ", xyz_tag(b)),
        (b"rTRC", curve.clone()),
        (b"gTRC", curve.clone()),
        (b"bTRC", curve),
    ];
    let data_start = 128 + 4 + 12 * tags.len();
    let mut table = (tags.len() as u32).to_be_bytes().to_vec();
    let mut body: Vec<u8> = Vec::new();
    for (sig, data) in &tags {
        body.resize(body.len().next_multiple_of(4), 0);
        table.extend(*sig);
        table.extend(((data_start + body.len()) as u32).to_be_bytes());
        table.extend((data.len() as u32).to_be_bytes());
        body.extend(data);
    }
    let mut header = vec![0u8; 128];
    header[0..4].copy_from_slice(&((data_start + body.len()) as u32).to_be_bytes());
    header[8..12].copy_from_slice(&[2, 0x10, 0, 0]); // version 2.1
    header[12..16].copy_from_slice(b"mntr");
    header[16..20].copy_from_slice(b"RGB ");
    header[20..24].copy_from_slice(b"XYZ ");
    header[36..40].copy_from_slice(b"acsp");
    header[68..80].copy_from_slice(&[s15(D50[0]), s15(D50[1]), s15(D50[2])].concat());
    [header, table, body].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_written_is_read_as_its_space_and_srgb_needs_none() {
        for space in [ColourSpace::DisplayP3, ColourSpace::AdobeRgb] {
            let p = profile_of(space);
            assert_eq!(colour_space_of(&p), Some(space));
            assert_eq!(profile_for_copy(&p), Some(p));
        }
        let srgb = profile_of(ColourSpace::Srgb);
        assert_eq!(colour_space_of(&srgb), Some(ColourSpace::Srgb));
        assert_eq!(profile_for_copy(&srgb), None);
    }

    #[test]
    fn a_profile_that_names_its_device_comes_back_as_bystanders_own() {
        let own = profile_of(ColourSpace::DisplayP3);
        let mut camera = own.clone();
        camera[4..8].copy_from_slice(b"ACME"); // CMM
        camera[24..36].copy_from_slice(&[7, 234, 0, 12, 0, 7, 0, 9, 0, 41, 0, 3]); // a date
        camera[48..56].copy_from_slice(b"ACMECAM1"); // maker and model
        camera[80..84].copy_from_slice(b"ACME"); // creator
        let desc = 132 + 12 * 9 + 12; // the description's ASCII, first tag's data
        camera[desc..desc + 21].copy_from_slice(b"ACME CAM1 SN 12345678");
        assert_eq!(colour_space_of(&camera), Some(ColourSpace::DisplayP3));
        let copy = profile_for_copy(&camera).unwrap();
        assert_eq!(copy, own);
        assert!(!copy.windows(4).any(|w| w == b"ACME"));
    }

    #[test]
    fn other_spaces_grey_cmyk_and_broken_profiles_are_dropped() {
        let p3 = profile_of(ColourSpace::DisplayP3);
        let table_entry = |p: &[u8], sig: &[u8; 4]| {
            (0..9)
                .map(|i| 132 + 12 * i)
                .find(|&at| &p[at..at + 4] == sig)
                .map(|at| u32::from_be_bytes(p[at + 4..at + 8].try_into().unwrap()) as usize)
                .unwrap()
        };
        let mut changed = Vec::new();
        // P3's primaries with a gamma 2.2 curve: another space.
        let mut gamma = p3.clone();
        let curve = table_entry(&gamma, b"gTRC");
        gamma[curve + 12..curve + 14].copy_from_slice(&[2, 0x33]);
        gamma[curve + 8..curve + 12].copy_from_slice(&1u32.to_be_bytes());
        changed.push(gamma);
        // A green 0.01 off.
        let mut green = p3.clone();
        let g = table_entry(&green, b"gXYZ");
        let y = i32::from_be_bytes(green[g + 12..g + 16].try_into().unwrap()) + 655;
        green[g + 12..g + 16].copy_from_slice(&y.to_be_bytes());
        changed.push(green);
        for space in [b"GRAY", b"CMYK"] {
            let mut other = p3.clone();
            other[16..20].copy_from_slice(space);
            changed.push(other);
        }
        let mut signature = p3.clone();
        signature[36..40].copy_from_slice(b"ascp");
        changed.push(signature);
        let mut size = p3.clone();
        size[0..4].copy_from_slice(&(p3.len() as u32 + 1).to_be_bytes());
        changed.push(size);
        changed.push(p3[..p3.len() - 1].to_vec());
        changed.push(p3[..200].to_vec());
        for p in changed {
            assert_eq!(profile_for_copy(&p), None);
        }
    }

    #[test]
    fn parametric_and_table_curves_read_alike() {
        let s15 = |v: f64| ((v * 65536.0).round() as i32).to_be_bytes();
        // sRGB as a type 3 parametric curve, as version 4 profiles store it.
        let mut para = b"para\0\0\0\0\0\x03\0\0".to_vec();
        for v in [2.4, 1.0 / 1.055, 0.055 / 1.055, 1.0 / 12.92, 0.04045] {
            para.extend(s15(v));
        }
        for x in [0.0, 0.01, 0.04, 0.2, 0.5, 0.99, 1.0] {
            let (a, b) = (curve_at(&para, x).unwrap(), srgb_to_linear(x));
            assert!((a - b).abs() < 1e-4, "{x}: {a} against {b}");
        }
        let gamma = [b"curv\0\0\0\0\0\0\0\x01".as_slice(), &[2, 0x33]].concat();
        assert!((curve_at(&gamma, 0.5).unwrap() - 0.5f64.powf(2.2)).abs() < 1e-3);
        assert_eq!(curve_at(b"curv\0\0\0\0\0\0\0\0", 0.3), Some(0.3));
    }

    #[test]
    fn damaged_profiles_never_panic() {
        // Generated cases: bytes of the written profiles overwritten at random.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for space in [ColourSpace::DisplayP3, ColourSpace::AdobeRgb] {
            let good = profile_of(space);
            for _ in 0..2000 {
                let mut p = good.clone();
                for _ in 0..1 + next() % 8 {
                    let i = (next() % p.len() as u64) as usize;
                    p[i] = next() as u8;
                }
                if let Some(found) = colour_space_of(&p) {
                    assert!(profile_for_copy(&p).is_none_or(|c| c == profile_of(found)));
                }
            }
        }
    }
}
