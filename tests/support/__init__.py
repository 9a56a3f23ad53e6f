"""What the tests share: planted-scenario projects, loopback servers, a throwaway PostgreSQL, paths."""
