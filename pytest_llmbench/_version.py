"""The installed version, read from the package metadata so that it is written in one place (pyproject.toml)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pytest-llmbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
