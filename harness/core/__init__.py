"""Shared data types and utilities at the bottom of the import graph: requests and completions,
sampling settings, errors, files, the model cache, console and progress. No stage is imported here.
"""
