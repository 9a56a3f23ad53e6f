"""Scoring: (case, answer) -> score rows, by scorers that suites name (registry.py); the judge
scorer's rubrics and calibration sets. This package's own import is light: a module that needs only
a rubric or a calibration set (the gate, the command line) does not load every scorer's libraries
(rouge-score and nltk take 1.5 s).
"""
