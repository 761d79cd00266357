"""``python -m airflow_provider_kie.catalog refresh [--docs URL] [--out DIR]``: read Kie's current pages
into catalog entries, without a release of the provider.

Reads ``{docs}/llms.txt`` and every Market page it links to (docs: ``--docs``, else ``KIE_DOCS_URL``,
else https://docs.kie.ai), writes one entry per model into ``--out`` (default ``KIE_CATALOG_DIR``),
marks the models no page documents any more as gone, and prints what was added, changed and gone.
Point ``KIE_CATALOG_DIR`` of every Airflow process at that folder and they read its entries over the
bundled ones. ``--out airflow_provider_kie/catalog`` regenerates the bundled catalog for a release.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from airflow_provider_kie import models, pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_kie.catalog", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    refresh = commands.add_parser("refresh", help="read Kie's current pages into catalog entries")
    refresh.add_argument(
        "--docs", help=f"docs base URL (default: ${pages.DOCS_URL_ENV} or {pages.DEFAULT_DOCS_URL})"
    )
    refresh.add_argument(
        "--out", help=f"folder to write the entries into (default: ${models.CATALOG_DIR_ENV})"
    )
    args = parser.parse_args(argv)
    out = args.out or os.environ.get(models.CATALOG_DIR_ENV)
    if not out:
        parser.error(f"give --out DIR, or set {models.CATALOG_DIR_ENV}")
    try:
        report = pages.refresh(args.docs, Path(out))
    except pages.PageUnreadable as error:
        print(f"Cannot read Kie's docs index: {error}", file=sys.stderr)
        return 1
    print("\n".join(report.lines()))
    print(f"Entries written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
