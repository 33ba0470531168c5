-- CLIP Lab store, schema version 1.
--
-- Conventions: ids are INTEGER PRIMARY KEY; times are UTC ISO-8601 text ('2025-01-31T12:00:00.000Z');
-- JSON columns hold JSON text; paths are text (a path that is not valid UTF-8 is stored as its raw bytes, a BLOB);
-- a NULL in a REAL loss/probability column is a NaN. Model weights are never stored here, only paths to them.

-- Datasets are immutable once imported (see the triggers at the end).
CREATE TABLE datasets (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    metadata_path TEXT    NOT NULL,
    images_dir    TEXT,
    columns_json  TEXT    NOT NULL,   -- dataset::ColumnMap
    report_json   TEXT    NOT NULL,   -- dataset::ValidationReport
    n_samples     INTEGER NOT NULL,
    n_images      INTEGER NOT NULL,
    n_skipped     INTEGER NOT NULL,
    content_hash  TEXT    NOT NULL,
    created_at    TEXT    NOT NULL
);

CREATE TABLE images (
    id         INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    filename   TEXT    NOT NULL,
    path       TEXT    NOT NULL,
    sha256     TEXT    NOT NULL,
    width      INTEGER NOT NULL,
    height     INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    UNIQUE (dataset_id, filename),
    UNIQUE (id, dataset_id)            -- target of samples' composite foreign key
);

CREATE TABLE samples (
    id           INTEGER PRIMARY KEY,
    dataset_id   INTEGER NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    row          INTEGER NOT NULL,     -- 1-based row of the metadata file
    image_id     INTEGER NOT NULL,
    choices_json TEXT    NOT NULL,     -- JSON array of strings
    label        INTEGER NOT NULL,     -- 0-based index into choices
    extra_json   TEXT    NOT NULL,     -- JSON object: every other metadata column
    UNIQUE (dataset_id, row),
    -- A sample's image belongs to the sample's own dataset.
    FOREIGN KEY (image_id, dataset_id) REFERENCES images (id, dataset_id)
);
CREATE INDEX samples_image ON samples (image_id, dataset_id);

CREATE TABLE experiments (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    dataset_id INTEGER NOT NULL REFERENCES datasets (id),
    spec_json  TEXT    NOT NULL,       -- spec::ExperimentSpec
    spec_toml  TEXT    NOT NULL,       -- the same spec as TOML, for people
    created_at TEXT    NOT NULL
);
CREATE INDEX experiments_dataset ON experiments (dataset_id);

CREATE TABLE runs (
    id            INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    status        TEXT    NOT NULL
        CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled', 'interrupted')),
    device        TEXT,
    created_at    TEXT    NOT NULL,
    started_at    TEXT,
    ended_at      TEXT,
    error         TEXT,
    -- The process that owns the run: if it is gone while the run is queued/running, the run was interrupted.
    owner_pid     INTEGER NOT NULL,
    owner_host    TEXT    NOT NULL,
    owner_start   TEXT,                -- Linux: '<boot id>/<starttime of /proc/<pid>/stat>'; NULL without /proc
    heartbeat_at  TEXT    NOT NULL,    -- liveness fallback where the start marker cannot be checked
    -- Current phase and progress (updated in place, never one row per progress event).
    phase         TEXT,
    phase_done    INTEGER,
    phase_total   INTEGER,
    phase_eta_s   REAL,
    -- Metric summaries (engine::Summary); a NULL *_n means "not measured".
    train_before_n               INTEGER,
    train_before_mean_label_prob REAL,
    train_before_accuracy        REAL,
    train_after_n                INTEGER,
    train_after_mean_label_prob  REAL,
    train_after_accuracy         REAL,
    heldout_before_n               INTEGER,
    heldout_before_mean_label_prob REAL,
    heldout_before_accuracy        REAL,
    heldout_after_n                INTEGER,
    heldout_after_mean_label_prob  REAL,
    heldout_after_accuracy         REAL,
    checkpoint_path TEXT
);
CREATE INDEX runs_experiment ON runs (experiment_id);
CREATE INDEX runs_active ON runs (status) WHERE status IN ('queued', 'running');

-- The samples a run trains / is evaluated on, in draw order.
CREATE TABLE run_splits (
    run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    split     TEXT    NOT NULL CHECK (split IN ('train', 'heldout')),
    position  INTEGER NOT NULL,
    sample_id INTEGER NOT NULL REFERENCES samples (id),
    PRIMARY KEY (run_id, split, position)
) WITHOUT ROWID;
CREATE INDEX run_splits_sample ON run_splits (sample_id);

CREATE TABLE step_losses (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step   INTEGER NOT NULL,           -- from 1 over the whole run
    epoch  INTEGER NOT NULL,
    loss   REAL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;

CREATE TABLE epoch_losses (
    run_id       INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    epoch        INTEGER NOT NULL,
    train_loss   REAL,
    has_heldout  INTEGER NOT NULL CHECK (has_heldout IN (0, 1)),
    heldout_loss REAL,
    PRIMARY KEY (run_id, epoch)
) WITHOUT ROWID;

CREATE TABLE run_log (
    id      INTEGER PRIMARY KEY,
    run_id  INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    at      TEXT    NOT NULL,
    message TEXT    NOT NULL
);
CREATE INDEX run_log_run ON run_log (run_id, id);

-- One row per (run, phase, split, sample): every choice's probability and logit.
CREATE TABLE scores (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    phase       TEXT    NOT NULL CHECK (phase IN ('before', 'after')),
    split       TEXT    NOT NULL CHECK (split IN ('train', 'heldout')),
    sample_id   INTEGER NOT NULL REFERENCES samples (id),
    probs_json  TEXT    NOT NULL,      -- JSON array of numbers (null: NaN)
    logits_json TEXT    NOT NULL,
    label       INTEGER NOT NULL,
    label_prob  REAL,
    correct     INTEGER NOT NULL CHECK (correct IN (0, 1)),
    UNIQUE (run_id, phase, split, sample_id)
);
CREATE INDEX scores_sample ON scores (sample_id);

CREATE TRIGGER datasets_are_immutable BEFORE UPDATE ON datasets
BEGIN
    SELECT RAISE(ABORT, 'a dataset is immutable once imported');
END;

CREATE TRIGGER dataset_images_are_immutable BEFORE UPDATE ON images
BEGIN
    SELECT RAISE(ABORT, 'a dataset is immutable once imported');
END;

CREATE TRIGGER dataset_samples_are_immutable BEFORE UPDATE ON samples
BEGIN
    SELECT RAISE(ABORT, 'a dataset is immutable once imported');
END;
