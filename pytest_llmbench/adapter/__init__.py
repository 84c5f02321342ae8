"""The pytest and xdist adapter: collection, hooks, fixtures, the load driver and the xdist scheduler.

The only package that knows pytest's and xdist's objects beyond their public surface: every private attribute
or module it reaches sits behind one function in ``internals.py``, pinned by tests/test_pytest_xdist_canary.py.
The stages below (``collect``, ``http``, ``checks``, ``metrics``, ``options``, ``runner``, ``session``) import
nothing from here (``lint-imports``, contracts in pyproject.toml).
"""
