//! Template databases: what every test of a kind needs before it starts (the schemas migrated, the division
//! tree imported) is made once per test process and copied for each test (`CREATE DATABASE … TEMPLATE`), which
//! takes a fraction of the time the migrations and the import take again and again.
//!
//! A template lives only while a copy of it is in use: the last test to drop its copy drops the template, so a
//! test process leaves nothing behind, and a later test of the kind has it made again. Templates of test
//! processes that died before dropping theirs are swept when a template is next made.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use sqlx::Connection as _;

/// A template is named after the process that made it, so that a sweep can tell whether its maker still runs.
pub(super) const PREFIX: &str = "zz_tpl_";

struct Template {
    db: String,
    /// Copies of it not yet dropped.
    copies: usize,
}

/// By kind. A tokio mutex, held across the making of a template (the tests of the kind wait for it), and
/// taken from every test's own runtime and from the cleanup threads' runtimes alike.
static TEMPLATES: LazyLock<tokio::sync::Mutex<BTreeMap<&'static str, Template>>> = LazyLock::new(Default::default);

/// The name of `kind`'s template, made by `make` if this process holds none now, counted as in use until
/// [`release`].
pub(super) async fn lease<M, F>(admin_url: &str, kind: &'static str, make: M) -> String
where
    M: FnOnce() -> F,
    F: Future<Output = String>,
{
    let mut templates = TEMPLATES.lock().await;
    if !templates.contains_key(kind) {
        let ours: Vec<&str> = templates.values().map(|t| t.db.as_str()).collect();
        sweep(admin_url, &ours).await;
        let db = make().await;
        // A connection the maker left open would refuse every copy ("source database is being accessed by
        // other users").
        execute(admin_url, &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"))
            .await;
        templates.insert(kind, Template { db, copies: 0 });
    }
    let template = templates.get_mut(kind).expect("made above");
    template.copies += 1;
    template.db.clone()
}

/// One copy of `kind`'s template was dropped; the last drops the template.
pub(super) async fn release(admin_url: &str, kind: &'static str) {
    let mut templates = TEMPLATES.lock().await;
    let Some(template) = templates.get_mut(kind) else { return };
    template.copies = template.copies.saturating_sub(1);
    if template.copies == 0
        && let Some(template) = templates.remove(kind)
    {
        execute(admin_url, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", template.db)).await;
    }
}

/// Drops the templates whose making process is gone (killed before its last test dropped its copy), and this
/// process's own that are not in use (a making that failed half-way).
async fn sweep(admin_url: &str, ours: &[&str]) {
    let Ok(mut admin) = admin(admin_url).await else { return };
    let pattern = format!("{}%", PREFIX.replace('_', "\\_"));
    let names: Vec<String> = sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
        .bind(pattern)
        .fetch_all(&mut admin)
        .await
        .unwrap_or_default();
    let own = std::process::id();
    for name in names {
        let maker = name.strip_prefix(PREFIX).and_then(|rest| rest.split('_').next()?.parse::<u32>().ok());
        let alive = maker.is_some_and(|pid| pid != own && std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive && !ours.contains(&name.as_str()) {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await;
        }
    }
}

async fn admin(admin_url: &str) -> sqlx::Result<sqlx::PgConnection> {
    sqlx::PgConnection::connect_with(&admin_url.parse::<sqlx::postgres::PgConnectOptions>()?).await
}

/// Runs one statement on the admin database, for cleanup (where failing is only leaving something behind).
async fn execute(admin_url: &str, sql: &str) {
    if let Ok(mut admin) = admin(admin_url).await {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut admin).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::super::TestInfra;

    static MADE: AtomicUsize = AtomicUsize::new(0);

    async fn make(template: TestInfra) {
        MADE.fetch_add(1, Ordering::SeqCst);
        let pool = template.pool("public").await;
        sqlx::raw_sql("CREATE TABLE made (n int); INSERT INTO made VALUES (1)").execute(&pool).await.unwrap();
        // Left open on purpose: the lease closes what the maker forgot.
        std::mem::forget(pool);
    }

    async fn templates_of_this_process(infra: &TestInfra) -> i64 {
        let pool = infra.pool("public").await;
        let pattern = format!("{}{}\\_%", super::PREFIX.replace('_', "\\_"), std::process::id());
        sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname LIKE $1")
            .bind(pattern)
            .fetch_one(&pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn copies_share_one_making_and_the_last_copy_drops_the_template() {
        let a = TestInfra::from_template("kit_test", make).await;
        let b = TestInfra::from_template("kit_test", make).await;
        assert_eq!(MADE.load(Ordering::SeqCst), 1, "made once for both");
        let (pa, pb) = (a.pool("public").await, b.pool("public").await);
        sqlx::query("INSERT INTO made VALUES (2)").execute(&pa).await.unwrap();
        let rows = |pool| sqlx::query_scalar::<_, i64>("SELECT count(*) FROM made").fetch_one(pool);
        assert_eq!((rows(&pa).await.unwrap(), rows(&pb).await.unwrap()), (2, 1), "each copy is its own");
        pa.close().await;
        pb.close().await;
        let witness = TestInfra::new().await;
        assert_eq!(templates_of_this_process(&witness).await, 1);
        drop(a);
        assert_eq!(templates_of_this_process(&witness).await, 1, "a copy is still in use");
        drop(b);
        assert_eq!(templates_of_this_process(&witness).await, 0, "the last copy dropped it");
        let c = TestInfra::from_template("kit_test", make).await;
        assert_eq!(MADE.load(Ordering::SeqCst), 2, "made again when asked again");
        drop(c);
        assert_eq!(templates_of_this_process(&witness).await, 0);
    }
}
