"""A model's own settings as its objective sees them: the keyword defaults of the model class
updated with the run's ``config.model.options`` (so a default lives in one place, the model file)."""

from __future__ import annotations

import inspect


def model_options(config) -> dict:
    """The model class's keyword defaults updated with ``config.model.options``, by name.

    Args:
        config: a run's :class:`~vaekit.config.Config`.
    """
    cls = config.model.entry.load()
    defaults = {
        name: p.default for name, p in inspect.signature(cls.__init__).parameters.items() if p.default is not p.empty
    }
    return {**defaults, **(config.model.options or {})}
