"""The native protocol, SSE, long polling, HTTP streaming and the server API
again, on an engine that answers later (server.engine = memory-delayed: the
memory engine with every callback run on a later loop turn, while
publications are delivered at once and so can overtake the replies) - the
situation of the Redis engine, without Redis. It proves the asynchronous
paths of session.c, sse.c, emulation.c and api.c: replies in order, nothing
lost or duplicated around a subscribe with recovery.

It re-runs the suites of test_channels.py, test_sse.py, test_poll.py,
test_stream.py, test_api.py and test_bounds_replies.py (reply budget
reservations made before the engine answers) with `--engine memory-delayed` added to every
`herald serve`.
"""
import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import herald_testlib  # noqa: E402

_argv = herald_testlib.Herald.argv


def _delayed_argv(self):
    argv = _argv(self)
    if self.command == "serve" and "--engine" not in self.args:
        argv = argv + ["--engine", "memory-delayed"]
    return argv


herald_testlib.Herald.argv = _delayed_argv

import test_api  # noqa: E402
import test_bounds_replies  # noqa: E402
import test_channels  # noqa: E402
import test_poll  # noqa: E402
import test_sse  # noqa: E402
import test_stream  # noqa: E402


SKIP = {"test_info"}  # asserts the engine's name, "memory"


def load_tests(loader, tests, pattern):
    return herald_testlib.suites_again(loader, (test_channels, test_sse, test_poll, test_stream, test_api,
                                                 test_bounds_replies), SKIP)


if __name__ == "__main__":
    unittest.main(verbosity=1)
