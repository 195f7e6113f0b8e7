"""The leaderboard: the paper's published numbers next to runs measured with this toolkit."""

from opreid_bench.leaderboard.rows import LeaderboardRow, load_published, load_runs, select_rows

__all__ = ["LeaderboardRow", "load_published", "load_runs", "select_rows"]
