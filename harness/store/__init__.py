"""The run store: every row lands as it is made, and the response cache lives beside it."""
