"""Progress output shared by training and the long commands: plain lines off a terminal, at most
one per ``every`` seconds (always the first and last), nothing when silenced (--quiet)."""

import io

from vaekit.runtime.progress import Reporter, silenced, track


def test_plain_lines_first_last_and_when_due():
    stream = io.StringIO()
    reporter = Reporter(5, "robustness", "attack", stream=stream, every=3600)
    for _ in range(5):
        reporter.update(1, label="digit", epsilon=0.1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # the first and the last: the others were not due
    assert lines[0].startswith("robustness: attack 1/5 label digit epsilon 0.10 (")
    assert lines[1].startswith("robustness: attack 5/5")
    stream = io.StringIO()
    reporter = Reporter(3, "train", "epoch", stream=stream, every=0)  # due every step
    for _ in range(3):
        reporter.update(1)
    assert len(stream.getvalue().splitlines()) == 3


def test_silenced_and_track():
    stream = io.StringIO()
    with silenced():
        assert list(track(range(4), "benchmark", "row", stream=stream)) == [0, 1, 2, 3]
    assert stream.getvalue() == ""
    with silenced(False):
        assert list(track(["a", "b"], "benchmark", "row", stream=stream)) == ["a", "b"]
    assert stream.getvalue().splitlines()[-1].startswith("benchmark: row 2/2")


def test_only_rank0_reports(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    stream = io.StringIO()
    Reporter(2, "x", stream=stream).update(2)
    assert stream.getvalue() == ""
