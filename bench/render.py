"""Approve-to-signed-PDF time per document: warm LibreOffice versus one-shot.

    python bench/render.py [-n 10] [--template templates/cabinet-martin/compte-rendu.docx]

Each document goes through the whole document stage (fill the DOCX, LibreOffice to
PDF/A-2b, metadata, PAdES B-B signature with a TEST certificate, verification,
atomic write). The warm LibreOffice's start-up is reported on its own and also
spread over the N documents ("amortised"), which is what an overnight batch pays.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transcribe.documents import (  # noqa: E402
    DocumentMetadata,
    OneShotConverter,
    RenderOptions,
    SigningOptions,
    make_test_certificate,
    render_pdf,
    template_fields,
    warm_converter,
)

PASS_ENV = "TRANSCRIBE_BENCH_PASSPHRASE"
TEXT = (
    "Mme Hélène Lefèvre-Dupré, 67 ans, est revue ce jour (contrôle à 6 mois) pour une "
    "fibrillation atriale paroxystique ; elle décrit « quelques palpitations » à l'effort.\n\n"
    "Examen : TA 132/78 mmHg, FC 68/min. L’ECG montre un rythme sinusal régulier.\n\n"
    "Conclusion : on poursuit l'apixaban 5 mg × 2/j ; contrôle dans 6 mois."
)


@dataclass(frozen=True)
class Run:
    mode: str
    startup_s: float
    per_doc_s: tuple[float, ...]
    stages: dict[str, float]


def sample_fields(template: Path) -> dict[str, str]:
    """A plausible value for every field the template asks for."""
    fields = template_fields(template)
    return {name: f"Valeur {name}" for name in fields.names if name != fields.body_field}


def render_many(
    n: int, template: Path, out_dir: Path, signing: SigningOptions | None, converter
) -> Run:
    times: list[float] = []
    stages: dict[str, list[float]] = {}
    fields = sample_fields(template)
    for index in range(n):
        meta = DocumentMetadata(
            title=f"Document {index}",
            author="Bench",
            job_id=f"bench-{index}",
            date=dt.date(2025, 3, 1),
        )
        started = time.perf_counter()
        result = render_pdf(
            template,
            TEXT,
            fields,
            out_dir / f"{converter.name}-{index}.pdf",
            options=RenderOptions(),
            signing=signing,
            metadata=meta,
            converter=converter,
        )
        times.append(time.perf_counter() - started)
        for stage, seconds in result.timings.items():
            stages.setdefault(stage, []).append(seconds)
    return Run(
        converter.name, 0.0, tuple(times), {k: statistics.mean(v) for k, v in stages.items()}
    )


def bench(n: int, template: Path, modes: Sequence[str], sign: bool) -> list[Run]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-render-") as scratch:
        folder = Path(scratch)
        signing = None
        if sign:
            cert = make_test_certificate(folder / "bench.p12", passphrase="bench")
            os.environ[PASS_ENV] = "bench"
            signing = SigningOptions(
                pkcs12=cert.pkcs12, passphrase_env=PASS_ENV, trust_roots=(cert.root_certificate,)
            )
        if "one-shot" in modes:
            runs.append(render_many(n, template, folder, signing, OneShotConverter()))
        if "warm" in modes:
            started = time.perf_counter()
            with warm_converter() as converter:
                startup = time.perf_counter() - started
                run = render_many(n, template, folder, signing, converter)
            runs.append(Run(run.mode, startup, run.per_doc_s, run.stages))
    return runs


def table(runs: Sequence[Run]) -> str:
    header = (
        "mode",
        "docs",
        "start-up s",
        "mean s/doc",
        "median",
        "min",
        "max",
        "amortised s/doc",
        "convert",
        "sign+verify",
    )
    rows = [header]
    for run in runs:
        times = run.per_doc_s
        amortised = (run.startup_s + sum(times)) / len(times)
        sign = run.stages.get("sign", 0.0) + run.stages.get("verify", 0.0)
        rows.append(
            (
                run.mode,
                str(len(times)),
                f"{run.startup_s:.2f}",
                f"{statistics.mean(times):.3f}",
                f"{statistics.median(times):.3f}",
                f"{min(times):.3f}",
                f"{max(times):.3f}",
                f"{amortised:.3f}",
                f"{run.stages.get('convert', 0.0):.3f}",
                f"{sign:.3f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="warm vs one-shot LibreOffice, approve to signed PDF"
    )
    parser.add_argument("-n", type=int, default=10, help="documents per mode (default 10)")
    parser.add_argument(
        "--template", type=Path, default=ROOT / "templates/cabinet-martin/compte-rendu.docx"
    )
    parser.add_argument("--modes", default="warm,one-shot", help="comma-separated: warm,one-shot")
    parser.add_argument("--no-sign", action="store_true", help="skip signing and verification")
    args = parser.parse_args(argv)
    runs = bench(args.n, args.template, args.modes.split(","), not args.no_sign)
    shown = args.template.relative_to(ROOT) if args.template.is_relative_to(ROOT) else args.template
    print(f"template: {shown}  cpus: {os.cpu_count()}  signed: {not args.no_sign}")
    print(table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
