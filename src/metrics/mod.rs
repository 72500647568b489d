//! Metric rows: the `metrics.csv` a run appends to, and the reader the verdicts use.

mod record;

pub use record::{Outcome, RunRecord};

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The exact `metrics.csv` header, in order. `eval_return` is empty unless evaluation is on.
pub const COLUMNS: [&str; 16] = [
    "train_step",
    "env_step",
    "wall_s",
    "actor_cnn_grad_norm",
    "critic_cnn_grad_norm",
    "actor_head_grad_norm",
    "critic_head_grad_norm",
    "q_mean",
    "q_abs_max",
    "target_q_mean",
    "actor_loss",
    "critic_loss",
    "episode_return",
    "episodes",
    "nonfinite",
    "eval_return",
];

/// One row of `metrics.csv`: the aggregate of the training steps since the previous row.
///
/// Gradient norms and `q_abs_max` are maxima over those steps (so a spike between two rows is never
/// missed); losses, `q_mean` and `target_q_mean` are means. Gradient norms are L2 norms before clipping.
/// Empty cells (`None`) mean "not measured": CNN norms with state observations, the actor's columns
/// before its first delayed update, returns before the first episode ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    pub train_step: u64,
    pub env_step: u64,
    pub wall_s: f64,
    pub actor_cnn_grad_norm: Option<f64>,
    pub critic_cnn_grad_norm: Option<f64>,
    pub actor_head_grad_norm: Option<f64>,
    pub critic_head_grad_norm: Option<f64>,
    pub q_mean: Option<f64>,
    pub q_abs_max: Option<f64>,
    pub target_q_mean: Option<f64>,
    pub actor_loss: Option<f64>,
    pub critic_loss: Option<f64>,
    /// Return of the most recent finished episode (in the env's scaled reward).
    pub episode_return: Option<f64>,
    /// Episodes finished so far.
    pub episodes: u64,
    /// Number of non-finite values seen in this window (losses, gradients, parameters). Above 0 ends the run.
    pub nonfinite: u64,
    /// Mean return of the deterministic evaluation run at this row, if one ran.
    pub eval_return: Option<f64>,
}

impl MetricRow {
    /// Looks a metric up by its column name; `None` for an empty cell or an unknown name.
    pub fn get(&self, column: &str) -> Option<f64> {
        match column {
            "train_step" => Some(self.train_step as f64),
            "env_step" => Some(self.env_step as f64),
            "wall_s" => Some(self.wall_s),
            "actor_cnn_grad_norm" => self.actor_cnn_grad_norm,
            "critic_cnn_grad_norm" => self.critic_cnn_grad_norm,
            "actor_head_grad_norm" => self.actor_head_grad_norm,
            "critic_head_grad_norm" => self.critic_head_grad_norm,
            "q_mean" => self.q_mean,
            "q_abs_max" => self.q_abs_max,
            "target_q_mean" => self.target_q_mean,
            "actor_loss" => self.actor_loss,
            "critic_loss" => self.critic_loss,
            "episode_return" => self.episode_return,
            "episodes" => Some(self.episodes as f64),
            "nonfinite" => Some(self.nonfinite as f64),
            "eval_return" => self.eval_return,
            _ => None,
        }
    }
}

/// Errors reading or writing metric files.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: u64,
        message: String,
    },
}

/// Appends rows to `metrics.csv`, flushing each one so a crash loses nothing already logged.
///
/// Each row goes to the OS as one complete line. If a write fails (disk full), the file is cut
/// back to its last complete row, so a reader never sees half a row.
pub struct MetricsWriter {
    path: PathBuf,
    file: File,
    /// Length of the file up to its last complete line.
    len: u64,
}

impl MetricsWriter {
    /// Creates (truncating) the file and writes the header.
    pub fn create(path: &Path) -> Result<Self, MetricsError> {
        Self::open(path, false)
    }

    /// Opens an existing file for appending (resume from a checkpoint); writes the header if the file is new.
    pub fn append(path: &Path) -> Result<Self, MetricsError> {
        Self::open(path, true)
    }

    fn open(path: &Path, append: bool) -> Result<Self, MetricsError> {
        let io = |source| MetricsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = if append {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(io)?
        } else {
            File::create(path).map_err(io)?
        };
        let len = file.metadata().map_err(io)?.len();
        let mut w = Self {
            path: path.to_path_buf(),
            file,
            len,
        };
        if len == 0 {
            w.write_line(&COLUMNS.map(String::from))?;
        }
        Ok(w)
    }

    fn write_line(&mut self, fields: &[String]) -> Result<(), MetricsError> {
        let io = |source| MetricsError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        line.write_record(fields).map_err(|e| io(e.into()))?;
        let bytes = line
            .into_inner()
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        if let Err(e) = self.file.write_all(&bytes) {
            // Disk full or similar: drop the partial line so the file stays a valid CSV.
            let _ = self.file.set_len(self.len);
            return Err(io(e));
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Writes one row and hands it to the OS.
    pub fn write(&mut self, row: &MetricRow) -> Result<(), MetricsError> {
        self.write_line(&row_fields(row))
    }
}

fn fmt_f(v: f64) -> String {
    // Shortest round-trip representation: re-reading gives the same f64, so determinism tests
    // can compare files byte for byte.
    format!("{v:?}")
}

fn opt(v: Option<f64>) -> String {
    v.map(fmt_f).unwrap_or_default()
}

fn row_fields(r: &MetricRow) -> [String; 16] {
    [
        r.train_step.to_string(),
        r.env_step.to_string(),
        format!("{:.3}", r.wall_s),
        opt(r.actor_cnn_grad_norm),
        opt(r.critic_cnn_grad_norm),
        opt(r.actor_head_grad_norm),
        opt(r.critic_head_grad_norm),
        opt(r.q_mean),
        opt(r.q_abs_max),
        opt(r.target_q_mean),
        opt(r.actor_loss),
        opt(r.critic_loss),
        opt(r.episode_return),
        r.episodes.to_string(),
        r.nonfinite.to_string(),
        opt(r.eval_return),
    ]
}

/// Writes `bytes` to `path` via a temporary file in the same folder and a rename, so a reader
/// never sees half a file and a failed write leaves the old file intact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Reads a whole `metrics.csv`. A malformed line is an error that names the file and line.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricRow>, MetricsError> {
    let io = |source| MetricsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(io)?;
    parse_metrics(path, &text)
}

/// Parses `metrics.csv` text (see [`read_metrics`]); `path` only labels errors. A last line cut
/// off mid-write (no newline after it, and not a whole row) is dropped, see [`parse_metrics_all`];
/// any other bad line is an error.
pub fn parse_metrics(path: &Path, text: &str) -> Result<Vec<MetricRow>, MetricsError> {
    let mut parsed = parse_metrics_all(path, text)?;
    if parsed.bad_lines.is_empty() {
        Ok(parsed.rows)
    } else {
        Err(parsed.bad_lines.swap_remove(0))
    }
}

/// Everything a `metrics.csv` holds, bad lines and all.
#[derive(Debug, Default)]
pub struct ParsedMetrics {
    /// Every row that parsed, in file order.
    pub rows: Vec<MetricRow>,
    /// Each line that did not parse (wrong number of fields, a cell that is not a number).
    pub bad_lines: Vec<MetricsError>,
    /// The line number of a last line cut off mid-write, dropped: a run killed (or a file copied)
    /// while a row was being written. Every row before it is whole.
    pub cut_tail: Option<u64>,
}

/// Parses `metrics.csv` text, keeping every row that parses. Only an unusable header is an error.
pub fn parse_metrics_all(path: &Path, text: &str) -> Result<ParsedMetrics, MetricsError> {
    let perr = |line: u64, message: String| MetricsError::Parse {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = rdr.headers().map_err(|e| perr(1, e.to_string()))?.clone();
    let idx: Vec<Option<usize>> = COLUMNS
        .iter()
        .map(|c| headers.iter().position(|h| h == *c))
        .collect();
    for (i, c) in COLUMNS.iter().enumerate() {
        // eval_return came later; older files without it still read.
        if idx[i].is_none() && *c != "eval_return" {
            return Err(perr(1, format!("missing column `{c}` in the header")));
        }
    }
    let mut out = ParsedMetrics::default();
    let mut last_line = 0;
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                last_line = line;
                out.bad_lines
                    .push(perr(line, format!("malformed CSV record: {e}")));
                continue;
            }
        };
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        last_line = line;
        match parse_row(&rec, &idx, headers.len()) {
            Ok(row) => out.rows.push(row),
            Err(message) => out.bad_lines.push(perr(line, message)),
        }
    }
    // The writer ends every row with a newline: a bad last line without one was cut off mid-write.
    if !text.ends_with('\n')
        && out
            .bad_lines
            .last()
            .is_some_and(|e| matches!(e, MetricsError::Parse { line, .. } if *line == last_line))
    {
        out.bad_lines.pop();
        out.cut_tail = Some(last_line);
    }
    Ok(out)
}

/// One record as a row, or why it is not one.
fn parse_row(
    rec: &csv::StringRecord,
    idx: &[Option<usize>],
    width: usize,
) -> Result<MetricRow, String> {
    if rec.len() != width {
        return Err(format!(
            "malformed CSV record: {} fields, but the header has {width}",
            rec.len()
        ));
    }
    let cell = |i: usize| idx[i].and_then(|j| rec.get(j)).unwrap_or("");
    let num = |i: usize| -> Result<Option<f64>, String> {
        let s = cell(i).trim();
        if s.is_empty() {
            return Ok(None);
        }
        s.parse::<f64>()
            .map(Some)
            .map_err(|_| format!("column `{}`: `{s}` is not a number", COLUMNS[i]))
    };
    let int = |i: usize| -> Result<u64, String> {
        let s = cell(i).trim();
        s.parse::<u64>()
            .map_err(|_| format!("column `{}`: `{s}` is not a whole number", COLUMNS[i]))
    };
    Ok(MetricRow {
        train_step: int(0)?,
        env_step: int(1)?,
        wall_s: num(2)?.unwrap_or(0.0),
        actor_cnn_grad_norm: num(3)?,
        critic_cnn_grad_norm: num(4)?,
        actor_head_grad_norm: num(5)?,
        critic_head_grad_norm: num(6)?,
        q_mean: num(7)?,
        q_abs_max: num(8)?,
        target_q_mean: num(9)?,
        actor_loss: num(10)?,
        critic_loss: num(11)?,
        episode_return: num(12)?,
        episodes: int(13)?,
        nonfinite: int(14)?,
        eval_return: num(15)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_keeps_values_and_empties() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.csv");
        let rows = vec![
            MetricRow {
                train_step: 100,
                env_step: 200,
                q_mean: Some(-1.25),
                nonfinite: 0,
                ..Default::default()
            },
            MetricRow {
                train_step: 200,
                env_step: 300,
                actor_cnn_grad_norm: Some(7_475_702.0),
                q_abs_max: Some(f64::NAN),
                nonfinite: 1,
                ..Default::default()
            },
        ];
        let mut w = MetricsWriter::create(&p).unwrap();
        for r in &rows {
            w.write(r).unwrap();
        }
        let back = read_metrics(&p).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].q_mean, Some(-1.25));
        assert_eq!(back[0].actor_cnn_grad_norm, None);
        assert_eq!(back[1].actor_cnn_grad_norm, Some(7_475_702.0));
        assert!(back[1].q_abs_max.unwrap().is_nan());
        let header = std::fs::read_to_string(&p)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string();
        assert_eq!(header, COLUMNS.join(","));
    }

    #[test]
    fn corrupt_line_names_file_and_line() {
        let text = format!(
            "{}\n1,2,0.1,,,,,,,,,,,0,0,\n3,x,0.2,,,,,,,,,,,0,0,\n",
            COLUMNS.join(",")
        );
        let err = parse_metrics(Path::new("runs/a/metrics.csv"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("runs/a/metrics.csv:3:"), "{err}");
        assert!(err.contains("env_step"), "{err}");
    }
}
