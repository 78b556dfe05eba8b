"""Import progress where stderr is not a terminal (CI logs, pipes): plain lines, not a silent Rich bar."""

import io
import re

import pytest
from typer.testing import CliRunner

import api.cli
import api.cli.imports
from api.cli import PlainProgress, app

runner = CliRunner()
LINE = re.compile(r"^import: (\w+) ([\d,]+)(/[\d,]+ \(\d+%\))?(, [\d,]+/s)?, [\d,]+s elapsed$")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_progress_prints_each_new_phase_then_at_most_one_line_per_interval():
    out, clock = io.StringIO(), Clock()
    progress = PlainProgress(out, every=5, clock=clock)
    progress("customers", 1000, 10_000)  # a new phase: at once
    progress("consent", 1000, 10_000)
    clock.now += 1
    progress("customers", 2000, 10_000)  # seen before, 1 s after the last line: held back
    progress("points", 2000, 10_000)  # new: at once
    clock.now += 2
    progress("points", 3000, 10_000)
    assert len(out.getvalue().splitlines()) == 3
    clock.now += 3  # 5 s since the last line
    progress("points", 4000, 10_000)
    clock.now += 1
    progress("anchor", 500, None)  # a total not known yet
    clock.now += 1
    progress("anchor", 900, None)
    progress.close()  # the last state, held back, is shown at the end

    lines = out.getvalue().splitlines()
    assert all(LINE.match(line) for line in lines), lines
    assert [line.split()[1:3] for line in lines] == [
        ["customers", "1,000/10,000"],
        ["consent", "1,000/10,000"],
        ["points", "2,000/10,000"],
        ["points", "4,000/10,000"],
        ["anchor", "500,"],
        ["anchor", "900,"],
    ]
    # the rate is that since the phase's previous line: 2,000 points in 5 s
    assert lines[3].endswith("(40%), 400/s, 6s elapsed")


def test_close_prints_nothing_more_when_the_last_state_was_shown():
    out = io.StringIO()
    progress = PlainProgress(out, every=5, clock=Clock())
    progress("read", 10, 10)
    progress.close()
    assert out.getvalue().count("\n") == 1


@pytest.mark.anvil
def test_an_import_into_a_pipe_shows_progress_lines(tmp_path, anvil_url, monkeypatch):
    """CliRunner's stderr is not a terminal, like a CI log: the import must still say where it is."""
    for name in ("FORCE_TERMINAL", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):  # Rich would draw its bars
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    for args in (["init", "--chain", anvil_url], ["partner", "add", "acme"]):
        result = runner.invoke(app, ["--home", str(home), *args])
        assert result.exit_code == 0, result.output
    monkeypatch.setattr(api.cli.imports, "PLAIN_PROGRESS_EVERY", 0.0)  # a line per update: the run is short
    command = ["import", "synthetic", "--partner", "acme", "--customers", "20", "--interactions", "300"]
    result = runner.invoke(app, ["--home", str(home), *command])
    assert result.exit_code == 0, result.output

    lines = [line for line in result.stderr.splitlines() if line.startswith("import: ")]
    assert lines, f"no progress lines on stderr:\n{result.stderr}"
    assert all(LINE.match(line) for line in lines), lines
    phases = {line.split()[1] for line in lines}
    assert {"customers", "consent", "interactions", "points", "anchor"} <= phases
    assert "import: interactions 300/300 (100%)" in result.stderr
    assert "━" not in result.stderr  # no Rich bar
    assert re.search(r"interactions new\s*│ 300", result.stdout)
