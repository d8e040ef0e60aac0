"""npgrad.testing and npgrad gradcheck catch what they are for, and say what they compared."""
import numpy as np
import pytest

from npgrad import cli, gradcheck
from npgrad.testing import check_gradient, check_jvp, check_vjp

X_NI = np.random.default_rng(0).standard_normal((4, 3))


def scale(g_i):
    """A layer ``y = x * g``, its gain ``g`` broadcast over the batch: ``g_bar = sum_n y_bar * x``."""
    return X_NI * g_i


@pytest.mark.parametrize("vjp, jvp, message", [
    (lambda g, y_bar: y_bar * X_NI, None, r"vjp\(x, y_bar\) has shape \(4, 3\), not x's \(3,\)"),  # the sum left out
    (lambda g, y_bar: (y_bar * X_NI).sum(0)[:2], None, r"has shape \(2,\), not x's \(3,\)"),
    (None, lambda g, v: (X_NI * v).sum(0), r"jvp\(x, v\) has shape \(3,\), not f\(x\)'s \(4, 3\)"),
    (lambda g, y_bar: 1.01 * (y_bar * X_NI).sum(0), None, r"ACTUAL is vjp\(x, y_bar\) \. v, DESIRED y_bar \. \(J v\)"),
])
def test_a_derivative_of_the_wrong_shape_or_size_fails_by_name(vjp, jvp, message):
    g_i = np.array([0.5, -1.0, 2.0])
    check_vjp(scale, lambda g, y_bar: (y_bar * X_NI).sum(0), g_i, rng=0, name="gain")  # the right one passes
    check_jvp(scale, lambda g, v: X_NI * v, g_i, rng=0, name="gain")
    with pytest.raises(AssertionError, match=message):
        check_vjp(scale, vjp, g_i, rng=0, name="gain") if vjp else check_jvp(scale, jvp, g_i, rng=0, name="gain")
    with pytest.raises(AssertionError, match=r"the gradient has shape \(1, 3\), not x's \(3,\)"):
        check_gradient(lambda g: np.sum(scale(g)), X_NI.sum(0)[None], g_i)


def test_gradchecks_error_to_tolerance_column_agrees_with_ok():
    near = gradcheck.compare("near", [1.0, 0.01], [1.0, 0.01 + 5e-7])  # 5e-7 > 1e-7 + 1e-5 * 0.01
    assert not near.ok and near.error_to_tol > 1
    assert gradcheck.compare("far", [1.0], [1.0 + 5e-6]).ok  # within rtol of a large entry


def test_a_failing_gradcheck_row_exits_1_and_says_what_to_do(monkeypatch, capsys):
    failing = gradcheck.Check("entropy gradient", 3, 1.0, 1e-3, 100.0, False)
    monkeypatch.setattr(gradcheck, "gradcheck", lambda *args, **kwargs: [failing])
    assert cli.main(["gradcheck", "--set", "hidden=8", "--batch", "4"]) == 1
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("entropy gradient")]
    assert "networks (hidden (8,), value (64, 64), tanh)" in out and len(rows) == 1 and rows[0].endswith(" NO")
    assert "docs/08-testing-derivatives.md shows how" in out
