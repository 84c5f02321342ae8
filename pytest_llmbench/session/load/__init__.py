"""Load generation: many requests in flight per process, arrival rates, ramps, warm-up, duration and sweeps.

Each process owns a ``Dispatcher`` that sends ahead the requests of the llmbench items it is going to run, on
a pool of threads over the session's one synchronous client; each item's ``runtest`` waits for its own answer.
``plan`` turns the options into a per-process plan, ``dispatcher`` sends; ``adapter/driver.py`` wires it into pytest
and ``adapter/scheduling.py`` hands xdist workers their whole share at once (phase by phase in a sweep).
"""
