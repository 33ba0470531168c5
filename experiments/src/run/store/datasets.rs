//! Datasets: imported once, never changed.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{params, OptionalExtension, Row};

use super::{int, is_unique_violation, uint, Ctx, DatasetInfo, PathCol, SqlPath, Store, StoredSample, NOW};
use crate::data::{ImageRecord, ImportedDataset};
use crate::validation::ValidationReport;
use crate::{Error, Result};

const DATASET_COLUMNS: &str = "id, name, metadata_path, images_dir, columns_json, n_samples, n_images, n_skipped, \
                               content_hash, created_at";

impl Store {
    /// Stores an imported dataset (its row, its images, its samples and its validation report) in one
    /// transaction; returns its id. The name must be new.
    pub fn insert_dataset(&mut self, d: &ImportedDataset) -> Result<i64> {
        let path = self.path.clone();
        let name = d.name.trim();
        if name.is_empty() {
            return Err(Error::Invalid("a dataset needs a name".into()));
        }
        let exists = || Error::Invalid(format!("a dataset named `{name}` already exists"));
        let tx = self.write_tx()?;
        let taken: bool = tx
            .query_row("SELECT EXISTS (SELECT 1 FROM datasets WHERE name = ?1)", [name], |r| r.get(0))
            .ctx(&path, "looking up dataset names")?;
        if taken {
            return Err(exists());
        }
        let columns = serde_json::to_string(&d.columns)?;
        let report = serde_json::to_string(&d.report)?;
        let n_skipped = d.report.total_rows.saturating_sub(d.rows.len());
        tx.execute(
            &format!(
                "INSERT INTO datasets (name, metadata_path, images_dir, columns_json, report_json, n_samples, n_images, \
                 n_skipped, content_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, {NOW})"
            ),
            params![
                name,
                SqlPath(&d.metadata_path),
                d.images_dir.as_deref().map(SqlPath),
                columns,
                report,
                int(d.rows.len()),
                int(d.images.len()),
                int(n_skipped),
                d.content_hash,
            ],
        )
        .map_err(|e| {
            if is_unique_violation(&e) {
                exists()
            } else {
                super::sql_error(&path, format!("storing dataset `{name}`"), e)
            }
        })?;
        let dataset_id = tx.last_insert_rowid();

        insert_rows(&tx, &path, name, dataset_id, d)?;
        tx.commit().ctx(&path, format!("committing dataset `{name}`"))?;
        Ok(dataset_id)
    }

    /// Every dataset, by name.
    pub fn datasets(&self) -> Result<Vec<DatasetInfo>> {
        let sql = format!("SELECT {DATASET_COLUMNS} FROM datasets ORDER BY name");
        self.list(&sql, "listing datasets", dataset_row, Self::finish_dataset)
    }

    /// A dataset by name, or by id (a number that is not a dataset's name).
    pub fn dataset(&self, name_or_id: &str) -> Result<DatasetInfo> {
        let key = name_or_id.trim();
        let by = |sql_where: &str, v: &dyn rusqlite::ToSql| {
            self.conn
                .query_row(&format!("SELECT {DATASET_COLUMNS} FROM datasets WHERE {sql_where}"), [v], dataset_row)
                .optional()
                .ctx(&self.path, format!("looking up dataset `{key}`"))
        };
        let mut found = by("name = ?1", &key)?;
        if found.is_none() {
            if let Ok(id) = key.parse::<i64>() {
                found = by("id = ?1", &id)?;
            }
        }
        match found {
            Some(d) => self.finish_dataset(d),
            None => {
                let known = self.dataset_names()?;
                let known = if known.is_empty() {
                    "none imported yet".to_string()
                } else {
                    format!("known: {}", known.join(", "))
                };
                Err(Error::NotFound { what: "dataset".into(), key: format!("named `{key}`"), hint: format!(" ({known})") })
            }
        }
    }

    fn dataset_names(&self) -> Result<Vec<String>> {
        let mut st =
            self.conn.prepare("SELECT name FROM datasets ORDER BY name").ctx(&self.path, "listing datasets")?;
        let names = st.query_map([], |r| r.get(0)).ctx(&self.path, "listing datasets")?;
        names.collect::<rusqlite::Result<Vec<String>>>().ctx(&self.path, "listing datasets")
    }

    fn finish_dataset(&self, raw: RawDataset) -> Result<DatasetInfo> {
        let columns =
            serde_json::from_str(&raw.columns_json).ctx(&self.path, format!("dataset {}: column map", raw.id))?;
        Ok(DatasetInfo {
            id: raw.id,
            name: raw.name,
            metadata_path: raw.metadata_path,
            images_dir: raw.images_dir,
            columns,
            n_samples: uint(raw.n_samples),
            n_images: uint(raw.n_images),
            n_skipped: uint(raw.n_skipped),
            content_hash: raw.content_hash,
            created_at: raw.created_at,
        })
    }


    /// A dataset's samples, in metadata row order.
    pub fn dataset_samples(&self, dataset_id: i64) -> Result<Vec<StoredSample>> {
        let tx = self.read_tx()?;
        super::check_exists(&tx, &self.path, "dataset", dataset_id)?;
        let mut st = tx
            .prepare(
                "SELECT s.id, s.row, i.filename, s.image_id, i.path, i.sha256, s.choices_json, s.label, s.extra_json \
                 FROM samples s JOIN images i ON i.id = s.image_id WHERE s.dataset_id = ?1 ORDER BY s.row",
            )
            .ctx(&self.path, "reading samples")?;
        let rows = st
            .query_map([dataset_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, PathCol>(4)?.0,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, String>(8)?,
                ))
            })
            .ctx(&self.path, "reading samples")?;
        let mut out = Vec::new();
        for r in rows {
            let (id, row, filename, image_id, image_path, image_sha256, choices, label, extra) =
                r.ctx(&self.path, "reading samples")?;
            out.push(StoredSample {
                id,
                row: uint(row),
                filename,
                image_id,
                image_path,
                image_sha256,
                choices: serde_json::from_str(&choices).ctx(&self.path, format!("sample {id}: choices"))?,
                label: uint(label),
                extra: serde_json::from_str(&extra).ctx(&self.path, format!("sample {id}: extra columns"))?,
            });
        }
        Ok(out)
    }

    /// A dataset's images, by file name.
    pub fn dataset_images(&self, dataset_id: i64) -> Result<Vec<ImageRecord>> {
        let tx = self.read_tx()?;
        super::check_exists(&tx, &self.path, "dataset", dataset_id)?;
        let mut st = tx
            .prepare(
                &format!("SELECT {IMAGE_COLUMNS} FROM images WHERE dataset_id = ?1 ORDER BY filename, id"),
            )
            .ctx(&self.path, "reading images")?;
        let rows = st.query_map([dataset_id], image_row).ctx(&self.path, "reading images")?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(&self.path, "reading images")
    }

    /// One image by its id (the desktop app's thumbnails).
    pub fn image(&self, image_id: i64) -> Result<ImageRecord> {
        self.conn
            .query_row(&format!("SELECT {IMAGE_COLUMNS} FROM images WHERE id = ?1"), [image_id], image_row)
            .optional()
            .ctx(&self.path, "reading an image")?
            .ok_or_else(|| Error::NotFound {
                what: "image".into(),
                key: format!("with id {image_id}"),
                hint: " in the store".into(),
            })
    }

    /// The validation report of a dataset's import.
    pub fn dataset_report(&self, dataset_id: i64) -> Result<ValidationReport> {
        let text: Option<String> = self
            .conn
            .query_row("SELECT report_json FROM datasets WHERE id = ?1", [dataset_id], |r| r.get(0))
            .optional()
            .ctx(&self.path, "reading a validation report")?;
        let text = text.ok_or_else(|| Error::not_found_id("dataset", dataset_id))?;
        serde_json::from_str(&text).ctx(&self.path, format!("dataset {dataset_id}: validation report"))
    }
}

/// Stores a new dataset's images and samples (inside the caller's transaction).
fn insert_rows(tx: &rusqlite::Connection, path: &Path, name: &str, dataset_id: i64, d: &ImportedDataset) -> Result<()> {
    let mut image_ids: HashMap<&str, i64> = HashMap::with_capacity(d.images.len());
    let mut ins = tx
        .prepare(
            "INSERT INTO images (dataset_id, filename, path, sha256, width, height, bytes) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .ctx(path, "storing images")?;
    for im in &d.images {
        let bytes = i64::try_from(im.bytes).unwrap_or(i64::MAX);
        ins.execute(params![dataset_id, im.filename, SqlPath(&im.path), im.sha256, im.width, im.height, bytes])
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::Invalid(format!("dataset `{name}`: image `{}` is listed twice", im.filename))
                } else {
                    super::sql_error(path, format!("storing image {}", im.filename), e)
                }
            })?;
        image_ids.insert(im.filename.as_str(), tx.last_insert_rowid());
    }
    let mut ins = tx
        .prepare(
            "INSERT INTO samples (dataset_id, row, image_id, choices_json, label, extra_json) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .ctx(path, "storing samples")?;
    for r in &d.rows {
        let image_id = *image_ids.get(r.filename.as_str()).ok_or_else(|| {
            Error::Invalid(format!(
                "dataset `{name}`, row {}: image `{}` is not among the dataset's images",
                r.row, r.filename
            ))
        })?;
        crate::vocab::check_label(r.label, r.choices.len(), &format!("dataset `{name}`, row {}", r.row))?;
        let choices = serde_json::to_string(&r.choices)?;
        let extra = serde_json::to_string(&r.extra)?;
        ins.execute(params![dataset_id, int(r.row), image_id, choices, int(r.label), extra]).map_err(|e| {
            if is_unique_violation(&e) {
                Error::Invalid(format!("dataset `{name}`: row {} is listed twice", r.row))
            } else {
                super::sql_error(path, format!("storing row {}", r.row), e)
            }
        })?;
    }
    Ok(())
}

const IMAGE_COLUMNS: &str = "filename, path, sha256, width, height, bytes";

/// An `images` row selected with [`IMAGE_COLUMNS`].
fn image_row(r: &Row<'_>) -> rusqlite::Result<ImageRecord> {
    Ok(ImageRecord {
        filename: r.get(0)?,
        path: r.get::<_, PathCol>(1)?.0,
        sha256: r.get(2)?,
        width: r.get(3)?,
        height: r.get(4)?,
        bytes: u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
    })
}

struct RawDataset {
    id: i64,
    name: String,
    metadata_path: std::path::PathBuf,
    images_dir: Option<std::path::PathBuf>,
    columns_json: String,
    n_samples: i64,
    n_images: i64,
    n_skipped: i64,
    content_hash: String,
    created_at: String,
}

fn dataset_row(r: &Row<'_>) -> rusqlite::Result<RawDataset> {
    Ok(RawDataset {
        id: r.get(0)?,
        name: r.get(1)?,
        metadata_path: r.get::<_, PathCol>(2)?.0,
        images_dir: r.get::<_, Option<PathCol>>(3)?.map(|p| p.0),
        columns_json: r.get(4)?,
        n_samples: r.get(5)?,
        n_images: r.get(6)?,
        n_skipped: r.get(7)?,
        content_hash: r.get(8)?,
        created_at: r.get(9)?,
    })
}
