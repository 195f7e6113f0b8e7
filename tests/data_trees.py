"""Generated dataset trees for the loader tests: real folder layouts, real naming rules, the releases' real counts.

Files hold 3 bytes (the loaders never open images), so a full Market-1501 tree (~33k files) takes seconds.
Every writer returns the dataset folder it created.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

MARKET_NAME = "{pid:04d}_c{cam}s1_{i:06d}_00.jpg"
DUKE_NAME = "{pid:04d}_c{cam}_f{i:07d}.jpg"


_LINKS_PER_TEMPLATE = 30_000  # ext4 allows 65,000 hard links per inode


def touch_all(folder: Path, names: Sequence[str]) -> None:
    """Create tiny files ``folder/name`` (folders too; names may hold ``/``) as hard links of one template file.

    A hard link is ~30x faster to create than a new file under load, which keeps a 32k-file tree near a second.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for sub in sorted({os.path.dirname(n) for n in names} - {""}):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    template = ""
    for i, name in enumerate(names):
        if i % _LINKS_PER_TEMPLATE == 0:
            template = str(folder / f".template{i}")
            with open(template, "wb") as fh:
                fh.write(b"img")
        os.link(template, folder / name)
    for i in range(0, len(names), _LINKS_PER_TEMPLATE):
        os.unlink(folder / f".template{i}")


def spread(pids: Sequence[int], images: int) -> list[int]:
    """``images`` pid labels covering every pid at least once (requires images >= len(pids))."""
    assert images >= len(pids), (images, len(pids))
    return [pids[i % len(pids)] for i in range(images)]


def market_style_names(pids: Sequence[int], images: int, cams: int, fmt: str, start: int = 0) -> list[str]:
    """Market-style names for ``images`` images of ``pids``; each id is seen by several cameras."""
    labels = spread(pids, images)
    return [fmt.format(pid=pid, cam=1 + (i // len(pids) + pid) % cams, i=start + i) for i, pid in enumerate(labels)]


def write_market_style(dataset_dir: Path, *, train: tuple[int, int], query: tuple[int, int],
                       gallery: tuple[int, int], cams: int, fmt: str, distractor_images: int = 0,
                       junk_images: int = 0, test_pid_start: int = 2000) -> Path:
    """A Market-style tree with exact (images, ids) per split.

    Train ids are 1..N; test ids start at ``test_pid_start``; query ids are the first test ids; gallery ids are the
    query ids plus more (distractor ids). With ``distractor_images`` the gallery also holds that many pid-0000
    images (pid 0 counts as one gallery id, as in Market-1501), and ``junk_images`` pid -1 files (not counted).
    """
    train_ids = list(range(1, train[1] + 1))
    gallery_real_ids = gallery[1] - (1 if distractor_images else 0)
    test_ids = list(range(test_pid_start, test_pid_start + gallery_real_ids))
    query_ids = test_ids[: query[1]]
    touch_all(dataset_dir / "bounding_box_train", market_style_names(train_ids, train[0], cams, fmt))
    touch_all(dataset_dir / "query", market_style_names(query_ids, query[0], cams, fmt, start=10**6))
    gallery_names = market_style_names(test_ids, gallery[0] - distractor_images, cams, fmt, start=2 * 10**6)
    gallery_names += market_style_names([0], distractor_images, cams, fmt, start=3 * 10**6) if distractor_images else []
    gallery_names += [f"-1_c{1 + i % cams}s1_{4 * 10**6 + i:06d}_00.jpg" for i in range(junk_images)]
    touch_all(dataset_dir / "bounding_box_test", gallery_names)
    return dataset_dir


def write_market1501(root: Path, *, junk_images: int = 3_819) -> Path:
    """Market-1501-v15.09.15 with the real counts: 2,793 distractors (pid 0000) and pid -1 junk in the gallery."""
    return write_market_style(root / "Market-1501-v15.09.15", train=(12_936, 751), query=(3_368, 750),
                              gallery=(15_913, 751), cams=6, fmt=MARKET_NAME, distractor_images=2_793,
                              junk_images=junk_images)


def write_dukemtmc(root: Path, scale: int = 1) -> Path:
    """DukeMTMC-reID with the real counts (``scale`` > 1 divides them, for quick tests)."""
    return write_market_style(root / "DukeMTMC-reID", train=(16_522 // scale, 702 // scale),
                              query=(2_228 // scale, 702 // scale), gallery=(17_661 // scale, 1_110 // scale), cams=8,
                              fmt=DUKE_NAME)


def write_occluded_duke(root: Path, scale: int = 1) -> Path:
    """Occluded_Duke with the real counts (``scale`` > 1 divides them)."""
    return write_market_style(root / "Occluded_Duke", train=(15_618 // scale, 702 // scale),
                              query=(2_210 // scale, 519 // scale), gallery=(17_661 // scale, 1_110 // scale), cams=8,
                              fmt=DUKE_NAME)


def write_cross_set(dataset_dir: Path, folders: dict[str, int], ids: int, name: str = "{pid:03d}_{i:03d}.jpg",
                    per_person_folders: bool = False) -> Path:
    """Cross-set folders (Partial-REID, Occluded-REID style): ``count`` images per folder over ``ids`` people."""
    for folder, count in folders.items():
        per_id = count // ids
        touch_all(dataset_dir / folder, [(f"{pid:03d}/" if per_person_folders else "") + name.format(pid=pid, i=i)
                                         for pid in range(1, ids + 1) for i in range(1, per_id + 1)])
    return dataset_dir
