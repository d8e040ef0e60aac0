"""What every benchmark script records next to its numbers: the machine, and where results go."""
from __future__ import annotations

import json
import os
import platform
import time

import gymnasium
import numpy as np
import scipy

import npgrad


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def machine_info():
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpu": cpu_model(), "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "gymnasium": gymnasium.__version__, "npgrad": npgrad.__version__,
            "threads": os.environ.get("OMP_NUM_THREADS")}


def write_results(path, payload, table):
    """Write ``payload`` as JSON and ``table`` as markdown (same name, ``.md``)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=1, default=float)
    with open(os.path.splitext(path)[0] + ".md", "w") as f:
        m = payload["machine"]
        f.write(f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores, {m['threads']} BLAS thread), "
                f"Python {m['python']}, NumPy {m['numpy']}, gymnasium {m['gymnasium']}, npgrad {m['npgrad']}.\n\n")
        f.write(table + "\n")
    print(f"wrote {path}")
