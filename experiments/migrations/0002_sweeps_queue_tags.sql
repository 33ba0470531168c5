-- CLIP Lab store, schema version 2: sweeps, the run queue, tags and notes, run folders.

-- A sweep: one spec expanded over a grid of hyperparameters; each grid point is an experiment with one run.
CREATE TABLE sweeps (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    grid_json  TEXT    NOT NULL,       -- run::sweep::Grid: [{"key": "train.lr", "values": [1e-5, 3e-5]}, ...]
    created_at TEXT    NOT NULL
);

ALTER TABLE runs ADD COLUMN sweep_id INTEGER REFERENCES sweeps (id) ON DELETE SET NULL;
CREATE INDEX runs_sweep ON runs (sweep_id);
-- The folder the run claimed under `<home>/runs/` (set before it writes anything there): what deleting the run
-- removes. NULL: it claimed none (yet).
ALTER TABLE runs ADD COLUMN run_dir TEXT;
ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT '';
ALTER TABLE experiments ADD COLUMN note TEXT NOT NULL DEFAULT '';

-- Runs waiting for a worker (`cliplab queue run`, the app's worker), in `position` order. A run leaves the queue
-- when a worker claims it (in the transaction that makes the worker its owner) or is cancelled. Queued runs
-- have no owning process: the recovery of dead runs leaves them alone, so they survive restarts.
CREATE TABLE run_queue (
    run_id   INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    position INTEGER NOT NULL
);
CREATE INDEX run_queue_position ON run_queue (position, run_id);

CREATE TABLE run_tags (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    tag    TEXT    NOT NULL,
    PRIMARY KEY (run_id, tag)
) WITHOUT ROWID;
CREATE INDEX run_tags_tag ON run_tags (tag);

CREATE TABLE experiment_tags (
    experiment_id INTEGER NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    tag           TEXT    NOT NULL,
    PRIMARY KEY (experiment_id, tag)
) WITHOUT ROWID;
CREATE INDEX experiment_tags_tag ON experiment_tags (tag);
