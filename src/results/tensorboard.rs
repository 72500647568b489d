//! TensorBoard's view of a run: `runs/<id>/events.out.tfevents.td3-sweep`, rebuilt whole from the
//! run's `metrics.csv` whenever the run ends.
//!
//! `tensorboard --logdir results/<name>` then lists one TensorBoard run per run folder, named
//! `runs/<run_id>`: the run id already starts with the variant (and its swept values) and ends
//! with `__s<seed>__<hash>`, so TensorBoard's run list and its run filter (a regex) select by
//! variant or by seed without a second naming scheme to keep in step with the folder.
//!
//! The file is a TFRecord stream of `Event` protos, encoded here by hand: the few fields a scalar
//! needs do not justify a protobuf toolchain (the `tboard` crate, the one maintained candidate,
//! needs `protoc` at build time through `prost-build`). Each record is framed as TensorFlow's
//! `record_writer` frames it: the data's length (u64, little endian), the masked CRC-32C of
//! those 8 bytes, the data, the masked CRC-32C of the data.
//!
//! What is written, in order:
//! - the `file_version` event (`brain.Event:2`), which TensorBoard expects first;
//! - a `SessionLog` START at step 0, TensorBoard's restart marker: should a reader ever see two
//!   copies of a run's points (a TensorBoard that listed the folder while the file was being
//!   replaced and caught `write_atomic`'s temporary file), the second copy's START purges the
//!   first, so no point is ever shown twice;
//! - one event per `metrics.csv` row, at step `train_step`, holding a `simple_value` for each of
//!   the row's measured metrics (see [`tag`]).
//!
//! The step is `train_step` because every criterion, the report's plots and "stopped at step N"
//! count gradient updates; `env_step` is a scalar of its own. The event's wall time is the row's
//! `wall_s`, anchored so that the last row lands on `metrics.csv`'s modification time (when that
//! row was written): TensorBoard's "relative" axis then shows `wall_s`, across resumes, and
//! rewriting the file from the same `metrics.csv` gives the same bytes.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{read_metrics, write_atomic, Metric, MetricRow, MetricsError, RunDir};

/// The events file's name: fixed, so that rewriting it replaces the run's points instead of adding
/// a second file beside them; it contains `tfevents`, which is how TensorBoard finds it.
pub const EVENTS_FILE: &str = "events.out.tfevents.td3-sweep";

/// The TensorBoard tag of a metric, or `None` for the two columns TensorBoard already shows as
/// axes: `train_step` is each point's step, `wall_s` its wall time.
///
/// The tag is `<group>/<column>`: TensorBoard puts the tags of one group in one section (gradient
/// norms side by side, Q statistics together), and the column name stays whole, so searching
/// TensorBoard for a metric's `metrics.csv` or criteria name finds it.
pub fn tag(metric: Metric) -> Option<String> {
    let group = match metric {
        Metric::TrainStep | Metric::WallS => return None,
        Metric::EnvStep | Metric::Episodes => "progress",
        Metric::ActorCnnGradNorm
        | Metric::CriticCnnGradNorm
        | Metric::ActorHeadGradNorm
        | Metric::CriticHeadGradNorm => "grad_norm",
        Metric::ActorCnnClipFrac | Metric::CriticCnnClipFrac => "grad_clip",
        Metric::QMean | Metric::QAbsMax | Metric::TargetQMean => "q",
        Metric::ActorLoss | Metric::CriticLoss => "loss",
        Metric::EpisodeReturn | Metric::EvalReturn => "return",
        Metric::Nonfinite => "divergence",
    };
    Some(format!("{group}/{}", metric.name()))
}

/// Writes the run's events file from `rows` (its `metrics.csv`), replacing any earlier one
/// atomically; returns its path. Empty cells are left out (TensorBoard draws no point there);
/// non-finite values are written as they are (as `f32`, TensorBoard's scalar type, like every
/// value: magnitudes beyond `f32`'s range read as infinite).
pub fn write_run_events(dir: &RunDir, rows: &[MetricRow]) -> std::io::Result<PathBuf> {
    let anchor = std::fs::metadata(dir.metrics_csv())
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| SystemTime::now());
    let anchor = anchor
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let path = dir.events_file();
    write_atomic(&path, &encode_events(rows, anchor))?;
    Ok(path)
}

/// Brings the run's events file up to date with its `metrics.csv`; `None` when the run has no
/// `metrics.csv` (it ended before its first row), in which case an events file left by an
/// earlier attempt is removed, so TensorBoard never shows another attempt's points.
pub fn refresh(dir: &RunDir) -> Result<Option<PathBuf>, MetricsError> {
    let csv = dir.metrics_csv();
    if !csv.is_file() {
        let stale = dir.events_file();
        return match std::fs::remove_file(&stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(MetricsError::Io {
                path: stale,
                cause: e,
            }),
            _ => Ok(None),
        };
    }
    let rows = read_metrics(&csv)?;
    write_run_events(dir, &rows)
        .map(Some)
        .map_err(|cause| MetricsError::Io {
            path: dir.events_file(),
            cause,
        })
}

/// [`refresh`] for the places a run ends: a failure is a warning on stderr, never a failed run
/// (TensorBoard is a view; `metrics.csv` and `run.json` are the record).
pub fn refresh_or_warn(dir: &RunDir) {
    if let Err(e) = refresh(dir) {
        eprintln!("warning: TensorBoard events not written: {e}");
    }
}

/// The whole events file for `rows`; the last row's wall time is `anchor` (Unix seconds).
fn encode_events(rows: &[MetricRow], anchor: f64) -> Vec<u8> {
    let last_wall = rows.last().map_or(0.0, |r| r.wall_s);
    let wall_time = |r: &MetricRow| anchor - (last_wall - r.wall_s);
    let start = rows.first().map_or(anchor, wall_time);
    let mut out = Vec::new();
    let mut event = Vec::new();

    event_header(&mut event, start, 0);
    field_bytes(&mut event, EVENT_FILE_VERSION, FILE_VERSION.as_bytes());
    record(&mut out, &event);

    event.clear();
    event_header(&mut event, start, 0);
    let mut session_log = Vec::new();
    field_varint(&mut session_log, SESSION_LOG_STATUS, SESSION_LOG_START);
    field_bytes(&mut event, EVENT_SESSION_LOG, &session_log);
    record(&mut out, &event);

    let mut summary = Vec::new();
    let mut value = Vec::new();
    for row in rows {
        summary.clear();
        for metric in Metric::ALL {
            let (Some(tag), Some(v)) = (tag(metric), row.value(metric)) else {
                continue;
            };
            value.clear();
            field_bytes(&mut value, VALUE_TAG, tag.as_bytes());
            key(&mut value, VALUE_SIMPLE_VALUE, WIRE_FIXED32);
            value.extend_from_slice(&(v as f32).to_le_bytes());
            field_bytes(&mut summary, SUMMARY_VALUE, &value);
        }
        event.clear();
        event_header(&mut event, wall_time(row), row.train_step);
        field_bytes(&mut event, EVENT_SUMMARY, &summary);
        record(&mut out, &event);
    }
    out
}

/// The first event's `file_version`: the version TensorBoard's readers expect.
const FILE_VERSION: &str = "brain.Event:2";

// Field numbers, from TensorBoard's `event.proto` and `summary.proto`.
const EVENT_WALL_TIME: u32 = 1;
const EVENT_STEP: u32 = 2;
const EVENT_FILE_VERSION: u32 = 3;
const EVENT_SUMMARY: u32 = 5;
const EVENT_SESSION_LOG: u32 = 7;
const SESSION_LOG_STATUS: u32 = 1;
/// `SessionLog.SessionStatus.START`.
const SESSION_LOG_START: u64 = 1;
const SUMMARY_VALUE: u32 = 1;
const VALUE_TAG: u32 = 1;
const VALUE_SIMPLE_VALUE: u32 = 2;

// Protobuf wire types.
const WIRE_VARINT: u32 = 0;
const WIRE_FIXED64: u32 = 1;
const WIRE_LEN: u32 = 2;
const WIRE_FIXED32: u32 = 5;

/// An event's `wall_time` and `step`, left out when zero as proto3 encoders do (so the bytes match
/// TensorBoard's own writer's).
fn event_header(out: &mut Vec<u8>, wall_time: f64, step: u64) {
    if wall_time != 0.0 {
        key(out, EVENT_WALL_TIME, WIRE_FIXED64);
        out.extend_from_slice(&wall_time.to_le_bytes());
    }
    if step != 0 {
        field_varint(out, EVENT_STEP, step);
    }
}

fn key(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from(field << 3 | wire));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_varint(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, WIRE_VARINT);
    varint(out, v);
}

fn field_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key(out, field, WIRE_LEN);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends one TFRecord: length, its masked CRC, the data, the data's masked CRC.
fn record(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
}

/// TFRecord's masked CRC: rotated and offset so that a CRC over data that holds CRCs stays strong.
fn masked_crc32c(bytes: &[u8]) -> u32 {
    crc32c(bytes).rotate_right(15).wrapping_add(0xa282_ead8)
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), one table lookup per byte: event files
/// are kilobytes, written once per run.
fn crc32c(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &b| {
        CRC32C_TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8)
    })
}

const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_published_check_values() {
        // The CRC catalogue's check value, and RFC 3720 (iSCSI) appendix B.4's test vectors.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46dd_794e);
        let descending: Vec<u8> = (0..32).rev().collect();
        assert_eq!(crc32c(&descending), 0x113f_db5c);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn records_match_tensorboards_own_writer_byte_for_byte() {
        // What TensorBoard's Python `RecordWriter` writes for a file-version event and a START
        // (wall time 1.5), then a summary event (wall time 2.25, step 7) with `q/q_mean` = -1.25
        // and `x` = NaN, each serialized by its `event_pb2.Event`.
        let golden = "1800000000000000a37f4b2209000000000000f83f1a0d627261696e2e4576656e743a\
                      322a28646c0d000000000000003c37b83409000000000000f83f3a020801b718825c28\
                      00000000000000ff70164a09000000000000024010072a1b0a0f0a08712f715f6d6561\
                      6e150000a0bf0a080a0178150000c07f3e92ee4c";
        let mut out = Vec::new();
        let mut e = Vec::new();
        event_header(&mut e, 1.5, 0);
        field_bytes(&mut e, EVENT_FILE_VERSION, FILE_VERSION.as_bytes());
        record(&mut out, &e);
        e.clear();
        event_header(&mut e, 1.5, 0);
        field_bytes(&mut e, EVENT_SESSION_LOG, &[0x08, 0x01]);
        record(&mut out, &e);
        e.clear();
        event_header(&mut e, 2.25, 7);
        let mut summary = Vec::new();
        for (t, v) in [("q/q_mean", -1.25f32), ("x", f32::NAN)] {
            let mut value = Vec::new();
            field_bytes(&mut value, VALUE_TAG, t.as_bytes());
            key(&mut value, VALUE_SIMPLE_VALUE, WIRE_FIXED32);
            value.extend_from_slice(&v.to_le_bytes());
            field_bytes(&mut summary, SUMMARY_VALUE, &value);
        }
        field_bytes(&mut e, EVENT_SUMMARY, &summary);
        record(&mut out, &e);
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, golden);
    }

    #[test]
    fn a_file_holds_the_version_a_start_and_one_event_per_row() {
        let rows = [
            MetricRow {
                train_step: 0,
                env_step: 0,
                wall_s: 0.5,
                eval_return: Some(3.0),
                ..Default::default()
            },
            MetricRow {
                train_step: 300,
                env_step: 400,
                wall_s: 2.5,
                q_abs_max: Some(f64::INFINITY),
                ..Default::default()
            },
        ];
        let bytes = encode_events(&rows, 1000.0);
        let mut events = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            assert_eq!(len_crc, masked_crc32c(&bytes[at..at + 8]));
            let data = &bytes[at + 12..at + 12 + len];
            let crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
            assert_eq!(crc, masked_crc32c(data));
            events.push(data.to_vec());
            at += 16 + len;
        }
        assert_eq!(events.len(), 4);
        // The last row's wall time is the anchor, the first's 2 s before it.
        assert_eq!(events[3][1..9], 1000.0f64.to_le_bytes());
        assert_eq!(events[2][1..9], 998.0f64.to_le_bytes());
        let has = |e: &[u8], s: &[u8]| e.windows(s.len()).any(|w| w == s);
        assert!(has(&events[0], b"brain.Event:2"));
        assert!(has(&events[2], b"return/eval_return") && has(&events[2], b"progress/env_step"));
        assert!(
            !has(&events[2], b"q/q_abs_max"),
            "an empty cell is no point"
        );
        assert!(has(&events[3], b"q/q_abs_max") && has(&events[3], &f32::INFINITY.to_le_bytes()));
        assert!(!has(&bytes, b"train_step") && !has(&bytes, b"wall_s"));
    }

    #[test]
    fn every_metric_but_the_axes_has_a_grouped_tag_ending_in_its_column() {
        for m in Metric::ALL {
            match tag(m) {
                None => assert!(matches!(m, Metric::TrainStep | Metric::WallS)),
                Some(t) => assert!(t.ends_with(&format!("/{}", m.name())), "{t}"),
            }
        }
    }
}
