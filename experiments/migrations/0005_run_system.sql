-- CLIP Lab store: what each run measured about itself (as MLflow's and W&B's system metrics): its speed, its
-- memory, and the machine it ran on.
CREATE TABLE run_system (
    run_id              INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    machine             TEXT    NOT NULL,   -- JSON: model::device::Machine (CPU model, threads, BLAS, version, ...)
    score_images_per_s  REAL,               -- scoring before training: images per second
    train_step_s        REAL,               -- mean wall time of one optimizer step
    train_images_per_s  REAL,               -- training images per second over the fine-tuning phase
    peak_rss_mib        REAL,               -- peak resident memory of the process
    gpu_memory_mib      REAL                -- GPU memory in use at the end, where there is a GPU
);
