"""The `geo` invoke collection. Each task parses flags, calls one module, and prints.

The tasks live in one module per family: `tasks_lifecycle.py` (set-up to destroy),
`tasks_inspect.py` (status, check, logs), `tasks_replication.py` (sync, verify, promote,
reconcile), `tasks_link.py` (`geo.link`) and `tasks_config.py` (`geo.config.*`). The work
itself lives in `lifecycle.py`,
`status.py`, `config.py` and friends so it can be tested without a subprocess; a task
never holds logic worth testing on its own.

Modules beyond the console are imported inside the tasks that use them: every `invoke`
call imports this file, and importing Docker's SDK, cryptography, Jinja and the replication
engine up front would be most of a quick task's time (bench/RESULTS.md has the figures).
"""

from __future__ import annotations

import atexit
import gc

from invoke import Collection

from gdk_geo.cli import tasks_config, tasks_inspect, tasks_lifecycle, tasks_link, tasks_replication

ns = Collection(
    tasks_lifecycle.reconfigure,
    tasks_lifecycle.setup,
    tasks_lifecycle.restart,
    tasks_lifecycle.stop,
    tasks_lifecycle.destroy,
    tasks_inspect.status,
    tasks_lifecycle.image,
    tasks_replication.sync,
    tasks_replication.verify,
    tasks_inspect.check,
    tasks_inspect.logs,
    tasks_replication.promote,
    tasks_replication.reconcile,
    tasks_lifecycle.login,
    tasks_link.link,
)
ns.add_collection(tasks_config.ns)

# A task's last step is the interpreter's exit, whose collections walk every object the
# imports made (invoke, rich, ruamel, Docker's SDK...) only to free memory the OS takes
# back anyway: a fifth of `invoke --list`, more for tasks that import more
# (bench/RESULTS.md). Freezing the heap at exit skips that walk. Nothing is lost: files and
# connections are closed by the code that opened them, standard streams are flushed after
# the atexit hooks, and `weakref.finalize` callbacks still run (an atexit hook of their
# own, not the collector's).
atexit.register(gc.freeze)
