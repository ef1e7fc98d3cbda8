"""The one fresh-process launcher: results come back, failures and stops are named, nothing is left running."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from resnet_rosetta.common import process

HERE = str(Path(__file__).resolve().parent)


@pytest.fixture(autouse=True)
def _children_import_this_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]))


def test_call_returns_the_function_value() -> None:
    assert process.call("process_children:add", 2, 3) == {"sum": 5, "pid_differs": True}


def test_a_failing_function_is_named_with_its_last_line() -> None:
    with pytest.raises(process.ProcessFailed, match=r"process_children:boom exited with status 1: "
                                                    r"ValueError: the child broke"):
        process.call("process_children:boom")


def test_a_child_past_its_timeout_is_stopped_with_its_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    start = time.monotonic()
    outcome = process.run_function("process_children:hang_with_grandchild", str(pid_file), timeout=1.0)
    assert outcome.returncode is None and "time limit 1 s" in outcome.stopped
    assert time.monotonic() - start < 20
    grandchild = int(pid_file.read_text())
    time.sleep(0.2)
    assert not _running(grandchild)  # the whole process group went, not only the child


def test_what_a_child_leaves_behind_goes_with_its_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    assert process.call("process_children:return_leaving_grandchild", str(pid_file), timeout=60) == "done"
    grandchild, deadline = int(pid_file.read_text()), time.monotonic() + 5
    while _running(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(grandchild)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan killed here may wait for a reaper that never comes)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_a_watch_verdict_stops_the_child_and_an_early_result_survives() -> None:
    seen: list[int] = []

    def watch(pid: int) -> str | None:
        seen.append(pid)
        return "too big" if len(seen) >= 3 else None

    outcome = process.run_function("process_children:save_then_hang", watch=watch, timeout=60)
    assert outcome.stopped == "too big" and outcome.returncode is None
    assert outcome.has_result and outcome.result == {"partial": True}
    assert len(set(seen)) == 1


def test_ctrl_c_reaches_the_child_which_may_clean_up(tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"
    calls = 0

    def ctrl_c_after_a_while(pid: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 10:  # about 2 s: the child is inside its sleep by then
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        process.run_function("process_children:clean_up_on_interrupt", str(marker), watch=ctrl_c_after_a_while)
    assert marker.read_text() == "cleaned up"


def test_a_missing_python_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(process.ProcessFailed, match="python .*no-python does not exist"):
        process.run_module("json.tool", python=str(tmp_path / "no-python"))


def test_output_goes_to_the_log_and_comes_back(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "child.log"
    outcome = process.run_module("process_children", ["hello"], log=log)
    assert outcome.returncode == 0 and "hello from the child" in outcome.output
    assert "hello from the child" in log.read_text()
    assert outcome.describe().startswith("exited with status 0")


def test_the_child_runs_this_interpreter_by_default() -> None:
    assert process.call("process_children:executable") == sys.executable
