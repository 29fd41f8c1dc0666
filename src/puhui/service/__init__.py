"""Use cases: each function is one thing an operator, a platform or a citizen can do."""
