"""Offline evaluation of note writers on public benchmarks."""
