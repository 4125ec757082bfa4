"""Run `python -m paw ARGS` as a fresh process without paying the heavy imports each time.

One server per test worker imports torch, transformers, peft and the rest once (no tensor work, so no thread pool
exists yet), then forks a child per command: the child takes the command's working directory, environment and
output files and runs ``paw`` as ``python -m paw`` does, exiting with its status. Each command still runs in a
process of its own (its globals, exit code, stdout/stderr, signals), about 4 s sooner on this suite's machines.

Protocol on the server's stdin/stdout, one JSON line each: ``{"argv", "cwd", "env", "out", "err"}`` in;
``{"pid"}`` once forked, then ``{"status"}`` (``subprocess``'s returncode: negative for a signal) out.
"""

from __future__ import annotations

import json
import os
import sys

PRELOAD = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "safetensors.torch",
    "tokenizers",
    "transformers.models.auto.modeling_auto",
    "transformers.models.qwen2.modeling_qwen2",
)


def child(request: dict) -> None:
    """In the forked process: become `python -m paw ARGV` in ``cwd`` with ``env``; never returns."""
    import atexit
    import runpy
    import threading

    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err = os.open(request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    for fd, target in ((null, 0), (out, 1), (err, 2)):
        os.dup2(fd, target)
        os.close(fd)
    sys.path[0] = os.getcwd()  # what `python -m` puts first
    sys.argv = ["paw", *request["argv"]]
    try:
        runpy.run_module("paw", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:  # what the interpreter makes of it
        code = 0 if stop.code is None else stop.code
        if not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    # the interpreter's exit without its module teardown (~1 s with torch loaded): non-daemon threads joined,
    # atexit handlers run, streams flushed
    threading._shutdown()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def serve() -> None:
    import importlib

    requests = os.fdopen(os.dup(0), "r")
    replies = os.fdopen(os.dup(1), "w")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    for name in PRELOAD:
        importlib.import_module(name)
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            requests.close()
            replies.close()
            child(request)
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"status": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve()
