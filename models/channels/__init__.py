"""Recall channels beside the two-tower model (`recall` configuration section).

Each channel maps a batch of requests to scores over the candidate catalogue
and says which requests it can answer; `merge` fuses their ranked lists by
the request's history bucket. Channels: `two_tower` (the trained towers),
`trending` (recency-weighted popularity), `item_cf` (EASE or item-kNN) and
`wals` (implicit-feedback matrix factorisation, users folded in from their
history). docs/channels.md describes each one and what was measured.
"""
