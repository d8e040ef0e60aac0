"""Learn to control a MuJoCo robot: PPO (or any npgrad algorithm) on a gymnasium MuJoCo environment.

    python demos/mujoco.py                                             # PPO, InvertedPendulum-v5, 100k steps: 1 minute
    python demos/mujoco.py --env Hopper-v5 --algo ppo --steps 1000000  # a one-legged robot learns to hop
    python demos/mujoco.py --algo trpo --out my_run                    # also vpg, npg, a2c; files go to my_run/

Needs MuJoCo: pip install -e ".[mujoco]"; the video also needs pip install -e ".[video]".

InvertedPendulum-v5: push a cart left and right so the pole on it stays upright. +1 per step while it is
up, for at most 1000 steps, so 1000 is the maximum; a random policy drops the pole within about 10 steps,
and PPO holds it for all 1000 after about 10k steps of training.
Hopper-v5: a one-legged robot is rewarded for hopping forward without falling. A good return is about
3000 after 1M steps; a random policy scores about 15 (it falls within 20 steps). PPO's evaluations swing
from one to the next (over 10 seeds, a seed's lowest evaluation in its last 200k steps is between 849
and 3462), hence best_model.npz below.

The policy is a Gaussian N(mu(s), sigma^2) over the motor torques. The demo evaluates the deterministic
policy (the mean mu(s)) on 10 fresh episodes about 20 times during training, printing one line each time.
It writes to the output folder (default ``<env>_<algo>/``): the final model (``model.npz``), the model of
the best evaluation (``best_model.npz``, from SB3-style ``EvalCallback``), the learning curve
(``curve.png``, with matplotlib; the dashed line is gymnasium's reward threshold for the env: 950 for
InvertedPendulum, 3800 for Hopper, above what 1M steps reach) and a video
of one episode of the best model, at most 10 s (``video.mp4``). Reload a model with ``npgrad.load``.
"""
import argparse
import os
import sys
from dataclasses import dataclass

if os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]  # run as a script: else `import mujoco` anywhere would find this file, not MuJoCo

import gymnasium as gym
import numpy as np

import npgrad
from npgrad.callbacks import EvalCallback
from npgrad.cli import play_episode, render_offscreen, video_writer, write_video
from npgrad.errors import ConfigError
from npgrad.plotting import plot_curves

render_offscreen()  # before MuJoCo is imported: a machine without a display renders the video through EGL


@dataclass
class Args:
    env: str = "InvertedPendulum-v5"
    algo: str = "ppo"
    steps: int = 100_000
    seed: int = 0
    out: str = ""  # default: <env>_<algo>


def print_row(agent, evaluation):
    steps, seconds, mean_return = evaluation.history[-1]  # seconds of training, evaluations excluded
    print(f"{steps:>9,} steps  {seconds:6.1f} s  {steps / seconds:6,.0f} steps/s  eval return {mean_return:7.1f}  "
          f"(best {evaluation.best_mean_reward:.1f})")


def main(args):
    try:
        import mujoco  # noqa: F401
    except ImportError:
        sys.exit(f'{args.env} needs MuJoCo: pip install -e ".[mujoco]"')
    out = args.out or f"{args.env}_{args.algo}"
    os.makedirs(out, exist_ok=True)
    paths = {name: os.path.join(out, name) for name in ("model.npz", "best_model.npz", "curve.png", "video.mp4")}
    try:
        video_writer(paths["video.mp4"])  # whether a video can be written, said before training, not after it
    except ConfigError:
        print('no video: it needs imageio and imageio-ffmpeg: pip install -e ".[video]"')
        del paths["video.mp4"]

    agent = npgrad.ALGOS[args.algo](args.env, seed=args.seed)
    print(f"training {args.algo.upper()} on {args.env} for {args.steps:,} steps")
    evaluator = EvalCallback(eval_freq=max(args.steps // 20, 1), n_eval_episodes=10, best_model_save_path=out,
                             callback_after_eval=print_row, verbose=0)  # writes best_model.npz at each new best
    training = []  # (steps, mean return of the latest 100 training episodes)

    def track_training(agent, info):
        if np.isfinite(info["ep_return_mean"]):
            training.append((agent.num_steps, info["ep_return_mean"]))

    agent.learn(args.steps, callback=[evaluator, track_training])

    steps, _, returns = zip(*evaluator.history)
    print(f"final evaluation return {returns[-1]:.1f} (mean of 10 episodes) after {steps[-1]:,} steps, "
          f"best {evaluator.best_mean_reward:.1f} at {steps[returns.index(evaluator.best_mean_reward)]:,}")
    agent.save(paths["model.npz"])
    curves = {"evaluation (deterministic policy, 10 episodes)": (steps, returns)}
    if training:
        curves["training episodes, latest 100 (policy with its exploration noise)"] = tuple(zip(*training))
    if not plot_curves(curves, paths["curve.png"], f"{args.algo.upper()} on {args.env}",
                       threshold=gym.spec(args.env).reward_threshold, ylabel="mean episode return",
                       threshold_label="gymnasium's reward threshold"):
        print('no learning curve: pip install -e ".[plot]" (matplotlib)')
        del paths["curve.png"]
    if "video.mp4" in paths:
        print("recording a video of the best model...")
        try:
            best = npgrad.load(paths["best_model.npz"])  # one episode of at most 10 s, in real time
            episode = play_episode(best, seed=args.seed + 10_000, deterministic=True, render_mode="rgb_array",
                                   seconds=10)  # the seed of the first evaluation episode, as evaluate's
            write_video(paths["video.mp4"], *episode)
        except Exception as e:  # noqa: BLE001 - e.g. no OpenGL: the model and curve are saved already
            print(f"no video: {type(e).__name__}: {e} (without a display, try MUJOCO_GL=egl or MUJOCO_GL=osmesa)")
            del paths["video.mp4"]

    for path in paths.values():
        print(f"saved {path}")
    print(f"reload a model: agent = npgrad.load({paths['model.npz']!r}); agent.evaluate(episodes=10)")
    return evaluator.history, paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default=Args.env, help="a gymnasium MuJoCo id, e.g. Hopper-v5, HalfCheetah-v5")
    parser.add_argument("--algo", default=Args.algo, choices=sorted(npgrad.ALGOS), help="the algorithm (default ppo)")
    parser.add_argument("--steps", type=int, default=Args.steps, help="environment steps to train")
    parser.add_argument("--seed", type=int, default=Args.seed, help="seeds the networks and environments")
    parser.add_argument("--out", default=Args.out, help="output folder (default: <env>_<algo>)")
    main(Args(**vars(parser.parse_args())))
