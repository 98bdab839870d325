"""The service's default policy: UCB1 over content similarity, under its original name.

Kept as its own name so that responses, issued events and dashboards keep saying
`similarity_ucb`; the policy itself is `UCB1`.
"""

from __future__ import annotations

from ranker.bandits.ucb1 import UCB1


class SimilarityUCB(UCB1):
    name = "similarity_ucb"
