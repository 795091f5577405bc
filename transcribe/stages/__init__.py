"""The stages a job goes through: intake, transcription, letter.

Each stage is an idempotent function of a job id that reads the committed state,
writes its result atomically and only then commits the next state. Kept apart from
the runners so that any runner (the watcher, the overnight batch, the demo, later a
worker) can run any stage, and a stage run again after a crash finishes the job
instead of doing it twice.
"""

from __future__ import annotations
