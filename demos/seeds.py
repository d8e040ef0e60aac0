"""One seed is an anecdote: compare two settings over 16 seeds each, trained at once.

    python demos/seeds.py      # PPO on CartPole-v1: the RL-Zoo's step (lr 1e-3) against npgrad's (5e-3)
    python demos/seeds.py --algo a2c --name ent_coef --values 0 0.01 --steps 100000

Both settings train as one population of 32 members, ``npgrad.PPO(env, seed=[0, ..., 15] * 2,
lr=[a] * 16 + [b] * 16)``: the members of each worker process train side by side as one stack, and
each is exactly the agent its seed would train alone. Every 5,000 steps each member evaluates its
deterministic policy on 10 episodes.

It prints, for each setting, the interquartile mean (IQM) of the members' returns with its 95%
bootstrap confidence interval at every evaluation (Agarwal et al. 2021, "Deep RL at the edge of the
statistical precipice"); then the probability that a run of one setting learns more than a run of
the other (its mean return over all its evaluations is larger), and which setting each seed alone
would have picked. It saves the curves (``seeds_<algo>.png``: each setting's IQM with its band,
each seed thin) and the population (``seeds_<algo>/``; reload it with ``npgrad.load_population``).
"""
import argparse
import os
import sys
from dataclasses import dataclass

if os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]  # run as a script: else `import mujoco` (for --env Hopper-v5) would find demos/mujoco.py

import numpy as np

import npgrad
from npgrad.plotting import iqm_band, plot_curves, seed_lines
from npgrad.stats import probability_of_improvement


@dataclass
class Args:
    algo: str = "ppo"
    env: str = "CartPole-v1"
    name: str = "lr"
    values: tuple = (1e-3, 5e-3)
    seeds: int = 16
    steps: int = 50_000


def returns_of(pop, members):
    """``(steps_k, returns_rk)``: the evaluation steps and each member's mean return at each of them."""
    histories = [pop.evaluations[k]["history"] for k in members]
    return [row[0] for row in histories[0]], np.array([[row[2] for row in h] for h in histories])


def print_curves(curves):
    labels = list(curves)
    print(f"{'steps':>7}" + "".join(f"  {label + ': IQM [95% CI]':>28}" for label in labels))
    for i, steps in enumerate(curves[labels[0]].num_steps):
        cells = (f"{c.iqm[i]:7.1f} [{c.low[i]:6.1f}, {c.high[i]:6.1f}]" for c in curves.values())
        print(f"{steps:>7}" + "".join(f"  {cell:>28}" for cell in cells))


def main(args):
    seeds = list(range(args.seeds))
    a, b = args.values
    if a == b:
        raise ValueError(f"--values: give two different values of {args.name}, not {a} twice")
    if args.steps < 5_000:
        raise ValueError(f"--steps {args.steps:,}: at least 5,000, the steps between evaluations")
    pop = npgrad.ALGOS[args.algo](args.env, seed=seeds * 2, **{args.name: [a] * len(seeds) + [b] * len(seeds)})
    print(f"{args.algo} on {args.env}: {args.name}={a} against {args.name}={b}, {len(seeds)} seeds each, "
          f"{args.steps:,} steps per member")
    pop.learn(args.steps, eval_every=5_000, eval_episodes=10, progress_bar=True)

    curves = pop.aggregate()  # {"lr=0.001": Curve, "lr=0.005": Curve}: IQM and its CI at every evaluation
    print_curves(curves)
    label_a, label_b = curves
    steps_k, returns_a_rk = returns_of(pop, range(len(seeds)))
    _, returns_b_rk = returns_of(pop, range(len(seeds), 2 * len(seeds)))
    # a run's mean return over its evaluations (the area under its learning curve): how soon and how well it learned
    area_a_r, area_b_r = returns_a_rk.mean(axis=1), returns_b_rk.mean(axis=1)
    print(f"P({label_b} learns more than {label_a}) = {probability_of_improvement(area_b_r, area_a_r):.2f}\n"
          f"  (in all {len(seeds) ** 2} pairs of runs, how often the first has the larger mean return over its "
          "evaluations)")
    picks_a_r, picks_b_r = area_a_r > area_b_r, area_b_r > area_a_r
    print(f"seed by seed: {picks_b_r.sum()} of {len(seeds)} pick {label_b}, {picks_a_r.sum()} pick {label_a}")
    if picks_a_r.any() and picks_b_r.any() and picks_a_r.sum() != picks_b_r.sum():
        fewer_r, label = (picks_a_r, label_a) if picks_a_r.sum() < picks_b_r.sum() else (picks_b_r, label_b)
        print(f"a study of seed {np.flatnonzero(fewer_r)[0]} alone would have concluded that {label} learns more, "
              "against most seeds")

    lines = {}
    for label, returns_rk in ((label_a, returns_a_rk), (label_b, returns_b_rk)):
        lines.update(iqm_band(label, curves[label]))
        lines.update(seed_lines(label, steps_k, returns_rk))
    title = f"{args.algo.upper()} on {args.env}: thin lines are single seeds"
    if plot_curves(lines, f"seeds_{args.algo}.png", title):
        print(f"saved seeds_{args.algo}.png")
    else:
        print('no plot: pip install -e ".[plot]" (matplotlib)')
    print(f"saved {pop.save(f'seeds_{args.algo}')}")
    return curves


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default=Args.algo, choices=sorted(npgrad.ALGOS), help="the algorithm (default ppo)")
    parser.add_argument("--env", default=Args.env, help="a gymnasium id (default CartPole-v1)")
    parser.add_argument("--name", default=Args.name,
                        help="the setting to compare: any number of the update, e.g. lr, ent_coef, clip_range, gamma")
    parser.add_argument("--values", type=float, nargs=2, default=Args.values, metavar=("A", "B"),
                        help="its two values (default 0.001 0.005)")
    parser.add_argument("--seeds", type=int, default=Args.seeds, help="seeds per setting")
    parser.add_argument("--steps", type=int, default=Args.steps, help="environment steps per member")
    try:
        main(Args(**vars(parser.parse_args())))
    except (ValueError, npgrad.errors.NpgradError) as e:  # e.g. --name n_steps, which every member must share
        parser.error(str(e))
