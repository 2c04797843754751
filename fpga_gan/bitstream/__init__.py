"""From a compiled generator to a board artifact: the FINN/Vivado handover, artifacts, deployment.

``finn_build``: the directory FINN's builder runs (our GAN passes as a custom step, folding and
FIFO depths as FINN config files); ``vivado``: finding a supported Vivado; ``artifact``: the
``bitstreams/<model>-<board>/`` directory with its manifest; ``deploy``: the tarball for a board.
"""
