"""Shared by every tier of pgha's tests: the repository's root, and a quiet exit."""

import io
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]


def pytest_unconfigure(config):
    """
    Salt's deferred stderr handler, in this process, keeps the log records
    the test daemons forward to pytest and writes them out at exit, after
    pytest has closed its streams: a hundred "--- Logging error ---"
    tracebacks that hide the test report. Those records are in the daemons'
    own log files: send what is left to nowhere.
    """
    try:
        from salt._logging import impl
    except ImportError:
        return
    handler = impl.get_temp_handler()
    if handler is not None:
        handler.stream = io.StringIO()  # not setStream: it would flush to the closed stream first
