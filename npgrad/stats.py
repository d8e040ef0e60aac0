"""Statistics for comparing learning runs: IQM, bootstrap intervals, probability of improvement.

Following Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice" (NeurIPS), and
its library rliable: report the interquartile mean over runs with a 95% stratified bootstrap
confidence interval, the median, the probability of improvement, and performance profiles.
Steps (or seconds) to a threshold use ``np.inf`` for "never": a run that never reaches the
threshold is infinitely late.

Shape suffixes (besides the legend of ``npgrad/__init__.py``): ``r`` runs (seeds), always the
last axis; ``k`` evaluations of one run; ``m`` thresholds ``tau`` of a performance profile.
Several tasks (environments) are a dict or list of per-task run arrays, ``x_by_task``.

A worked example: steps to threshold (thousands) of 8 seeds of two libraries. IQM: drop the
2 lowest and 2 highest of 8, average the middle 4 (30, 35, 40, 45 -> 37.5; 40, 45, 50, 55 ->
47.5; 2 of 8 "never" is not more than a quarter, so the IQM is finite). P(npgrad sooner) counts,
over the 64 pairs, those where npgrad is sooner, ties (here 30, 35, ..., and never-never) as 1/2:
(8 + 8 + 7.5 + 6.5 + 5.5 + 4.5 + 3.5 + 1) / 64 = 44.5 / 64.

>>> import numpy as np
>>> from npgrad import stats
>>> never = np.inf
>>> npgrad_r = np.array([20, 25, 30, 35, 40, 45, 50, never])
>>> sb3_r = np.array([30, 35, 40, 45, 50, 55, never, never])
>>> float(stats.iqm_to_threshold(npgrad_r)), float(stats.iqm_to_threshold(sb3_r))
(37.5, 47.5)
>>> float(stats.median(npgrad_r))
37.5
>>> float(stats.probability_of_improvement(npgrad_r, sb3_r, lower_is_better=True))
0.6953125
>>> low, high = stats.interval(npgrad_r, stats.iqm_to_threshold, rng=0)
>>> bool(low <= 37.5 <= high)
True
>>> stats.first_reach([0, 5000, 10000, 15000, 20000], [500, 100, 480, 300, 490], threshold=475)
10000.0
>>> stats.sustained_reach([0, 5000, 10000, 15000, 20000], [500, 100, 480, 300, 490], threshold=475)
20000.0
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

Statistic = Callable[..., np.ndarray]
Tasks = Mapping[str, ArrayLike] | Sequence[ArrayLike]
Interval = tuple  # (low, high): floats, or arrays for a statistic with axes of its own (or a (k, r) input)

# A finite stand-in for "never" (inf) inside scipy.stats.bootstrap, whose quantile interpolation and
# standard error would turn inf - inf into nan; its square still fits in a float64.
_NEVER_STAND_IN = 1e150
# scipy >= 1.15 calls the bootstrap's generator ``rng``; 1.12 to 1.14 (setup.cfg allows 1.12) ``random_state``
_RNG_KEYWORD = "rng" if "rng" in inspect.signature(sps.bootstrap).parameters else "random_state"


# --- point estimates over runs (the last axis) ------------------------------------------------------------

def iqm(x_r: ArrayLike, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle half of the runs, the 25%-trimmed mean.

    ``IQM(x) = mean(x_(g+1), ..., x_(n-g))`` of the sorted sample, ``g = floor(n / 4)`` runs cut
    from each end (``scipy.stats.trim_mean(x, 0.25)``; Agarwal et al. 2021; rliable's ``metrics.aggregate_iqm``).
    Robust to outlying runs like the median, but uses half the runs rather than one or two.
    ``x_r``: ``(..., r)``; returns ``(...)``.
    """
    return sps.trim_mean(np.asarray(x_r, dtype=np.float64), 0.25, axis=axis)


def median(x_r: ArrayLike, axis: int = -1) -> np.ndarray:
    """Median over runs; ``np.inf`` ("never") counts as infinitely late. ``(..., r) -> (...)``."""
    return np.median(np.asarray(x_r, dtype=np.float64), axis=axis)


def iqm_to_threshold(steps_r: ArrayLike, axis: int = -1) -> np.ndarray:
    """IQM of steps (or seconds) to a threshold, ``np.inf`` ("never") if more than a quarter never reach it.

    "Never" is infinitely late, as in benchmarks/README.md. With ``v`` runs never reaching, ``v <= n / 4`` means
    ``v <= floor(n / 4)``: the IQM's trimming drops them all and the IQM is finite; ``v > n / 4``
    leaves one in the middle half and the IQM is "never". ``steps_r``: ``(..., r)``; returns ``(...)``.
    """
    steps_r = np.asarray(steps_r, dtype=np.float64)
    never = np.sum(np.isposinf(steps_r), axis=axis)
    return np.where(never > steps_r.shape[axis] / 4, np.inf, iqm(steps_r, axis=axis))


def probability_of_improvement(x_r: ArrayLike, y_r: ArrayLike, lower_is_better: bool = False,
                               axis: int = -1) -> np.ndarray:
    """``P(X > Y) = (1 / (n m)) sum_i sum_j ([x_i > y_j] + 1/2 [x_i = y_j])``: how likely a run of X beats one of Y.

    The Mann-Whitney U statistic of X divided by ``n m`` (Agarwal et al. 2021; rliable's
    ``metrics.probability_of_improvement``). ``P(X > Y) + P(Y > X) = 1``; 0.5 is no difference.
    ``lower_is_better=True`` (steps or seconds to threshold) gives ``P(X < Y)``, ties 1/2: the
    probability that X reaches the threshold sooner; "never" (inf) ties with "never".
    ``x_r``: ``(..., n)``, ``y_r``: ``(..., m)``; returns ``(...)``.
    """
    x_r, y_r = np.asarray(x_r, dtype=np.float64), np.asarray(y_r, dtype=np.float64)
    if lower_is_better:  # X beats Y when it is lower: compare -X with -Y
        x_r, y_r = -x_r, -y_r
    u = sps.mannwhitneyu(x_r, y_r, axis=axis, method="asymptotic").statistic  # the p-value is not used
    return u / (x_r.shape[axis] * y_r.shape[axis])


def performance_profile(scores_r: ArrayLike, taus_m: ArrayLike, axis: int = -1) -> np.ndarray:
    """Score distribution ``F(tau) = (1 / n) sum_i [x_i > tau]``: the fraction of runs scoring above each ``tau``.

    Agarwal et al. 2021's run-score distribution (rliable's ``library.create_performance_profile``).
    ``scores_r``: ``(..., r)``, ``taus_m``: ``(m,)``; returns ``(..., m)``, non-increasing in ``tau``.
    """
    scores_r = np.moveaxis(np.asarray(scores_r, dtype=np.float64), axis, -1)
    return np.mean(scores_r[..., None, :] > np.asarray(taus_m, dtype=np.float64)[:, None], axis=-1)


# --- reaching a threshold within one run ------------------------------------------------------------------

def first_reach(steps_k: ArrayLike, returns_k: ArrayLike, threshold: float, at_k: ArrayLike | None = None) -> float:
    """Step of the first evaluation at or above ``threshold``, ``np.inf`` if none ("never").

    The evaluation at step 0 never counts (an untrained policy). ``at_k`` (default ``steps_k``) is what to
    report at that evaluation, e.g. the training seconds. From ``npgrad.callbacks.Evaluator``'s
    history: ``steps_k, seconds_k, returns_k = np.array(history).T``. Same as ``first_reach`` of
    ``benchmarks/learning.py``, which returns the index into the history (``None`` for never).
    """
    steps_k, returns_k = np.asarray(steps_k), np.asarray(returns_k)
    at_k = steps_k if at_k is None else np.asarray(at_k)
    reached_k = (returns_k >= threshold) & (steps_k > 0)
    return float(at_k[np.argmax(reached_k)]) if reached_k.any() else np.inf


def sustained_reach(steps_k: ArrayLike, returns_k: ArrayLike, threshold: float,
                    at_k: ArrayLike | None = None) -> float:
    """Step of the first evaluation from which every later one stays at or above ``threshold``; ``np.inf`` if none.

    The evaluation after the last one below the threshold (a NaN return counts as below), among
    evaluations after step 0; "never" if the last evaluation is below. ``at_k`` as in ``first_reach``.
    Same as ``sustained_reach`` of ``benchmarks/learning.py``.
    """
    trained_k = np.asarray(steps_k) > 0
    returns_k = np.asarray(returns_k)[trained_k]
    at_k = np.asarray(steps_k if at_k is None else at_k)[trained_k]
    below = np.flatnonzero(~(returns_k >= threshold))
    i = below[-1] + 1 if below.size else 0
    return float(at_k[i]) if i < len(at_k) else np.inf


# --- confidence intervals by the bootstrap ------------------------------------------------------------------

def interval(x_r: ArrayLike, statistic: Statistic = iqm, confidence: float = 0.95, n_resamples: int = 10_000,
             method: str = "percentile", rng: int | np.random.Generator | None = 0) -> Interval:
    """``(low, high)``: a bootstrap confidence interval of ``statistic(x_r)`` over runs (one task).

    The percentile bootstrap (Efron & Tibshirani 1993, ch. 13; rliable's default): resample the ``r``
    runs with replacement ``n_resamples`` times and take the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles of the statistic (``scipy.stats.bootstrap``). Percentile, not
    BCa, by default: it is defined for "never" (inf) and for statistics that do not move under
    leave-one-out (BCa's jackknife divides by zero there); ``method="BCa"`` (finite data only) or
    ``"basic"`` pass through to scipy. An interval reaching into "never" has ``high = np.inf``.
    ``statistic(x, axis=-1)`` reduces the last axis (``iqm``, ``median``, ``iqm_to_threshold``, ...).
    A single run, or runs all equal, give ``(v, v)``: every resample is the same. ``x_r`` may be
    ``(k, r)``, e.g. the returns of ``r`` runs at ``k`` evaluations: ``(low_k, high_k)``, a learning
    curve's band, every evaluation resampling the same runs. ``rng``: a seed or a ``np.random.Generator``;
    the same seed gives the same interval (default 0, so tables regenerated from the same runs match).
    """
    return stratified_interval([x_r], statistic, confidence, n_resamples, method, rng)


def stratified_interval(x_by_task: Tasks, statistic: Statistic = iqm, confidence: float = 0.95,
                        n_resamples: int = 10_000, method: str = "percentile",
                        rng: int | np.random.Generator | None = 0) -> Interval:
    """``(low, high)`` of ``statistic`` over the runs of all tasks pooled, by the stratified bootstrap.

    The stratified bootstrap (Agarwal et al. 2021; rliable's ``library.StratifiedBootstrap``):
    resample runs with replacement *within* each task, independently, so every resample keeps each
    task's number of runs; the point estimate is ``statistic(np.concatenate(tasks))`` (for
    ``iqm``, rliable's aggregate IQM). Otherwise as ``interval``.
    """
    tasks = [np.asarray(x, dtype=np.float64) for x in _values(x_by_task)]
    return _bootstrap(tasks, lambda *runs, axis=-1: statistic(np.concatenate(runs, axis=-1), axis=-1),
                      confidence, n_resamples, method, rng)


def probability_of_improvement_over_tasks(x_by_task: Tasks, y_by_task: Tasks, lower_is_better: bool = False) -> float:
    """The average over tasks of ``probability_of_improvement`` (Agarwal et al. 2021; rliable)."""
    return float(_mean_probability_of_improvement(*_paired_tasks(x_by_task, y_by_task), lower_is_better))


def _mean_probability_of_improvement(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray],
                                     lower_is_better: bool) -> np.ndarray:
    return np.mean([probability_of_improvement(x, y, lower_is_better) for x, y in zip(xs, ys)], axis=0)


def probability_of_improvement_interval(x_by_task: Tasks, y_by_task: Tasks, lower_is_better: bool = False,
                                        confidence: float = 0.95, n_resamples: int = 10_000,
                                        method: str = "percentile",
                                        rng: int | np.random.Generator | None = 0) -> Interval:
    """``(low, high)`` of ``probability_of_improvement_over_tasks`` by the stratified bootstrap.

    The runs of X and of Y in each task are resampled independently (rliable). One task: ``[x_r], [y_r]``.
    """
    xs, ys = _paired_tasks(x_by_task, y_by_task)
    n = len(xs)
    return _bootstrap(xs + ys, lambda *runs, axis=-1: _mean_probability_of_improvement(runs[:n], runs[n:],
                                                                                       lower_is_better),
                      confidence, n_resamples, method, rng)


def performance_profile_interval(scores_r: ArrayLike, taus_m: ArrayLike, confidence: float = 0.95,
                                 n_resamples: int = 10_000, rng: int | np.random.Generator | None = 0) -> Interval:
    """``(low_m, high_m)``: pointwise percentile-bootstrap intervals of ``performance_profile``, all ``tau``
    from the same resamples of the runs (rliable draws its profile bands this way)."""
    return interval(scores_r, lambda x, axis=-1: performance_profile(x, taus_m, axis), confidence, n_resamples,
                    "percentile", rng)


def _bootstrap(samples: Sequence[np.ndarray], statistic: Statistic, confidence: float, n_resamples: int, method: str,
               rng: int | np.random.Generator | None) -> Interval:
    """``scipy.stats.bootstrap`` resampling each sample's runs (last axis) independently (``paired=False``):
    the stratified bootstrap when the samples are tasks. Leading axes (evaluations ``k``) share the resampled
    runs. Around scipy: samples whose runs are all equal are held fixed (resampling cannot change them, and
    scipy refuses single runs), and "never" (inf) goes to scipy as a finite stand-in; an endpoint beyond
    every finite resampled value comes back as inf."""
    samples = [np.asarray(s, dtype=np.float64) for s in samples]
    if any(s.ndim == 0 or s.shape[-1] == 0 for s in samples):
        raise ValueError("every sample (task) needs at least one run along its last axis")
    if any(np.isnan(s).any() or np.isneginf(s).any() for s in samples):
        raise ValueError("bootstrap samples may hold np.inf for 'never', but no NaN or -inf")
    if method.lower() == "bca" and not all(np.isfinite(s).all() for s in samples):
        raise ValueError("BCa needs finite samples; use method='percentile' with 'never' (inf) values")
    varying = [i for i, s in enumerate(samples) if np.any(s != s[..., :1])]
    if not varying:  # every resample equals the data: the interval is the point
        v = _plain(statistic(*samples, axis=-1))
        return v, v

    def resampled_statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        full = list(samples)
        for i, s in zip(varying, resampled):
            full[i] = s
        # scipy inserts its resample (or jackknife) axis at -2; the fixed samples get a length-1 axis there
        lead = np.broadcast_shapes(*(s.shape[:-1] for s in resampled))
        full = [np.broadcast_to(s.reshape(s.shape[:-1] + (1,) * (len(lead) + 1 - s.ndim) + s.shape[-1:]),
                                lead + s.shape[-1:]) for s in full]
        theta = np.asarray(statistic(*full, axis=-1))  # lead + the statistic's own axes
        if len(lead) > samples[varying[0]].ndim - 1:  # scipy wants the resample axis last
            theta = np.moveaxis(theta, len(lead) - 1, -1)
        return np.where(np.isposinf(theta), _NEVER_STAND_IN, theta)

    res = sps.bootstrap([samples[i] for i in varying], resampled_statistic, n_resamples=n_resamples, vectorized=True,
                        paired=False, axis=-1, confidence_level=confidence, method=method,
                        **{_RNG_KEYWORD: np.random.default_rng(rng)})  # a seed becomes a Generator in every version
    theta_b = res.bootstrap_distribution
    largest = np.max(np.where(theta_b < _NEVER_STAND_IN, theta_b, -np.inf), axis=-1)
    low, high = (_plain(np.where(end > largest, np.inf, end)) for end in res.confidence_interval)
    return low, high


def _plain(v: ArrayLike) -> float | np.ndarray:
    """A 0-d result as a Python float, others as arrays."""
    v = np.asarray(v, dtype=np.float64)
    return float(v) if v.ndim == 0 else v


def _values(x_by_task: Tasks) -> list:
    return list(x_by_task.values()) if isinstance(x_by_task, Mapping) else list(x_by_task)


def _paired_tasks(x_by_task: Tasks, y_by_task: Tasks) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-task run arrays of X and Y in the same task order (dicts are matched by key)."""
    if isinstance(x_by_task, Mapping):
        if not isinstance(y_by_task, Mapping) or set(x_by_task) != set(y_by_task):
            raise ValueError("x_by_task and y_by_task must have the same tasks")
        y_by_task = [y_by_task[task] for task in x_by_task]
    xs, ys = _values(x_by_task), _values(y_by_task)
    if len(xs) != len(ys):
        raise ValueError(f"{len(xs)} tasks of X but {len(ys)} of Y")
    return [np.asarray(x, dtype=np.float64) for x in xs], [np.asarray(y, dtype=np.float64) for y in ys]
