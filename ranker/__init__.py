"""An asyncio gRPC ranker that follows a user's evolving interests with bandit policies."""
