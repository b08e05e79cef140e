"""``vlaworks serve`` in a child process, for scripts, benchmarks and tests.

:class:`ServerProcess` starts the command on a free port (``--port 0``), waits for the
line announcing its address, and stops it with SIGTERM (the server's clean shutdown),
so callers never guess ports or sleep. The child's output goes to a log file, which
errors quote when the server does not come up.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_ADDRESS = re.compile(r" on (ws://\S+) ")


class ServerProcess:
    """``python -m vlaworks.cli serve --policy POLICY --port 0 [ARGS]`` as a context manager."""

    def __init__(
        self,
        policy: str | Path,
        *args: str,
        host: str = "127.0.0.1",
        log: Path | None = None,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.command = [
            sys.executable, "-m", "vlaworks.cli", "serve",
            "--policy", str(policy), "--host", host, "--port", "0", *args,
        ]  # fmt: skip
        self.log = log or Path(tempfile.mkstemp(prefix="vlaworks-serve-", suffix=".log")[1])
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen | None = None
        self.uri = ""

    def start(self) -> ServerProcess:
        """Start the server and wait until it listens; raises ``RuntimeError`` with its log
        if it exits or stays silent for ``startup_timeout_s``."""
        with self.log.open("w") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            found = _ADDRESS.search(self.output())
            if found:
                self.uri = found.group(1)
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"`{' '.join(self.command)}` did not start serving:\n{self.output()[-2000:]}")

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self.uri.rsplit(":", 1)[1])

    def output(self) -> str:
        """Everything the server printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, then wait for the exit status (killed after ``timeout_s``)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"The server ignored SIGTERM for {timeout_s} s and was killed.") from None

    def kill(self) -> None:
        """Kill the server at once (no clean shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
