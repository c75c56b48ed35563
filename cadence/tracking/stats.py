"""Statistics over seeds: summaries, Welch's t-test and a bootstrap interval of a difference of means.

Everything here needs numpy only. The Student-t distribution function is computed from the regularized
incomplete beta function (continued fraction, as in Press et al., *Numerical Recipes*, §6.4), which is
accurate to ~1e-12 for the degrees of freedom that seed experiments produce; scipy is not needed.

Example::

    >>> result = welch_t_test([0.93, 0.94, 0.95], [0.90, 0.91, 0.92])
    >>> round(result.t, 3), round(result.df, 1), round(result.p_value, 4)
    (3.674, 4.0, 0.0213)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "BootstrapInterval",
    "Summary",
    "WelchResult",
    "bootstrap_difference",
    "compare_samples",
    "higher_is_better",
    "regularized_incomplete_beta",
    "student_t_cdf",
    "student_t_critical",
    "student_t_two_sided_p",
    "summarize",
    "welch_interval",
    "welch_t_test",
]


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof=1; 0 for one value), min, max and count of a sample."""

    mean: float
    std: float
    min: float
    max: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def format(self, scale: float = 1.0, digits: int = 2) -> str:
        """``"93.10 ± 0.45"`` (the ``± std`` part is left out for a single value)."""
        if self.n == 0:
            return "—"
        if self.n == 1:
            return f"{self.mean * scale:.{digits}f}"
        return f"{self.mean * scale:.{digits}f} ± {self.std * scale:.{digits}f}"


def summarize(values: Sequence[float]) -> Summary:
    """Summarize a sample; non-finite values are kept (a NaN mean shows that something went wrong)."""
    array = np.asarray(list(values), dtype=float)
    if array.size == 0:
        nan = float("nan")
        return Summary(nan, nan, nan, nan, 0)
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return Summary(float(array.mean()), std, float(array.min()), float(array.max()), int(array.size))


def higher_is_better(metric: str) -> bool:
    """Accuracy-like metrics go up, losses and errors go down (decided by the metric's name)."""
    name = metric.lower()
    return not any(word in name for word in ("loss", "error", "perplexity", "time", "steps"))


# --------------------------------------------------------------------------------------------------------
# Student's t distribution


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function, evaluated with the modified Lentz method."""
    tiny = 1e-300
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 1000):
        # even step: d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m))
        numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + numerator / c
        c = c if abs(c) > tiny else tiny
        fraction *= d * c
        # odd step: d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1))
        numerator = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + numerator / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        fraction *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return fraction


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """``I_x(a, b) = B(x; a, b) / B(a, b)`` for ``a, b > 0`` and ``0 <= x <= 1``."""
    if a <= 0 or b <= 0:
        raise ValueError(f"regularized_incomplete_beta needs a > 0 and b > 0, got {a=} {b=}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"regularized_incomplete_beta needs 0 <= x <= 1, got {x=}")
    if x == 0.0 or x == 1.0:
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    # The continued fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_two_sided_p(t: float, df: float) -> float:
    """Two-sided p-value ``P(|T| >= |t|)`` of Student's t with ``df`` (may be fractional) degrees of freedom.

    Uses ``P(|T| >= |t|) = I_{df / (df + t²)}(df / 2, 1 / 2)``.
    """
    if df <= 0 or math.isnan(df):
        raise ValueError(f"degrees of freedom must be positive, got {df=}")
    if math.isnan(t):
        return float("nan")
    if math.isinf(t):
        return 0.0
    return min(1.0, regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t)))


def student_t_cdf(t: float, df: float) -> float:
    """Distribution function ``P(T <= t)`` of Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * student_t_two_sided_p(t, df)
    return 1.0 - tail if t > 0 else tail


def student_t_critical(alpha: float, df: float) -> float:
    """The ``t`` with ``P(|T| >= t) = alpha``: the half-width, in standard errors, of a 1 - alpha interval.

    Found by bisection on :func:`student_t_two_sided_p` (which falls as ``t`` grows), to ~1e-12.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha=}")
    low, high = 0.0, 1.0
    while student_t_two_sided_p(high, df) > alpha:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if student_t_two_sided_p(middle, df) > alpha:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2.0


# --------------------------------------------------------------------------------------------------------
# Tests and intervals


@dataclass(frozen=True)
class WelchResult:
    """Welch's unequal-variance t-test of ``mean(a) - mean(b)``.

    ``t = (mean_a - mean_b) / se`` with ``se = sqrt(var_a / n_a + var_b / n_b)`` (sample variances, ddof=1);
    ``df`` is the Welch–Satterthwaite approximation
    ``se⁴ / ((var_a / n_a)² / (n_a - 1) + (var_b / n_b)² / (n_b - 1))``; ``p_value`` is two-sided.
    Welch, B. L. (1947), "The generalization of Student's problem when several different population
    variances are involved", Biometrika 34.
    """

    difference: float
    standard_error: float
    t: float
    df: float
    p_value: float
    n_a: int
    n_b: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> WelchResult:
    """Welch's t-test of two independent samples (each needs at least 2 values).

    When both samples have zero variance the test is degenerate: the p-value is 1 for equal means and 0
    otherwise (t is ±inf), which is what the limit of ever smaller variances gives.
    """
    first = np.asarray(list(a), dtype=float)
    second = np.asarray(list(b), dtype=float)
    if first.size < 2 or second.size < 2:
        raise ValueError(
            f"welch_t_test needs at least 2 values per sample, got n_a={first.size} n_b={second.size}"
        )
    difference = float(first.mean() - second.mean())
    part_a = float(first.var(ddof=1)) / first.size
    part_b = float(second.var(ddof=1)) / second.size
    standard_error = math.sqrt(part_a + part_b)
    if standard_error == 0.0:
        t = 0.0 if difference == 0.0 else math.copysign(math.inf, difference)
        p_value = 1.0 if difference == 0.0 else 0.0
        df = float(first.size + second.size - 2)
    else:
        t = difference / standard_error
        df = (part_a + part_b) ** 2 / (part_a**2 / (first.size - 1) + part_b**2 / (second.size - 1))
        p_value = student_t_two_sided_p(t, df)
    return WelchResult(difference, standard_error, t, df, p_value, int(first.size), int(second.size))


def welch_interval(result: WelchResult, alpha: float = 0.05) -> tuple[float, float]:
    """The ``1 - alpha`` confidence interval of the difference that belongs to the Welch test ``result``.

    ``difference ± t_crit(alpha, df) · se``: it excludes 0 exactly when ``result.p_value < alpha``, so an
    interval and a significance call made from the same test cannot contradict each other.
    """
    if result.standard_error == 0.0 or math.isinf(result.t):
        return result.difference, result.difference
    half = student_t_critical(alpha, result.df) * result.standard_error
    return result.difference - half, result.difference + half


@dataclass(frozen=True)
class BootstrapInterval:
    """Percentile bootstrap interval of ``mean(a) - mean(b)`` (each sample resampled with replacement)."""

    difference: float
    low: float
    high: float
    confidence: float
    resamples: int
    seed: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def bootstrap_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> BootstrapInterval:
    """Percentile bootstrap confidence interval of the difference of means (Efron & Tibshirani, 1993).

    The generator is ``numpy.random.default_rng(seed)``, so the interval is reproducible. With 3 seeds per
    side the interval is coarse (only a few distinct resampled means exist); read it together with the
    t-test.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence=}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples=}")
    first = np.asarray(list(a), dtype=float)
    second = np.asarray(list(b), dtype=float)
    if first.size == 0 or second.size == 0:
        raise ValueError(
            f"bootstrap_difference needs non-empty samples, got n_a={first.size} n_b={second.size}"
        )
    generator = np.random.default_rng(seed)
    means_a = first[generator.integers(0, first.size, size=(resamples, first.size))].mean(axis=1)
    means_b = second[generator.integers(0, second.size, size=(resamples, second.size))].mean(axis=1)
    differences = means_a - means_b
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(differences, [tail, 1.0 - tail])
    return BootstrapInterval(
        float(first.mean() - second.mean()), float(low), float(high), confidence, resamples, seed
    )


def _is_fraction_metric(metric: str, values: Sequence[float]) -> bool:
    name = metric.lower()
    fraction_like = any(
        word in name for word in ("accuracy", "acc", "error_rate", "f1", "precision", "recall")
    )
    return fraction_like and all(0.0 <= value <= 1.0 for value in values)


def compare_samples(
    name: str,
    values: Sequence[float],
    baseline_name: str,
    baseline_values: Sequence[float],
    *,
    metric: str = "val_accuracy",
    alpha: float = 0.05,
    seed: int = 0,
) -> dict:
    """Compare a configuration against a baseline: Welch's test, its confidence interval and a sentence.

    Accuracy-like metrics stored as fractions are reported in percentage points. The sentence reads, e.g.,
    ``"one_cycle vs constant (val_accuracy): +3.00 ± 0.82 points (± standard error), 95% CI [+0.73, +5.27]
    (Welch t=3.67, df=4.0, p=0.0213); 3 seeds each — significant at 0.05 (better)"``. The interval and the
    verdict come from the same Welch test, so the interval excludes 0 exactly when the verdict says
    significant. A percentile bootstrap interval is kept in the result (``bootstrap``) for reference; it is
    not used for the verdict. For fewer than 2 runs on either side no test is made and the sentence says so.
    """
    values = [float(value) for value in values]
    baseline_values = [float(value) for value in baseline_values]
    points = _is_fraction_metric(metric, values + baseline_values)
    scale, unit = (100.0, " points") if points else (1.0, "")
    result: dict = {
        "name": name,
        "baseline": baseline_name,
        "metric": metric,
        "unit": unit.strip() or "metric units",
        "scale": scale,
        "n": len(values),
        "n_baseline": len(baseline_values),
        "alpha": alpha,
        "welch": None,
        "interval": None,
        "bootstrap": None,
        "significant": None,
        "better": None,
    }
    seeds = f"{len(values)} vs {len(baseline_values)} seeds"
    if len(values) == len(baseline_values):
        seeds = f"{len(values)} seeds each"
    if len(values) < 2 or len(baseline_values) < 2:
        result["statement"] = f"{name} vs {baseline_name}: not tested ({seeds}; a test needs at least 2 each)"
        return result
    welch = welch_t_test(values, baseline_values)
    low, high = welch_interval(welch, alpha)
    bootstrap = bootstrap_difference(values, baseline_values, seed=seed)
    significant = bool(welch.p_value < alpha)
    improves = welch.difference > 0 if higher_is_better(metric) else welch.difference < 0
    result.update(
        welch=welch.to_dict(),
        interval={"low": low, "high": high, "confidence": 1.0 - alpha, "method": "welch"},
        bootstrap=bootstrap.to_dict(),
        significant=significant,
        better=bool(improves) if welch.difference != 0 else None,
    )
    verdict = f"significant at {alpha:g}" if significant else f"not significant at {alpha:g}"
    if significant:
        verdict += " (better)" if improves else " (worse)"
    result["statement"] = (
        f"{name} vs {baseline_name} ({metric}): {welch.difference * scale:+.2f} ± "
        f"{welch.standard_error * scale:.2f}{unit} (± standard error), {1.0 - alpha:.0%} CI "
        f"[{low * scale:+.2f}, {high * scale:+.2f}] (Welch t={welch.t:.2f}, df={welch.df:.1f}, "
        f"p={_format_p(welch.p_value)}); {seeds} — {verdict}"
    )
    return result


def _format_p(p_value: float) -> str:
    if math.isnan(p_value):
        return "nan"
    if p_value < 1e-4:
        return f"{p_value:.1e}"
    return f"{p_value:.4f}"
