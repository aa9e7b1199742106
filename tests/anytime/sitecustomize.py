"""Pins the wall clock of every Python process of a test run (``scripts/test-anytime.sh``).

With ``TEST_NOW`` set (an ISO time with its zone; not an ``ESITIETO_`` variable, so the tests
that give a server a clean ``ESITIETO_`` environment pass it on), the clock starts there and runs on
(time-machine patches ``time.time``, ``datetime.now`` and friends; monotonic time stays real, so
timeouts and budgets are unaffected). The script puts this folder on ``PYTHONPATH``, so the
servers and command-line tools the tests start run on the same clock.
"""

import os

_now = os.environ.get("TEST_NOW")
if _now:
    from datetime import datetime

    import time_machine

    time_machine.travel(datetime.fromisoformat(_now), tick=True).start()
