"""Keras layer classes grouped by what they do to the values that pass through them, as data:
the transforms that walk a model (channel pruning, quantization-aware training) build their own
tables from these groups rather than listing the same classes again."""

from __future__ import annotations


def _ranks(*stems: str) -> frozenset[str]:
    return frozenset(f"{stem}{rank}D" for stem in stems for rank in (1, 2, 3))


# Identity at inference: regularizers and noise that act only while training.
INFERENCE_IDENTITY = frozenset(
    {
        "Dropout",
        "GaussianNoise",
        "GaussianDropout",
        "AlphaDropout",
        "ActivityRegularization",
    }
) | _ranks("SpatialDropout")

# Per channel, every output value is an input value (or a padded zero): the values and their
# range are kept, only moved or picked. (UpSampling2D/3D may interpolate, so only 1D is here.)
SPATIAL_SELECTING = _ranks("MaxPooling", "GlobalMaxPooling", "ZeroPadding", "Cropping") | {"UpSampling1D"}

# Per channel, but computed from several input values of that channel.
SPATIAL_MIXING = _ranks("AveragePooling", "GlobalAveragePooling") | {"UpSampling2D", "UpSampling3D"}
