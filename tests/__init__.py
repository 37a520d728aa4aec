"""trustwatch's test suite (a package so helpers under tests/support are importable)."""
