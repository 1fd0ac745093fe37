"""`python -m analysis report RESULTS... [--out DIR]`: the report without torch or Ray."""

import argparse
import sys

from analysis.load import ResultsError
from analysis.report import build_report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="figures, REPORT.md and report.html from results folders")
    rep.add_argument("results", nargs="+")
    rep.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    try:
        path = build_report(args.results, args.out or f"{args.results[0]}/report")
    except ResultsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
