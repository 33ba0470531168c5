-- CLIP Lab store: runs on MLflow tracking servers (experiments::remote::mlflow).

-- A local run pushed to a tracking server: the MLflow run it became, so pushing again updates that run.
-- Written only once a push has completed.
CREATE TABLE remote_pushes (
    run_id          INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    tracking_uri    TEXT    NOT NULL,
    experiment_id   TEXT    NOT NULL,   -- MLflow's experiment id
    remote_run_id   TEXT    NOT NULL,   -- MLflow's run id
    pushed_at       TEXT    NOT NULL,
    PRIMARY KEY (run_id, tracking_uri)
) WITHOUT ROWID;

-- A run pulled from a tracking server: its local copy is read-only (see the trigger) and is replaced whole when it
-- is pulled again.
CREATE TABLE pulled_runs (
    run_id        INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    tracking_uri  TEXT    NOT NULL,
    remote_run_id TEXT    NOT NULL,
    origin        TEXT    NOT NULL,     -- where it was recorded: '<host>:<store file>#<run id>'
    pulled_at     TEXT    NOT NULL,
    UNIQUE (tracking_uri, remote_run_id)
);

CREATE TRIGGER pulled_runs_are_read_only BEFORE UPDATE ON runs
WHEN EXISTS (SELECT 1 FROM pulled_runs WHERE run_id = OLD.id)
BEGIN
    SELECT RAISE(ABORT, 'a run pulled from a tracking server is read-only');
END;
