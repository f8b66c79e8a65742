//! What `audit_verify` and `audit_anchor` share: their arguments and the connection to one service's schema.

use std::path::PathBuf;

use kit::config::string_or;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// `--schema NAME[,NAME…]` (repeatable) and `--anchors FILE`, in either `--flag value` or `--flag=value` form.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub schemas: Vec<String>,
    pub anchors: Option<PathBuf>,
}

pub fn parse(mut args: impl Iterator<Item = String>, usage: &str) -> anyhow::Result<Args> {
    let mut out = Args::default();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value =
            || inline.clone().or_else(|| args.next()).ok_or_else(|| anyhow::anyhow!("{flag} needs a value\n{usage}"));
        match flag.as_str() {
            "--schema" => {
                out.schemas.extend(value()?.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from))
            }
            "--anchors" => out.anchors = Some(PathBuf::from(value()?)),
            _ => anyhow::bail!("unexpected argument {arg:?}\n{usage}"),
        }
    }
    if out.schemas.is_empty() {
        anyhow::bail!("--schema is required\n{usage}");
    }
    for schema in &out.schemas {
        if !schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            anyhow::bail!("--schema must be lowercase letters, digits and underscores, got {schema:?}");
        }
    }
    Ok(out)
}

/// One connection to `schema` in DATABASE_URL's database (default the local `zongzhi`), checked to hold an
/// audit trail so a wrong schema reads as such rather than as a missing-relation error.
pub async fn pool(schema: &str) -> anyhow::Result<PgPool> {
    let url = string_or("DATABASE_URL", kit::config::DEFAULT_DATABASE_URL);
    let options = url
        .parse::<PgConnectOptions>()
        .map_err(|e| anyhow::anyhow!("DATABASE_URL does not parse: {e}"))?
        .options([("search_path", schema)]);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL at {}: {e}", kit::db::redact(&url)))?;
    let has_trail: bool = sqlx::query_scalar("SELECT to_regclass('audit_head') IS NOT NULL").fetch_one(&pool).await?;
    if !has_trail {
        anyhow::bail!("schema {schema:?} has no audit trail (audit_head not found)");
    }
    Ok(pool)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(s: &str) -> anyhow::Result<Args> {
        parse(s.split_whitespace().map(String::from), "usage")
    }

    #[test]
    fn schemas_and_anchors_in_either_form() {
        let a = args("--schema intake,routing --schema=registry --anchors=/x/a.jsonl").unwrap();
        assert_eq!(a.schemas, ["intake", "routing", "registry"]);
        assert_eq!(a.anchors.unwrap(), PathBuf::from("/x/a.jsonl"));
        assert!(args("").unwrap_err().to_string().contains("--schema is required"));
        assert!(args("--schema").unwrap_err().to_string().contains("needs a value"));
        assert!(args("--schema Intake").is_err());
        assert!(args("--schema intake --bogus").unwrap_err().to_string().contains("unexpected"));
    }
}
