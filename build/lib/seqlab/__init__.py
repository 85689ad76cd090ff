"""seqlab: small sequence models as Lightning modules driven by Hydra configs."""

__version__ = "0.1.0"
