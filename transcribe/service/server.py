"""``transcribe serve``: the API on uvicorn, HTTPS only (plain HTTP on loopback, asked).

Why refuse plain HTTP: logins carry passwords and every answer carries health or
legal data. The one exception is 127.0.0.1 with an explicit flag, for a TLS
terminating proxy on the same machine or a quick local try. The store is opened once
before listening, so a missing schema or an unreachable server is one line at
start-up rather than an error on every request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..config import Config
from ..errors import ServiceError
from ..store import open_store
from .api import create_app
from .tls import tls_files

LOOPBACK = "127.0.0.1"

#: uvicorn's own loggers, plainly to stderr; access lines hold method, path and status
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        },
        "null": {"class": "logging.NullHandler"},
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "transcribe.service": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        # intake's lines would repeat what the service logs of an upload (its job id and
        # outcome); the job store keeps the reason
        "transcribe.stages.intake": {"handlers": ["null"], "propagate": False},
    },
}


@dataclass(frozen=True)
class ServeOptions:
    """What the command line may override of ``[server]``."""

    host: str | None = None
    port: int | None = None
    insecure_http: bool = False


def server_url(config: Config, options: ServeOptions) -> str:
    host = options.host or config.server.host
    scheme = "http" if options.insecure_http else "https"
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{options.port or config.server.port}"


def serve(config: Config, options: ServeOptions) -> None:
    """Listen until interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    host = options.host or config.server.host
    tls: dict[str, str] = {}
    if options.insecure_http:
        if host != LOOPBACK:
            raise ServiceError(
                f"plain HTTP is refused on {host}: passwords and letters would cross the"
                " network in clear",
                hint=f"serve HTTPS (the [server] certificate), or --host {LOOPBACK}",
            )
    else:
        files = tls_files(config)
        tls = {"ssl_certfile": str(files.certificate), "ssl_keyfile": str(files.private_key)}
    with open_store(config):
        pass  # fails now, in one line, if the store cannot be reached or is not migrated
    logging.getLogger("transcribe.service").setLevel(logging.INFO)
    settings = uvicorn.Config(
        create_app(config),
        host=host,
        port=options.port or config.server.port,
        log_config=LOG_CONFIG,
        server_header=False,
        proxy_headers=False,
        lifespan="off",
        **tls,  # type: ignore[arg-type]
    )
    uvicorn.Server(settings).run()  # a port already taken: uvicorn says so, exits 1
