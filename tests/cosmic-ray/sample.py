"""Deterministic sample of a cosmic-ray session: keep every STEP-th pending mutant in source order
(line, column, operator, occurrence) and mark the others skipped, so a module too large to run in
full is measured on an evenly spread, reproducible subset. Usage: python sample.py SESSION STEP."""
from __future__ import annotations

import sys

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult


def sample(session: str, step: int) -> tuple[int, int]:
    """(kept, skipped) after marking all but every `step`-th pending mutant as skipped."""
    with use_db(session, WorkDB.Mode.open) as db:
        items = sorted(db.pending_work_items, key=lambda item: [
            (m.start_pos, m.operator_name, m.occurrence) for m in item.mutations])
        skipped = 0
        for index, item in enumerate(items):
            if index % step:
                db.set_result(item.job_id, WorkResult(output=f"not in the 1/{step} sample",
                                                      worker_outcome=WorkerOutcome.SKIPPED))
                skipped += 1
        return len(items) - skipped, skipped


if __name__ == "__main__":
    kept, skipped = sample(sys.argv[1], int(sys.argv[2]))
    print(f"kept {kept}, skipped {skipped}")
