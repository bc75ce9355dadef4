"""Mapping presets shipped with forensics: ordinary mapping files for common log exports.

A preset is a TOML mapping file (``schema.Mapping``) kept as package data, named
after its file: ``otel-genai`` reads OpenTelemetry GenAI spans flattened into a
table. ``forensics schema --preset NAME`` prints one, so that a user can copy and
adapt it; ``forensics ingest --preset NAME`` reads with it.
"""

from __future__ import annotations

from importlib import resources

from forensics.errors import ConfigError
from forensics.schema import Mapping

__all__ = ["PRESETS", "load_preset", "preset_text"]

PRESETS: tuple[str, ...] = ("otel-genai",)
"""The presets shipped, by name."""


def preset_text(name: str) -> str:
    """The TOML text of a preset.

    Raises
    ------
    ConfigError
        When no preset has that name (the message lists them).

    Examples
    --------
    >>> preset_text("otel-genai").splitlines()[0].startswith("# forensics mapping preset")
    True
    """
    if name not in PRESETS:
        raise ConfigError(
            f"no preset named {name!r}; presets: {', '.join(PRESETS)} "
            "(or write a mapping file and pass it with --mapping)"
        )
    return resources.files(__package__).joinpath(f"{name}.toml").read_text(encoding="utf-8")


def load_preset(name: str) -> Mapping:
    """A preset as a ``Mapping`` (its ``source`` says ``preset NAME``).

    Examples
    --------
    >>> load_preset("otel-genai").columns["request_id"]
    'gen_ai.response.id'
    """
    import tomllib

    return Mapping.from_dict(tomllib.loads(preset_text(name)), source=f"preset {name}")
