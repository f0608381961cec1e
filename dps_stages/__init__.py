"""dps_stages: the science of the dps workflow (optics, simulation, restoration, metrics).

Pure functions and torch modules; no Snakemake inside. The workflow's rules call the
``dps`` command line (:mod:`dps_stages.cli`), which calls these modules.
"""

__version__ = "0.1.0"
