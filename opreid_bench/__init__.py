"""opreid-bench: occluded person re-identification toolkit and benchmark.

Build occluded splits from your own camera data, load every standard ReID benchmark, evaluate any model with one
trusted evaluator, and train/compare the reference models of Yan, Pang et al. (ICCV 2021).
"""

__version__ = "0.1.0"
