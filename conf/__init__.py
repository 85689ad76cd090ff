"""seqlab's Hydra configs. A package only so that they ship inside the wheel (as seqlab.conf)."""
