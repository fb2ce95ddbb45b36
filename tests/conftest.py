"""The Hypothesis profiles of the suite.

Profiles (``pytest --hypothesis-profile NAME``): ``ci`` (the default: a small example budget, so
tests/test_fuzz_cli.py runs in well under a minute on 2 cores) and ``thorough`` (a long local run:
``python -m pytest tests/test_fuzz_cli.py --hypothesis-profile thorough``).
"""

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
# ci: the same examples on every run (derandomized), so CI is deterministic; thorough: a random search.
settings.register_profile("ci", max_examples=12, derandomize=True, **_COMMON)
settings.register_profile("thorough", max_examples=1500, **_COMMON)
settings.load_profile("ci")
