"""td3sweep: instrument your own TD3 trainer so `td3-sweep sweep` can run and judge it.

- `Monitor` reads the run's TD3SWEEP_* environment and appends the metrics CSV the harness reads
  (header, then flushed rows, columns named as the criteria name them).
- `grad_norm(module)` is the total gradient L2 norm before clipping; `q_stats(q)` the Q mean and
  largest |Q| of a batch: both as td3-sweep's built-in trainer logs them.
- `load_config(path)` reads the run's YAML config without PyYAML; `exit_on_sigterm()` turns the
  harness's "stop now" into a clean SystemExit.
- `td3sweep.sb3.MonitoredTD3` (imported on its own: it needs Stable-Baselines3) logs the same
  metrics from inside SB3's TD3 updates.

Importing this package imports only the standard library (no torch): docs/python.md.
"""

from .config import ConfigError, get, load_config, parse_yaml
from .harness import HarnessError, RunEnv, exit_on_sigterm, in_sweep
from .monitor import AGGREGATION, COLUMNS, METRICS, Monitor, MonitorError
from .stats import grad_norm, q_stats

__version__ = "0.1.0"

__all__ = [
    "AGGREGATION",
    "COLUMNS",
    "ConfigError",
    "HarnessError",
    "METRICS",
    "Monitor",
    "MonitorError",
    "RunEnv",
    "exit_on_sigterm",
    "get",
    "grad_norm",
    "in_sweep",
    "load_config",
    "parse_yaml",
    "q_stats",
]
