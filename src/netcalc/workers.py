"""The worker processes of `serve --workers N`, kept through an outage.

uvicorn's supervisor replaces a worker that dies, but stops the whole
server when a worker fails to start: it takes that for a broken app or
setting, which would fail every worker alike. A netcalc worker also fails
to start while the database cannot be reached, since it loads the signing
keys and revocations first; so a worker lost during a PostgreSQL outage
took the others, which were still serving, down with it.

Here a failed start still stops the server while no worker has started
yet: at launch it says that the app or a setting is broken. Once a worker
has started, a worker that fails to start is started again after a pause,
doubled at each failure in a row up to RETRY_MOST_SECONDS, while the
others serve.
"""

from __future__ import annotations

import logging
import sys
import time
from socket import socket

from uvicorn import Config
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

RETRY_FIRST_SECONDS = 1.0
"""The pause before a worker that failed to start is started again."""

RETRY_MOST_SECONDS = 30.0
"""The longest pause between two starts of a worker that keeps failing."""

logger = logging.getLogger("netcalc")
# The supervisor's own lines, such as a worker's death, are uvicorn's.
uvicorn_logger = logging.getLogger("uvicorn.error")


def serve_workers(config: Config) -> None:
    """Serve with `config.workers` processes until stopped.

    Exits with uvicorn's status for a failed start, as one worker's server
    does, when a worker failed to start at launch: a process manager then
    knows the server stopped on a failure, not when it was asked to.
    """
    workers = Workers(config, [config.bind_socket()])
    workers.run()
    if workers.failed_at_launch:
        sys.exit(STARTUP_FAILURE)


class Workers(Multiprocess):
    """uvicorn's supervisor, which starts a worker that failed to start again
    later, rather than stopping the server, once a worker has served."""

    def __init__(self, config: Config, sockets: list[socket]) -> None:
        super().__init__(config, sockets)
        self._served = False
        self.failed_at_launch = False
        """True once a worker failed to start before any had started."""
        self._due: dict[Process, tuple[float, float]] = {}
        """Workers that failed to start: when another takes the place of
        each, and the pause it waited."""
        self._pause: dict[Process, float] = {}
        """Workers started in the place of one that failed to start: the
        pause should they fail too."""

    def keep_subprocess_alive(self) -> None:
        """Replace the workers that died, and those that failed to start
        once their pause is over."""
        if self.should_exit.is_set():
            return
        self._forget_replaced()
        for index, process in enumerate(self.processes):
            if process in self._due:
                self._start_again(index, process)
            elif not self._alive(process):
                self._lost(index, process)
            if self.should_exit.is_set():
                return

    def _forget_replaced(self) -> None:
        # uvicorn's own restarts (SIGHUP, SIGTTOU) replace workers too.
        kept = set(self.processes)
        for known in (self._due, self._pause):
            for process in known.keys() - kept:
                del known[process]

    def _alive(self, process: Process) -> bool:
        timeout = self.config.timeout_worker_healthcheck
        if not self._served and process.is_ready(timeout):
            self._served = True
            return True
        return process.is_alive(timeout)

    def _lost(self, index: int, process: Process) -> None:
        # A hung worker is ended, as uvicorn ends it.
        process.kill()
        process.join()
        # A worker that started and died starts the pauses over.
        pause = self._pause.pop(process, RETRY_FIRST_SECONDS)
        if process.exitcode != STARTUP_FAILURE:
            uvicorn_logger.info("Child process [%s] died", process.pid)
            self._replace(index)
        elif not self._served:
            uvicorn_logger.error(
                "Child process [%s] failed to start, stopping the parent process.",
                process.pid,
            )
            self.failed_at_launch = True
            self.should_exit.set()
        else:
            logger.warning(
                "Worker [%s] failed to start; another takes its place in %g s, "
                "while the other workers serve.",
                process.pid,
                pause,
            )
            self._due[process] = (time.monotonic() + pause, pause)

    def _start_again(self, index: int, failed: Process) -> None:
        due, pause = self._due[failed]
        if time.monotonic() < due:
            return
        del self._due[failed]
        replacement = self._replace(index)
        self._pause[replacement] = min(2 * pause, RETRY_MOST_SECONDS)

    def _replace(self, index: int) -> Process:
        process = Process(self.config, self.sockets)
        process.start()
        self.processes[index] = process
        return process
