//! Printable slips: the 《工作任务交办单》 that goes with a dispatch and the 《督办提示单》 that chases it, as A4 PDFs
//! with the CJK font embedded (subset to the glyphs the slip uses), so any reader prints them as issued.
//!
//! Pure: the caller passes the slip's facts (personal data already masked) and a loaded font. The same facts and
//! font give the same bytes: no creation date, no random document id, a subset tag derived from the glyphs, and
//! a fixed compression level.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use pdf_writer::types::{CidFontType, FontFlags, SystemInfo};
use pdf_writer::writers::FontDescriptor;
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str};

use crate::domain::policy::Grade;

mod breaking;

/// Which slip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlipKind {
    /// 《工作任务交办单》, issued with each dispatch.
    Task,
    /// 《督办提示单》, issued at each grade.
    Supervision,
}

impl SlipKind {
    pub fn title(self) -> &'static str {
        match self {
            SlipKind::Task => "工作任务交办单",
            SlipKind::Supervision => "督办提示单",
        }
    }
}

/// What a slip says. Every text is already fit to print: personal data masked by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slip {
    pub kind: SlipKind,
    /// The slip's own number, e.g. `532901-督-2025-00017`.
    pub number: String,
    /// The issuing center, by name and code.
    pub issuer: String,
    /// The unit it is addressed to.
    pub unit: String,
    /// Copied to (the center that supervises the unit), if any.
    pub copy_to: String,
    pub case_no: String,
    pub summary: String,
    pub requirements: String,
    pub due_at: DateTime<Utc>,
    pub grade: Option<Grade>,
    pub issued_at: DateTime<Utc>,
    /// A short code a reader checks the slip with (see [`verification_code`]).
    pub verification_code: String,
}

/// A TrueType or OpenType font with the CJK glyphs a slip needs, loaded once and shared.
pub struct SlipFont {
    data: Vec<u8>,
    index: u32,
}

impl std::fmt::Debug for SlipFont {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlipFont({} bytes)", self.data.len())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SlipError {
    #[error("the slip font cannot be read: {0}")]
    Font(String),
}

impl SlipFont {
    /// Checks that the font parses and has the glyphs of the slips' fixed words.
    pub fn new(data: Vec<u8>, index: u32) -> Result<Self, SlipError> {
        let face = ttf_parser::Face::parse(&data, index).map_err(|e| SlipError::Font(e.to_string()))?;
        if let Some(c) = "督办提示单工作任务交办0123456789".chars().find(|c| face.glyph_index(*c).is_none())
        {
            return Err(SlipError::Font(format!("it has no glyph for {c:?}")));
        }
        Ok(Self { data, index })
    }

    pub fn load(path: &std::path::Path) -> Result<Self, SlipError> {
        let data = std::fs::read(path).map_err(|e| SlipError::Font(format!("{}: {e}", path.display())))?;
        Self::new(data, 0)
    }
}

/// The code printed on a slip: the first 16 hex digits of the deployment's keyed digest
/// ([`kit::pii::Sealer::fingerprint`], HMAC-SHA-256 under its own label) of the slip's number, unit, case number
/// and due time. Whoever holds the key recomputes it to tell a real slip from an altered one.
pub fn verification_code(
    sealer: &kit::pii::Sealer,
    number: &str,
    unit: &str,
    case_no: &str,
    due_at: DateTime<Utc>,
) -> String {
    let due = due_at.timestamp().to_string();
    let digest = sealer.fingerprint(&["zongzhi.slip.v1", number, unit, case_no, &due]);
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02X}")).collect();
    format!("{}-{}-{}-{}", &hex[0..4], &hex[4..8], &hex[8..12], &hex[12..16])
}

const PAGE: (f32, f32) = (595.0, 842.0);
const MARGIN: f32 = 64.0;
const BODY_SIZE: f32 = 12.0;
const LINE: f32 = 22.0;

/// The slip as PDF bytes.
pub fn render(slip: &Slip, font: &SlipFont) -> Result<Vec<u8>, SlipError> {
    let face = ttf_parser::Face::parse(&font.data, font.index).map_err(|e| SlipError::Font(e.to_string()))?;
    let layout = lines(slip);
    let mut glyphs = Glyphs::new(&face);
    let mut content = Content::new();
    let width = PAGE.0 - 2.0 * MARGIN;
    let mut y = PAGE.1 - MARGIN - 20.0;

    // The title, centred, and the slip's number under it on the right.
    let title = slip.kind.title();
    let title_width = glyphs.measure(title, 22.0);
    text(&mut content, &mut glyphs, title, 22.0, (PAGE.0 - title_width) / 2.0, y);
    y -= 30.0;
    let number = format!("编号：{}", slip.number);
    let number_width = glyphs.measure(&number, 10.5);
    text(&mut content, &mut glyphs, &number, 10.5, PAGE.0 - MARGIN - number_width, y);
    y -= 10.0;
    content.set_line_width(1.2).move_to(MARGIN, y).line_to(PAGE.0 - MARGIN, y).stroke();
    y -= LINE + 4.0;

    for (label, value) in &layout {
        let label_text = format!("{label}：");
        text(&mut content, &mut glyphs, &label_text, BODY_SIZE, MARGIN, y);
        let indent = glyphs.measure("督办等级：", BODY_SIZE);
        for (i, piece) in wrap(&mut glyphs, value, BODY_SIZE, width - indent).iter().enumerate() {
            if i > 0 {
                y -= LINE - 4.0;
            }
            text(&mut content, &mut glyphs, piece, BODY_SIZE, MARGIN + indent, y);
        }
        y -= LINE;
    }
    y -= 8.0;
    content.set_line_width(0.6).move_to(MARGIN, y).line_to(PAGE.0 - MARGIN, y).stroke();
    y -= LINE;
    let receipt = match slip.kind {
        SlipKind::Task => "请于时限内签收办理，逾期将予督办。",
        SlipKind::Supervision => "请收到后即行签收确认，并于时限内办结反馈。",
    };
    text(&mut content, &mut glyphs, receipt, BODY_SIZE, MARGIN, y);
    y -= LINE * 2.0;
    let signed = format!("{}（盖章）", slip.issuer);
    let signed_width = glyphs.measure(&signed, BODY_SIZE);
    text(&mut content, &mut glyphs, &signed, BODY_SIZE, PAGE.0 - MARGIN - signed_width, y);
    y -= LINE;
    let date = slip.issued_at.with_timezone(&kit::time::shanghai()).format("%Y年%m月%d日").to_string();
    let date_width = glyphs.measure(&date, BODY_SIZE);
    text(&mut content, &mut glyphs, &date, BODY_SIZE, PAGE.0 - MARGIN - date_width, y);
    let code = format!("核验码：{}", slip.verification_code);
    text(&mut content, &mut glyphs, &code, 9.0, MARGIN, MARGIN - 20.0);

    glyphs.write_pdf(content.finish().into_vec(), &face, font)
}

/// The labelled rows of a slip, in print order.
fn lines(slip: &Slip) -> Vec<(&'static str, String)> {
    let mut rows = vec![("承办单位", slip.unit.clone())];
    if !slip.copy_to.is_empty() {
        rows.push(("抄送", slip.copy_to.clone()));
    }
    rows.push(("交办单位", slip.issuer.clone()));
    rows.push(("案件编号", slip.case_no.clone()));
    rows.push(("事项摘要", slip.summary.clone()));
    rows.push(("办理要求", slip.requirements.clone()));
    rows.push(("办理时限", local_minute(slip.due_at)));
    if let Some(grade) = slip.grade {
        rows.push(("督办等级", grade_words(grade).to_owned()));
    }
    rows
}

pub fn grade_words(grade: Grade) -> &'static str {
    match grade {
        Grade::Reminder => "临期提醒",
        Grade::Yellow => "黄牌督办",
        Grade::Red => "红牌督办",
    }
}

/// `2025年10月09日 10:00（北京时间）`: how people read a due time.
pub fn local_minute(ts: DateTime<Utc>) -> String {
    ts.with_timezone(&kit::time::shanghai()).format("%Y年%m月%d日 %H:%M（北京时间）").to_string()
}

fn text(content: &mut Content, glyphs: &mut Glyphs<'_>, s: &str, size: f32, x: f32, y: f32) {
    let encoded = glyphs.encode(s);
    content.begin_text().set_font(Name(b"F1"), size).next_line(x, y).show(Str(&encoded)).end_text();
}

/// Breaks `s` into lines no wider than `width`: between any two characters of CJK text, at spaces otherwise
/// being more than a slip needs, and by the Chinese rules of line breaking (标点符号用法, GB/T 15834): no line
/// starts with a closing mark and none ends with an opening one.
fn wrap(glyphs: &mut Glyphs<'_>, s: &str, size: f32, width: f32) -> Vec<String> {
    breaking::wrap_by(s, width, |c| glyphs.advance(c) * size / 1000.0)
}

/// The glyphs a slip uses, in first-use order, and the font's facts about them.
struct Glyphs<'f> {
    face: &'f ttf_parser::Face<'f>,
    remapper: subsetter::GlyphRemapper,
    /// New glyph id (the CID written in the content) → the character it shows, for copy and search.
    chars: BTreeMap<u16, char>,
    /// New glyph id → advance width in thousandths of the font size.
    widths: BTreeMap<u16, f32>,
}

impl<'f> Glyphs<'f> {
    fn new(face: &'f ttf_parser::Face<'f>) -> Self {
        let mut remapper = subsetter::GlyphRemapper::new();
        remapper.remap(0);
        Self { face, remapper, chars: BTreeMap::new(), widths: BTreeMap::new() }
    }

    fn advance(&self, c: char) -> f32 {
        let gid = self.face.glyph_index(c).unwrap_or(ttf_parser::GlyphId(0));
        let units = f32::from(self.face.units_per_em().max(1));
        f32::from(self.face.glyph_hor_advance(gid).unwrap_or(0)) * 1000.0 / units
    }

    fn measure(&self, s: &str, size: f32) -> f32 {
        s.chars().map(|c| self.advance(c)).sum::<f32>() * size / 1000.0
    }

    /// The string as 2-byte CIDs of the subset font.
    fn encode(&mut self, s: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(s.len() * 2);
        for c in s.chars().filter(|c| !c.is_control()) {
            let gid = self.face.glyph_index(c).map_or(0, |g| g.0);
            let cid = self.remapper.remap(gid);
            if gid != 0 {
                self.chars.entry(cid).or_insert(c);
            }
            let advance = self.advance(c);
            self.widths.entry(cid).or_insert(advance);
            out.extend_from_slice(&cid.to_be_bytes());
        }
        out
    }

    fn write_pdf(self, content: Vec<u8>, face: &ttf_parser::Face<'_>, font: &SlipFont) -> Result<Vec<u8>, SlipError> {
        let subset =
            subsetter::subset(&font.data, font.index, &self.remapper).map_err(|e| SlipError::Font(format!("{e:?}")))?;
        let base_name = format!("{}+ZongzhiSlipCJK", self.subset_tag());
        let (catalog, pages, page, font_ref, cid_ref, descriptor, file, cmap, contents) = (
            Ref::new(1),
            Ref::new(2),
            Ref::new(3),
            Ref::new(4),
            Ref::new(5),
            Ref::new(6),
            Ref::new(7),
            Ref::new(8),
            Ref::new(9),
        );
        let mut pdf = Pdf::new();
        pdf.catalog(catalog).pages(pages);
        pdf.pages(pages).kids([page]).count(1);
        let mut p = pdf.page(page);
        p.media_box(Rect::new(0.0, 0.0, PAGE.0, PAGE.1)).parent(pages).contents(contents);
        p.resources().fonts().pair(Name(b"F1"), font_ref);
        p.finish();
        pdf.stream(contents, &deflate(&content)).filter(Filter::FlateDecode);

        let system = SystemInfo { registry: Str(b"Adobe"), ordering: Str(b"Identity"), supplement: 0 };
        pdf.type0_font(font_ref)
            .base_font(Name(base_name.as_bytes()))
            .encoding_predefined(Name(b"Identity-H"))
            .descendant_font(cid_ref)
            .to_unicode(cmap);
        let mut cid = pdf.cid_font(cid_ref);
        cid.subtype(CidFontType::Type2)
            .base_font(Name(base_name.as_bytes()))
            .system_info(system)
            .font_descriptor(descriptor)
            .default_width(1000.0)
            .cid_to_gid_map_predefined(Name(b"Identity"));
        {
            let mut widths = cid.widths();
            for (id, w) in &self.widths {
                widths.consecutive(*id, [*w]);
            }
        }
        cid.finish();

        describe_font(&mut pdf, face, descriptor, &base_name, file);
        pdf.stream(file, &deflate(&subset)).filter(Filter::FlateDecode);

        let mut unicode = pdf_writer::types::UnicodeCmap::new(Name(b"Zongzhi-UTF16"), system);
        for (id, c) in &self.chars {
            unicode.pair(*id, *c);
        }
        pdf.cmap(cmap, &unicode.finish().into_vec());
        Ok(pdf.finish())
    }

    /// A subset font's name carries a six-letter tag; derived from the glyphs, so the same slip gets the same.
    fn subset_tag(&self) -> String {
        let mut h: u32 = 2_166_136_261;
        for (cid, c) in &self.chars {
            for b in u32::from(*c).to_le_bytes().into_iter().chain(cid.to_le_bytes()) {
                h = (h ^ u32::from(b)).wrapping_mul(16_777_619);
            }
        }
        (0..6).map(|i| char::from(b'A' + u8::try_from((h >> (i * 5)) % 26).unwrap_or(0))).collect()
    }
}

/// The font's descriptor: its metrics from the face, scaled to the PDF's 1000 units per em, and its file.
fn describe_font(pdf: &mut Pdf, face: &ttf_parser::Face<'_>, descriptor: Ref, base_name: &str, file: Ref) {
    let units = f32::from(face.units_per_em().max(1));
    let scale = |v: i16| f32::from(v) * 1000.0 / units;
    let bbox = face.global_bounding_box();
    let mut d: FontDescriptor<'_> = pdf.font_descriptor(descriptor);
    d.name(Name(base_name.as_bytes()))
        .flags(FontFlags::SYMBOLIC)
        .bbox(Rect::new(scale(bbox.x_min), scale(bbox.y_min), scale(bbox.x_max), scale(bbox.y_max)))
        .italic_angle(0.0)
        .ascent(scale(face.ascender()))
        .descent(scale(face.descender()))
        .cap_height(scale(face.capital_height().unwrap_or(face.ascender())))
        .stem_v(80.0)
        .font_file2(file);
    d.finish();
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    // Writing to a Vec cannot fail.
    let _ = z.write_all(bytes);
    z.finish().unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use chrono::TimeZone;

    use super::*;

    /// Debian's fonts-wqy-microhei (WenQuanYi Micro Hei, Apache-2.0), which `.ci/run` and the container image
    /// install.
    pub const TEST_FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";

    fn sealer(key: [u8; 16]) -> kit::pii::Sealer {
        kit::pii::Sealer::new(key)
    }

    pub fn sample() -> Slip {
        let due = Utc.with_ymd_and_hms(2025, 10, 9, 2, 0, 0).unwrap();
        Slip {
            kind: SlipKind::Supervision,
            number: "532901-督-2025-00017".into(),
            issuer: "大理市综治中心 (532901000000)".into(),
            unit: "大理市司法局".into(),
            copy_to: "大理白族自治州综治中心".into(),
            case_no: "532901-20251001-00042".into(),
            summary: "邻里纠纷：张*反映邻居李*在院墙处搭建雨棚影响采光，联系电话138****5678，请依法调处。".repeat(2),
            requirements: "请于时限内办结并反馈处理结果。".into(),
            due_at: due,
            grade: Some(Grade::Yellow),
            issued_at: due,
            verification_code: verification_code(
                &sealer(kit::pii::DEV_KEY),
                "532901-督-2025-00017",
                "大理市司法局",
                "x",
                due,
            ),
        }
    }

    #[test]
    fn the_same_slip_gives_the_same_bytes_and_a_small_file() {
        let Ok(font) = SlipFont::load(std::path::Path::new(TEST_FONT)) else {
            panic!("install fonts-wqy-microhei (apt) for the slip tests: {TEST_FONT}");
        };
        let a = render(&sample(), &font).unwrap();
        let b = render(&sample(), &font).unwrap();
        assert_eq!(a, b, "deterministic bytes");
        assert!(a.starts_with(b"%PDF-"));
        assert!(a.len() < 200_000, "the font is subset, not embedded whole: {} bytes", a.len());
        let mut other = sample();
        other.grade = Some(Grade::Red);
        assert_ne!(render(&other, &font).unwrap(), a);
    }

    /// What a reader's copy-and-search sees: the text poppler's `pdftotext` extracts.
    pub fn extract_text(pdf: &[u8]) -> String {
        let path = std::env::temp_dir().join(format!("slip-{}.pdf", uuid::Uuid::new_v4()));
        std::fs::write(&path, pdf).unwrap();
        let out = std::process::Command::new("pdftotext").arg(&path).arg("-").output();
        let _ = std::fs::remove_file(&path);
        let out = out.expect("install poppler-utils (apt) for the slip tests: pdftotext");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn a_reader_finds_the_number_unit_due_date_and_grade() {
        let font = SlipFont::load(std::path::Path::new(TEST_FONT)).unwrap();
        let slip = sample();
        let text = extract_text(&render(&slip, &font).unwrap());
        for expected in [
            "督办提示单",
            "532901-督-2025-00017",
            "大理市司法局",
            "2025年10月09日 10:00",
            "黄牌督办",
            &slip.verification_code,
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
        assert!(text.contains("138****5678"), "the masked phone prints as given");
        let task = Slip { kind: SlipKind::Task, grade: None, ..sample() };
        let text = extract_text(&render(&task, &font).unwrap());
        assert!(text.contains("工作任务交办单") && !text.contains("督办等级"), "{text}");
    }

    #[test]
    fn verification_codes_change_with_every_fact_they_cover() {
        let due = Utc.with_ymd_and_hms(2025, 10, 9, 2, 0, 0).unwrap();
        let (key, other) = (sealer(kit::pii::DEV_KEY), sealer(*b"another-key-16b!"));
        let code = verification_code(&key, "N1", "unit", "case", due);
        assert_eq!(code.len(), 19);
        assert_eq!(code, verification_code(&key, "N1", "unit", "case", due));
        assert_ne!(code, verification_code(&key, "N2", "unit", "case", due));
        assert_ne!(code, verification_code(&key, "N1", "unit", "case", due + chrono::Duration::seconds(1)));
        assert_ne!(code, verification_code(&other, "N1", "unit", "case", due));
    }

    #[test]
    fn a_font_without_cjk_glyphs_is_refused() {
        assert!(SlipFont::new(b"not a font".to_vec(), 0).is_err());
    }
}
