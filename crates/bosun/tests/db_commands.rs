//! `bosun db ...` end to end: store selection and its errors, the migrate/seed/check
//! workflow on SQLite and PostgreSQL, and `db check` catching corruption.

mod common;

use bosun_store::testing::{TestLocation, postgres_admin_url};
use bosun_store::{Backend, StoreLocation};
use common::{bosun, fails_with_one_line, ok, run, stderr, stdout};

#[test]
fn an_unsupported_scheme_is_one_line_without_the_password() {
    let line =
        fails_with_one_line(bosun().args(["db", "--store", "mysql://root:hunter2@db/fleet", "migrate", "status"]));
    assert_eq!(
        line,
        "error: unsupported store URL scheme \"mysql\" in mysql://root:***@db/fleet: \
         use sqlite://PATH, postgres://USER:PASSWORD@HOST:PORT/DB or memory://"
    );
    let line = fails_with_one_line(bosun().args(["db", "check"]).env("BOSUN_STORE", "redis://:hunter2@cache"));
    assert!(line.contains("\"redis\"") && !line.contains("hunter2"), "{line}");
    let line = fails_with_one_line(bosun().args(["db", "--store", "bosun.db", "check"]));
    assert!(line.contains("store URL bosun.db is malformed"), "{line}");
}

#[test]
fn an_unreachable_server_is_one_line_without_the_password() {
    let line =
        fails_with_one_line(bosun().args(["db", "--store", "postgres://bosun:hunter2@127.0.0.1:1/fleet", "check"]));
    assert_eq!(
        line,
        "error: cannot connect to postgres://bosun:***@127.0.0.1:1/fleet: connection refused; \
         is the server running and listening on that host and port?"
    );
}

#[test]
fn a_wrong_password_is_one_line_without_the_password() {
    let Some(admin) = postgres_admin_url() else { return };
    let mut url = url::Url::parse(&admin).expect("valid url");
    url.set_password(Some("not-the-password")).expect("settable");
    let line = fails_with_one_line(bosun().args(["db", "--store", url.as_str(), "migrate", "status"]));
    assert!(line.contains("authentication failed"), "{line}");
    assert!(!line.contains("not-the-password"), "{line}");
}

#[test]
fn a_missing_directory_is_one_line() {
    let line = fails_with_one_line(bosun().args(["db", "--store", "sqlite:///no/such/dir/bosun.db", "migrate", "up"]));
    assert_eq!(
        line,
        "error: cannot open sqlite:///no/such/dir/bosun.db: directory /no/such/dir does not exist; \
         create it or choose another path"
    );
}

#[test]
fn store_type_and_database_url_are_honoured() {
    let line = fails_with_one_line(bosun().args(["db", "check"]).env("STORE_TYPE", "postgres"));
    assert_eq!(line, "error: STORE_TYPE=postgres needs DATABASE_URL to say where the database is");
    let line = fails_with_one_line(bosun().args(["db", "check"]).env("STORE_TYPE", "cassandra"));
    assert_eq!(line, "error: STORE_TYPE=\"cassandra\" is not one of memory, sqlite or postgres");
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("legacy.db");
    let out = ok(bosun()
        .args(["db", "migrate", "up"])
        .env("STORE_TYPE", "sqlite")
        .env("DATABASE_URL", path.to_str().expect("utf-8 path")));
    assert!(out.contains(&format!("schema is at version {}", latest_version())), "{out}");
    assert!(path.exists());
}

#[test]
fn usage_errors_exit_2() {
    let output = run(bosun().args(["db", "migrate", "down"]));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let output = run(bosun().args(["db", "seed", "--nodes", "0"]));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn reset_needs_confirmation() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = format!("sqlite://{}", dir.path().join("bosun.db").display());
    ok(bosun().args(["db", "--store", &store, "migrate", "up"]));
    let line = fails_with_one_line(bosun().args(["db", "--store", &store, "migrate", "reset"]));
    assert!(line.contains("refusing to reset") && line.contains("--yes"), "{line}");
    let out = ok(bosun().args(["db", "--store", &store, "migrate", "reset", "--yes"]));
    assert!(out.contains(&format!("reset; schema is at version {}", latest_version())), "{out}");
}

/// The newest schema version this build ships (both backends ship the same versions).
fn latest_version() -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bosun-store/migrations/sqlite");
    std::fs::read_dir(dir)
        .expect("migrations directory")
        .filter(|e| e.as_ref().expect("entry").file_name().to_string_lossy().ends_with(".up.sql"))
        .count()
}

/// migrate up, seed, check, status; then the same commands on a schema-less database.
fn workflow(location: &StoreLocation) {
    let store = location_url(location);
    let latest = latest_version();
    let status = ok(bosun().args(["db", "--store", &store, "migrate", "status"]));
    assert!(status.contains(&format!("version 0 of {latest}")) && status.contains("pending"), "{status}");
    let line = fails_with_one_line(bosun().args(["db", "--store", &store, "seed", "--nodes", "10"]));
    assert!(line.contains("run `bosun db migrate up`"), "{line}");

    let up = ok(bosun().args(["db", "--store", &store, "migrate", "up"]));
    assert!(up.contains("applied 1 initial"), "{up}");
    let seeded = ok(bosun().args(["db", "--store", &store, "seed", "--nodes", "300"]));
    assert!(seeded.starts_with("seeded 300 nodes"), "{seeded}");
    let checked = ok(bosun().args(["db", "--store", &store, "check"]));
    assert!(checked.contains("consistent (300 nodes, 300 instances"), "{checked}");
    let again = fails_with_one_line(bosun().args(["db", "--store", &store, "seed", "--nodes", "5"]));
    assert!(again.contains("already holds a seeded fleet"), "{again}");
    let status = ok(bosun().args(["db", "--store", &store, "migrate", "status"]));
    assert!(status.contains(&format!("version {latest} of {latest} (up to date)")), "{status}");
}

fn location_url(location: &StoreLocation) -> String {
    match location {
        StoreLocation::Postgres { url } => url.to_string(),
        other => other.to_string(),
    }
}

#[tokio::test]
async fn workflow_on_sqlite() {
    let test = TestLocation::new(Backend::Sqlite).await.expect("sqlite");
    workflow(&test.location);
}

#[tokio::test]
async fn workflow_on_postgres() {
    let Some(test) = TestLocation::new(Backend::Postgres).await else { return };
    workflow(&test.location);
}

/// Breaks referential integrity and a revision behind bosun's back, then expects
/// `db check` to list each problem and exit 1.
async fn check_reports_corruption(backend: Backend, corrupt: &[&'static str]) {
    let Some(test) = TestLocation::new(backend).await else { return };
    let store = location_url(&test.location);
    ok(bosun().args(["db", "--store", &store, "migrate", "up"]));
    ok(bosun().args(["db", "--store", &store, "seed", "--nodes", "50"]));
    execute(&test.location, corrupt).await;
    let output = run(bosun().args(["db", "--store", &store, "check"]));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report = stdout(&output);
    assert!(report.contains("[orphans] instance training-00001: refers to missing training-00001"), "{report}");
    assert!(
        report.contains("[revisions] node training-00002: is at revision 9"),
        "a revision that jumped without a change record must be reported: {report}"
    );
    assert!(report.contains("[revisions] node training-00001: is gone but was never deleted"), "{report}");
    assert!(stderr(&output).contains("integrity problem(s) found"));
}

async fn execute(location: &StoreLocation, statements: &[&'static str]) {
    use sqlx::Connection as _;
    match location {
        StoreLocation::Sqlite { path } => {
            let mut conn =
                sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.expect("connect");
            for sql in statements {
                sqlx::raw_sql(*sql).execute(&mut conn).await.expect(sql);
            }
        }
        StoreLocation::Postgres { url } => {
            let mut conn = sqlx::PgConnection::connect(url.as_str()).await.expect("connect");
            for sql in statements {
                sqlx::raw_sql(*sql).execute(&mut conn).await.expect(sql);
            }
        }
        StoreLocation::Memory => unreachable!("memory has no SQL"),
    }
}

#[tokio::test]
async fn check_reports_corruption_on_sqlite() {
    check_reports_corruption(
        Backend::Sqlite,
        &[
            "PRAGMA foreign_keys = OFF",
            "DELETE FROM nodes WHERE node_id = 'training-00001'",
            "UPDATE nodes SET revision = 9 WHERE node_id = 'training-00002'",
        ],
    )
    .await;
}

#[tokio::test]
async fn check_reports_corruption_on_postgres() {
    check_reports_corruption(
        Backend::Postgres,
        &[
            // Replica mode skips foreign-key triggers, as a careless restore would.
            "SET session_replication_role = replica",
            "DELETE FROM nodes WHERE node_id = 'training-00001'",
            "UPDATE nodes SET revision = 9 WHERE node_id = 'training-00002'",
        ],
    )
    .await;
}
