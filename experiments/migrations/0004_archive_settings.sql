-- CLIP Lab store: archived runs and the home's settings (issues 13 and 14).

-- Runs hidden from the default views (`runs list` without --all, the app's runs table) without being deleted. A
-- table rather than a column of `runs`: pulled runs are read-only rows (trigger in 0003) and may be archived too.
CREATE TABLE archived_runs (
    run_id      INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    archived_at TEXT    NOT NULL
);

-- Settings of this home, by key (e.g. `mlflow.tracking_uri`, remembered by `mlflow push|pull`).
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
