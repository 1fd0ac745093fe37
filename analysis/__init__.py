"""The analysis layer: results Parquet -> tables, figures and a report.

Reads only the files described in vi_contract/schema.py (through vi_contract), with pandas,
pyarrow, scipy and seaborn; it never imports torch, Ray or vi_sweeps, so it installs and runs
without them.
"""
