//! Every migration applies, reverts to exactly the schema before it, and re-applies to exactly
//! the same schema (the `down.sql` files are proven, not trusted).

use diesel_migrations::MigrationHarness;
use hubspot_sync::store::migrations::{self, MIGRATIONS};

use crate::harness::TestDb;

/// A canonical text form of the public schema: columns, indexes, constraints, functions,
/// triggers, enums and comments (diesel's own bookkeeping table left out).
const SNAPSHOT: &str = r#"
SELECT coalesce(string_agg(line, E'\n' ORDER BY line), '') FROM (
    SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
           || ' ' || coalesce(column_default, '') AS line
      FROM information_schema.columns
     WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'
    UNION ALL
    SELECT 'index ' || indexdef FROM pg_indexes
     WHERE schemaname = 'public' AND tablename <> '__diesel_schema_migrations'
    UNION ALL
    SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
      FROM pg_constraint
     WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> '__diesel_schema_migrations'
    UNION ALL
    SELECT 'function ' || pg_get_functiondef(oid) FROM pg_proc WHERE pronamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL
    SELECT 'enum ' || t.typname || ' ' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
      FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname
    UNION ALL
    SELECT 'comment ' || d.objoid::regclass::text || ' ' || d.objsubid || ' ' || d.description
      FROM pg_description d JOIN pg_class c ON c.oid = d.objoid
     WHERE c.relnamespace = 'public'::regnamespace
) lines
"#;

async fn snapshot(db: &TestDb) -> String {
    let client = db.client().await;
    client.query_one(SNAPSHOT, &[]).await.unwrap().get(0)
}

async fn step(db: &TestDb, forward: bool) {
    migrations::with_sync_connection(&db.target, move |conn| {
        let result = if forward {
            conn.run_next_migration(MIGRATIONS).map(|_| ())
        } else {
            conn.revert_last_migration(MIGRATIONS).map(|_| ())
        };
        result.map_err(hubspot_sync::store::StoreError::Migration)
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn every_migration_reverts_exactly_and_reapplies_identically() {
    let db = TestDb::empty().await;
    let count = migrations_count();
    assert!(count >= 10);
    let mut before = snapshot(&db).await;
    assert_eq!(before, "", "a fresh database has no schema of ours");
    for i in 0..count {
        step(&db, true).await;
        let applied = snapshot(&db).await;
        assert_ne!(applied, before, "migration {i} changed nothing");
        step(&db, false).await;
        assert_eq!(snapshot(&db).await, before, "reverting migration {i} did not restore the schema");
        step(&db, true).await;
        assert_eq!(snapshot(&db).await, applied, "re-applying migration {i} gave another schema");
        before = applied;
    }
    // Nothing is left pending, and `migrate` on an up-to-date database applies nothing.
    assert!(migrations::run_pending(&db.target).await.unwrap().is_empty());
}

#[tokio::test]
async fn migrate_applies_everything_on_an_empty_database() {
    let db = TestDb::empty().await;
    let applied = migrations::run_pending(&db.target).await.unwrap();
    assert_eq!(applied.len(), migrations_count());
    let tables: Vec<String> = db
        .client()
        .await
        .query("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        tables,
        [
            "__diesel_schema_migrations",
            "account_leases",
            "accounts",
            "associations",
            "calls",
            "contact_owner_history",
            "contacts",
            "deal_owner_history",
            "deals",
            "machines",
            "mapped_columns",
            "owner_change_deliveries",
            "privacy_deletions",
            "staff",
            "sync_failures",
            "sync_logs",
            "sync_state",
            "webhook_deliveries",
            "webhook_handoff",
            "webhook_v3_seen"
        ]
    );
}

/// Number of migration folders in `migrations/`.
fn migrations_count() -> usize {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap().count()
}
