//! One scope rule in both its forms. A [`ScopeSet`] decides whether a row lies within a principal's reach in
//! Rust ([`ScopeSet::covers`], for one object the service has read) and renders the very same rule as an SQL
//! predicate with its binds ([`ScopeSet::sql`], for lists filtered and counted in the query). Both read the
//! row through one description of where a table keeps what a scope is matched on ([`Columns`]): a row's
//! fields the table has no column for are never matched in either form, so the two cannot drift apart. A
//! property test (`kit/tests/reach.rs`) runs random scopes over random rows on a real database and finds them
//! equal row by row.

use std::fmt::Write as _;

use sqlx::Postgres;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;

use super::ScopeSet;

/// Where a table keeps what a scope is matched on; `None` or empty where it keeps nothing of that kind. The
/// names are SQL expressions as the query writes them (`c.area_path`, `t.unit_code`).
#[derive(Debug, Clone, Copy)]
pub struct Columns {
    /// The division codes from the province down to the village (`text[]`): a scope node on it reaches the row.
    pub area_path: Option<&'static str>,
    /// The grid (`text`, `''` for none): a grid node that is the grid or a grid above it reaches the row.
    pub grid_code: Option<&'static str>,
    /// The unit or units the row was dispatched to.
    pub units: Option<UnitColumn>,
    /// Whose own work the row is (`text`): an own-work scope reaches it through any of these.
    pub own: &'static [&'static str],
    /// Which client submitted the row (`text`): a client scope reaches it through any of these.
    pub client: &'static [&'static str],
}

#[derive(Debug, Clone, Copy)]
pub enum UnitColumn {
    /// One unit (`text`, `''` for none).
    One(&'static str),
    /// Every unit the row has been with (`text[]`).
    Many(&'static str),
}

/// One row's values, as the Rust form reads them. Fields the table has no column for (see [`Columns`]) are
/// not read, whatever they hold.
#[derive(Debug, Clone, Copy, Default)]
pub struct Row<'a> {
    pub area_path: &'a [String],
    pub grid_code: &'a str,
    pub units: &'a [String],
    pub own: &'a [&'a str],
    pub client: &'a [&'a str],
}

impl ScopeSet {
    /// Whether the scope reaches the row: everything, a scope node on its area path or at or above its grid,
    /// one of its units, or the principal's own work or own client's submission.
    pub fn covers(&self, cols: &Columns, row: &Row<'_>) -> bool {
        if self.all {
            return true;
        }
        let area: &[String] = if cols.area_path.is_some() { row.area_path } else { &[] };
        let grid = if cols.grid_code.is_some() { row.grid_code } else { "" };
        let place = self.nodes.iter().any(|n| area.contains(n) || (!grid.is_empty() && grid.starts_with(n.as_str())));
        let unit = cols.units.is_some() && row.units.iter().any(|u| !u.is_empty() && self.units.contains(u));
        let named = |who: &Option<String>, columns: &[&str], values: &[&str]| {
            who.as_deref()
                .is_some_and(|w| !w.is_empty() && values.iter().take(columns.len()).any(|v| !v.is_empty() && *v == w))
        };
        place || unit || named(&self.own, cols.own, row.own) || named(&self.client, cols.client, row.client)
    }

    /// The SQL form of [`Self::covers`] over `cols`: a parenthesised predicate whose parameters are numbered
    /// from `$first` (put them after the query's own), bound by [`ScopeSql::bind`].
    pub fn sql(&self, cols: &Columns, first: usize) -> ScopeSql<'_> {
        let mut text = String::new();
        let mut binds = Vec::new();
        let mut next = |b: Bound| {
            binds.push(b);
            first + binds.len() - 1
        };
        let all = next(Bound::All);
        let _ = write!(text, "(${all}");
        if cols.area_path.is_some() || cols.grid_code.is_some() {
            let nodes = next(Bound::Nodes);
            if let Some(area) = cols.area_path {
                let _ = write!(text, " OR {area} && ${nodes}::text[]");
            }
            if let Some(grid) = cols.grid_code {
                let _ = write!(
                    text,
                    " OR ({grid} <> '' AND EXISTS (SELECT 1 FROM unnest(${nodes}::text[]) n WHERE starts_with({grid}, n)))"
                );
            }
        }
        if let Some(units) = cols.units {
            let p = next(Bound::Units);
            match units {
                UnitColumn::One(unit) => {
                    let _ = write!(text, " OR ({unit} <> '' AND {unit} = ANY(${p}::text[]))");
                }
                UnitColumn::Many(units) => {
                    let _ = write!(
                        text,
                        " OR EXISTS (SELECT 1 FROM unnest({units}) u WHERE u <> '' AND u = ANY(${p}::text[]))"
                    );
                }
            }
        }
        for (columns, bound) in [(cols.own, Bound::Own), (cols.client, Bound::Client)] {
            if columns.is_empty() {
                continue;
            }
            let p = next(bound);
            let any: Vec<String> = columns.iter().map(|c| format!("{c} = ${p}")).collect();
            let _ = write!(text, " OR (${p}::text <> '' AND ({}))", any.join(" OR "));
        }
        text.push(')');
        ScopeSql { text, binds, scope: self }
    }
}

#[derive(Debug, Clone, Copy)]
enum Bound {
    All,
    Nodes,
    Units,
    Own,
    Client,
}

/// A scope as an SQL predicate: its text (`Display`) and its parameters, in order.
#[derive(Debug)]
pub struct ScopeSql<'a> {
    text: String,
    binds: Vec<Bound>,
    scope: &'a ScopeSet,
}

impl std::fmt::Display for ScopeSql<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'a> ScopeSql<'a> {
    /// How many parameters the predicate takes.
    pub fn len(&self) -> usize {
        self.binds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.binds.is_empty()
    }

    /// Binds the predicate's parameters onto a query that has bound all of its own (numbered before them).
    pub fn bind<'q, O>(
        &'q self,
        mut q: QueryAs<'q, Postgres, O, PgArguments>,
    ) -> QueryAs<'q, Postgres, O, PgArguments> {
        let s = self.scope;
        for b in &self.binds {
            q = match b {
                Bound::All => q.bind(s.all),
                Bound::Nodes => q.bind(&s.nodes),
                Bound::Units => q.bind(&s.units),
                Bound::Own => q.bind(s.own.as_deref().unwrap_or_default()),
                Bound::Client => q.bind(s.client.as_deref().unwrap_or_default()),
            };
        }
        q
    }
}
