"""Ranking policies behind one small interface (`base.Policy`), one module per policy.

Count-based, over an item-stats store (`item_stats`, or `sliding_window_stats`; a discount below
1 or a window makes any of them follow drifting interests): `ucb1` (`similarity_ucb` is the
former service default under its original name), `epsilon_greedy`, `thompson`, `softmax`.
Contextual, over `linear_model`: `linucb`, `linear_thompson`. Over members: `ensemble` (EXP3,
and a fixed traffic split for A/B tests). `registry` builds the served policy from settings.
"""
