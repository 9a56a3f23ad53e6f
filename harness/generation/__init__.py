"""Generation: every (candidate, suite, case) becomes a request, answered from the cache or an
engine."""
