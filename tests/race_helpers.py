"""Many processes, each of many threads, calling one function at the same moment.

For what services sharing a data folder make once (the cookie key, the archive key):
each process imports segmap, says it is ready, waits for the word, then its threads
call the function together behind a barrier. Each call's result (or the error it met,
as ``ERROR Type: message``) comes back as one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent

# The child: argv = [module, function, process number, thread count, arguments...]
_CHILD = """
import importlib, sys, threading
call = getattr(importlib.import_module(sys.argv[1]), sys.argv[2])
process, count, args = sys.argv[3], int(sys.argv[4]), sys.argv[5:]
start = threading.Barrier(count)
lock = threading.Lock()
def ask(n):
    start.wait()
    try:
        line = str(call(f"{process}-{n}", *args))
    except Exception as exc:
        line = "ERROR " + type(exc).__name__ + ": " + str(exc)
    with lock:
        print(line, flush=True)
print("ready", flush=True)
sys.stdin.readline()
threads = [threading.Thread(target=ask, args=(n,)) for n in range(count)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def call_together(
    target: str,
    args: list[str],
    *,
    processes: int,
    threads: int,
    env: dict[str, str] | None = None,
) -> list[str]:
    """Call ``module:function`` as ``function(caller, *args)`` from ``processes`` ×
    ``threads`` threads at once; one line per call.

    ``caller`` names the calling thread (``"2-3"``: process 2, thread 3); ``args`` are
    text. The module may be a test module (``tests/`` is on the children's path); the
    function returns something whose ``str`` is one line. ``env``: the children's
    environment (default this one's).
    """
    module, _, function = target.partition(":")
    child_env = dict(os.environ if env is None else env)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(TESTS), child_env.get("PYTHONPATH", "")) if p
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, module, function, str(number), str(threads), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env,
        )
        for number in range(processes)
    ]
    try:
        for child in children:  # each has imported segmap and waits for the word
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        lines: list[str] = []
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
            lines.extend(out.splitlines())
        return lines
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
