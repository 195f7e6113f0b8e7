"""Stage 4: sample query / gallery / train from labelled crops by a split protocol (paper Section 4).

Input: a DataFrame with ``source_path, pid, camid, occluded`` (extra columns are carried along; rows whose ``label``
column says ``undetermined``, i.e. no person was found, are left out). Output: the chosen
rows with ``split`` (query, gallery, train) and ``role`` (query, match, distractor, train), sorted by split, pid and
path. Rules, and how the exact totals of the protocol are hit:

1. **Query identities** are drawn from identities with at least ``images_per_id[0] + per_query_id.occluded``
   occluded and ``per_query_id.holistic`` holistic crops; identities whose matches can come from another camera
   than their query crops are drawn first (then the rest, each tier in seeded random order). The query total is hit
   by drawing per-identity query counts in ``images_per_id`` that sum to ``query.images``
   (:func:`allocate`: a multivariate hypergeometric draw over each identity's spare capacity); a draw of identities
   with too little room for that total swaps its tightest identities for the next drawn ones with more room.
2. **Query crops and matches**: the query crops of an identity are occluded; its gallery gets exactly
   ``per_query_id.occluded`` occluded and ``per_query_id.holistic`` holistic crops that are not query crops, taken
   from cameras other than the query crops' camera whenever the identity has such crops (camid < 0 = unknown).
3. **Distractor and train identities** come from the remaining identities, walked in seeded random order: an
   identity joins train (>= ``train.images_per_id[0]`` crops) or the distractors (enough occluded and holistic
   crops) while each still needs identities, keeping enough candidates for the other. Train and test identities are
   disjoint by construction.
4. **Distractor crops**: per-identity totals drawn (as in 1) so that the gallery has exactly ``gallery.images``
   crops, then split into occluded/holistic uniformly within the ranges.
5. **Train crops**: per-identity totals in ``images_per_id`` summing to ``train.images``, then exactly
   ``round(occluded_fraction * train.images)`` occluded crops spread over the identities (again by :func:`allocate`).

A pool that cannot satisfy the protocol raises :class:`ProtocolError` with the numbers needed and available.
Everything random comes from one ``numpy.random.Generator(seed)``, and the input is sorted first, so the same
labels and seed give the same split whatever the input row order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from opreid_bench.errors import ProtocolError
from opreid_bench.splits.protocol import SplitProtocol

SPLIT_ORDER = {"query": 0, "gallery": 1, "train": 2}
REQUIRED_COLUMNS = ("source_path", "pid", "camid", "occluded")


def allocate(total: int, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator, what: str) -> np.ndarray:
    """Random integers x with lo <= x <= hi and sum(x) == total (each spare unit equally likely to be drawn)."""
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    if np.any(hi < lo) or lo.sum() > total or hi.sum() < total:
        raise ProtocolError(
            f"{what}: needs {total}, but the chosen identities allow {int(lo.sum())}-{int(np.maximum(hi, lo).sum())}"
        )
    spare = hi - lo
    extra = total - int(lo.sum())
    if extra == 0 or len(lo) == 0:
        return lo.copy()
    return lo + rng.multivariate_hypergeometric(spare, extra).astype(np.int64)


@dataclass
class _Identity:
    pid: int
    occ: np.ndarray  # row positions of occluded crops (sorted by path)
    hol: np.ndarray
    occ_cam: np.ndarray
    hol_cam: np.ndarray

    @property
    def n(self) -> int:
        return len(self.occ) + len(self.hol)


def _identities(df: pd.DataFrame) -> list[_Identity]:
    out = []
    occ_col = df["occluded"].to_numpy(dtype=bool)
    cam_col = df["camid"].to_numpy(dtype=np.int64)
    for pid, rows in df.groupby("pid", sort=True).indices.items():
        rows = np.sort(rows)
        o, h = rows[occ_col[rows]], rows[~occ_col[rows]]
        out.append(_Identity(int(pid), o, h, cam_col[o], cam_col[h]))
    return out


def _cross_camera_capable(ident: _Identity, p: SplitProtocol) -> bool:
    for c in np.unique(ident.occ_cam):
        if c < 0:
            continue
        if (
            (ident.occ_cam != c).sum() >= p.per_query_occluded
            and ((ident.hol_cam != c) & (ident.hol_cam >= 0)).sum() >= p.per_query_holistic
        ):
            return True
    return False


def _pick(rng: np.random.Generator, rows: np.ndarray, k: int) -> np.ndarray:
    return np.sort(rng.choice(rows, size=k, replace=False)) if k else rows[:0]


def _pick_preferring(rng: np.random.Generator, rows: np.ndarray, cams: np.ndarray, avoid: set[int], k: int):
    """k rows, taken from cameras outside ``avoid`` (known cameras) first, then from the rest."""
    good = np.array([c >= 0 and c not in avoid for c in cams], dtype=bool)
    first = _pick(rng, rows[good], min(k, int(good.sum())))
    rest = _pick(rng, rows[~good], k - len(first))
    return np.sort(np.concatenate([first, rest]))


def _query_and_matches(ident: _Identity, k: int, p: SplitProtocol, rng: np.random.Generator):
    """(query rows, matching occluded rows, matching holistic rows) for one query identity."""
    for c in rng.permutation(np.unique(ident.occ_cam)):
        if c < 0:
            continue
        qc = ident.occ[ident.occ_cam == c]
        go = ident.occ[(ident.occ_cam != c) & (ident.occ_cam >= 0)]
        gh = ident.hol[(ident.hol_cam != c) & (ident.hol_cam >= 0)]
        if len(qc) >= k and len(go) >= p.per_query_occluded and len(gh) >= p.per_query_holistic:
            return _pick(rng, qc, k), _pick(rng, go, p.per_query_occluded), _pick(rng, gh, p.per_query_holistic)
    q = _pick(rng, ident.occ, k)
    qcams = {int(c) for c in ident.occ_cam[np.isin(ident.occ, q)]}
    keep = ~np.isin(ident.occ, q)
    go = _pick_preferring(rng, ident.occ[keep], ident.occ_cam[keep], qcams, p.per_query_occluded)
    gh = _pick_preferring(rng, ident.hol, ident.hol_cam, qcams, p.per_query_holistic)
    return q, go, gh


def _check_columns(labels: pd.DataFrame, where: str = "labels") -> pd.DataFrame:
    from opreid_bench.splits.classify import occluded_verdicts

    missing = [c for c in REQUIRED_COLUMNS if c not in labels.columns]
    if missing:
        raise ProtocolError(f"{where}: missing column(s) {', '.join(missing)} (need {', '.join(REQUIRED_COLUMNS)})")
    df = labels.copy()
    if "label" in df.columns:  # classify's undetermined crops (no person found) are not sampled unless decided
        df = df[df["label"].astype(str) != "undetermined"].copy()
    occ = occluded_verdicts(df["occluded"])
    if occ.isna().any():
        first = df["source_path"].iloc[int(occ.isna().to_numpy().nonzero()[0][0])]
        raise ProtocolError(f"{where}: {int(occ.isna().sum())} crop(s) have no occluded label (true/false, 1/0, "
                            f"yes/no, occluded/holistic), e.g. {first}")
    if df["source_path"].duplicated().any():
        dup = df.loc[df["source_path"].duplicated(), "source_path"].iloc[0]
        raise ProtocolError(f"{where}: source_path '{dup}' appears more than once")
    df["occluded"] = occ.astype(bool)
    df["pid"] = df["pid"].astype(np.int64)
    df["camid"] = df["camid"].astype(np.int64)
    df["source_path"] = df["source_path"].astype(str)
    return df.sort_values(["pid", "source_path"], kind="mergesort").reset_index(drop=True)


def sample_split(labels: pd.DataFrame, protocol: SplitProtocol, seed: int, where: str = "labels") -> pd.DataFrame:
    """Choose the query, gallery and train crops of ``protocol`` from ``labels`` (see the module docstring);
    ``where`` names the labels in errors."""
    p = protocol
    df = _check_columns(labels, where)
    rng = np.random.default_rng(seed)
    idents = _identities(df)
    name = p.name

    # 1. query identities
    q_need_occ = p.query_images_per_id[0] + p.per_query_occluded
    q_ok = [i for i in idents if len(i.occ) >= q_need_occ and len(i.hol) >= p.per_query_holistic]
    if len(q_ok) < p.query_ids:
        need = q_need_occ + p.per_query_holistic
        most = max((i.n for i in idents), default=0)
        hint = (f"; no identity has {need} crops (the most is {most}): every query identity gives an occluded query "
                "and keeps its occluded and holistic matches in the gallery, so a pool of a few crops per identity "
                "needs a protocol of its own (docs/reference/file-formats.md, 'Split protocol')") if most < need else ""
        raise ProtocolError(
            f"pool too small for protocol '{name}': query needs {p.query_ids} identities with >= {q_need_occ} "
            f"occluded and >= {p.per_query_holistic} holistic crops; the pool has {len(q_ok)} "
            f"(of {len(idents)} labelled identities, {int(df['occluded'].sum())} occluded crops){hint}"
        )
    order = rng.permutation(len(q_ok))
    tier = np.array([0 if _cross_camera_capable(q_ok[j], p) else 1 for j in order])
    order = order[np.argsort(tier, kind="stable")]

    def room(j: int) -> int:  # the most query crops identity j can give (its matches stay in the gallery)
        return min(p.query_images_per_id[1], len(q_ok[j].occ) - p.per_query_occluded)

    chosen = [int(j) for j in order[: p.query_ids]]
    # a draw whose identities cannot give query.images crops in all: its identities with the least room are swapped,
    # one by one, for the next drawn ones with more room (a draw that can is kept as it is)
    for j in order[p.query_ids:]:
        if sum(room(c) for c in chosen) >= p.query_images:
            break
        tightest = min(range(len(chosen)), key=lambda i: room(chosen[i]))
        if room(int(j)) > room(chosen[tightest]):
            chosen[tightest] = int(j)
    chosen.sort(key=lambda j: q_ok[j].pid)
    queries = [q_ok[j] for j in chosen]
    lo = np.full(len(queries), p.query_images_per_id[0])
    hi = np.array([room(j) for j in chosen])
    q_counts = allocate(p.query_images, lo, hi, rng, f"protocol '{name}' query images")

    split = np.full(len(df), "", dtype=object)
    role = np.full(len(df), "", dtype=object)
    for ident, k in zip(queries, q_counts):
        q, go, gh = _query_and_matches(ident, int(k), p, rng)
        split[q], role[q] = "query", "query"
        split[np.concatenate([go, gh])], role[np.concatenate([go, gh])] = "gallery", "match"

    # 3. train and distractor identities from the rest
    used = {i.pid for i in queries}
    rest = [i for i in idents if i.pid not in used]
    d_lo_o, d_lo_h = p.distractor_occluded[0], p.distractor_holistic[0]
    can_t = np.array([i.n >= p.train_images_per_id[0] for i in rest], dtype=bool)
    can_d = np.array([len(i.occ) >= d_lo_o and len(i.hol) >= d_lo_h for i in rest], dtype=bool)
    need_t, need_d = p.train_ids, p.distractor_ids
    if can_t.sum() < need_t or can_d.sum() < need_d or (can_t | can_d).sum() < need_t + need_d:
        raise ProtocolError(
            f"pool too small for protocol '{name}': besides the {p.query_ids} query identities it needs "
            f"{need_t} train identities (>= {p.train_images_per_id[0]} crops; pool has {int(can_t.sum())}) and "
            f"{need_d} distractor identities (>= {d_lo_o} occluded and >= {d_lo_h} holistic crops; pool has "
            f"{int(can_d.sum())}), {need_t + need_d} in all (pool has {int((can_t | can_d).sum())})"
        )
    left_t, left_d = int(can_t.sum()), int(can_d.sum())
    train, distractors = [], []
    for j in rng.permutation(len(rest)):
        if len(train) == need_t and len(distractors) == need_d:
            break
        t_ok = can_t[j] and len(train) < need_t
        d_ok = can_d[j] and len(distractors) < need_d
        left_t -= int(can_t[j])
        left_d -= int(can_d[j])
        if t_ok and (not d_ok or left_d >= need_d - len(distractors)):
            train.append(rest[j])
        elif d_ok:
            distractors.append(rest[j])
    if len(train) < need_t or len(distractors) < need_d:
        raise ProtocolError(
            f"pool too small for protocol '{name}': could fill only {len(train)}/{need_t} train and "
            f"{len(distractors)}/{need_d} distractor identities from {len(rest)} non-query identities"
        )
    taken = {i.pid for i in train} | {i.pid for i in distractors}
    train = _fill_train_capacity(train, [i for i in rest if i.pid not in taken], p)
    taken = {i.pid for i in train} | {i.pid for i in distractors}
    train = _fit_train_occlusion(train, [i for i in rest if i.pid not in taken], p)
    taken = {i.pid for i in train} | {i.pid for i in distractors}
    train = _fit_train_mix(train, [i for i in rest if i.pid not in taken], p)
    taken = {i.pid for i in train} | {i.pid for i in distractors}
    distractors = _fill_distractor_capacity(distractors, [i for i in rest if i.pid not in taken], p)
    train.sort(key=lambda i: i.pid)
    distractors.sort(key=lambda i: i.pid)

    # 4. distractor crops
    d_hi_o, d_hi_h = p.distractor_occluded[1], p.distractor_holistic[1]
    cap_o = np.array([min(d_hi_o, len(i.occ)) for i in distractors], dtype=np.int64)
    cap_h = np.array([min(d_hi_h, len(i.hol)) for i in distractors], dtype=np.int64)
    n_match = p.query_ids * (p.per_query_occluded + p.per_query_holistic)
    totals = allocate(
        p.gallery_images - n_match,
        np.full(len(distractors), max(1, d_lo_o + d_lo_h)),  # a distractor identity gives at least one crop
        cap_o + cap_h,
        rng,
        f"protocol '{name}' gallery distractor images",
    )
    for ident, t, co, ch in zip(distractors, totals, cap_o, cap_h):
        n_o = int(rng.integers(max(d_lo_o, t - ch), min(co, t - d_lo_h) + 1))
        rows = np.concatenate([_pick(rng, ident.occ, n_o), _pick(rng, ident.hol, int(t) - n_o)])
        split[rows], role[rows] = "gallery", "distractor"

    # 5. train crops
    t_tot, t_occ = _train_counts(train, p, rng)
    for ident, t, o in zip(train, t_tot, t_occ):
        rows = np.concatenate([_pick(rng, ident.occ, int(o)), _pick(rng, ident.hol, int(t - o))])
        split[rows], role[rows] = "train", "train"

    df["split"], df["role"] = split, role
    out = df[df["split"] != ""].copy()
    out["_order"] = out["split"].map(SPLIT_ORDER)
    out = out.sort_values(["_order", "pid", "source_path"], kind="mergesort").drop(columns="_order")
    return out.reset_index(drop=True)


def _fill_train_capacity(train: list[_Identity], unused: list[_Identity], p: SplitProtocol) -> list[_Identity]:
    """Swap train identities with too few crops for unused ones with more, until the train totals fit.

    The train totals fit when the identities can hold ``train.images`` crops (at most ``images_per_id[1]`` each)
    at the protocol's occluded share (an identity with h holistic crops gives at most h / (1 - share)). The random
    draw is kept whenever it fits; otherwise the identities that can give the fewest crops are swapped for the unused
    identities that can give the most. A pool whose identities have fewer crops, or more occlusion, than the protocol's averages needs this
    (the paper's train set averages 15.6 crops per identity, 85% holistic).
    """
    lo, hi = p.train_images_per_id
    hol_share = max(1e-9, 1.0 - p.train_occluded_fraction)

    def usable(i: _Identity) -> float:  # crops an identity can give at the protocol's occluded share
        return min(hi, i.n, len(i.hol) / hol_share)

    passes = ((usable, p.train_images), (lambda i: min(hi, i.n), p.train_images))
    for key, need in passes:
        cap = sum(key(i) for i in train)
        if cap >= need:
            continue
        train = sorted(train, key=key)  # stable: ties keep the seeded order
        used = {i.pid for i in train}
        donors = sorted((i for i in unused if i.n >= lo and i.pid not in used), key=lambda i: -key(i))
        for k, donor in enumerate(donors):
            if cap >= need or k >= len(train) or key(donor) <= key(train[k]):
                break
            cap += key(donor) - key(train[k])
            train[k] = donor
    return train


def _swap_in(chosen: list[_Identity], unused: list[_Identity], short: Callable[[list[_Identity]], bool],
             worst: Callable[[_Identity], float], better: Callable[[_Identity, _Identity], bool]) -> list[_Identity]:
    """While ``short(chosen)``: replace the chosen identity ranked first by ``worst`` with the first unused one (in
    their seeded order) that is ``better(donor, replaced)``. A draw that is not short is kept as it is."""
    chosen, unused = list(chosen), list(unused)
    while short(chosen):
        k = min(range(len(chosen)), key=lambda i: (worst(chosen[i]), i))
        j = next((j for j, d in enumerate(unused) if better(d, chosen[k])), None)
        if j is None:
            break
        chosen[k], unused[j] = unused[j], chosen[k]
    return chosen


def _fit_train_occlusion(train: list[_Identity], unused: list[_Identity], p: SplitProtocol) -> list[_Identity]:
    """Swap train identities for unused ones until the occluded train count can be met: identities with too few
    holistic crops must give occluded ones (at least ``images_per_id[0] - holistic`` each), and the occluded crops
    they can give at most must reach the count. A pool of one or two crops per identity needs this; a draw that
    fits is kept."""
    lo, hi = p.train_images_per_id
    k = p.train_occluded_images

    def least(i: _Identity) -> int:  # occluded crops identity i must give
        return max(0, lo - len(i.hol))

    def most(i: _Identity) -> int:
        return min(hi, len(i.occ))

    def size(i: _Identity) -> int:
        return min(hi, i.n)

    eligible = [d for d in unused if d.n >= lo]
    train = _swap_in(train, eligible, lambda t: sum(map(least, t)) > k, lambda i: -least(i),
                     lambda d, r: least(d) < least(r) and size(d) >= size(r))
    in_train = {i.pid for i in train}
    return _swap_in(train, [d for d in eligible if d.pid not in in_train], lambda t: sum(map(most, t)) < k, most,
                    lambda d, r: most(d) > most(r) and size(d) >= size(r) and least(d) <= least(r))


def _fill_distractor_capacity(distractors: list[_Identity], unused: list[_Identity], p: SplitProtocol
                              ) -> list[_Identity]:
    """Swap distractor identities that can give few gallery crops for unused ones that can give more, until the
    distractors can fill the gallery's count (a draw that can is kept)."""
    (lo_o, hi_o), (lo_h, hi_h) = p.distractor_occluded, p.distractor_holistic
    need = p.gallery_images - p.query_ids * (p.per_query_occluded + p.per_query_holistic)

    def cap(i: _Identity) -> int:
        return min(hi_o, len(i.occ)) + min(hi_h, len(i.hol))

    eligible = [d for d in unused if len(d.occ) >= lo_o and len(d.hol) >= lo_h]
    return _swap_in(distractors, eligible, lambda ds: sum(map(cap, ds)) < need, cap, lambda d, r: cap(d) > cap(r))


def _train_counts(train: list[_Identity], p: SplitProtocol, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per train identity: (crops, occluded crops) in the protocol's ranges, summing to its totals exactly.

    Three orders are tried, each a few times with fresh draws (all from ``rng``, so still deterministic): holistic
    counts first and occluded counts fitted around them; the reverse; or totals first, then the occluded share of
    each. The
    first that fits wins; if none does, the error gives the numbers of the last try.
    """
    lo, hi = p.train_images_per_id
    a = np.array([len(i.occ) for i in train], dtype=np.int64)
    b = np.array([len(i.hol) for i in train], dtype=np.int64)
    k, total = p.train_occluded_images, p.train_images
    what = f"protocol '{p.name}' train images"
    what_occ = f"protocol '{p.name}' occluded train images ({p.train_occluded_fraction:.0%} of {total})"
    allocate(total, np.full(len(train), lo), np.minimum(hi, a + b), rng, what)  # fails early with clear numbers
    error: ProtocolError | None = None
    for _ in range(8):
        try:
            h = allocate(total - k, np.maximum(0, lo - a), np.minimum(b, hi), rng, what)
            o = allocate(k, np.maximum(0, lo - h), np.minimum(a, hi - h), rng, what_occ)
            return o + h, o
        except ProtocolError as exc:
            error = exc
        try:
            o = allocate(k, np.maximum(0, lo - b), np.minimum(a, hi), rng, what_occ)
            h = allocate(total - k, np.maximum(0, lo - o), np.minimum(b, hi - o), rng, what)
            return o + h, o
        except ProtocolError as exc:
            error = exc
        try:
            n = allocate(total, np.full(len(train), lo), np.minimum(hi, a + b), rng, what)
            o = allocate(k, np.maximum(0, n - b), np.minimum(n, a), rng, what_occ)
            return n, o
        except ProtocolError as exc:
            error = exc
    exact = _exact_train_counts(a, b, lo, hi, total, k, rng)
    if exact is not None:
        return exact
    assert error is not None
    raise ProtocolError(f"{error} (the train identities this seed drew cannot give that mix of occluded and holistic "
                        "crops; another --seed may)") from None


# Cells (identities x train images x occluded train images) up to which the exact search below runs.
EXACT_TRAIN_CELLS = 50_000_000


def _mix_options(a: int, b: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """The (occluded, holistic) crop counts a train identity with ``a`` occluded and ``b`` holistic crops can give."""
    return [(o, h) for o in range(min(a, hi) + 1) for h in range(max(0, lo - o), min(b, hi - o) + 1)]


def _reach_table(a: np.ndarray, b: np.ndarray, lo: int, hi: int, total: int, kmax: int) -> np.ndarray | None:
    """``reach[i, t, q]``: the identities from ``i`` on can give exactly ``t`` crops of which ``q`` occluded; None
    when the table would exceed :data:`EXACT_TRAIN_CELLS`."""
    n = len(a)
    if n == 0 or (n + 1) * (total + 1) * (kmax + 1) > EXACT_TRAIN_CELLS:
        return None
    reach = np.zeros((n + 1, total + 1, kmax + 1), dtype=bool)
    reach[n, 0, 0] = True
    for i in range(n - 1, -1, -1):
        for o, h in _mix_options(int(a[i]), int(b[i]), lo, hi):
            c = o + h
            if c <= total and o <= kmax:
                reach[i, c:, o:] |= reach[i + 1, : total + 1 - c, : kmax + 1 - o]
    return reach


def _exact_train_counts(a: np.ndarray, b: np.ndarray, lo: int, hi: int, total: int, k: int,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """Per identity (crops, occluded crops) meeting ``total`` and ``k`` exactly when any choice does, else None: a
    table of which (crops, occluded) remainders the identities after each one can still give, then one seeded choice
    per identity among those that keep the rest reachable.

    Why: the randomised orders of :func:`_train_counts` fix one count before the other, and on pools of one or two
    crops per identity (PRID, VIPeR, GRID pairs) they miss mixes that exist. Runs only when they failed and the table
    is small (:data:`EXACT_TRAIN_CELLS`), so splits that drew before keep their bytes."""
    reach = _reach_table(a, b, lo, hi, total, k)
    if reach is None or not reach[0, total, k]:
        return None
    n = len(a)
    crops, occluded = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    t, q = total, k
    for i in range(n):
        fits = [(o, h) for o, h in _mix_options(int(a[i]), int(b[i]), lo, hi)
                if o + h <= t and o <= q and reach[i + 1, t - o - h, q - o]]
        o, h = fits[int(rng.integers(len(fits)))]
        crops[i], occluded[i] = o + h, o
        t, q = t - o - h, q - o
    return crops, occluded


def _occluded_range(train: list[_Identity], p: SplitProtocol) -> tuple[int, int] | None:
    """The fewest and most occluded crops ``train`` can give within exactly ``train.images`` crops; None when that
    total cannot be met or the table is too large to tell."""
    lo, hi = p.train_images_per_id
    a = np.array([len(i.occ) for i in train], dtype=np.int64)
    b = np.array([len(i.hol) for i in train], dtype=np.int64)
    kmax = min(p.train_images, int(np.minimum(a, hi).sum()))
    reach = _reach_table(a, b, lo, hi, p.train_images, kmax)
    if reach is None or not reach[0, p.train_images].any():
        return None
    found = np.flatnonzero(reach[0, p.train_images])
    return int(found[0]), int(found[-1])


def _fit_train_mix(train: list[_Identity], unused: list[_Identity], p: SplitProtocol) -> list[_Identity]:
    """Swap train identities for unused ones while no choice of their crops gives exactly the protocol's train
    images with exactly its occluded count (:func:`_occluded_range`): out go the identities with the fewest crops of
    the kind that is short, in come unused ones with more of it and at least as many crops. Only a draw that could
    not be sampled changes (pools of one or two crops per identity need it); small tables only."""
    lo, hi = p.train_images_per_id
    k = p.train_occluded_images
    eligible = [d for d in unused if d.n >= lo]

    def size(i: _Identity) -> int:
        return min(hi, i.n)

    def swap_for(train: list[_Identity], kind: str) -> list[_Identity]:  # kind: "occ" or "hol", the short one
        def cap(i: _Identity) -> int:
            return min(hi, len(getattr(i, kind)))

        def short(t: list[_Identity]) -> bool:
            got = _occluded_range(t, p)
            return got is not None and (k > got[1] if kind == "occ" else k < got[0])

        in_train = {i.pid for i in train}
        return _swap_in(train, [d for d in eligible if d.pid not in in_train], short, cap,
                        lambda d, r: cap(d) > cap(r) and size(d) >= size(r))

    for kind in ("occ", "hol", "occ", "hol"):  # a swap for one kind can make the other short: twice each
        train = swap_for(train, kind)
    return train


def split_summary(split: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per split: images, identities, cameras and occluded share (Table 2's columns), plus 'overall'."""
    out: dict[str, dict[str, float]] = {}
    for name in ("train", "query", "gallery"):
        part = split[split["split"] == name]
        out[name] = {
            "ids": int(part["pid"].nunique()),
            "images": int(len(part)),
            "cameras": int(part.loc[part["camid"] >= 0, "camid"].nunique()),
            "occluded_share": float(part["occluded"].mean()) if len(part) else 0.0,
        }
    out["overall"] = {
        "ids": int(split["pid"].nunique()),
        "images": int(len(split)),
        "cameras": int(split.loc[split["camid"] >= 0, "camid"].nunique()),
        "occluded_share": float(split["occluded"].mean()) if len(split) else 0.0,
    }
    return out


def queries_without_cross_camera_match(split: pd.DataFrame) -> dict[str, int]:
    """Query crops with no gallery match of their identity from another (known) camera: in all (``any``), among the
    occluded matches (``occluded``) and among the holistic ones (``holistic``; a kind the protocol keeps no match of
    is not counted), of ``queries`` query crops.

    Why: under the Market-1501 junk rule a match in the query's own camera is dropped, so such a query has no true
    match in that part of the gallery; the occluded-gallery and holistic-gallery breakdowns of ``evaluate`` skip it."""
    q = split[split["role"] == "query"]
    m = split[split["role"] == "match"]
    out = {"queries": len(q), "any": 0, "occluded": 0, "holistic": 0}
    cams = {kind: m[m["occluded"].astype(bool) == (kind == "occluded")].groupby("pid")["camid"].apply(set)
            for kind in ("occluded", "holistic")}
    cams["any"] = m.groupby("pid")["camid"].apply(set)
    for pid, cam in zip(q["pid"], q["camid"]):
        for kind, by_pid in cams.items():
            found = by_pid.get(pid, set())
            if not found and kind != "any":  # the protocol keeps no match of this kind (per_query_id 0)
                continue
            # a query of unknown camera (< 0) is written apart from its matches (opreid_bench.splits.writer)
            if not (found if cam < 0 else any(c >= 0 and c != cam for c in found)):
                out[kind] += 1
    return out


def cross_camera_warning(counts: dict[str, int]) -> str | None:
    """One line for the user when some query crops lack an occluded or holistic match from another camera (None when
    none do): the pool's cameras could not give every query identity both kinds of match elsewhere."""
    if not (counts["occluded"] or counts["holistic"] or counts["any"]):
        return None
    if counts["any"] == counts["queries"]:
        return (f"none of the {counts['queries']:,} query crops has a match from another camera: evaluation with the "
                "Market-1501 junk rule will find no valid query (use --junk none, or a pool whose identities were "
                "seen by two cameras)")
    return (f"{counts['occluded']:,} of {counts['queries']:,} query crops have no occluded match and "
            f"{counts['holistic']:,} no holistic match from another camera; evaluation with the Market-1501 junk rule "
            "skips them in that part of the gallery (the data card says so too)")


def same_camera_queries(split: pd.DataFrame) -> int:
    """Query identities whose gallery matches all share a camera with one of its query crops (no cross-camera pair)."""
    n = 0
    q = split[split["role"] == "query"].groupby("pid")["camid"].apply(set)
    m = split[split["role"] == "match"].groupby("pid")["camid"].apply(set)
    for pid, qcams in q.items():
        mcams = m.get(pid, set())
        if not any(c >= 0 and c not in qcams for c in mcams):
            n += 1
    return n
