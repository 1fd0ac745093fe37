"""Data sets, keyed by the names study files use, and the decoded image cache real image folders
load through."""
