"""The rules: one module per family, each rule a pure function of its inputs.

A rule takes plain values (commits, file paths, MR fields) and returns the findings it made.
No rule does I/O, so each is tested with literal values.
"""
