"""Benchmarks of the function against a hand-written baseline, on the local emulator (`python -m bench`)."""
