//! Metric rows: the `metrics.csv` a run appends to, the reader the verdicts use, and
//! `evidence.csv`.
//!
//! The columns are declared once, in the `metric_table!` invocation below: the row type, the
//! header, each cell's format and parsing, and lookup by name all derive from it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How a column's cells are written and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number (`u64`); never empty.
    Count,
    /// Seconds (`f64`), written with three decimals; an empty cell reads as 0.
    Seconds,
    /// A measurement (`Option<f64>`), written as the shortest text that reads back to the same
    /// `f64` (so determinism tests can compare files byte for byte); empty means "not measured".
    Value,
}

/// One column of `metrics.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Its name in the header (and in criteria, plots and `summary.csv`).
    pub name: &'static str,
    /// How its cells read.
    pub kind: Kind,
    /// Whether a header must have it; a column added later is optional, so older files still read.
    pub required: bool,
}

/// A cell of one [`Kind`]: its Rust type, text form and numeric value.
trait Cell: Sized {
    fn write(&self) -> String;
    fn read(s: &str) -> Result<Self, &'static str>;
    fn value(&self) -> Option<f64>;
}

impl Cell for u64 {
    fn write(&self) -> String {
        self.to_string()
    }
    fn read(s: &str) -> Result<Self, &'static str> {
        s.parse().map_err(|_| "is not a whole number")
    }
    fn value(&self) -> Option<f64> {
        Some(*self as f64)
    }
}

impl Cell for f64 {
    fn write(&self) -> String {
        format!("{self:.3}")
    }
    fn read(s: &str) -> Result<Self, &'static str> {
        Ok(Option::<f64>::read(s)?.unwrap_or(0.0))
    }
    fn value(&self) -> Option<f64> {
        Some(*self)
    }
}

impl Cell for Option<f64> {
    fn write(&self) -> String {
        self.map(fmt_f).unwrap_or_default()
    }
    fn read(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() {
            return Ok(None);
        }
        s.parse().map(Some).map_err(|_| "is not a number")
    }
    fn value(&self) -> Option<f64> {
        *self
    }
}

/// Shortest round-trip representation: re-reading gives the same f64.
fn fmt_f(v: f64) -> String {
    format!("{v:?}")
}

/// The Rust type of a [`Kind`]'s cells.
macro_rules! cell_type {
    (Count) => { u64 };
    (Seconds) => { f64 };
    (Value) => { Option<f64> };
}

/// Declares the columns of `metrics.csv`, in file order: `Variant field: Kind, required;`, each
/// with its doc. Generates [`MetricRow`], [`Metric`], [`TABLE`] and [`COLUMNS`].
macro_rules! metric_table {
    ($( $(#[doc = $doc:literal])* $variant:ident $field:ident : $kind:ident, $required:literal; )*) => {
        /// One row of `metrics.csv`: the aggregate of the training steps since the previous row.
        ///
        /// Gradient norms and `q_abs_max` are maxima over those steps (so a spike between two rows
        /// is never missed); losses, `q_mean` and `target_q_mean` are means. Gradient norms are L2
        /// norms before clipping. Empty cells (`None`) mean "not measured": CNN norms with state
        /// observations, the actor's columns before its first delayed update, returns before the
        /// first episode ends.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct MetricRow {
            $( $(#[doc = $doc])* pub $field: cell_type!($kind), )*
        }

        /// A column of `metrics.csv`, by name in Rust.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Metric {
            $( $(#[doc = $doc])* $variant, )*
        }

        /// Every column, in file order.
        pub const TABLE: [Column; [$(stringify!($field)),*].len()] = [
            $( Column { name: stringify!($field), kind: Kind::$kind, required: $required }, )*
        ];

        impl Metric {
            /// Every metric, in file order.
            pub const ALL: [Metric; TABLE.len()] = [$(Metric::$variant),*];

            /// Its column.
            pub fn column(self) -> &'static Column {
                &TABLE[self as usize]
            }

            /// Its column name.
            pub fn name(self) -> &'static str {
                self.column().name
            }

            /// The metric a column name names.
            pub fn from_name(name: &str) -> Option<Metric> {
                match name {
                    $( stringify!($field) => Some(Metric::$variant), )*
                    _ => None,
                }
            }
        }

        impl MetricRow {
            /// The value of one metric; `None` for an empty cell.
            pub fn value(&self, metric: Metric) -> Option<f64> {
                match metric {
                    $( Metric::$variant => Cell::value(&self.$field), )*
                }
            }

            /// The row's cells, in file order.
            fn cells(&self) -> [String; TABLE.len()] {
                [$( Cell::write(&self.$field) ),*]
            }

            /// A row from its cells in file order (`cell(i)` is column `i`'s text); the first
            /// cell that does not read is the error.
            fn from_cells<'a>(cell: impl Fn(usize) -> &'a str) -> Result<MetricRow, String> {
                Ok(MetricRow {
                    $( $field: {
                        let s = cell(Metric::$variant as usize).trim();
                        Cell::read(s).map_err(|why| {
                            format!("column `{}`: `{s}` {why}", stringify!($field))
                        })?
                    }, )*
                })
            }
        }
    };
}

metric_table! {
    /// Gradient updates done so far.
    TrainStep train_step: Count, true;
    /// Environment steps done so far.
    EnvStep env_step: Count, true;
    /// Wall time since the run started, across resumes.
    WallS wall_s: Seconds, true;
    /// Max L2 norm of the actor CNN's gradient (pixels with its own encoder only).
    ActorCnnGradNorm actor_cnn_grad_norm: Value, true;
    /// Max L2 norm of the critic CNN's gradient (pixels only).
    CriticCnnGradNorm critic_cnn_grad_norm: Value, true;
    /// Max L2 norm of the actor head's gradient.
    ActorHeadGradNorm actor_head_grad_norm: Value, true;
    /// Max L2 norm of the critic heads' gradient.
    CriticHeadGradNorm critic_head_grad_norm: Value, true;
    /// Mean Q of the sampled batches.
    QMean q_mean: Value, true;
    /// Max |Q| of the sampled batches.
    QAbsMax q_abs_max: Value, true;
    /// Mean TD target.
    TargetQMean target_q_mean: Value, true;
    /// Mean actor loss (its delayed updates only).
    ActorLoss actor_loss: Value, true;
    /// Mean critic loss.
    CriticLoss critic_loss: Value, true;
    /// Return of the most recent finished episode (in the env's scaled reward).
    EpisodeReturn episode_return: Value, true;
    /// Episodes finished so far.
    Episodes episodes: Count, true;
    /// Number of non-finite values seen in this window (losses, gradients, parameters). Above 0 ends the run.
    Nonfinite nonfinite: Count, true;
    /// Mean return of the deterministic evaluation run at this row, if one ran (a later column:
    /// older files without it still read).
    EvalReturn eval_return: Value, false;
    /// Fraction of this window's actor updates in which the actor CNN's gradient clip engaged (its
    /// pre-clip norm, `actor_cnn_grad_norm`, above `max_norm`); empty when that clip is off or
    /// there is no actor CNN.
    ActorCnnClipFrac actor_cnn_clip_frac: Value, false;
    /// The same for the critic CNN, over the window's critic updates.
    CriticCnnClipFrac critic_cnn_clip_frac: Value, false;
}

/// The exact `metrics.csv` header, in order. `eval_return` is empty unless evaluation is on, the
/// clip fractions unless their clip is.
pub const COLUMNS: [&str; TABLE.len()] = {
    let mut names = [""; TABLE.len()];
    let mut i = 0;
    while i < TABLE.len() {
        names[i] = TABLE[i].name;
        i += 1;
    }
    names
};

impl MetricRow {
    /// A row from the text of its cells in file order (`cell(i)` is [`TABLE`]`[i]`'s), read as
    /// `metrics.csv` reads them; the first cell that does not read is the error.
    pub fn from_texts<'a>(cell: impl Fn(usize) -> &'a str) -> Result<MetricRow, String> {
        Self::from_cells(cell)
    }

    /// Looks a metric up by its column name; `None` for an empty cell or an unknown name.
    pub fn get(&self, column: &str) -> Option<f64> {
        Metric::from_name(column).and_then(|m| self.value(m))
    }
}

/// Errors reading or writing metric files.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        /// Quoted in the message (run records embed it), so not also a `#[source]`: printed once.
        cause: std::io::Error,
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
            cause: source,
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
            cause: source,
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
        self.write_line(&row.cells())
    }
}

/// Reads a whole `metrics.csv`. A malformed line is an error that names the file and line.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricRow>, MetricsError> {
    let io = |source| MetricsError::Io {
        path: path.to_path_buf(),
        cause: source,
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
    // The writer creates the file, then writes the header; a run that died in between (a full
    // disk refuses the header, and the writer cuts the file back to what was whole) leaves an
    // empty file: no rows, not a damaged header.
    if text.is_empty() {
        return Ok(ParsedMetrics::default());
    }
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
    for (i, c) in TABLE.iter().enumerate() {
        if idx[i].is_none() && c.required {
            return Err(perr(
                1,
                format!("missing column `{}` in the header", c.name),
            ));
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
    MetricRow::from_cells(|i| idx[i].and_then(|j| rec.get(j)).unwrap_or(""))
}

/// The metrics `evidence.csv` keeps for each training step, in its column order: after
/// `train_step`, `env_step` and `marker`, and before the per-layer gradient norms.
pub const EVIDENCE_METRICS: [Metric; 9] = [
    Metric::ActorLoss,
    Metric::CriticLoss,
    Metric::QMean,
    Metric::QAbsMax,
    Metric::TargetQMean,
    Metric::ActorCnnGradNorm,
    Metric::CriticCnnGradNorm,
    Metric::ActorHeadGradNorm,
    Metric::CriticHeadGradNorm,
];

/// One training step of `evidence.csv`.
#[derive(Debug, Clone)]
pub struct EvidenceStep<'a> {
    /// The step's [`Metric::TrainStep`] and [`Metric::EnvStep`], and its own (not windowed)
    /// values of [`EVIDENCE_METRICS`]; other fields are not written.
    pub row: MetricRow,
    /// Each layer's gradient norm, in the order of the layer names.
    pub layers: &'a [f64],
}

/// Writes `evidence.csv` atomically: the steps at full resolution, with `marker` in the `marker`
/// column of the step whose train step is `marked` (the first bad one). `layer_names` name the
/// per-layer gradient norm columns (`grad_norm:<layer>`).
pub fn write_evidence(
    path: &Path,
    layer_names: &[String],
    steps: &[EvidenceStep<'_>],
    marked: u64,
    marker: &str,
) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = vec![
        Metric::TrainStep.name().into(),
        Metric::EnvStep.name().into(),
        "marker".into(),
    ];
    header.extend(EVIDENCE_METRICS.iter().map(|m| m.name().to_string()));
    header.extend(layer_names.iter().map(|n| format!("grad_norm:{n}")));
    w.write_record(&header)?;
    for s in steps {
        let r = &s.row;
        let mark = if r.train_step == marked { marker } else { "" };
        let mut rec = vec![
            r.train_step.to_string(),
            r.env_step.to_string(),
            mark.to_string(),
        ];
        rec.extend(EVIDENCE_METRICS.iter().map(|m| Cell::write(&r.value(*m))));
        rec.extend(s.layers.iter().map(|v| fmt_f(*v)));
        w.write_record(&rec)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    super::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_empty_file_has_no_rows() {
        // What a run leaves when the disk refused its header: nothing half written, no rows.
        let parsed = parse_metrics_all(Path::new("runs/a/metrics.csv"), "").unwrap();
        assert!(parsed.rows.is_empty() && parsed.bad_lines.is_empty());
        // A header cut short is still an error.
        assert!(parse_metrics_all(Path::new("m.csv"), "train_st").is_err());
    }

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
    fn the_table_drives_the_header_lookup_and_cells() {
        assert_eq!(
            COLUMNS.join(","),
            "train_step,env_step,wall_s,actor_cnn_grad_norm,critic_cnn_grad_norm,actor_head_grad_norm,critic_head_grad_norm,q_mean,q_abs_max,target_q_mean,actor_loss,critic_loss,episode_return,episodes,nonfinite,eval_return,actor_cnn_clip_frac,critic_cnn_clip_frac"
        );
        for (i, m) in Metric::ALL.iter().enumerate() {
            assert_eq!(m.name(), COLUMNS[i]);
            assert_eq!(Metric::from_name(COLUMNS[i]), Some(*m));
        }
        let row = MetricRow {
            train_step: 7,
            wall_s: 1.23456,
            q_abs_max: Some(0.1),
            ..Default::default()
        };
        assert_eq!(row.get("q_abs_max"), Some(0.1));
        assert_eq!(row.get("train_step"), Some(7.0));
        assert_eq!(row.get("actor_loss"), None);
        assert_eq!(row.get("no_such_column"), None);
        assert_eq!(row.cells().join(","), "7,0,1.235,,,,,,0.1,,,,,0,0,,,");
    }

    #[test]
    fn evidence_keeps_its_column_order_and_marks_the_bad_step() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("evidence.csv");
        let step = |t: u64, loss: f64| EvidenceStep {
            row: MetricRow {
                train_step: t,
                env_step: t + 10,
                critic_loss: Some(loss),
                critic_head_grad_norm: Some(2.0),
                ..Default::default()
            },
            layers: &[0.5],
        };
        write_evidence(
            &p,
            &["q1.fc0".into()],
            &[step(1, 1.0), step(2, f64::NAN)],
            2,
            "first_nonfinite",
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "train_step,env_step,marker,actor_loss,critic_loss,q_mean,q_abs_max,target_q_mean,actor_cnn_grad_norm,critic_cnn_grad_norm,actor_head_grad_norm,critic_head_grad_norm,grad_norm:q1.fc0\n\
             1,11,,,1.0,,,,,,,2.0,0.5\n\
             2,12,first_nonfinite,,NaN,,,,,,,2.0,0.5\n"
        );
    }

    #[test]
    fn files_from_before_the_optional_columns_still_read() {
        let old = &COLUMNS[..COLUMNS.len() - 3];
        let text = format!("{}\n5,6,0.5,,,,,,,,,,,0,0\n", old.join(","));
        let rows = parse_metrics(Path::new("m.csv"), &text).unwrap();
        assert_eq!((rows[0].train_step, rows[0].eval_return), (5, None));
        assert_eq!(rows[0].actor_cnn_clip_frac, None);
        assert_eq!(rows[0].critic_cnn_clip_frac, None);
    }

    #[test]
    fn corrupt_line_names_file_and_line() {
        let text = format!(
            "{}\n1,2,0.1,,,,,,,,,,,0,0,,,\n3,x,0.2,,,,,,,,,,,0,0,,,\n",
            COLUMNS.join(",")
        );
        let err = parse_metrics(Path::new("runs/a/metrics.csv"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("runs/a/metrics.csv:3:"), "{err}");
        assert!(err.contains("env_step"), "{err}");
    }
}
