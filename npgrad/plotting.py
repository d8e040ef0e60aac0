"""Learning-curve plots (optional: needs the ``plot`` extra, matplotlib)."""
from __future__ import annotations


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_curves(curves, path, title="", threshold=None):
    """Save a PNG of ``{label: (steps, returns)}`` or ``{label: (steps, mean, low, high)}`` (a band).

    Returns the path, or None without matplotlib.
    """
    if not have_matplotlib():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (steps, returns, *band) in curves.items():
        line, = ax.plot(steps, returns, label=literal(label))
        if band:
            ax.fill_between(steps, *band, color=line.get_color(), alpha=0.2)
    if threshold is not None:
        ax.axhline(threshold, color="grey", ls="--", lw=1, label="solved")
    ax.set(xlabel="environment steps", ylabel="mean evaluation return", title=literal(title))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def literal(text):
    """``text`` drawn as it is: every ``$`` escaped, so an env id such as ``$\\frac{$`` is not parsed as mathtext."""
    return str(text).replace("$", r"\$")
