"""Offline next-basket ranking evaluation on real transactions (see bench/evaluate.py)."""
