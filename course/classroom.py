"""The classroom pack's folders and a runner for `lab.py` commands, shared by the notebooks.

`DATA` is the data the pack ships (recorded by `bash course/make_data.sh`, described in
`course/data/README.md`); `WORK` is where a notebook writes what it makes (models,
reports): `course/work/`, or the folder named by the `COURSE_WORK` environment variable
(the test suite points it at a temporary folder). Importing this module also puts the
lab's checkout on `sys.path`, so a notebook can import `contract`, `modeling` and
`workflows` however Jupyter was started.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

COURSE = Path(__file__).resolve().parent
ROOT = COURSE.parent
DATA = COURSE / "data"
DATASET = DATA / "course"          # the open-model built-ins (a dataset folder: CARD.md, manifest.json)
SIGNAL = DATA / "signal"           # steady load for the noise, one stall under open and closed load (a dataset folder)
AUTOSCALE = DATA / "autoscale"     # spike with no, reactive and predictive autoscaling (runs/, model/)
WORK = Path(os.environ.get("COURSE_WORK") or COURSE / "work")

# The model notebooks 4 and 5 read: the tiny preset (seconds to train on two cores) with a
# 15 s window and a 5 s horizon, trained on every scenario but fault-threads, which is held
# out (its runs have one violation episode each, some 12-20 s after the fault starts).
TINY_MODEL = WORK / "tiny"
TINY_TRAIN = ("--holdout", "fault-threads", "--preset", "tiny", "--window", "15", "--horizon", "5",
              "--epochs", "30", "--units", "8")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _shown(arg: object) -> str:
    """Show a path inside the checkout relative to it (as a student would type it)."""
    if isinstance(arg, Path):
        try:
            return str(arg.resolve().relative_to(ROOT))
        except ValueError:
            return str(arg)
    return str(arg)


def lab(*args: object) -> None:
    """Run `python lab.py ARGS...` in the checkout and print what it prints.

    Raises RuntimeError when the command fails, so a notebook stops at the failing step.
    """
    shown = [_shown(a) for a in args]
    print("$ python lab.py " + shlex.join(shown), flush=True)
    # Plain text: a notebook shows no terminal colours (Jupyter kernels ask for them with FORCE_COLOR).
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "CLICOLOR_FORCE", "PY_COLORS")}
    env.update(COLUMNS="150", NO_COLOR="1", TERM="dumb")
    done = subprocess.run([sys.executable, str(ROOT / "lab.py"), *shown], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    print(done.stdout, end="")
    if done.stderr:
        print(done.stderr, end="", file=sys.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"python lab.py {shown[0]} exited with code {done.returncode}")


def tiny_model() -> Path:
    """Train and evaluate the course's tiny model into WORK once (notebook 4 shows the commands)."""
    from modeling.pipeline import METRICS_JSON

    if not (TINY_MODEL / METRICS_JSON).is_file():
        lab("train", DATASET, *TINY_TRAIN, "--out", TINY_MODEL, "--quiet")
        lab("evaluate", TINY_MODEL)
    return TINY_MODEL
