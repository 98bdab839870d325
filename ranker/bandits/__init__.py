"""Ranking policies behind one small interface (`Policy`), one module per policy."""
