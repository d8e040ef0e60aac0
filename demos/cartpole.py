"""Balance a pole: PPO (or any npgrad algorithm) on gymnasium's CartPole-v1.

    python demos/cartpole.py                 # PPO, 100k steps: evaluation return 500 in about 5 s of training
    python demos/cartpole.py --algo trpo     # also vpg, npg, a2c (a2c wants --steps 150000)

Every 5,000 steps (at the end of the batch that passes it) it evaluates the deterministic policy on
10 fresh episodes and prints a line: the steps, the training seconds so far, the mean evaluation
return (500 is the most an episode can score), and two numbers of the last update. KL is how far
the update moved the policy (the mean KL divergence between the old and new action probabilities;
PPO's step size is annealed to 0, so it ends near 0); entropy is how random the policy still is
(ln 2 = 0.69 for a coin flip between the two actions, 0 for a sure choice). At the end it saves the
model (``cartpole_<algo>.npz``; reload with ``npgrad.load``) and, when matplotlib is installed, the
learning curve (``cartpole_<algo>.png``).
"""
import argparse
from dataclasses import dataclass

import npgrad
from npgrad.plotting import plot_curves
from npgrad.callbacks import Evaluator


@dataclass
class Args:
    algo: str = "ppo"
    steps: int = 100_000
    seed: int = 0


def print_row(agent, diagnostics, row):
    steps, seconds, mean_return = row
    print(f"{steps:>7} steps  {seconds:5.1f} s  eval return {mean_return:6.1f}  KL {diagnostics['kl']:.4f}  "
          f"entropy {diagnostics['entropy']:.3f}")


def main(args):
    agent = npgrad.ALGOS[args.algo]("CartPole-v1", seed=args.seed)
    evaluator = Evaluator(every=5_000, episodes=10, on_eval=print_row)
    agent.learn(args.steps, callback=evaluator)
    print(f"saved {agent.save(f'cartpole_{args.algo}.npz')}")
    steps, _, returns = zip(*evaluator.history)
    title = f"{args.algo.upper()} on CartPole-v1"
    if plot_curves({args.algo: (steps, returns)}, f"cartpole_{args.algo}.png", title, threshold=475):
        print(f"saved cartpole_{args.algo}.png")
    else:
        print('no learning curve: pip install -e ".[plot]" (matplotlib)')
    return evaluator.history


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default=Args.algo, choices=sorted(npgrad.ALGOS), help="the algorithm (default ppo)")
    parser.add_argument("--steps", type=int, default=Args.steps, help="environment steps to train")
    parser.add_argument("--seed", type=int, default=Args.seed, help="seeds the networks and environments")
    main(Args(**vars(parser.parse_args())))
