"""The metrics CSV a trainer appends to and td3-sweep reads as it grows: `Monitor`.

Columns carry the names the sweep's criteria use, so a sweep needs no `trainer.metrics` mapping.
Rows are either written as given (`Monitor.log`) or aggregated over `log_every` gradient updates
(`Monitor.record`) the way td3-sweep's built-in trainer aggregates them (src/results/metrics.rs,
`MetricRow`): gradient norms and `q_abs_max` are maxima over the window, so a spike between two
rows is never missed; losses, `q_mean` and `target_q_mean` are means; `env_step`, `episodes` and
`episode_return` are the latest values; `eval_return` goes into the next row only.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Dict, Optional, Union

from .harness import RunEnv

# How each metric aggregates over a window of updates. The one list of the column names this
# package knows, in the built-in trainer's column order.
AGGREGATION: Dict[str, str] = {
    "train_step": "count",
    "env_step": "latest",
    "actor_cnn_grad_norm": "max",
    "critic_cnn_grad_norm": "max",
    "actor_head_grad_norm": "max",
    "critic_head_grad_norm": "max",
    "q_mean": "mean",
    "q_abs_max": "max",
    "target_q_mean": "mean",
    "actor_loss": "mean",
    "critic_loss": "mean",
    "episode_return": "latest",
    "episodes": "latest",
    "eval_return": "once",
}

#: The metric names a trainer may log (the criteria's names).
METRICS = tuple(AGGREGATION)

#: The CSV header: the metrics, with `wall_s` (seconds since the run started, across resumes,
#: written by the Monitor itself) after `env_step` as in the built-in trainer's metrics.csv.
COLUMNS = ("train_step", "env_step", "wall_s") + METRICS[2:]

# Whole-number columns, written without a decimal point.
_COUNTS = frozenset({"train_step", "env_step", "episodes"})
# Values the window keeps from the latest call, across rows (they describe the run so far).
_STICKY = frozenset(k for k, a in AGGREGATION.items() if a == "latest")

Number = Union[int, float]


class MonitorError(ValueError):
    """A metric name or value the Monitor cannot write, or a metrics file it cannot append to."""


def _check_names(names, allowed, hint: str) -> None:
    bad = [n for n in names if n not in allowed]
    if bad:
        raise MonitorError(
            f"unknown metric {', '.join(repr(b) for b in bad)}{hint}; valid: {', '.join(allowed)}"
        )


def _number(name: str, value) -> Optional[float]:
    """A cell's value as float (None: not measured). Accepts ints, floats, NumPy and 0-d torch."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise MonitorError(f"{name}={value!r} is not a number") from None
    if name in _COUNTS and not (math.isfinite(v) and v >= 0 and v == int(v)):
        raise MonitorError(f"{name}={value!r} must be a whole number >= 0")
    return v


def _cell(name: str, v: Optional[float]) -> str:
    if v is None:
        return ""
    if name in _COUNTS:
        return str(int(v))
    # repr is the shortest text that reads back to the same float; nan/inf/-inf as the harness
    # reads them (a non-finite value ends the run as diverged).
    return repr(v)


def _fmax(a: Optional[float], b: Optional[float]) -> Optional[float]:
    """Max that lets NaN win, so a max never hides a non-finite value (Python's max would)."""
    if a is None:
        return b
    if b is None:
        return a
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return max(a, b)


class _Window:
    """The updates recorded since the last row."""

    def __init__(self) -> None:
        self.updates = 0
        self.max: Dict[str, Optional[float]] = {}
        self.sums: Dict[str, float] = {}
        self.counts: Dict[str, int] = {}

    def add(self, values: Dict[str, Optional[float]]) -> None:
        self.updates += 1
        for name, v in values.items():
            if v is None:
                continue
            kind = AGGREGATION[name]
            if kind == "max":
                self.max[name] = _fmax(self.max.get(name), v)
            elif kind == "mean":
                self.sums[name] = self.sums.get(name, 0.0) + v
                self.counts[name] = self.counts.get(name, 0) + 1

    def cells(self) -> Dict[str, Optional[float]]:
        out: Dict[str, Optional[float]] = dict(self.max)
        for name, s in self.sums.items():
            out[name] = s / self.counts[name]
        return out


class Monitor:
    """Writes a run's metrics CSV for td3-sweep: a header, then one flushed line per row.

    `Monitor()` takes the path from TD3SWEEP_METRICS and raises HarnessError naming every
    TD3SWEEP_* variable that is missing when the program is not running under `td3-sweep sweep`;
    `Monitor(path=...)` writes anywhere (outside a sweep the run properties are then None).

    The file is opened for appending. A file that already has rows (a resumed run) keeps them: no
    second header, the `record` step counter and `wall_s` continue from its last row, and a last
    line cut off mid-write is dropped first so the file stays a valid CSV.

    Use it as a context manager, or call `close()`: both write the updates recorded since the
    last row (on a clean exit only, for the `with` form).
    """

    def __init__(
        self,
        path: Union[str, os.PathLike, None] = None,
        *,
        log_every: int = 100,
        environ=None,
    ) -> None:
        if path is None:
            self._run = RunEnv.from_environ(environ, required=True)
            path = self._run.metrics
        else:
            self._run = RunEnv.from_environ(environ, required=False)
        if int(log_every) < 1:
            raise MonitorError(f"log_every={log_every!r} must be at least 1")
        self.log_every = int(log_every)
        self.path = Path(path)
        self._window = _Window()
        self._sticky: Dict[str, float] = {}
        self._pending_eval: Optional[float] = None
        self._t0 = time.monotonic()
        self._wall_before = 0.0
        self.last_train_step: Optional[int] = None
        """The train_step of the newest row in the file (a resumed run's too); None when empty."""
        self._file = self._open()
        # The newest update `record` saw (or the resumed file's last row): `record`'s default step.
        self._last_step: Optional[int] = self.last_train_step

    # --- the run, as the harness describes it -------------------------------------------------

    @property
    def seed(self) -> Optional[int]:
        """TD3SWEEP_SEED."""
        return self._run.seed

    @property
    def steps(self) -> Optional[int]:
        """TD3SWEEP_STEPS: environment steps to train for."""
        return self._run.steps

    @property
    def config(self) -> Optional[str]:
        """TD3SWEEP_CONFIG: the path of the run's resolved config file."""
        return self._run.config

    @property
    def run_dir(self) -> Optional[str]:
        """TD3SWEEP_RUN_DIR: the run's own directory."""
        return self._run.run_dir

    @property
    def run_id(self) -> Optional[str]:
        """TD3SWEEP_RUN_ID."""
        return self._run.run_id

    @property
    def resume_from(self) -> Optional[str]:
        """TD3SWEEP_RESUME_FROM: the previous stage's run directory, in resumed ladders only."""
        return self._run.resume_from

    # --- writing ------------------------------------------------------------------------------

    def _open(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old = self.path.read_bytes() if self.path.exists() else b""
        if old and not old.endswith(b"\n"):
            # A row cut off mid-write by a kill: drop it, so the next row starts a fresh line.
            old = old[: old.rfind(b"\n") + 1]
            with open(self.path, "r+b") as f:
                f.truncate(len(old))
        header = ",".join(COLUMNS)
        if old:
            lines = old.decode("utf-8").splitlines()
            if lines[0] != header:
                raise MonitorError(
                    f"{self.path} already starts with another header ({lines[0]!r}); this "
                    f"Monitor writes {header!r}. Remove the file or write to another path."
                )
            if len(lines) > 1:
                self._resume_from_row(lines[-1])
        f = open(self.path, "a", encoding="utf-8", newline="")
        if not old:
            f.write(header + "\n")
            f.flush()
        return f

    def _resume_from_row(self, line: str) -> None:
        cells = dict(zip(COLUMNS, line.split(",")))
        try:
            self.last_train_step = int(cells["train_step"])
            self._wall_before = float(cells.get("wall_s") or 0.0)
            # The run-so-far values `record` keeps across rows go on from the last row too.
            for name in _STICKY:
                if cells.get(name):
                    self._sticky[name] = float(cells[name])
        except (KeyError, ValueError):
            raise MonitorError(f"{self.path}: its last row {line!r} does not read") from None

    def _write(self, train_step: int, values: Dict[str, Optional[float]]) -> None:
        if self._file.closed:
            raise MonitorError(f"{self.path}: the Monitor is closed")
        wall = self._wall_before + time.monotonic() - self._t0
        row = dict(values)
        row["train_step"] = float(train_step)
        cells = [
            f"{wall:.3f}" if name == "wall_s" else _cell(name, row.get(name)) for name in COLUMNS
        ]
        self._file.write(",".join(cells) + "\n")
        self._file.flush()
        self.last_train_step = train_step

    def log(self, train_step: int, **metrics: Optional[Number]) -> None:
        """Writes one row as given: `train_step` (gradient updates so far) and any metrics.

        A metric left out, or None, is an empty cell ("not measured"); env_step defaults to
        train_step on the harness's side. NaN and inf are written as `nan`/`inf`: the harness
        then ends the run as diverged.
        """
        _check_names(metrics, METRICS[1:], "")
        values = {k: _number(k, v) for k, v in metrics.items()}
        self._write(int(_number("train_step", train_step)), values)

    def record(self, train_step: Optional[int] = None, **metrics: Optional[Number]) -> None:
        """Adds one gradient update's measurements; writes a row every `log_every` updates.

        `train_step` is the update's number (default: one more than the previous, continuing a
        resumed file). Gradient norms and q_abs_max become the window's maximum; losses, q_mean and
        target_q_mean its mean over the updates that measured them (actor_loss over the delayed
        actor updates only); env_step, episode_return and episodes the latest value, kept for later
        rows; eval_return goes into the next row only. An update with a non-finite value is
        written at once, so the harness stops a diverged run without waiting for the window.
        """
        _check_names(metrics, METRICS[1:], "")
        values = {k: _number(k, v) for k, v in metrics.items()}
        if train_step is None:
            train_step = (self._last_step or 0) + 1
        step = int(_number("train_step", train_step))
        self._last_step = step
        self._take_latest(values)
        self._window.add(values)
        nonfinite = any(v is not None and not math.isfinite(v) for v in values.values())
        if step % self.log_every == 0 or nonfinite:
            self.write_window()

    def note(self, **latest: Optional[Number]) -> None:
        """Sets env_step, episode_return, episodes or eval_return without counting an update.

        For what happens between updates: an episode ending, an evaluation. They go into the
        next row that `record` (or `write_window`) writes.
        """
        allowed = tuple(k for k in METRICS if AGGREGATION[k] in ("latest", "once"))
        _check_names(latest, allowed, " for note() (per-update metrics go to record())")
        self._take_latest({k: _number(k, v) for k, v in latest.items()})

    def _take_latest(self, values: Dict[str, Optional[float]]) -> None:
        for name in _STICKY:
            if values.get(name) is not None:
                self._sticky[name] = values[name]
        if values.get("eval_return") is not None:
            self._pending_eval = values["eval_return"]

    def write_window(self) -> None:
        """Writes the updates recorded since the last row as one row; nothing if there are none."""
        if self._window.updates == 0:
            return
        values: Dict[str, Optional[float]] = dict(self._sticky)
        values.update(self._window.cells())
        values["eval_return"] = self._pending_eval
        self._write(self._last_step, values)
        self._pending_eval = None
        self._window = _Window()

    def close(self) -> None:
        """Writes any updates recorded since the last row, then closes the file."""
        if not self._file.closed:
            self.write_window()
            self._file.close()

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # After an exception (SIGTERM as SystemExit included) the partial window is left out: the
        # rows already written are what the run measured before it was stopped.
        if exc_type is None:
            self.close()
        else:
            self._file.close()
