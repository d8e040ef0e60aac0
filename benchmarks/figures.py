"""The twenty-seed comparison as figures: learning curves and performance profiles, npgrad against SB3.

    python benchmarks/figures.py          # after seeds.py; needs matplotlib, writes to docs/figures/

Reads npgrad's runs of every configuration from ``results/seeds.json``, and SB3's runs of the same configuration
from its ``"sb3_runs"`` (``seeds.py`` puts them there). A configuration without SB3 runs is drawn for npgrad
alone. One colour per algorithm in every figure; npgrad solid, SB3 dashed.

- ``learning_curves.png``: one panel per environment, the algorithms that SB3 also ran.
- ``learning_curves_npgrad.png``: one panel per environment, the algorithms only npgrad ran.
- ``performance_profiles.png``: one panel per environment, the same two groups in two rows.

Learning curves. The evaluations of a run fall at the first update boundary at or after every 5,000 steps, so
they differ between configurations and libraries. A run's curve is a step function: at step x, the mean
return of its latest evaluation at or before x (what it had shown by then; nothing is interpolated). A
configuration's curve is evaluated at every step where one of its runs was evaluated, from the first step by
which all of them have been (none is left out before its first evaluation): the interquartile mean over the
seeds there, with the 95% percentile bootstrap interval of the IQM (``npgrad.stats.interval``, every step
resampling the same seeds). It is drawn as steps, flat until the next evaluation.

Performance profiles (Agarwal et al. 2021). The fraction of runs whose final return is at least tau, against
tau, with pointwise 95% percentile bootstrap bands (``npgrad.stats.performance_profile_interval``). The final
return is each run's last evaluation, at the budget (10 deterministic episodes seeded ``seed + 10000``), the same
protocol for both libraries and the same return as the tables of ``seeds.py``.
"""
from __future__ import annotations

import json
import os

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from npgrad import stats

matplotlib.use("Agg")

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS_JSON = os.path.join(HERE, "results", "seeds.json")
OUT = os.path.normpath(os.path.join(HERE, "..", "docs", "figures"))
COLORS = {"ppo": "C0", "trpo": "C1", "a2c": "C2", "npg": "C3", "vpg": "C4", "ppo-kl": "C5"}
SPARE_COLORS = ["C6", "C7", "C8", "C9"]
LINESTYLES = {"npgrad": "-", "sb3": "--"}
LIBRARY_NAMES = {"npgrad": "npgrad", "sb3": "SB3"}
STEPS = FuncFormatter(lambda x, _: f"{x / 1000:.0f}k")
THRESHOLD = {"color": "grey", "lw": 0.8, "zorder": 1}
LINE_WIDTH = 1.6


def load(path=SEEDS_JSON):
    """Every configuration's runs: ``[{algo, env, library, threshold, budget, runs}]``, npgrad's and SB3's."""
    with open(path) as f:
        results = json.load(f)["results"]
    groups = []
    for result in results:
        groups.append(group(result, "npgrad", result["runs"]))
        sb3 = sb3_of(result)
        if sb3:
            groups.append(group(result, "sb3", sb3))
    return groups


def sb3_of(result):
    """SB3's runs of one result's configuration, or None."""
    return result.get("sb3_runs")


def group(result, library, runs):
    return {"algo": result["algo"], "env": result["env"], "library": library, "threshold": result["threshold"],
            "budget": result["budget"], "runs": runs}


def split(groups):
    """``(compared, alone)``: the configurations SB3 also ran (both libraries), and those only npgrad ran."""
    compared = {(g["algo"], g["env"]) for g in groups if g["library"] == "sb3"}
    return ([g for g in groups if (g["algo"], g["env"]) in compared],
            [g for g in groups if (g["algo"], g["env"]) not in compared])


def environments(groups, order):
    """The environments of ``groups``, in the order of ``order`` (every environment of the results)."""
    return [env_id for env_id in order if any(g["env"] == env_id for g in groups)]


def color(algo, algos):
    """The algorithm's colour, the same in every figure (``algos``: every algorithm of the results, in order)."""
    if algo in COLORS:
        return COLORS[algo]
    unknown = [a for a in algos if a not in COLORS]
    return SPARE_COLORS[unknown.index(algo) % len(SPARE_COLORS)]


def label(g):
    return f"{g['algo'].upper()}, {LIBRARY_NAMES[g['library']]}"


def seeds_text(groups):
    """``"20 seeds"``, or ``"10-20 seeds"`` if configurations have different numbers of runs."""
    counts = sorted({len(g["runs"]) for g in groups})
    return f"{counts[0]} seeds" if len(counts) == 1 else f"{counts[0]}-{counts[-1]} seeds"


def latest_returns(runs):
    """``(steps_k, returns_kr)``: at every step where some run was evaluated, from the first by which all were,
    each run's return of its latest evaluation at or before that step."""
    histories = [np.asarray(r["history"], dtype=np.float64) for r in runs]
    steps_k = np.unique(np.concatenate([h[:, 0] for h in histories]))
    steps_k = steps_k[steps_k >= max(h[0, 0] for h in histories)]
    latest_kr = np.stack([np.searchsorted(h[:, 0], steps_k, side="right") - 1 for h in histories], axis=-1)
    return steps_k, np.stack([h[latest_kr[:, i], 2] for i, h in enumerate(histories)], axis=-1)


def iqm_curve(runs):
    """``(steps_k, iqm_k, low_k, high_k)``: the IQM over runs at every step, with its 95% bootstrap interval."""
    steps_k, returns_kr = latest_returns(runs)
    low_k, high_k = stats.interval(returns_kr, stats.iqm)
    return steps_k, stats.iqm(returns_kr), low_k, high_k


def final_returns(runs):
    """Each run's last evaluation: the same protocol for both libraries."""
    return np.array([r["history"][-1][2] for r in runs], dtype=np.float64)


def profile(scores_r, taus_m):
    """``(fraction_m, low_m, high_m)``: the fraction of runs scoring at least each tau, with its 95% bands."""
    above_m = np.nextafter(taus_m, -np.inf)  # npgrad.stats counts scores > tau: just below tau, that is >= tau
    low_m, high_m = stats.performance_profile_interval(scores_r, above_m)
    return stats.performance_profile(scores_r, above_m), low_m, high_m


def draw_curve(ax, g, algos):
    steps_k, iqm_k, low_k, high_k = iqm_curve(g["runs"])
    c = color(g["algo"], algos)
    ax.step(steps_k, iqm_k, where="post", color=c, ls=LINESTYLES[g["library"]], lw=LINE_WIDTH, label=label(g))
    ax.fill_between(steps_k, low_k, high_k, step="post", color=c, alpha=0.15, lw=0)


def learning_panel(ax, env_id, groups, algos):
    mine = [g for g in groups if g["env"] == env_id]
    for g in mine:
        draw_curve(ax, g, algos)
    ax.axhline(mine[0]["threshold"], **THRESHOLD)
    budgets = [g["runs"][0]["history"][-1][0] for g in mine]
    ax.set(title=f"{env_id} (threshold {mine[0]['threshold']:g})", ylabel="mean evaluation return (10 episodes)",
           xlim=(0, max(budgets)))
    if max(budgets) > 2 * min(budgets):  # a long budget beside short ones: log steps keep the early climbs apart
        ax.set(xscale="log", xlim=(min(g["runs"][0]["history"][0][0] for g in mine), max(budgets)))
    ax.set_xlabel("environment steps" + (" (log scale)" if ax.get_xscale() == "log" else ""))
    ax.xaxis.set_major_formatter(STEPS)
    ax.grid(alpha=0.3)


def handle(g, algos):
    """The legend's line for a group: its colour and style at the normal width, whatever width its curve needed."""
    return Line2D([], [], color=color(g["algo"], algos), ls=LINESTYLES[g["library"]], lw=LINE_WIDTH)


def legend(fig, groups, algos):
    """One legend for the figure, under the panels: every curve in it, and the threshold."""
    handles = {label(g): handle(g, algos) for g in groups}
    handles["threshold"] = Line2D([], [], **THRESHOLD)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=min(len(handles), 5),
               frameon=False)


def learning_figure(groups, order, algos, name, what):
    envs = environments(groups, order)
    fig, axes = plt.subplots(1, len(envs), figsize=(max(6 * len(envs), 9), 4.8), layout="constrained",
                             squeeze=False)
    for ax, env_id in zip(axes[0], envs):
        learning_panel(ax, env_id, groups, algos)
    legend(fig, groups, algos)
    fig.suptitle(f"{what}: IQM over {seeds_text(groups)}, 95% bootstrap CI (shaded)")
    return save(fig, name)


def taus(groups, env_id):
    """Thresholds spanning every final return of the environment (or 1 either side of the only one), so all its
    panels share them."""
    scores = np.concatenate([final_returns(g["runs"]) for g in groups if g["env"] == env_id])
    pad = 0.0 if scores.max() > scores.min() else 1.0
    return np.linspace(scores.min() - pad, scores.max() + pad, 400)


def widths(curves_m):
    """Line widths that keep identical curves visible: each one wider by the number drawn over it."""
    return [LINE_WIDTH + 2.0 * sum(np.array_equal(c, later) for later in curves_m[i + 1:])
            for i, c in enumerate(curves_m)]


def profile_panel(ax, env_id, groups, taus_m, algos):
    mine = [g for g in groups if g["env"] == env_id]
    profiles = [profile(final_returns(g["runs"]), taus_m) for g in mine]
    for g, (fraction_m, low_m, high_m), lw in zip(mine, profiles, widths([p[0] for p in profiles])):
        c = color(g["algo"], algos)
        ax.plot(taus_m, fraction_m, color=c, ls=LINESTYLES[g["library"]], lw=lw)
        ax.fill_between(taus_m, low_m, high_m, color=c, alpha=0.12, lw=0)
    for i, fraction_m in enumerate(p[0] for p in profiles):
        same = [label(g) for g, q in zip(mine, profiles) if np.array_equal(q[0], fraction_m)]
        if len(same) > 1 and label(mine[i]) == same[0]:  # say it once, under the curves drawn over one another
            at = len(taus_m) // 3
            ax.annotate("one curve, drawn nested:\n" + "; ".join(same), (taus_m[at], fraction_m[at]),
                        xytext=(taus_m[at], fraction_m[at] - 0.45), ha="center", fontsize=8,
                        arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.axvline(mine[0]["threshold"], **THRESHOLD)
    ax.legend([handle(g, algos) for g in mine] + [Line2D([], [], **THRESHOLD)],
              [f"{label(g)} ({g['budget'] // 1000}k steps)" for g in mine] + [f"threshold {mine[0]['threshold']:g}"],
              fontsize=8, loc="lower left")  # normal-width lines: a widened dashed curve would look solid
    ax.set(xlabel="tau: return at the budget", ylabel="fraction of runs with return ≥ tau", ylim=(-0.03, 1.05))
    ax.grid(alpha=0.3)


def profile_figure(rows, all_groups, envs, algos, name="performance_profiles.png"):
    """One row per ``(title, groups)`` of ``rows``, one column per environment of ``envs``."""
    fig, axes = plt.subplots(len(rows), len(envs), figsize=(6 * len(envs), 4.2 * len(rows)), layout="constrained",
                             squeeze=False)
    for row, (title, groups) in zip(axes, rows):
        for ax, env_id in zip(row, envs):
            if not any(g["env"] == env_id for g in groups):
                ax.set_axis_off()
                continue
            profile_panel(ax, env_id, groups, taus(all_groups, env_id), algos)
            ax.set_title(f"{env_id}: {title}")
    fig.suptitle(f"Performance profiles of the return at the budget over {seeds_text(all_groups)}, "
                 "95% bootstrap bands (shaded)")
    return save(fig, name)


def save(fig, name):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")
    return path


def main():
    groups = load()
    algos, envs = (list(dict.fromkeys(g[key] for g in groups)) for key in ("algo", "env"))
    compared, alone = split(groups)
    if compared:
        learning_figure(compared, envs, algos, "learning_curves.png", "npgrad (solid) against SB3 (dashed)")
    if alone:
        learning_figure(alone, envs, algos, "learning_curves_npgrad.png", "npgrad only, no SB3 runs")
    rows = [(title, g) for title, g in (("against SB3", compared), ("npgrad only", alone)) if g]
    profile_figure(rows, groups, envs, algos)


if __name__ == "__main__":
    main()
