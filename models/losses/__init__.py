"""Retrieval losses, one module each, chosen by `model.loss.kind`.

Every entry takes `(LossInputs, ModelConfig)` and returns the batch's loss
summed over its queries (models/losses/common.py). A new loss is a module
here and one line below.
"""

from models.losses import bce, nce, softmax, triplet

LOSSES = {
    "softmax": softmax.compute,
    "nce": nce.compute,
    "bce": bce.compute,
    "triplet_hinge": triplet.compute_hinge,
    "triplet_logistic": triplet.compute_logistic,
}
