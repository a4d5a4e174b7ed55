"""The settings' part of the process state: what was resolved, and which wrong values were warned about.

`SETTINGS` is one object, as `core.state.STATE` is (which holds it as `STATE.settings`; it lives here because
the settings layer is below the core and imports nothing of it). `reset()` forgets everything in one call
(tests: `runtracker.testing.reset`), the redaction rules built from the settings too.

Every read of a setting's environment variable is `environment(name)`: one place, so that what a process reads
is what `runtracker config show` says it reads.
"""

from __future__ import annotations

import logging
import os

from ..base import redact
from ..base.records import Record

log = logging.getLogger("runtracker")

# Where a value came from: the order in which they are tried (the config file's place depends on the setting:
# docs/settings.md).
ARGUMENT = "argument"
ENVIRONMENT = "environment"
CONFIG_FILE = "config file"
DEFAULT = "default"

# A few hundred distinct wrong values is already a flood: past that, they are not remembered (nor repeated).
WARNED_MAX = 256


class Setting(Record):
    """One setting's value and where it came from.

    `source` is ARGUMENT, ENVIRONMENT, CONFIG_FILE or DEFAULT; `where` names the place (`retention_days=`, the
    environment variable, `runtracker.toml:12`); `raw` is what was given there (None for a default). A wrong
    value is not used: `value` is then the safe one, and `warnings` say so, as the `runtracker` logger is told.
    """

    __slots__ = ("name", "value", "source", "where", "raw", "warnings")

    def __init__(self, name: str, value: object, source: str = DEFAULT, where: str = "", raw: object = None,
                 warnings: tuple[str, ...] = ()) -> None:
        self.name = name
        self.value = value
        self.source = source
        self.where = where
        self.raw = raw
        self.warnings = warnings


class SettingsState:
    """Settings resolved from the environment (each once per value of its variable), and the warnings given."""

    def __init__(self) -> None:
        # name -> (the text of its environment variable, the setting resolved from it). A pure memo: the same
        # text always resolves to the same setting; a variable changed since is resolved again, so a pipeline
        # that sets os.environ before its RunTracker() gets what it set, as it always did.
        self.resolved: dict[str, tuple[str, Setting]] = {}
        # The warnings already given. A setting read at every RunTracker() would otherwise repeat its warning
        # for every run; one warning per wrong value per process is enough.
        self.warned: set[str] = set()

    def warn(self, setting: Setting) -> None:
        """Log the setting's warnings, each once per process. Never raises."""
        for message in setting.warnings:
            self.refuse(message)

    def refuse(self, message: str) -> None:
        if message in self.warned or len(self.warned) >= WARNED_MAX:
            return
        self.warned.add(message)
        try:
            log.warning("%s", message)
        except Exception:  # logging can fail (a closed stderr); the safe value is used all the same
            pass

    def reset(self) -> None:
        """Forget what was resolved and warned about, and the redaction rules: the next use reads the
        environment again (tests)."""
        self.resolved.clear()
        self.warned.clear()
        redact.reset()


SETTINGS = SettingsState()


def environment(name: str) -> str:
    """The text of a setting's environment variable; "" when unset."""
    return os.environ.get(name, "")
