"""Helpers for a cosmic-ray session file (docs/mutation.md has the commands):

  sample SESSION STEP  keep every STEP-th pending mutant in source order (line, column, operator,
                       occurrence), mark the others skipped: a reproducible, evenly spread subset of a
                       module too large to run in full on this machine.
  unsample SESSION     make the mutants left out of a sample pending again (to run more of the module
                       when there is time: what then runs is the sample plus a uniform random
                       subset of the rest, with `cut` at the time limit).
  cut SESSION          mark every mutant not yet run as skipped (a run stopped at its time limit:
                       cosmic-ray runs pending mutants in random order, so those that ran are a
                       uniform random subset).
  retest SESSION       make the surviving mutants pending again, so that `cosmic-ray exec` reruns
                       only them against tests written since (killed mutants stay killed: tests
                       are only added).
  score SESSION        killed, timed out, survived and skipped counts, and each survivor's line and
                       its mutated text.
"""
from __future__ import annotations

import sqlite3
import sys
from collections import Counter

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult


def sample(session: str, step: int) -> None:
    with use_db(session, WorkDB.Mode.open) as db:
        items = sorted(db.pending_work_items, key=lambda item: [
            (m.start_pos, m.operator_name, m.occurrence) for m in item.mutations])
        for index, item in enumerate(items):
            if index % step:
                db.set_result(item.job_id, WorkResult(output=f"not in the 1/{step} sample",
                                                      worker_outcome=WorkerOutcome.SKIPPED))
    print(f"kept {len(range(0, len(items), step))} of {len(items)} pending mutants")


def unsample(session: str) -> None:
    with sqlite3.connect(session) as db:
        back = db.execute("DELETE FROM work_results WHERE worker_outcome = 'SKIPPED' "
                          "AND output LIKE 'not in the 1/% sample'").rowcount
    print(f"{back} mutants outside the sample pending again")


def cut(session: str) -> None:
    with use_db(session, WorkDB.Mode.open) as db:
        items = list(db.pending_work_items)
        for item in items:
            db.set_result(item.job_id, WorkResult(output="not run: stopped at the time limit",
                                                  worker_outcome=WorkerOutcome.SKIPPED))
    print(f"{len(items)} pending mutants marked skipped")


def retest(session: str) -> None:
    with sqlite3.connect(session) as db:
        gone = db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'").rowcount
    print(f"{gone} survivors pending again")


def score(session: str) -> None:
    with sqlite3.connect(session) as db:
        skipped = db.execute("SELECT output, COUNT(*) FROM work_results WHERE worker_outcome = 'SKIPPED' "
                             "GROUP BY output").fetchall()
        rows = db.execute("SELECT r.worker_outcome, r.test_outcome, m.start_pos_row, m.operator_name, m.occurrence, r.diff "
                          "FROM work_results r JOIN mutation_specs m USING (job_id) ORDER BY m.start_pos_row").fetchall()
        pending = db.execute("SELECT COUNT(*) FROM work_items WHERE job_id NOT IN "
                             "(SELECT job_id FROM work_results)").fetchone()[0]
    counts = Counter("skipped" if w == "SKIPPED" else "timeout" if w == "TIMEOUT" else (t or w).lower()
                     for w, t, *_ in rows)
    run = counts["killed"] + counts["timeout"] + counts["survived"]
    print(f"{session}: ran {run}, killed {counts['killed']}, timeout {counts['timeout']}, "
          f"survived {counts['survived']}, pending {pending}; skipped: {dict(skipped)}")
    for w, t, line, op, occurrence, diff in rows:
        if t == "SURVIVED":
            mutated = [d[1:].strip() for d in (diff or "").splitlines() if d.startswith("+") and not d.startswith("+++")]
            print(f"  survivor line {line}: {op} #{occurrence}: {' / '.join(mutated)}")


if __name__ == "__main__":
    command, path, *rest = sys.argv[1:]
    {"sample": lambda: sample(path, int(rest[0])), "cut": lambda: cut(path), "unsample": lambda: unsample(path), "retest": lambda: retest(path), "score": lambda: score(path)}[command]()
