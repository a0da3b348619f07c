"""Recall channels beside the two-tower model (`recall` configuration section).

Each channel maps a batch of requests to scores over the candidate catalogue
and says which requests it can answer; `merge` fuses their ranked lists by
the request's history bucket. Channels: `two_tower` (the trained towers),
`trending` (recency-weighted popularity), `item_cf` (EASE or item-kNN),
`wals` (implicit-feedback matrix factorisation, users folded in from their
history), `item2vec` (session skip-gram vectors) and `content` (TF-IDF of
the catalog's item features). docs/recall.md describes each one;
docs/channels.md and docs/item2vec.md hold what was measured.
"""
