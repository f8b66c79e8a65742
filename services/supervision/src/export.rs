//! A rates table as a file for people to open: CSV (UTF-8 with a byte-order mark, so Excel as used in China
//! opens the Chinese headers right, RFC 4180 quoting, CRLF lines) or XLSX (rust_xlsxwriter: numbers stay
//! numbers, rates are percentages). Both carry the same columns and the same figures as GetRates, the total
//! last.

use crate::domain::rates::{By, Figures, Format, Rate, RatesTable};
use crate::error::{Error, Result};

/// An exported file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub bytes: Vec<u8>,
    pub filename: String,
    pub content_type: &'static str,
}

/// The columns, in order, as their headers read.
pub const HEADERS: [&str; 15] = [
    "排名",
    "代码",
    "应签收",
    "按时签收",
    "按时签收率",
    "应办结",
    "按时办结",
    "按时办结率",
    "回访",
    "满意",
    "基本满意",
    "满意率",
    "黄牌",
    "红牌",
    "得分",
];

/// The label of the total row, in the code column.
pub const TOTAL: &str = "合计";

/// One cell as both formats need it.
enum Cell {
    Text(String),
    Int(i64),
    Rate(Rate),
}

pub fn export(table: &RatesTable, format: Format) -> Result<Export> {
    let q = &table.query;
    let by = match q.by {
        By::Unit => "unit",
        By::Area => "area",
    };
    let stem = format!("rates-{}-{by}-{}-{}", q.node_code, q.period.from, q.period.to);
    let rows = rows(table);
    Ok(match format {
        Format::Csv => {
            Export { bytes: csv(&rows)?, filename: format!("{stem}.csv"), content_type: "text/csv; charset=utf-8" }
        }
        Format::Xlsx => Export {
            bytes: xlsx(&rows)?,
            filename: format!("{stem}.xlsx"),
            content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        },
    })
}

fn rows(table: &RatesTable) -> Vec<Vec<Cell>> {
    let line = |rank: Option<u32>, key: &str, f: &Figures| {
        let n = |v: u64| Cell::Int(i64::try_from(v).unwrap_or(i64::MAX));
        let c = &f.counts;
        vec![
            rank.map_or(Cell::Text(String::new()), |r| Cell::Int(i64::from(r))),
            Cell::Text(key.to_owned()),
            n(c.accept_due),
            n(c.accept_on_time),
            Cell::Rate(f.accept_on_time),
            n(c.resolve_due),
            n(c.resolve_on_time),
            Cell::Rate(f.resolve_on_time),
            n(c.visits),
            n(c.satisfied),
            n(c.basically_satisfied),
            Cell::Rate(f.satisfaction),
            n(c.yellow),
            n(c.red),
            Cell::Int(f.score),
        ]
    };
    let mut out: Vec<Vec<Cell>> = table.rows.iter().map(|(rank, key, f)| line(Some(*rank), key, f)).collect();
    out.push(line(None, TOTAL, &table.total));
    out
}

/// A text cell that a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, or a leading tab or carriage
/// return) is prefixed with `'`, so an exported value can never run as one (CSV injection).
pub fn defuse(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() }
}

fn csv(rows: &[Vec<Cell>]) -> Result<Vec<u8>> {
    let mut out = "\u{feff}".as_bytes().to_vec();
    {
        let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(&mut out);
        let failed = |e: csv::Error| Error::Internal(anyhow::anyhow!("writing the CSV: {e}"));
        w.write_record(HEADERS).map_err(failed)?;
        for row in rows {
            let cells = row.iter().map(|c| match c {
                Cell::Text(t) => defuse(t),
                Cell::Int(n) => n.to_string(),
                Cell::Rate(r) => r.percent(),
            });
            w.write_record(cells).map_err(failed)?;
        }
        w.flush().map_err(|e| Error::Internal(anyhow::anyhow!("writing the CSV: {e}")))?;
    }
    Ok(out)
}

fn xlsx(rows: &[Vec<Cell>]) -> Result<Vec<u8>> {
    use rust_xlsxwriter::{Format as CellFormat, Workbook, XlsxError};
    let failed = |e: XlsxError| Error::Internal(anyhow::anyhow!("writing the XLSX: {e}"));
    let mut book = Workbook::new();
    let bold = CellFormat::new().set_bold();
    let percent = CellFormat::new().set_num_format("0.00%");
    let sheet = book.add_worksheet();
    sheet.set_name("三率").map_err(failed)?;
    for (col, header) in (0u16..).zip(HEADERS) {
        sheet.write_string_with_format(0, col, header, &bold).map_err(failed)?;
    }
    for (r, row) in (1u32..).zip(rows) {
        for (col, cell) in (0u16..).zip(row) {
            match cell {
                // Kept as text: a code is an identifier, and the defused form is what a reader sees.
                Cell::Text(t) => sheet.write_string(r, col, defuse(t)).map(|_| ()),
                #[allow(clippy::cast_precision_loss)] // counts and scores are far below 2^53
                Cell::Int(n) => sheet.write_number(r, col, *n as f64).map(|_| ()),
                Cell::Rate(rate) => match rate.basis_points() {
                    #[allow(clippy::cast_precision_loss)]
                    Some(bp) => sheet.write_number_with_format(r, col, bp as f64 / 10_000.0, &percent).map(|_| ()),
                    None => sheet.write_string(r, col, "—").map(|_| ()),
                },
            }
            .map_err(failed)?;
        }
    }
    sheet.set_column_width(1, 18).map_err(failed)?;
    book.save_to_buffer().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::policy::ScoreRule;
    use crate::domain::rates::{Counts, RatesQuery};

    fn table() -> RatesTable {
        let q = RatesQuery::parse("532901000000", "unit", "2025-03-01", "2025-04-01").unwrap();
        let a = Counts { accept_due: 3, accept_on_time: 2, visits: 2, satisfied: 1, ..Counts::default() };
        let b = Counts { resolve_due: 1, red: 1, ..Counts::default() };
        RatesTable::new(q, vec![("=cmd()".into(), b), ("532901-SFJ".into(), a)], ScoreRule::default(), 1)
    }

    #[test]
    fn csv_has_a_bom_crlf_lines_and_defused_text() {
        let e = export(&table(), Format::Csv).unwrap();
        assert_eq!(e.filename, "rates-532901000000-unit-2025-03-01-2025-04-01.csv");
        assert!(e.bytes.starts_with("\u{feff}".as_bytes()));
        let text = String::from_utf8(e.bytes).unwrap();
        let lines: Vec<&str> = text.trim_start_matches('\u{feff}').split("\r\n").collect();
        assert_eq!(lines[0], HEADERS.join(","));
        assert_eq!(lines[1], "1,532901-SFJ,3,2,66.67%,0,0,—,2,1,0,50.00%,0,0,2");
        assert_eq!(lines[2], "2,'=cmd(),0,0,—,1,0,0.00%,0,0,0,—,0,1,-10");
        assert_eq!(lines[3], ",合计,3,2,66.67%,1,0,0.00%,2,1,0,50.00%,0,1,-8");
        assert_eq!(defuse("+1"), "'+1");
        assert_eq!(defuse("@x"), "'@x");
        assert_eq!(defuse("-x"), "'-x");
        assert_eq!(defuse("a=b"), "a=b");
    }

    #[test]
    fn xlsx_is_a_zip() {
        let e = export(&table(), Format::Xlsx).unwrap();
        assert!(e.bytes.starts_with(b"PK"), "a zip");
        assert!(e.filename.ends_with(".xlsx"));
        assert_eq!(e.content_type, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    }
}
