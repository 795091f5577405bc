"""Who may see which job: the one place the service decides it.

- a secretary: every job of the clients assigned to them;
- an author: only their own dictations (``jobs.author``, as the sidecar named them),
  at the clients assigned to them;
- who may upload for a client: its secretaries and its authors (an author only their
  own dictations), as who may drop a file into ``inbox/<client>/``;
- an admin: no job at all. They manage accounts; they read a letter only with a
  reason (``X-Access-Reason``), audited before the letter is read.

A job someone may not see is answered exactly as a job that does not exist (404), so
ids cannot be probed; the attempt is audited.
"""

from __future__ import annotations

from ..store import Job, JobStore
from ..store.model import Account


def may_read_jobs(account: Account) -> bool:
    return account.role in ("secretary", "author")


def may_upload(account: Account, client: str) -> bool:
    """Who sends dictations for a client: its authors, and its secretaries, who drop
    files into ``inbox/<client>/`` for their authors today (the sidecar names whose)."""
    return may_read_jobs(account) and client in account.clients


def may_read(account: Account, job: Job) -> bool:
    if not may_read_jobs(account) or job.client not in account.clients:
        return False
    if account.role == "author":
        return job.author is not None and job.author == account.author
    return True


def visible_jobs(store: JobStore, account: Account) -> list[Job]:
    """The account's jobs, in queue order (urgent first, then oldest)."""
    if not may_read_jobs(account):
        return []
    jobs = [job for client in account.clients for job in store.jobs(client=client)]
    jobs.sort(key=lambda j: (j.priority != "urgent", j.created_at, j.id))
    return [job for job in jobs if may_read(account, job)]
