"""tests/e2e/conftest.py: every check reports its figure, and one that passes without it fails."""

from pathlib import Path

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).resolve().parents[1] / "e2e" / "conftest.py"


def test_a_check_that_passes_without_a_figure_fails(pytester):
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(
        """
        import pytest

        def test_with(figure):
            figure("4/4 delivered")

        def test_without():
            pass

        @pytest.mark.parametrize("n", [1, 2])
        def test_param(n, figure):
            if n == 1:
                figure(f"case {n}")

        def test_failing(figure):
            figure("0/4 delivered")
            assert False
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*test_without passed without reporting its figure*",
            "*test_param[[]2[]] passed without reporting its figure*",
            "*= figures =*",
            "test_with: 4/4 delivered",
            "test_param[[]1[]]: case 1",
            "test_failing: 0/4 delivered",
        ]
    )
