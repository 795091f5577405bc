"""The runners: when and where the stages run.

A runner decides the schedule (a file appeared, the night came, a demo was asked
for), claims jobs and hands them to the stages; it holds no job logic of its own.
Kept apart so that a new way of running jobs is a new runner here, and the stages it
runs stay unchanged.
"""

from __future__ import annotations
