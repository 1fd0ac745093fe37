"""The analysis layer: results Parquet -> tables, figures and a report.

Reads only the files described in analysis/schema.py, with pandas, pyarrow, scipy and
seaborn; it never imports torch or Ray, so it installs and runs without them.
"""
