"""The `visualize` job: features (read, or extracted from a checkpoint) -> rank lists -> page in an output folder.

Kept out of the CLI module so the command only parses and prints. Memory is bounded by the rank lists' chunking
(``opreid_bench.evaluation.ranklists``); only the shown crops are loaded.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opreid_bench.errors import EvaluationError, FeatureFileError, OpreidError


@dataclass
class VisualizeJob:
    """Every option of `opreid-bench visualize`."""

    out: Path
    features: Path | None = None
    weights: Path | None = None
    zoo: str | None = None  # with weights: a model-zoo checkpoint (opreid_bench.modeling.zoo)
    zoo_input_size: tuple[int, int] | None = None  # with zoo: the size the model was trained at (else its default)
    dataset: str | None = None
    root: Path | None = None
    options: dict[str, str] = field(default_factory=dict)
    compare: Path | None = None
    topk: int = 10
    sort: str = "ap"
    seed: int = 0
    only_failures: bool = False
    query: str | None = None
    limit: int = 50
    per_page: int = 10
    metric: str | None = None
    junk: str | None = None
    image_root: Path | None = None
    link_images: bool = False
    attention: bool = False
    attention_map: str = "gradcam"  # "gradcam" | "rp" (the RP mask of Eq. 2; models with an RP branch)
    device: str = "cpu"


def _attr_choice(attrs: dict, key: str, given: str | None, choices: tuple[str, ...], default: str, src: Path | str,
                 flag: str) -> str:
    if given is not None:
        return given
    value = str(attrs.get(key, default))
    if value not in choices:
        raise OpreidError(f"{src}: attribute {key}={value!r} is not one of {', '.join(choices)}; pass {flag}")
    return value


def run_visualize(job: VisualizeJob) -> dict[str, Any]:
    """Build the page and grids; returns ``{"html", "queries_shown", "true_matches_in_topk", "a_wins", "b_wins"}``."""
    from opreid_bench.evaluation.features import read_feature_file
    from opreid_bench.evaluation.ranklists import compute_rank_lists, same_labels
    from opreid_bench.outputs import check_separate, fingerprint, output_folder
    from opreid_bench.visualize.pages import Selection, choose_sections, write_pages
    from opreid_bench.visualize.render import Crops, Model

    inputs = [(label, p) for label, p in (("--features file", job.features), ("--weights file", job.weights),
                                          ("--compare file", job.compare)) if p is not None]
    check_separate(job.out, inputs)
    model = None
    if job.features is not None:
        query, gallery, attrs = read_feature_file(job.features)
        source: Path | str = job.features
    elif job.zoo is not None:
        from opreid_bench.engine.zoo_extract import zoo_feature_sets

        query, gallery, attrs = zoo_feature_sets(job.zoo, job.weights, job.dataset, job.root, device=job.device,
                                                 options=job.options, input_size=job.zoo_input_size)
        source = str(job.weights)
    else:
        from opreid_bench.engine.extract import model_feature_sets

        query, gallery, attrs = model_feature_sets(job.weights, job.dataset, job.root, device=job.device,
                                                   options=job.options)
        source = str(job.weights)
        if job.attention:
            from opreid_bench.engine.checkpoint import load_model_from_checkpoint

            model, cfg, _state = load_model_from_checkpoint(job.weights, device=job.device)
    for side, fs in (("query", query), ("gallery", gallery)):
        if fs.paths is None:
            raise FeatureFileError(f"{source}: has no /{side}/paths; visualize needs the image path of every crop")
    metric = _attr_choice(attrs, "metric", job.metric, ("euclidean", "cosine"), "euclidean", source, "--metric")
    junk = _attr_choice(attrs, "junk", job.junk, ("market", "none"), "market", source, "--junk")
    try:
        lists = compute_rank_lists(query, gallery, metric=metric, junk=junk, topk=job.topk, device=job.device)
    except EvaluationError as exc:
        raise EvaluationError(f"{source}: {exc}") from None
    name_a = str(attrs.get("method") or Path(str(source)).stem)
    models = [Model(name_a, lists)]
    if job.compare is not None:
        bq, bg, battrs = read_feature_file(job.compare)
        diff = same_labels(query, gallery, bq, bg)
        if diff is not None:
            raise FeatureFileError(f"{job.compare}: not comparable with {source}: {diff}")
        try:
            b_lists = compute_rank_lists(bq, bg, metric=job.metric or str(battrs.get("metric", metric)), junk=junk,
                                         topk=job.topk, device=job.device)
        except EvaluationError as exc:
            raise EvaluationError(f"{job.compare}: {exc}") from None
        name_b = str(battrs.get("method") or job.compare.stem)
        if name_b == name_a:
            name_a, name_b = f"A ({name_a})", f"B ({name_b})"
            models[0].name = name_a
        models.append(Model(name_b, b_lists))
    if not lists.valid.any():
        raise EvaluationError(f"{source}: no valid query (no query has a true match after junk={junk!r} removal)")
    sel = Selection(sort=job.sort, seed=job.seed, only_failures=job.only_failures, query=job.query, limit=job.limit)
    sections, counts = choose_sections(models, query, sel)

    heat = None
    if model is not None:
        from opreid_bench.visualize.attention import GradCam, RPAttention

        maker = RPAttention if job.attention_map == "rp" else GradCam
        cam = maker(model, cfg.data.height, cfg.data.width, device=job.device)

        def heat(path: str, m: int, reference: str | None) -> Any:
            if m != 0:
                return None  # only model A has weights
            ref = None if reference is None else crops.resolve(reference)
            return cam.for_crop(crops.resolve(path), ref)

    crops = Crops(job.image_root, heatmap=heat)
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(job).items()}
    title = f"Rank lists: {' vs '.join(m.name for m in models)} (top-{job.topk}, {metric}, junk={junk})"
    with output_folder(job.out, "visualize", kind="visualize", inputs=inputs, fingerprint=fingerprint(options),
                       options=options, swap=True) as folder:
        summary = write_pages(folder, models, query, gallery, crops, sections, counts, title=title,
                              link_images=job.link_images, per_page=job.per_page)
    summary["html"] = os.path.join(str(job.out), "index.html")
    return summary
