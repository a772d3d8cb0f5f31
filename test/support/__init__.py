"""Test helpers (no tests here): node processes and drivers, recordings, stand-in peers and fixtures."""
