"""Copy the latest full results (``results/learning.md``, ``derivatives.md``, ``floor.md``, ``seeds.md``,
``mujoco.md``, ``mujoco-sb3.md``, ``spaces.md``) into the READMEs, and summarise the last two in one table.

Each copy sits between ``<!-- results: NAME -->`` and ``<!-- /results -->``; the prose around it
(what the numbers mean, which targets are met) is written by hand and must be reread after a run.

    python benchmarks/publish.py           # rewrite every block from results/
    python benchmarks/publish.py --check   # exit 1 naming each block that differs (.ci/run does this)

A learning run without ``--sb3`` has no side-by-side table; the blocks that show one are then left
as they are, and the script says so.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BLOCK = re.compile(r"(<!-- results: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)
SIDE_BY_SIDE = "Against SB3, measured in this run:"
REFERENCE = "Against the SB3 reference (not measured in this run):"


def read_sections(name):
    """``results/<name>.md`` split at blank lines: the "Measured ..." line, then tables and their captions."""
    with open(os.path.join(HERE, "results", f"{name}.md")) as f:
        return [s.strip() for s in f.read().split("\n\n") if s.strip()]


def npgrad_only(table):
    """npgrad's rows of the learning table, named by algorithm and env (the library column dropped)."""
    header, rule, *rows = table.splitlines()
    kept = [row.replace("| npgrad ", "| ", 1) for row in rows if row.startswith("| npgrad ")]
    return "\n".join([header.replace("| library, algorithm, env |", "| algorithm, env |", 1), rule, *kept])


def most_seeds(rows):
    """``{(env, algo): row}``, the row on the most seeds for each (the later on a tie)."""
    best = {}
    for row in rows:
        key = (row["env"], row["algo"])
        if key not in best or len(row["seeds"]) >= len(best[key]["seeds"]):
            best[key] = row
    return best


def against_sb3(row):
    """SB3's seconds to the target over npgrad's, the median per seed, and how many seeds of each get there. As
    ``mujoco_sb3.markdown`` reads the ratio, from JSON: infinite (stored as null) is "SB3 never", NaN (no seed of
    either got there) is "-"."""
    n, b, k = row["npgrad"]["reached"], row["sb3"]["reached"], len(row["seeds"])
    ratio = row["sb3_over_npgrad_median"]
    times = "SB3 never" if ratio is None else "-" if math.isnan(ratio) else f"{ratio:.1f}x"
    return f"{times} ({n} / {b} of {k})"


def mujoco_summary():
    """One table of ``mujoco.json`` and ``mujoco-sb3.json``: PPO's and TRPO's return at the budget, and how much
    sooner than SB3 each gets to the target, environment by environment."""
    def rows(name):
        with open(os.path.join(HERE, "results", f"{name}.json")) as f:
            return [r for r in json.load(f)["results"] if r["algo"] in ("ppo", "trpo")]

    ours, theirs = most_seeds(rows("mujoco")), rows("mujoco-sb3")
    theirs = most_seeds([r for r in theirs if (r["env"], r["algo"]) in ours
                         and r["target"] == ours[r["env"], r["algo"]]["target"]])
    lines = ["| environment | target (PPO / TRPO) | PPO, return at the budget | TRPO, return at the budget "
             "| PPO against SB3 | TRPO against SB3 |", "|---" * 6 + "|"]
    for env in sorted({env for env, _ in ours}):
        targets = [f"{ours[env, algo]['target']:,}" for algo in ("ppo", "trpo") if (env, algo) in ours]
        cells = [env, " / ".join(dict.fromkeys(targets))]  # one number where PPO's and TRPO's are the same
        for algo in ("ppo", "trpo"):
            final = ours[env, algo]["final"] if (env, algo) in ours else None
            cells.append(f"{final['iqm']:,.0f} [{final['low']:,.0f}, {final['high']:,.0f}]" if final else "-")
        cells += [against_sb3(theirs[env, algo]) if (env, algo) in theirs else "-" for algo in ("ppo", "trpo")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def blocks_from_results():
    """``{block name: markdown}`` for every block the READMEs may hold."""
    learning, derivatives = read_sections("learning"), read_sections("derivatives")
    ours = learning[:next((i for i, s in enumerate(learning) if s in (SIDE_BY_SIDE, REFERENCE)), len(learning))]
    blocks = {
        "learning-npgrad": npgrad_only(learning[1]),  # [0] is the "Measured ..." line
        "full": "\n\n".join([*ours, *derivatives]),  # the runs and their ceilings, then the derivative costs
        "floor": "\n\n".join(read_sections("floor")),
    }
    seeds = read_sections("seeds")  # the "Measured ..." line, the steps table, a caption, the seconds table
    blocks["seeds"], blocks["seeds-seconds"] = seeds[1], seeds[3]
    blocks["mujoco"] = "\n\n".join(read_sections("mujoco"))
    blocks["mujoco-sb3"] = "\n\n".join(read_sections("mujoco-sb3"))
    blocks["spaces"] = "\n\n".join(read_sections("spaces"))
    blocks["mujoco-summary"] = mujoco_summary()
    if SIDE_BY_SIDE in learning:
        blocks["learning-vs-sb3"] = learning[learning.index(SIDE_BY_SIDE) + 1]
    return blocks


def publish(path, blocks, check):
    """Rewrite (or, with ``check``, compare) the marked blocks of one file. Returns the names that differ."""
    with open(path) as f:
        text = f.read()
    stale = []

    def fill(match):
        name = match["name"]
        if name == "learning-vs-sb3" and name not in blocks:
            print(f"{os.path.relpath(path, ROOT)}: kept the side-by-side block: results/learning.md has none "
                  "(run learning.py with --sb3)")
            return match[0]
        if name not in blocks:
            raise SystemExit(f"{os.path.relpath(path, ROOT)}: unknown results block {name!r}; known: {sorted(blocks)}")
        body = "\n" + blocks[name] + "\n\n"
        if match["body"] != body:
            stale.append(name)
        return match[1] + body + match[4]

    new_text = BLOCK.sub(fill, text)
    if not check and new_text != text:
        with open(path, "w") as f:
            f.write(new_text)
    return stale


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is out of date")
    args = parser.parse_args(argv)
    blocks = blocks_from_results()
    stale = {}
    for readme in ("README.md", os.path.join("benchmarks", "README.md")):
        names = publish(os.path.join(ROOT, readme), blocks, args.check)
        if names:
            stale[readme] = names
    for readme, names in stale.items():
        print(f"{readme}: {'out of date' if args.check else 'updated'}: {', '.join(names)}")
    if args.check and stale:
        print("run `python benchmarks/publish.py`, then reread the prose around the tables")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
