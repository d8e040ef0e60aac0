"""Learning-curve plots (optional: needs the ``plot`` extra, matplotlib)."""
from __future__ import annotations


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_curves(curves, path, title="", threshold=None, ylabel="mean evaluation return", threshold_label="solved"):
    """Save a PNG of ``{label: (steps, returns)}`` or ``{label: (steps, centre, low, high)}`` (a band); an entry
    ``{"_<group label> k": (steps, returns, "member")}`` draws one seed thinly in its group's colour.

    Returns the path, or None without matplotlib.
    """
    if not have_matplotlib():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    colors = {}
    for label, (steps, returns, *band) in curves.items():
        if band == ["member"]:  # one seed's curve under its group's band: thin, in the group's colour, unlabelled
            group = next(g for g in colors if label[1:].startswith(g.split(":")[0]))
            ax.plot(steps, returns, color=colors[group], lw=0.6, alpha=0.5)
            continue
        line, = ax.plot(steps, returns, label=literal(label))
        colors[label] = line.get_color()
        if band:
            ax.fill_between(steps, *band, color=line.get_color(), alpha=0.2)
    if any(band == ["member"] for _, _, *band in curves.values()):
        ax.plot([], [], color="grey", lw=0.6, alpha=0.5, label="thin lines: one seed each")
    if threshold is not None:
        ax.axhline(threshold, color="grey", ls="--", lw=1, label=threshold_label)
    ax.set(xlabel="environment steps", ylabel=ylabel, title=literal(title))
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.15), fontsize="small", frameon=False)  # below: covers no curve
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def iqm_band(label, curve):
    """The ``plot_curves`` entry of a population ``Curve`` (runs that differ only in their seed): its interquartile
    mean with the 95% bootstrap band, labelled so."""
    entry = f"{label}: IQM of {curve.members} seeds (band: 95% CI)"
    return {entry: (curve.num_steps, curve.iqm, curve.low, curve.high)}


def seed_lines(label, steps_k, returns_rk):
    """``plot_curves`` entries that draw each seed's own curve thinly, in the colour of ``label``'s band."""
    return {f"_{label} {k}": (steps_k, returns_k, "member") for k, returns_k in enumerate(returns_rk)}


def literal(text):
    """``text`` drawn as it is: every ``$`` escaped, so an env id such as ``$\\frac{$`` is not parsed as mathtext."""
    return str(text).replace("$", r"\$")
