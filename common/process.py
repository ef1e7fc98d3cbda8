"""The one way this project runs work in a fresh Python process: with a time limit, in its own
process group (a timeout or a watcher's verdict kills it and everything it spawned; Ctrl-C is
passed on as SIGINT, with time to clean up), and with a clear one-line error when it fails.

Parent side: `run_module` (`python -m MODULE ARGS`), `run_function` (call `module:function` with
JSON arguments; its JSON return value comes back) and `call` (the same, raising `ProcessFailed`
unless the function returned). Child side: `save_result` records a result early, so a child that
is stopped later still hands back what it had finished.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .atomic import atomic_write_text

POLL_S = 0.2
INTERRUPT_GRACE_S = 10.0  # after Ctrl-C, how long a child may take to clean up (e.g. finish a checkpoint)
RESULT_ENV = "RESNET_ROSETTA_RESULT_FILE"  # where the child's save_result writes

Watch = Callable[[int], "str | None"]  # called with the child's pid while it runs; a reason stops it


class ProcessFailed(Exception):
    """A child process did not produce its result; the message says which, why and its last line."""


@dataclass
class Outcome:
    """How a child process ended."""

    returncode: int | None  # None when the parent stopped it
    stopped: str | None  # why the parent stopped it (time limit, the watcher's reason)
    wall_s: float
    output: str  # stdout and stderr interleaved ("" when inherited)
    result: Any = None
    has_result: bool = False

    def last_line(self) -> str:
        lines = [ln for ln in self.output.splitlines() if ln.strip()]
        return lines[-1].strip()[:300] if lines else "no output"

    def describe(self) -> str:
        """One line: how the process ended, with its last line of output."""
        if self.stopped:
            return self.stopped
        if self.returncode is not None and self.returncode < 0:
            how = f"was killed by signal {signal.Signals(-self.returncode).name}"
        else:
            how = f"exited with status {self.returncode}"
        return f"{how}: {self.last_line()}"


def run_module(module: str, args: Sequence[str] = (), *, timeout: float | None = None, python: str | None = None,
               env: Mapping[str, str] | None = None, log: Path | None = None, inherit_output: bool = False,
               cwd: Path | None = None, watch: Watch | None = None) -> Outcome:
    """Run `python -m MODULE ARGS` in a new process group until it exits, `timeout` seconds pass or
    `watch` names a reason to stop it. Output goes to `log` (kept), a temporary file (read back into
    `Outcome.output`) or, with `inherit_output`, this process's terminal. `python` defaults to this
    interpreter; `env` replaces the environment (default: inherited)."""
    exe = python or sys.executable
    cmd = [exe, "-m", module, *args]
    if cwd is not None and not Path(cwd).is_dir():
        raise ProcessFailed(f"working folder {cwd} does not exist")
    started = time.monotonic()
    with _output_file(log, inherit_output) as out:
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if out else None,
                                    stdin=subprocess.DEVNULL, env=dict(env) if env is not None else None, cwd=cwd,
                                    start_new_session=True)
        except FileNotFoundError:
            raise ProcessFailed(f"python {exe} does not exist") from None
        except PermissionError:
            raise ProcessFailed(f"python {exe} is not executable") from None
        stopped = None
        try:
            while proc.poll() is None and stopped is None:
                try:
                    proc.wait(timeout=POLL_S)
                except subprocess.TimeoutExpired:
                    pass
                elapsed = time.monotonic() - started
                if proc.poll() is not None:
                    break
                if watch is not None:
                    stopped = watch(proc.pid)
                if stopped is None and timeout is not None and elapsed > timeout:
                    stopped = f"stopped after {elapsed:.0f} s (time limit {timeout:g} s)"
        except KeyboardInterrupt:  # the child is in its own session: pass Ctrl-C on, let it clean up
            _stop_group(proc, grace_s=INTERRUPT_GRACE_S)
            raise
        finally:
            if proc.poll() is None:  # stopped, or an error here: never leave the child running
                _stop_group(proc)
            else:  # nor anything it started and left behind (a launcher's replicas after its failure)
                _signal_group(proc, signal.SIGKILL)
        output = ""
        if out is not None:
            out.flush()
            out.seek(0)
            output = out.read().decode("utf-8", errors="replace")
    return Outcome(None if stopped else proc.returncode, stopped, time.monotonic() - started, output)


def run_function(target: str, *args: Any, **options: Any) -> Outcome:
    """Call `module:function(*args)` in a fresh process (arguments and return value as JSON); the
    outcome carries the return value, or the last value the child passed to `save_result`."""
    with tempfile.TemporaryDirectory(prefix="rr-call-") as tmp:
        args_file, result_file = Path(tmp) / "args.json", Path(tmp) / "result.json"
        args_file.write_text(json.dumps(list(args)))
        env = {**(options.pop("env", None) or os.environ), RESULT_ENV: str(result_file)}
        outcome = run_module(__name__, [target, str(args_file)], env=env, **options)
        if result_file.exists():
            outcome.result, outcome.has_result = json.loads(result_file.read_text()), True
    return outcome


def call(target: str, *args: Any, **options: Any) -> Any:
    """`run_function`, returning the function's value; ProcessFailed when the child did not return."""
    outcome = run_function(target, *args, **options)
    if outcome.returncode != 0 or not outcome.has_result:
        raise ProcessFailed(f"{target} {outcome.describe()}")
    return outcome.result


def save_result(value: Any) -> None:
    """In a child started by `run_function`: record `value` as its result now (atomically)."""
    atomic_write_text(os.environ[RESULT_ENV], json.dumps(value, default=str))


def _output_file(log: Path | None, inherit: bool) -> Any:
    if inherit:
        return contextlib.nullcontext()
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        return open(log, "w+b")
    return tempfile.TemporaryFile()


def _stop_group(proc: subprocess.Popen, grace_s: float = 0.0) -> None:
    """End the child's process group (started by us, nothing else): with `grace_s`, SIGINT first so
    the child can clean up, then SIGKILL for whatever is left of the group."""
    if grace_s:
        _signal_group(proc, signal.SIGINT)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(proc, signal.SIGKILL)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _child(argv: list[str]) -> int:
    """`python -m resnet_rosetta.common.process MODULE:FUNCTION ARGS.json`: the child of run_function."""
    target, args_file = argv
    module, _, function = target.partition(":")
    args = json.loads(Path(args_file).read_text())
    save_result(getattr(importlib.import_module(module), function)(*args))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
