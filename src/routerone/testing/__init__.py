"""Test helpers shipped with Router One: fake upstream servers and a threaded server runner."""
