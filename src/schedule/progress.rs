//! Progress display: live bars on a terminal, plain periodic lines otherwise (CI logs).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Event;
use crate::results::{Outcome, PlannedRun};

fn fmt_num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if !x.is_finite() => format!("{x}"),
        Some(x) if x != 0.0 && (x.abs() >= 1e4 || x.abs() < 0.1) => format!("{x:.2e}"),
        Some(x) => format!("{x:.1}"),
    }
}

/// Renders scheduler events for a person.
pub struct Display {
    multi: Option<MultiProgress>,
    total: Option<ProgressBar>,
    bars: HashMap<usize, ProgressBar>,
    ids: HashMap<usize, (String, u64)>,
    finished: usize,
    last_line: Instant,
    latest: HashMap<usize, String>,
}

impl Display {
    /// A display for `jobs` (the ones that will run this time).
    pub fn new(jobs: &[PlannedRun]) -> Display {
        let tty = std::io::stdout().is_terminal();
        let ids = jobs
            .iter()
            .map(|j| (j.index, (j.run_id.clone(), j.steps)))
            .collect();
        let (multi, total) = if tty {
            let m = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
            let t = m.add(ProgressBar::new(jobs.len() as u64));
            t.set_style(
                ProgressStyle::with_template(
                    "sweep [{bar:30}] {pos}/{len} runs  {elapsed_precise}  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            (Some(m), Some(t))
        } else {
            (None, None)
        };
        Display {
            multi,
            total,
            bars: HashMap::new(),
            ids,
            finished: 0,
            last_line: Instant::now(),
            latest: HashMap::new(),
        }
    }

    fn println(&self, line: String) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => crate::say!("{line}"),
        }
    }

    /// Updates the display for one event.
    pub fn on_event(&mut self, ev: &Event) {
        let name = |i: &usize| self.ids.get(i).map(|x| x.0.clone()).unwrap_or_default();
        match ev {
            Event::Started { index, slot } => {
                let id = name(index);
                if let Some(m) = &self.multi {
                    let steps = self.ids.get(index).map(|x| x.1).unwrap_or(0);
                    let b = m.add(ProgressBar::new(steps));
                    b.set_style(
                        ProgressStyle::with_template("  {prefix:40!} [{bar:20}] {pos}/{len} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    );
                    b.set_prefix(id.clone());
                    self.bars.insert(*index, b);
                } else {
                    crate::say!("start  {id}  on {slot}");
                }
            }
            Event::Progress { index, progress: p } => {
                let msg = format!(
                    "actor_cnn {}  critic_cnn {}  |Q| {}",
                    fmt_num(p.row.actor_cnn_grad_norm),
                    fmt_num(p.row.critic_cnn_grad_norm),
                    fmt_num(p.row.q_abs_max)
                );
                if let Some(b) = self.bars.get(index) {
                    b.set_position(p.row.env_step);
                    b.set_message(msg);
                } else {
                    self.latest.insert(
                        *index,
                        format!("{} step {}/{} {msg}", name(index), p.row.env_step, p.steps),
                    );
                    if self.last_line.elapsed() >= Duration::from_secs(15) {
                        self.last_line = Instant::now();
                        let mut lines: Vec<&String> = self.latest.values().collect();
                        lines.sort();
                        for l in lines {
                            crate::say!("  ...  {l}");
                        }
                    }
                }
            }
            Event::Finished { index, record } => {
                self.finished += 1;
                self.latest.remove(index);
                if let Some(b) = self.bars.remove(index) {
                    b.finish_and_clear();
                }
                if let Some(t) = &self.total {
                    t.inc(1);
                }
                let reason = record
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                let line = format!(
                    "done   {}  {}  {}/{} steps  {:.1} s{}  [{}/{}]",
                    name(index),
                    record.outcome,
                    record.steps_done,
                    record.steps_planned,
                    record.wall_s,
                    if record.outcome == Outcome::Completed {
                        String::new()
                    } else {
                        reason
                    },
                    self.finished,
                    self.ids.len(),
                );
                self.println(line);
            }
        }
    }

    /// Clears the bars.
    pub fn finish(&mut self) {
        if let Some(t) = &self.total {
            t.finish_and_clear();
        }
    }
}
