"""Building: each candidate kind builds what it needs before serving (an adapter trained, documents
indexed)."""
