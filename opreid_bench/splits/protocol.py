"""Split protocols: the numbers of a benchmark split (paper Section 4) kept as YAML data, not code.

A split protocol file has ``kind: split`` at the top level (evaluation protocols in the same ``protocols/`` folder
use other kinds). Layout::

    kind: split
    name: opreid
    query:      {ids: 3515, images: 4200, images_per_id: [1, 2]}
    gallery:    {ids: 6174, images: 17666,
                 per_query_id: {occluded: 1, holistic: 1},
                 distractor_per_id: {occluded: [1, 3], holistic: [1, 3]}}
    train:      {ids: 1744, images: 27228, images_per_id: [5, 20], occluded_fraction: 0.15}
    published:  {...}   # optional: the numbers the paper reports, shown next to ours in the data card

How exact counts are hit (see ``opreid_bench.splits.sample``): the query count is reached by giving each query
identity between ``images_per_id`` query crops, drawn so that they sum to ``query.images``; the gallery total by
giving each distractor identity between the distractor ranges, drawn so that the gallery sums to ``gallery.images``;
the train total likewise, with ``round(occluded_fraction * train.images)`` occluded crops. ``load_protocol`` checks
that every total can be reached under its per-identity ranges and raises :class:`ProtocolError` otherwise.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opreid_bench.errors import ProtocolError
from opreid_bench.resources import resource_dir

#: Where the split protocols shipped with the package live.
PROTOCOLS_DIR = resource_dir("protocols")


@dataclass(frozen=True)
class SplitProtocol:
    """Target sizes and per-identity rules of one split (query, gallery, train)."""

    name: str
    query_ids: int
    query_images: int
    query_images_per_id: tuple[int, int] = (1, 2)
    gallery_ids: int = 0
    gallery_images: int = 0
    per_query_occluded: int = 1
    per_query_holistic: int = 1
    distractor_occluded: tuple[int, int] = (1, 3)
    distractor_holistic: tuple[int, int] = (1, 3)
    train_ids: int = 0
    train_images: int = 0
    train_images_per_id: tuple[int, int] = (5, 20)
    train_occluded_fraction: float = 0.15
    published: dict[str, Any] = field(default_factory=dict)
    source: str = "<memory>"

    @property
    def distractor_ids(self) -> int:
        """Gallery identities that are not query identities."""
        return self.gallery_ids - self.query_ids

    @property
    def train_occluded_images(self) -> int:
        """Exact number of occluded train crops the sampler draws: the share of the train images, rounded half up
        (2.5 -> 3; Python's round() would give 2)."""
        return int(math.floor(self.train_occluded_fraction * self.train_images + 0.5))

    def gallery_range(self) -> tuple[int, int]:
        """Smallest and largest gallery size the per-identity rules allow (a distractor identity gives at least one
        crop, or it would not be in the gallery's identity count)."""
        per_q = self.per_query_occluded + self.per_query_holistic
        d_lo = max(1, self.distractor_occluded[0] + self.distractor_holistic[0])
        lo = self.query_ids * per_q + self.distractor_ids * d_lo
        hi = self.query_ids * per_q + self.distractor_ids * (self.distractor_occluded[1] + self.distractor_holistic[1])
        return lo, hi

    def validate(self) -> None:
        """Raise :class:`ProtocolError` naming the file when the numbers contradict each other."""
        src = self.source

        def _range(name: str, r: tuple[int, int], minimum: int) -> None:
            if r[0] < minimum or r[1] < r[0]:
                raise ProtocolError(f"{src}: {name} must be [lo, hi] with {minimum} <= lo <= hi, got {list(r)}")

        _range("query.images_per_id", self.query_images_per_id, 1)
        _range("gallery.distractor_per_id.occluded", self.distractor_occluded, 0)
        _range("gallery.distractor_per_id.holistic", self.distractor_holistic, 0)
        _range("train.images_per_id", self.train_images_per_id, 1)
        if self.query_ids < 1:
            raise ProtocolError(f"{src}: query.ids must be >= 1, got {self.query_ids}")
        if self.per_query_occluded < 0 or self.per_query_holistic < 0:
            raise ProtocolError(f"{src}: gallery.per_query_id counts must be >= 0")
        q_lo, q_hi = self.query_ids * self.query_images_per_id[0], self.query_ids * self.query_images_per_id[1]
        if not q_lo <= self.query_images <= q_hi:
            raise ProtocolError(
                f"{src}: query.images {self.query_images} unreachable with {self.query_ids} ids x "
                f"{list(self.query_images_per_id)} per id (possible {q_lo}-{q_hi})"
            )
        if self.gallery_ids < self.query_ids:
            raise ProtocolError(
                f"{src}: gallery.ids {self.gallery_ids} < query.ids {self.query_ids}; every query identity is in the "
                "gallery"
            )
        g_lo, g_hi = self.gallery_range()
        if not g_lo <= self.gallery_images <= g_hi:
            raise ProtocolError(
                f"{src}: gallery.images {self.gallery_images} unreachable: {self.query_ids} query ids x "
                f"{self.per_query_occluded + self.per_query_holistic} + {self.distractor_ids} distractor ids x "
                f"occluded {list(self.distractor_occluded)} + holistic {list(self.distractor_holistic)} "
                f"gives {g_lo}-{g_hi}"
            )
        t_lo, t_hi = self.train_ids * self.train_images_per_id[0], self.train_ids * self.train_images_per_id[1]
        if self.train_ids < 0 or not t_lo <= self.train_images <= t_hi:
            raise ProtocolError(
                f"{src}: train.images {self.train_images} unreachable with {self.train_ids} ids x "
                f"{list(self.train_images_per_id)} per id (possible {t_lo}-{t_hi})"
            )
        if not 0.0 <= self.train_occluded_fraction <= 1.0:
            raise ProtocolError(f"{src}: train.occluded_fraction must be in [0, 1], got {self.train_occluded_fraction}")

    def expected_counts(self) -> dict[str, list[int]]:
        """Images and identities per split of a split this protocol draws (``[images, ids]``; the sampler meets each
        exactly): what ``datasets verify`` checks a built split against."""
        return {"train": [self.train_images, self.train_ids], "query": [self.query_images, self.query_ids],
                "gallery": [self.gallery_images, self.gallery_ids]}

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (for JSON summaries and the data card)."""
        d = asdict(self)
        d.pop("source")
        return d


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _pair(value: Any, where: str, src: str) -> tuple[int, int]:
    if _is_int(value):
        return (value, value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_int(v) for v in value):
        return (int(value[0]), int(value[1]))
    raise ProtocolError(f"{src}: {where} must be an integer or a [lo, hi] pair, got {value!r}")


#: Every key a split protocol may hold, per section (None: a leaf). A key outside this schema is an error naming the
#: file and the key -- a typo such as ``occluded_fracton`` must not silently fall back to the default.
_SCHEMA: dict[str, Any] = {
    "kind": None, "name": None, "description": None,
    "query": {"ids": None, "images": None, "images_per_id": None},
    "gallery": {"ids": None, "images": None, "per_query_id": {"occluded": None, "holistic": None},
                "distractor_per_id": {"occluded": None, "holistic": None}},
    "train": {"ids": None, "images": None, "images_per_id": None, "occluded_fraction": None},
    "published": {"train": {"ids": None, "images": None}, "query": {"ids": None, "images": None},
                  "gallery": {"ids": None, "images": None}, "overall": {"ids": None, "images": None},
                  "cameras": None, "source": None},
}


def _check_keys(data: Any, schema: dict[str, Any], where: str, src: str) -> None:
    """Raise :class:`ProtocolError` for a key outside ``schema`` or a section that is not a mapping."""
    if not isinstance(data, dict):
        raise ProtocolError(f"{src}: {where or 'the protocol'} must be a mapping, got {data!r}")
    for key, value in data.items():
        name = f"{where}.{key}" if where else str(key)
        if key not in schema:
            raise ProtocolError(f"{src}: unknown key '{name}'; known: {', '.join(schema)}")
        sub = schema[key]
        if sub is not None and value is not None:
            _check_keys(value, sub, name, src)


def _published(data: Any, src: str) -> dict[str, Any]:
    """The optional ``published`` section: counts are non-negative integers, ``source`` is text."""
    if data is None:
        return {}
    for section, counts in data.items():
        if section == "source":
            if not isinstance(counts, str):
                raise ProtocolError(f"{src}: published.source must be text, got {counts!r}")
        elif section == "cameras":
            if not _is_int(counts) or counts < 0:
                raise ProtocolError(f"{src}: published.cameras must be a non-negative integer, got {counts!r}")
        else:
            for key, value in (counts or {}).items():
                if not _is_int(value) or value < 0:
                    raise ProtocolError(f"{src}: published.{section}.{key} must be a non-negative integer, "
                                        f"got {value!r}")
    return dict(data)


def _int(section: dict[str, Any], key: str, where: str, src: str) -> int:
    if key not in section:
        raise ProtocolError(f"{src}: missing {where}.{key}")
    value = section[key]
    if not _is_int(value):
        raise ProtocolError(f"{src}: {where}.{key} must be an integer, got {value!r}")
    return value


def _count(section: dict[str, Any], key: str, default: int, where: str, src: str) -> int:
    """An optional integer entry of ``section`` (``default`` when absent)."""
    value = section.get(key, default)
    if not _is_int(value):
        raise ProtocolError(f"{src}: {where}.{key} must be an integer, got {value!r}")
    return value


def protocol_from_dict(data: Any, source: str = "<memory>") -> SplitProtocol:
    """Build and validate a :class:`SplitProtocol` from parsed YAML."""
    if not isinstance(data, dict):
        raise ProtocolError(f"{source}: a split protocol must be a mapping")
    if data.get("kind") != "split":
        raise ProtocolError(f"{source}: not a split protocol (top-level 'kind: split' missing; got {data.get('kind')!r})")
    for key in ("query", "gallery", "train"):
        if not isinstance(data.get(key), dict):
            raise ProtocolError(f"{source}: missing section '{key}'")
    _check_keys(data, _SCHEMA, "", source)
    q, g, t = data["query"], data["gallery"], data["train"]
    per_q = g.get("per_query_id", {}) or {}
    dis = g.get("distractor_per_id", {}) or {}
    frac = t.get("occluded_fraction", 0.15)
    if not isinstance(frac, (int, float)) or isinstance(frac, bool):
        raise ProtocolError(f"{source}: train.occluded_fraction must be a number, got {frac!r}")
    proto = SplitProtocol(
        name=str(data.get("name", Path(source).stem)),
        query_ids=_int(q, "ids", "query", source),
        query_images=_int(q, "images", "query", source),
        query_images_per_id=_pair(q.get("images_per_id", [1, 2]), "query.images_per_id", source),
        gallery_ids=_int(g, "ids", "gallery", source),
        gallery_images=_int(g, "images", "gallery", source),
        per_query_occluded=_count(per_q, "occluded", 1, "gallery.per_query_id", source),
        per_query_holistic=_count(per_q, "holistic", 1, "gallery.per_query_id", source),
        distractor_occluded=_pair(dis.get("occluded", [1, 3]), "gallery.distractor_per_id.occluded", source),
        distractor_holistic=_pair(dis.get("holistic", [1, 3]), "gallery.distractor_per_id.holistic", source),
        train_ids=_int(t, "ids", "train", source),
        train_images=_int(t, "images", "train", source),
        train_images_per_id=_pair(t.get("images_per_id", [5, 20]), "train.images_per_id", source),
        train_occluded_fraction=float(frac),
        published=_published(data.get("published"), source),
        source=source,
    )
    proto.validate()
    return proto


def protocol_path(path: str | os.PathLike[str]) -> Path:
    """The YAML file of a split protocol: a path, or a bare name of a shipped one (``opreid``, ``opreid-mini``,
    ``opreid-tiny``, ``opreid-demo``) resolved inside the package whatever the working directory."""
    p = Path(path)
    if not p.exists() and p.suffix == "" and (PROTOCOLS_DIR / f"{p.name}.yaml").exists():
        p = PROTOCOLS_DIR / f"{p.name}.yaml"
    return p


def load_protocol(path: str | os.PathLike[str]) -> SplitProtocol:
    """Load a split protocol YAML; a bare name (``opreid``, ``opreid-mini``) resolves to a shipped protocol."""
    import yaml

    p = protocol_path(path)
    if not p.is_file():
        shipped = ", ".join(sorted(q.stem for q in PROTOCOLS_DIR.glob("*.yaml")))
        raise ProtocolError(f"{p}: split protocol file not found (shipped protocols, named without a path: "
                            f"{shipped})")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProtocolError(f"{p}: invalid YAML ({str(exc).splitlines()[0]})") from None
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return protocol_from_dict(data, source=str(p))
