"""Balance a pole: PPO (or any npgrad algorithm) on gymnasium's CartPole-v1.

    python demos/cartpole.py                 # PPO, 50k steps: evaluation return 500 in ~10 s
    python demos/cartpole.py --algo trpo     # also vpg, npg, a2c (a2c wants --steps 150000)

Every 5,000 steps it evaluates the deterministic policy on 10 fresh episodes and prints a line.
At the end it saves the model (``cartpole_<algo>.npz``; reload with ``npgrad.load``) and, when
matplotlib is installed, the learning curve (``cartpole_<algo>.png``).
"""
import argparse
import time
from dataclasses import dataclass

import npgrad
from npgrad.plotting import plot_curves


@dataclass
class Args:
    algo: str = "ppo"
    steps: int = 50_000
    seed: int = 0
    eval_every: int = 5_000


def main(args):
    agent = npgrad.ALGOS[args.algo]("CartPole-v1", seed=args.seed)
    steps, returns, next_eval, start = [], [], args.eval_every, time.perf_counter()

    def report(agent, diagnostics):
        nonlocal next_eval
        if agent.num_steps >= next_eval:
            next_eval += args.eval_every
            steps.append(agent.num_steps)
            returns.append(agent.evaluate(episodes=10).mean)
            print(f"{agent.num_steps:>7} steps  {time.perf_counter() - start:5.1f} s  eval return {returns[-1]:6.1f}"
                  f"  train return {diagnostics['ep_return_mean']:6.1f}  KL {diagnostics['kl']:.4f}")

    agent.learn(args.steps, callback=report)
    print(f"saved {agent.save(f'cartpole_{args.algo}.npz')}")
    if plot_curves({args.algo: (steps, returns)}, f"cartpole_{args.algo}.png", "CartPole-v1", threshold=475):
        print(f"saved cartpole_{args.algo}.png")
    return returns


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default=Args.algo, choices=sorted(npgrad.ALGOS))
    parser.add_argument("--steps", type=int, default=Args.steps)
    parser.add_argument("--seed", type=int, default=Args.seed)
    main(Args(**{k: v for k, v in vars(parser.parse_args()).items()}))
