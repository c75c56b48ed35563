"""Statistics against hand-computed values and table values of Student's t."""

from __future__ import annotations

import math

import pytest

from cadence.tracking.stats import (
    bootstrap_difference,
    compare_samples,
    regularized_incomplete_beta,
    student_t_cdf,
    student_t_two_sided_p,
    summarize,
    welch_t_test,
)


def test_summarize_matches_hand_computation() -> None:
    summary = summarize([1.0, 2.0, 4.0])
    assert summary.mean == pytest.approx(7 / 3)
    # sample variance: ((1-7/3)^2 + (2-7/3)^2 + (4-7/3)^2) / 2 = (16/9 + 1/9 + 25/9) / 2 = 7/3
    assert summary.std == pytest.approx(math.sqrt(7 / 3))
    assert (summary.min, summary.max, summary.n) == (1.0, 4.0, 3)
    assert summarize([5.0]).std == 0.0
    assert summarize([]).n == 0


def test_welch_equal_sizes_by_hand() -> None:
    # means 0.94 and 0.91, both variances 1e-4: se = sqrt(2e-4/3), df = 4 exactly, t = 0.03 / se
    result = welch_t_test([0.93, 0.94, 0.95], [0.90, 0.91, 0.92])
    standard_error = math.sqrt(2e-4 / 3)
    assert result.difference == pytest.approx(0.03)
    assert result.standard_error == pytest.approx(standard_error)
    assert result.t == pytest.approx(0.03 / standard_error)
    assert result.df == pytest.approx(4.0)
    # two-sided p of t = 3.6742 with 4 df: 0.0213 (scipy.stats.ttest_ind(..., equal_var=False))
    assert result.p_value == pytest.approx(0.0213116411, rel=1e-8)


def test_welch_unequal_sizes_by_hand() -> None:
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0]
    # var_a = 5/3, n_a = 4 -> 5/12; var_b = 4, n_b = 3 -> 4/3
    part_a, part_b = 5 / 12, 4 / 3
    result = welch_t_test(a, b)
    assert result.t == pytest.approx((2.5 - 4.0) / math.sqrt(part_a + part_b))
    assert result.df == pytest.approx((part_a + part_b) ** 2 / (part_a**2 / 3 + part_b**2 / 2))
    # reference: scipy.stats.ttest_ind(a, b, equal_var=False) -> df 3.2347188, p 0.3338237
    assert result.df == pytest.approx(3.234718826405868, rel=1e-12)
    assert result.p_value == pytest.approx(0.33382370007750106, rel=1e-9)


@pytest.mark.parametrize(
    ("t", "df", "p"),
    [
        (12.706, 1, 0.05),  # classic table: two-sided 5% critical values
        (4.303, 2, 0.05),
        (2.776, 4, 0.05),
        (2.228, 10, 0.05),
        (2.086, 20, 0.05),
        (1.960, 1e7, 0.05),  # normal limit
        (3.707, 6, 0.01),
        (0.0, 3, 1.0),
    ],
)
def test_two_sided_p_matches_table_values(t: float, df: float, p: float) -> None:
    assert student_t_two_sided_p(t, df) == pytest.approx(p, abs=2e-4)
    assert student_t_two_sided_p(-t, df) == pytest.approx(student_t_two_sided_p(t, df))


def test_cdf_closed_forms() -> None:
    # df = 1 is the Cauchy distribution: F(t) = 1/2 + atan(t) / pi; df = 2: F(t) = 1/2 + t / (2 sqrt(2 + t^2))
    for t in (-3.0, -0.5, 0.7, 5.0):
        assert student_t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
        assert student_t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


def test_incomplete_beta_closed_forms_and_errors() -> None:
    assert regularized_incomplete_beta(1, 1, 0.3) == pytest.approx(0.3)  # uniform
    assert regularized_incomplete_beta(2, 1, 0.3) == pytest.approx(0.09)  # x^2
    assert regularized_incomplete_beta(1, 3, 0.5) == pytest.approx(1 - 0.5**3)
    with pytest.raises(ValueError, match="a > 0"):
        regularized_incomplete_beta(0, 1, 0.5)
    with pytest.raises(ValueError, match="0 <= x <= 1"):
        regularized_incomplete_beta(1, 1, 1.5)


def test_welch_degenerate_and_too_small() -> None:
    assert welch_t_test([1.0, 1.0], [1.0, 1.0]).p_value == 1.0
    result = welch_t_test([2.0, 2.0], [1.0, 1.0])
    assert result.p_value == 0.0
    assert math.isinf(result.t)
    with pytest.raises(ValueError, match="at least 2 values"):
        welch_t_test([1.0], [1.0, 2.0])


def test_bootstrap_is_seeded_and_brackets_the_difference() -> None:
    a, b = [0.93, 0.94, 0.95, 0.96], [0.90, 0.91, 0.92, 0.90]
    first = bootstrap_difference(a, b, seed=3)
    assert first == bootstrap_difference(a, b, seed=3)
    assert first.low <= first.difference <= first.high
    # the extreme resampled differences are 0.93 - 0.92 and 0.96 - 0.90
    assert first.low >= 0.01 - 1e-12
    assert first.high <= 0.06 + 1e-12
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_difference(a, b, confidence=1.5)


def test_statement_in_points() -> None:
    result = compare_samples("one_cycle", [0.93, 0.94, 0.95], "constant", [0.90, 0.91, 0.92])
    statement = result["statement"]
    assert statement.startswith("one_cycle vs constant (val_accuracy): +3.00 ± 0.82 points")
    assert "Welch t=3.67, df=4.0, p=0.0213" in statement
    assert "3 seeds each — significant at 0.05 (better)" in statement
    assert result["significant"] is True
    loss = compare_samples("b", [0.5, 0.6, 0.7], "a", [0.5, 0.55, 0.7], metric="val_loss")
    assert "not significant" in loss["statement"]
    assert "points" not in loss["statement"]
    assert "not tested" in compare_samples("b", [0.5], "a", [0.4, 0.5])["statement"]
