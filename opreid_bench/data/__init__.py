"""Datasets (one small class per benchmark), transforms and samplers."""

from opreid_bench.data.records import DatasetSplits, ImageRecord, relabel_pids

__all__ = ["DatasetSplits", "ImageRecord", "relabel_pids"]
