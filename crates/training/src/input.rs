//! What a trainer reads, and the operator limits on it: a training-data claim
//! check may only name its own dataset's objects in the processed-data
//! bucket; no object over the download limit is fetched (and none beyond its
//! claimed size is read); the processed Parquet is checked against the row,
//! column and decoded-size limits from its footer before it is decoded; the
//! windows cut from it must fit the same budget. Every refusal is permanent
//! (`bad_data`, or the store's own code), so the record goes to the DLQ at once.

use bytes::Bytes;
use claim_check::{ClaimCheckStore, StoreError};
use contracts::TrainingData;
use contracts::error::Code;
use dataset::{DatasetError, ReadLimits};
use kafka_utils::HandlerError;
use series::WindowSpec;

use crate::{Prepared, WindowArgs};

/// Where a trainer's inputs may be and how large they may be (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct InputArgs {
    /// The only bucket a training-data claim check may name (each dataset's
    /// objects under `<identifier>/`).
    #[arg(long, env = "PROCESSED_BUCKET", default_value = "processed-data")]
    pub processed_bucket: String,
    /// Claim checks of larger objects are refused before any download.
    #[arg(long, env = "MAX_OBJECT_BYTES", default_value_t = 512 * 1024 * 1024)]
    pub max_object_bytes: u64,
    /// Processed parts claiming more rows are refused before they are decoded.
    #[arg(long, env = "MAX_INPUT_ROWS", default_value_t = ReadLimits::default().max_rows)]
    pub max_input_rows: u64,
    /// Processed parts with more columns are refused before they are decoded.
    #[arg(long, env = "MAX_INPUT_COLUMNS", default_value_t = ReadLimits::default().max_columns)]
    pub max_input_columns: u64,
    /// Decoded bytes one part (rows x columns x 8, or its pages' declared
    /// sizes) and its windows may take; larger ones are refused before decoding.
    #[arg(long, env = "MAX_DECODED_BYTES", default_value_t = ReadLimits::default().max_decoded_bytes)]
    pub max_decoded_bytes: u64,
}

impl Default for InputArgs {
    fn default() -> Self {
        let l = ReadLimits::default();
        InputArgs {
            processed_bucket: "processed-data".into(),
            max_object_bytes: 512 * 1024 * 1024,
            max_input_rows: l.max_rows,
            max_input_columns: l.max_columns,
            max_decoded_bytes: l.max_decoded_bytes,
        }
    }
}

impl InputArgs {
    pub fn read_limits(&self) -> ReadLimits {
        ReadLimits {
            max_rows: self.max_input_rows,
            max_columns: self.max_input_columns,
            max_decoded_bytes: self.max_decoded_bytes,
        }
    }

    /// Refuse claim checks that name a bucket off the store's allowlist, an
    /// unsafe key, another dataset's objects or another bucket, or objects
    /// over the download limit: before any request.
    pub fn check_claims(&self, store: &ClaimCheckStore, msg: &TrainingData) -> Result<(), HandlerError> {
        for (part, claim) in [("train", &msg.train), ("test", &msg.test), ("scaler", &msg.scaler)] {
            let refuse = |e: StoreError| HandlerError::from(e).context(format!("{part} part"));
            store.check_location(&claim.bucket, &claim.object).map_err(refuse)?;
            claim_check::check_dataset_claim(claim, &self.processed_bucket, &msg.identifier).map_err(refuse)?;
            if claim.size > self.max_object_bytes {
                return Err(refuse(StoreError::TooLarge {
                    bucket: claim.bucket.clone(),
                    key: claim.object.clone(),
                    size: claim.size,
                    limit: self.max_object_bytes,
                }));
            }
        }
        Ok(())
    }

    /// The three objects, each verified and never read past its claimed size.
    pub async fn fetch(
        &self,
        store: &ClaimCheckStore,
        msg: &TrainingData,
    ) -> Result<(Bytes, Bytes, Bytes), HandlerError> {
        self.check_claims(store, msg)?;
        let store = store.clone().with_max_object_bytes(self.max_object_bytes);
        tokio::try_join!(store.get(&msg.train), store.get(&msg.test), store.get(&msg.scaler))
            .map_err(HandlerError::from)
    }

    /// Decode both processed parts under the limits, check they belong to
    /// `config_hash` (the claim check's; `None`: the train part's), and cut
    /// the windows (whose size is checked first).
    pub fn prepare(
        &self,
        train: &[u8],
        test: &[u8],
        config_hash: Option<&str>,
        window: &WindowArgs,
    ) -> Result<Prepared, HandlerError> {
        let limits = self.read_limits();
        let decode = |part: &str, bytes: &[u8]| {
            dataset::read_processed_limited(bytes, &limits).map_err(|e: DatasetError| {
                let code = if e.is_hostile() { Code::BadData } else { Code::BadParquet };
                HandlerError::permanent(code, format!("{part} part: {e}"))
            })
        };
        let (train, meta) = decode("train", train)?;
        let (test, test_meta) = decode("test", test)?;
        let config_hash = config_hash.unwrap_or(&meta.config_hash);
        for (part, hash) in [("train", &meta.config_hash), ("test", &test_meta.config_hash)] {
            if hash != config_hash {
                return Err(HandlerError::permanent(
                    Code::ConfigHashMismatch,
                    format!("{part} part has config_hash {hash}, the claim check says {config_hash}"),
                ));
            }
        }
        let spec = WindowSpec { input_len: window.input_seq_len, output_len: window.output_seq_len };
        let (nf, nt) = (meta.roles.features.len(), meta.roles.targets.len());
        // The dataset's windows, and one more copy per preprocessing candidate (training::candidates).
        let copies = 1 + series::outliers::settings_from_config(&meta.config)
            .map_or(1, |(method, _)| method.candidates().len()) as u64;
        for (part, rows) in [("train", train.len()), ("test", test.len())] {
            let bytes = spec
                .tensor_values(rows, nf, nt)
                .map(|(x, y)| (x as u64 + y as u64).saturating_mul(4).saturating_mul(copies));
            // Too few rows is Prepared's error; too many values to count, or to hold, is ours.
            let fits = rows < spec.rows() || bytes.is_some_and(|b| b <= self.max_decoded_bytes);
            if !fits {
                return Err(HandlerError::permanent(
                    Code::BadData,
                    format!(
                        "{part} part: windows of {} rows over {rows} rows and {nf} features take {} bytes ({copies} \
                         copies: the dataset's and one per preprocessing candidate), over the limit \
                         max_decoded_bytes = {}",
                        spec.rows(),
                        bytes.unwrap_or(u64::MAX),
                        self.max_decoded_bytes
                    ),
                ));
            }
        }
        Prepared::new(train, test, meta, window).map_err(|e| HandlerError::permanent(Code::TooFewRows, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use contracts::{ClaimCheck, V1};

    fn msg(identifier: &str, objects: [(&str, &str, u64); 3]) -> TrainingData {
        let c = |(bucket, object, size): (&str, &str, u64)| ClaimCheck {
            bucket: bucket.into(),
            object: object.into(),
            size,
            sha256: "00".into(),
        };
        TrainingData {
            v: V1,
            identifier: identifier.into(),
            config_hash: "h".into(),
            train: c(objects[0]),
            test: c(objects[1]),
            scaler: c(objects[2]),
            created_at: Utc::now(),
        }
    }

    fn store() -> ClaimCheckStore {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct A {
            #[command(flatten)]
            s3: claim_check::S3Args,
        }
        ClaimCheckStore::new(&A::parse_from(["x"]).s3)
    }

    #[test]
    fn claim_checks_must_name_the_datasets_own_objects_under_the_size_limit() {
        let args = InputArgs { max_object_bytes: 1000, ..Default::default() };
        let store = store();
        let own = |name: &str, size| ("processed-data", format!("site-a/h/{name}"), size);
        let (a, b, c) = (own("train.parquet", 10), own("test.parquet", 10), own("scaler.json", 10));
        let ok = msg("site-a", [(a.0, &a.1, a.2), (b.0, &b.1, b.2), (c.0, &c.1, c.2)]);
        args.check_claims(&store, &ok).unwrap();
        let cases = [
            ("processed-data", "site-b/h/train.parquet", 10, "bad_data"),
            ("inference-logs", "site-a/h/results.jsonl", 10, "bad_data"),
            ("processed-data", "site-a/h/train.parquet", 1001, "object_too_large"),
            ("not-allowed", "site-a/h/train.parquet", 10, "bucket_not_allowed"),
            ("processed-data", "site-a/../site-b/train.parquet", 10, "invalid_key"),
        ];
        for (bucket, object, size, code) in cases {
            let bad = msg("site-a", [(bucket, object, size), (b.0, &b.1, b.2), (c.0, &c.1, c.2)]);
            let e = args.check_claims(&store, &bad).unwrap_err();
            assert_eq!((e.disposition, e.code.as_str()), (kafka_utils::Disposition::Permanent, code), "{object}");
            assert!(e.message().starts_with("train part: "), "{}", e.message());
        }
        let scaler_elsewhere =
            msg("site-a", [(a.0, &a.1, a.2), (b.0, &b.1, b.2), ("processed-data", "site-b/s.json", 1)]);
        assert!(args.check_claims(&store, &scaler_elsewhere).unwrap_err().message().starts_with("scaler part: "));
    }
}
