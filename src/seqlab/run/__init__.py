"""The run machinery: the command line, the config's checks, run folders, resume= and sweeps.

The modelling core (seqlab.module, seqlab.datamodule, seqlab.callbacks, the tasks) never
imports it: it raises seqlab.errors.SeqlabError, and seqlab.run.cli turns that into one line.
"""
