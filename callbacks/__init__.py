"""Training callbacks and learning-rate schedules (one class per file).

- `EarlyStopping`: dev-metric early stopping with best-weights restore, resumable.
- `schedules`: inverse-time, exponential, 1/sqrt, staircase, piecewise and warmup-cosine decay.
- `ReduceLROnPlateau`: divide the rate when the dev metric stalls, resumable.
- `BackupAndRestore`: back up everything at each epoch end and resume exactly there.
- `StopOnNaN`: stop on a NaN/Inf loss, keeping the last good backup.
- `HistoryCSV`: history.csv with every epoch exactly once, even across resumes.
- `EpochLine`: one progress line per epoch (when not on a terminal).
- `BiasVarianceDiagnosis` / `diagnose`: train vs dev error -> high bias or high variance.
"""

from callbacks import schedules  # noqa: F401
from callbacks.backup import BackupAndRestore  # noqa: F401
from callbacks.diagnosis import BiasVarianceDiagnosis, diagnose  # noqa: F401
from callbacks.early_stopping import EarlyStopping  # noqa: F401
from callbacks.epoch_line import EpochLine  # noqa: F401
from callbacks.history_csv import HistoryCSV  # noqa: F401
from callbacks.nan_guard import StopOnNaN, TrainingDiverged  # noqa: F401
from callbacks.reduce_on_plateau import ReduceLROnPlateau  # noqa: F401
