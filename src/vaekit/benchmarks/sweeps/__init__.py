"""Sweeps: many runs of one spec (``vaekit sweep``), the engine the benchmarks run their seeds on.

* :mod:`.spec` — a sweep's grid and search spec (arms, seeds, evaluations), from flags or JSON.
* :mod:`.engine` — runs the points ``--jobs N`` at a time in an Optuna study, resumable.
* :mod:`.points` — one point: a run folder trained and evaluated (:func:`vaekit.run.train` in a :class:`vaekit.io.RunFolder`).
* :mod:`.storage` — where the study lives (SQLite by default).
* :mod:`.results` — the sweep's table, per-seed summaries (mean, 95 % interval) and HTML report.
"""
