"""Every benchmark in one command; both print their tables and write JSON + markdown to results/.

    python benchmarks/run.py --quick     # about a minute: PPO/TRPO on CartPole (2 seeds), small derivative grid
    python benchmarks/run.py             # the full protocol: all algorithms x both envs x 5 seeds, full grid,
                                         # and the NumPy floor of PPO's cost (floor.py)
    python benchmarks/run.py --sb3       # and SB3's PPO, TRPO and A2C side by side (needs stable-baselines3)

Other arguments go to ``learning.py`` (``--algos``, ``--envs``, ``--seeds``, ``--budget``).
"""
import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import derivatives  # noqa: E402
import floor  # noqa: E402
import learning  # noqa: E402

if __name__ == "__main__":
    quick = ["--quick"] if "--quick" in sys.argv[1:] else []
    learning.main(sys.argv[1:])
    derivatives.main(quick)
    if not quick:  # like every full result, floor.json is only written by a full run
        floor.main()
