"""Option parsing shared by several commands."""

from __future__ import annotations

import os

from opreid_bench.errors import OpreidError
from opreid_bench.outputs import refuse_output_over_input

__all__ = ["ZOO_HELP", "echo_dataset_notes", "flip_kwargs", "parse_key_values", "refuse_output_over_input",
           "support_kwargs"]


def parse_key_values(pairs: tuple[str, ...] | list[str], flag: str = "--option") -> dict[str, str]:
    """``KEY=VALUE`` strings (a repeatable option such as a dataset loader's ``--option``) -> dict."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise OpreidError(f"{flag} {pair!r}: expected KEY=VALUE (e.g. query_folder=partial; see "
                              "`opreid-bench datasets list`)")
        out[key.strip()] = value
    return out


def echo_dataset_notes(dataset: str, root: str | os.PathLike[str], options: dict[str, str]) -> None:
    """Print on stderr what the dataset's loader says about the protocol it read (``datasets verify``'s notes), after
    a command's result: a Partial-REID evaluation with the occluded probes is no published Partial-REID figure, and
    the reader of the numbers must see that where the numbers are."""
    import click

    from opreid_bench.data.datasets import get_dataset

    for note in get_dataset(dataset, root, **options).read().notes:
        click.echo(f"note ({dataset}): {note}", err=True)


def _threshold_kwargs(value: str | None, flag: str, key: str, top: float) -> dict[str, float | None]:
    """A threshold option that also takes ``none`` -> ``OcclusionRule`` keyword arguments: a number in [0, ``top``],
    ``none`` (the signal off), or unset (``{}``: the classifier's default)."""
    if value is None:
        return {}
    if value.strip().lower() == "none":
        return {key: None}
    try:
        number = float(value)
    except ValueError:
        raise OpreidError(f"{flag} must be a number in [0, {top:g}] or 'none', got '{value}'") from None
    if not 0.0 <= number <= top:
        raise OpreidError(f"{flag} must be in [0, {top:g}], got {value}")
    return {key: number}


def support_kwargs(value: str | None) -> dict[str, float | None]:
    """``--support-threshold`` -> ``OcclusionRule`` keyword arguments (``none``: visibility only)."""
    return _threshold_kwargs(value, "--support-threshold", "support_threshold", 1.0)


def flip_kwargs(value: str | None) -> dict[str, float | None]:
    """``--flip-threshold`` -> ``OcclusionRule`` keyword arguments (``none``: the mirror signal off)."""
    return _threshold_kwargs(value, "--flip-threshold", "flip_threshold", 2.0)


SUPPORT_THRESHOLD_HELP = ("Person-segmentation support below which a keypoint is missing (it sits on an occluder), "
                          "a number in [0, 1] or 'none' for visibility only (default: the classifier's).")
FLIP_THRESHOLD_HELP = ("Share of the crop's height a keypoint may move between the crop and its mirror image before it "
                       "counts as missing, where the pose stage measured it (--pose mediapipe:flip=1); a number in "
                       "[0, 2] or 'none' to ignore it (default: the classifier's, 0.05).")

ZOO_HELP = ("A model-zoo model (torchreid:ARCH or fastreid:CONFIG.yml) rebuilt here with the zoo's parameter names, its checkpoint given with --weights "
            "(torchreid:osnet_x1_0, osnet_x0_75, osnet_x0_5, osnet_x0_25, osnet_ibn_x1_0, osnet_ain_x1_0, "
            "osnet_ain_x0_75, osnet_ain_x0_5, osnet_ain_x0_25, resnet50, resnet50_fc512; "
            "{'state_dict': ...} or a bare state dict, 'module.' prefixes and any classifier accepted), or "
            "fastreid:CONFIG.yml, fast-reid's own config file with its _BASE_ chain (BoT, AGW, SBS; ResNet-18/34/50/101, "
            "IBN, SE, non-local; checkpoints as {'model': ...}). Nothing of torchreid or fast-reid is installed or "
            "downloaded.")
