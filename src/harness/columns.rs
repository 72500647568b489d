//! Reading an external trainer's CSV as it grows, and mapping its columns onto `metrics.csv`'s.
//!
//! [`Tail`] returns each complete line once it is flushed (a line without its newline is not
//! read yet). [`Columns`] maps the header: each metric takes the column `trainer.metrics` names
//! for it, else a column of its own name. The training step is required; the environment step
//! defaults to it, the wall time to the harness's clock; a metric with no column stays empty
//! ("not measured"). A value that is NaN or infinite counts in the row's `nonfinite`.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::results::metrics::{Kind, TABLE};
use crate::results::{Metric, MetricRow};

/// Complete lines appended to a file since the last read.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    /// 1-based number of the next complete line.
    line: u64,
    /// The last bytes read (up to [`TAIL_CHECK`]), which must still be there next time: a file
    /// rewritten from its start (truncated, then written past the old length between two reads)
    /// has other bytes there.
    seen: Vec<u8>,
}

/// Bytes before the read position compared on every read, to notice a rewritten file.
const TAIL_CHECK: usize = 64;

impl Tail {
    /// A reader of `path` from its start (the file may not exist yet).
    pub fn new(path: &Path) -> Tail {
        Tail {
            path: path.to_path_buf(),
            offset: 0,
            partial: Vec::new(),
            line: 1,
            seen: Vec::new(),
        }
    }

    /// The complete lines flushed since the last call, each with its line number. A file that
    /// shrank was rewritten: it is read again from its start (`restarted` is then true).
    pub fn read(&mut self) -> std::io::Result<(Vec<(u64, String)>, bool)> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), false)),
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        let restarted = len < self.offset || !self.still_there(&mut f)?;
        if restarted {
            self.offset = 0;
            self.partial.clear();
            self.line = 1;
            self.seen.clear();
        }
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.take(len - self.offset).read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        self.seen.extend_from_slice(&buf);
        let cut = self.seen.len().saturating_sub(TAIL_CHECK);
        self.seen.drain(..cut);
        self.partial.extend_from_slice(&buf);
        let mut lines = Vec::new();
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.partial.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&raw[..nl])
                .trim_end_matches('\r')
                .to_string();
            lines.push((self.line, text));
            self.line += 1;
        }
        Ok((lines, restarted))
    }
}

impl Tail {
    /// Whether the bytes last read are still where they were.
    fn still_there(&self, f: &mut std::fs::File) -> std::io::Result<bool> {
        if self.seen.is_empty() {
            return Ok(true);
        }
        let mut now = vec![0u8; self.seen.len()];
        f.seek(SeekFrom::Start(self.offset - self.seen.len() as u64))?;
        f.read_exact(&mut now)?;
        Ok(now == self.seen)
    }
}

/// Splits one CSV line into its fields (quotes as the csv crate reads them).
pub fn fields(line: &str) -> Vec<String> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line.as_bytes());
    r.records()
        .next()
        .and_then(Result::ok)
        .map(|rec| rec.iter().map(|f| f.trim().to_string()).collect())
        .unwrap_or_default()
}

/// The trainer's header mapped onto the metrics.
#[derive(Debug, Clone)]
pub struct Columns {
    /// For each metric (in [`Metric::ALL`] order), the index of the trainer's column.
    index: Vec<Option<usize>>,
    /// How many fields a row has.
    width: usize,
    /// Metrics mapped by `trainer.metrics` to a column the header lacks: (metric, column).
    pub missing: Vec<(String, String)>,
}

/// Why the trainer's CSV cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ColumnsError {
    #[error("its header has no training-step column `{column}` ({why}); the header is: {header}")]
    NoTrainStep {
        column: String,
        why: &'static str,
        header: String,
    },
}

impl Columns {
    /// Maps `header` with `mapping` (metric name → column).
    pub fn new(
        header: &[String],
        mapping: &BTreeMap<String, String>,
    ) -> Result<Columns, ColumnsError> {
        let mut missing = Vec::new();
        let index: Vec<Option<usize>> = Metric::ALL
            .iter()
            .map(|m| {
                let wanted = mapping.get(m.name());
                let column = wanted.map(String::as_str).unwrap_or(m.name());
                let at = header.iter().position(|h| h == column);
                if at.is_none() {
                    if let Some(c) = wanted {
                        missing.push((m.name().to_string(), c.clone()));
                    }
                }
                at
            })
            .collect();
        if index[Metric::TrainStep as usize].is_none() {
            let mapped = mapping.get(Metric::TrainStep.name());
            return Err(ColumnsError::NoTrainStep {
                column: mapped
                    .cloned()
                    .unwrap_or_else(|| Metric::TrainStep.name().to_string()),
                why: if mapped.is_some() {
                    "trainer.metrics maps train_step to it"
                } else {
                    "name it `train_step`, or map it with `trainer.metrics: { train_step: YOUR_COLUMN }`"
                },
                header: header.join(","),
            });
        }
        Ok(Columns {
            index,
            width: header.len(),
            missing,
        })
    }

    /// Whether the trainer writes `metric`.
    pub fn has(&self, metric: Metric) -> bool {
        self.index[metric as usize].is_some()
    }

    /// One of the trainer's rows as a metrics row; `wall_s` fills in the wall time when the trainer
    /// does not write one. An error says which column's cell does not read.
    pub fn row(&self, fields: &[String], wall_s: f64) -> Result<MetricRow, String> {
        if fields.len() != self.width {
            return Err(format!(
                "{} fields where the header has {}",
                fields.len(),
                self.width
            ));
        }
        let mut cells: Vec<String> = vec![String::new(); TABLE.len()];
        let mut nonfinite = 0u64;
        for m in Metric::ALL {
            let Some(i) = self.index[m as usize] else {
                continue;
            };
            let text = fields[i].as_str();
            if text.is_empty() {
                continue;
            }
            let v = number(text)
                .ok_or_else(|| format!("column of `{}`: `{text}` is not a number", m.name()))?;
            cells[m as usize] = match m.column().kind {
                Kind::Count => {
                    if !v.is_finite() || v < 0.0 || v.fract() != 0.0 {
                        return Err(format!(
                            "column of `{}`: `{text}` is not a whole number",
                            m.name()
                        ));
                    }
                    format!("{}", v as u64)
                }
                Kind::Seconds | Kind::Value => {
                    if !v.is_finite() {
                        nonfinite += 1;
                    }
                    format!("{v:?}")
                }
            };
        }
        if cells[Metric::EnvStep as usize].is_empty() {
            cells[Metric::EnvStep as usize] = cells[Metric::TrainStep as usize].clone();
        }
        if cells[Metric::WallS as usize].is_empty() {
            cells[Metric::WallS as usize] = format!("{wall_s:.3}");
        }
        if cells[Metric::Episodes as usize].is_empty() {
            cells[Metric::Episodes as usize] = "0".into();
        }
        let counted: u64 = cells[Metric::Nonfinite as usize].parse().unwrap_or(0);
        cells[Metric::Nonfinite as usize] = (counted + nonfinite).to_string();
        MetricRow::from_texts(|i| cells[i].as_str())
    }
}

/// A number as trainers write them: Rust's and Python's spellings of NaN and infinity included.
fn number(text: &str) -> Option<f64> {
    match text.to_ascii_lowercase().as_str() {
        "nan" | "+nan" | "-nan" => Some(f64::NAN),
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn columns_map_by_name_and_by_mapping() {
        let mapping: BTreeMap<String, String> = [
            ("train_step".to_string(), "step".to_string()),
            ("q_abs_max".to_string(), "q_max".to_string()),
            ("actor_cnn_grad_norm".to_string(), "gone".to_string()),
        ]
        .into_iter()
        .collect();
        let c = Columns::new(
            &strings(&["step", "q_max", "critic_loss", "other"]),
            &mapping,
        )
        .unwrap();
        assert_eq!(
            c.missing,
            vec![("actor_cnn_grad_norm".to_string(), "gone".to_string())]
        );
        assert!(c.has(Metric::CriticLoss) && !c.has(Metric::ActorCnnGradNorm));
        let r = c.row(&strings(&["20", "1.5e3", "", "x"]), 2.5).unwrap();
        assert_eq!((r.train_step, r.env_step, r.wall_s), (20, 20, 2.5));
        assert_eq!(r.q_abs_max, Some(1500.0));
        assert_eq!(r.critic_loss, None);
        assert_eq!(r.nonfinite, 0);
        let r = c.row(&strings(&["40", "nan", "inf", "x"]), 3.0).unwrap();
        assert!(r.q_abs_max.unwrap().is_nan());
        assert_eq!(r.nonfinite, 2);
        assert!(c
            .row(&strings(&["40", "abc", "", "x"]), 3.0)
            .unwrap_err()
            .contains("`abc` is not a number"));
        assert!(c
            .row(&strings(&["4.5", "1", "", "x"]), 3.0)
            .unwrap_err()
            .contains("whole number"));
        assert!(c
            .row(&strings(&["40"]), 3.0)
            .unwrap_err()
            .contains("1 fields where the header has 4"));
    }

    #[test]
    fn a_header_without_the_training_step_is_refused() {
        let e = Columns::new(&strings(&["step", "loss"]), &BTreeMap::new()).unwrap_err();
        assert!(
            e.to_string()
                .contains("no training-step column `train_step`"),
            "{e}"
        );
        assert!(e.to_string().contains("the header is: step,loss"), "{e}");
    }

    #[test]
    fn the_tail_returns_only_complete_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        let mut t = Tail::new(&p);
        assert!(t.read().unwrap().0.is_empty(), "no file yet");
        std::fs::write(&p, "a,b\n1,2\n3,").unwrap();
        let (lines, restarted) = t.read().unwrap();
        assert!(!restarted);
        assert_eq!(lines, vec![(1, "a,b".to_string()), (2, "1,2".to_string())]);
        std::fs::write(&p, "a,b\n1,2\n3,4\n").unwrap();
        assert_eq!(t.read().unwrap().0, vec![(3, "3,4".to_string())]);
        std::fs::write(&p, "a,b\n").unwrap();
        let (lines, restarted) = t.read().unwrap();
        assert!(restarted);
        assert_eq!(lines, vec![(1, "a,b".to_string())]);
        std::fs::write(&p, "a,b\n5,5\n").unwrap();
        assert_eq!(t.read().unwrap().0, vec![(2, "5,5".to_string())]);
        // Rewritten past the old length between two reads: the size alone would not tell.
        std::fs::write(&p, "a,b\n7,7\n8,8\n9,9\n").unwrap();
        let (lines, restarted) = t.read().unwrap();
        assert!(restarted);
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1], (2, "7,7".to_string()));
        assert_eq!(fields("x,\"y,z\", 1"), strings(&["x", "y,z", "1"]));
    }
}
