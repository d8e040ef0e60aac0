"""Swing a pendulum up and hold it: a Gaussian policy on gymnasium's Pendulum-v1.

    python demos/pendulum.py                 # PPO, 100k steps (about 10 s): from about -1200 to -170 by 20k-30k steps
    python demos/pendulum.py --algo trpo     # TRPO: conjugate gradient + line search (about -195 by 40k steps)

Pendulum's reward is a cost (the angle from upright, the speed and the torque used), so every return
is negative and 0 is best: an episode of 200 steps that never swings up scores about -1,200 to
-1,500, and -200 is the usual mark of a pendulum swung up and held (the "solved" line of the plot;
gymnasium sets no threshold for Pendulum).

Its action is a torque in [-2, 2]; the policy is N(mu(s), sigma(s)^2). Every algorithm but VPG
explores with gSDE (docs/02): the noise is a function of the state, held for 4 steps, so the
pendulum gets pushed one way long enough to swing. Watch sigma (the typical sigma(s) of the last
batch): it grows while the policy looks for the swing, then shrinks as it becomes sure of itself.
The demo prints a line every 5,000 steps (at the end of the batch that passes it), saves
``pendulum_<algo>.npz`` and, with matplotlib, the curve.

Seeds differ on Pendulum: on seeds 0-19, PPO holds -200 on 12 of 20 (benchmarks/README.md). The
default seed, 3, holds it for PPO and TRPO alike (PPO settles at about -157). Try others (``--seed 0``
to ``--seed 19``) to see the rest: on some, one of the ten evaluation episodes starts where the
deterministic policy never swings the pendulum up (about -1,500), and the mean falls back below
-200. Which seeds do that depends on the CPU as well as the seed (rounding differs, and training
amplifies it).
"""
import argparse
from dataclasses import dataclass

import numpy as np

import npgrad
from npgrad.plotting import plot_curves
from npgrad.callbacks import Evaluator


@dataclass
class Args:
    algo: str = "ppo"
    steps: int = 100_000
    seed: int = 3  # holds -200 with PPO and TRPO (docstring)


def print_row(agent, diagnostics, row):
    steps, seconds, mean_return = row
    sigma = np.exp(diagnostics["entropy"] - 0.5 * np.log(2 * np.pi * np.e))  # H = log sigma + log(2 pi e) / 2
    print(f"{steps:>7} steps  {seconds:5.1f} s  eval return {mean_return:7.1f}  sigma {sigma:.3f}")


def main(args):
    agent = npgrad.ALGOS[args.algo]("Pendulum-v1", seed=args.seed)
    evaluator = Evaluator(every=5_000, episodes=10, on_eval=print_row)
    agent.learn(args.steps, callback=evaluator)
    print(f"saved {agent.save(f'pendulum_{args.algo}.npz')}")
    steps, _, returns = zip(*evaluator.history)
    title = f"{args.algo.upper()} on Pendulum-v1"
    if plot_curves({args.algo: (steps, returns)}, f"pendulum_{args.algo}.png", title, threshold=-200):
        print(f"saved pendulum_{args.algo}.png")
    else:
        print('no learning curve: pip install -e ".[plot]" (matplotlib)')
    return evaluator.history


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default=Args.algo, choices=sorted(npgrad.ALGOS), help="the algorithm (default ppo)")
    parser.add_argument("--steps", type=int, default=Args.steps, help="environment steps to train")
    parser.add_argument("--seed", type=int, default=Args.seed, help="seeds the networks and environments")
    main(Args(**vars(parser.parse_args())))
