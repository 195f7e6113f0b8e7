"""build-split: turn a raw pool of person crops into an OPReID-style occluded benchmark (paper Section 4).

Stages, one module each: keypoints (``pose``/``annotate``/``cache``/``pose_backends``), the occluded-or-holistic
label (``classify``, with a hand-check contact sheet in ``review``), face masking, and sampling by protocol.
This file imports nothing heavy, so ``import opreid_bench.splits.<stage>`` stays cheap.
"""
