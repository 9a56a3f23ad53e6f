"""The verdict: paired statistics, the comparisons they fill, and the gate rules that decide."""
