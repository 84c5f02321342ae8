"""The entry point (``pytest11``): llmbench's options and hook contract, and the parts that run pytest's hooks in
this process: collection, each test's hand-off, the fixtures, and in the controller the Controller."""

from __future__ import annotations

import pytest

from . import hookspecs
from .adapter import fixtures, items, process
from .adapter.controller import Controller
from .adapter.internals import is_xdist_worker
from .adapter.pytest_html import PytestHtmlColumns
from .option_hints import flag_hint, suite_paths_hint
from .options import add_options


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> object:
    """Slips on the command line, said before pytest's bare "unrecognized arguments" or "not found": after the
    initial conftests, whose options are known by then, and before the arguments are parsed for good."""
    result = yield
    if "-h" not in args and "--help" not in args:
        _, unknown = parser.parse_known_and_unknown_args(args)
        problem = flag_hint(unknown) or suite_paths_hint(args)
        if problem:
            raise pytest.UsageError(f"llmbench: {problem}")
    return result


def pytest_configure(config: pytest.Config) -> None:
    gates = process.configure(config)
    for name, part in (("collect", items), ("process", process), ("fixtures", fixtures)):
        config.pluginmanager.register(part, f"llmbench-{name}")
    if not is_xdist_worker(config):  # the controller: the only process without xdist
        controller = Controller(config, config.stash[items.SETTINGS_KEY], gates, config.stash[process.ENDPOINT_KEY])
        config.pluginmanager.register(controller, process.CONTROLLER)
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(PytestHtmlColumns(), "llmbench-pytest-html")
