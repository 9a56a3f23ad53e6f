"""Planning: the config and its suites read, validated against what the stages offer, and resolved
into a plan."""
