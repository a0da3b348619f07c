"""The two towers: `QueryTower` (user and history) and `CandidateTower` (items)."""

from models.towers.candidate import CandidateTower
from models.towers.query import QueryTower

__all__ = ["CandidateTower", "QueryTower"]
