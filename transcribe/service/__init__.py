"""The HTTPS service (``transcribe serve``) and its clients.

Secretaries and authors reach the job store over the network through a JSON API
(:mod:`.api`, served by uvicorn in :mod:`.server`, TLS from files in ``[server]``),
with accounts and per-client rights (:mod:`.accounts`, :mod:`.rights`). The command-line
clients (``status --server``, ``submit``) use :mod:`.client`. The one stage the service
runs is intake, for uploads (:mod:`.uploads`), exactly as for a dropped file; otherwise
it reads and changes jobs only through the job store's contract, so it runs the same
on SQLite and on PostgreSQL.
"""
