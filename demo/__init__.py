"""A scripted session against a real Triton and a real ranker: `python -m demo`."""
