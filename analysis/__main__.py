"""`python -m analysis report RESULTS... [--out DIR] [--converged RULE] [--link-figures]` and `python -m analysis
claims FOLDER`: the report and the verdicts without torch or Ray. Bad input exits 2 with one
line; nothing is written then."""

import argparse
import os
import sys

from analysis.claims import is_folder_of_exports
from analysis.claims_page import write_claims
from analysis.report import build_report
from vi_contract.files import exit_code_for, report_folder
from vi_contract.read import ResultsError


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m analysis")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    rep = sub.add_parser("report", help="figures, REPORT.md and report.html from results folders")
    rep.add_argument("results", nargs="+")
    rep.add_argument("--out", default=None)
    rep.add_argument("--converged", default=None, metavar="METRIC>=VALUE",
                     help="when a seed counts as converged (default: modes_frac>=0.875 where the results have it)")
    rep.add_argument("--link-figures", action="store_true",
                     help="report.html refers to the PNGs beside it instead of embedding them")
    claims = sub.add_parser("claims", help="the claims a folder of exported studies records, decided: FOLDER/CLAIMS.md")
    claims.add_argument("folder", help="a folder of exported studies (docs/reproduction)")
    args = parser.parse_args(argv)
    try:
        if args.command == "claims":
            if not is_folder_of_exports(args.folder):  # a results folder (a protocol's tuning was decided here)
                raise ResultsError(f"{args.folder}: not a folder of exported studies (docs/reproduction); "
                                   "`vi-sweep claims RESULTS` decides one results folder")
            print(f"claims: {write_claims(args.folder)}")
            return 0
        out = args.out or report_folder(args.results[0])
        try:
            path = build_report(args.results, out, args.converged, args.link_figures)
        except OSError as err:  # the output folder cannot be written (a file, no permission: 2; no space: 1)
            print(f"error: cannot write the report to {out}: {err.strerror or err}", file=sys.stderr)
            return exit_code_for(err)
    except ResultsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # skip the interpreter's teardown: a C++ thread pool (pyarrow's) torn down beside it once
    # aborted the process after the error was printed ("terminate called without an active
    # exception", exit -6 instead of 2, in a clean-clone CI run)
    os._exit(code)
