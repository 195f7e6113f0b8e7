"""Where is the model looking? Grad-CAM on the last feature map of a ReIDModel, for the crops a page shows.

Grad-CAM (Selvaraju et al. 2017) needs a scalar to explain; a ReID model has no class at test time, so the score is
the similarity that decides the ranking: for a gallery crop ``<f(x), f(query)>`` (what in it matches the query), for
the query crop ``<f(x), f(x).detach()>`` (what its own feature is made of). The map is
``ReLU(sum_c mean_hw(d score / d F_c) * F_c)`` on the backbone's last feature map F, scaled to 0..1 per crop.
Only Grad-CAM is implemented (the RP attention of Eq. 2 is not shown here).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


class GradCam:
    """Grad-CAM maps of a ReIDModel (eval mode), cached per (crop, reference query)."""

    def __init__(self, model: object, height: int, width: int, device: str = "cpu") -> None:
        from opreid_bench.data.transforms import build_test_transform

        self.model = model
        self.transform = build_test_transform(height, width)
        self.device = device
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    def _tensor(self, path: Path) -> object:
        from PIL import Image

        with Image.open(path) as im:
            return self.transform(im.convert("RGB"))

    def maps(self, paths: Sequence[Path], reference: Path | None) -> list[np.ndarray]:
        """Grad-CAM (h x w, 0..1) of each crop; ``reference`` is the query whose feature scores them (None: itself)."""
        import torch

        model = self.model
        model.eval()  # type: ignore[attr-defined]
        x = torch.stack([self._tensor(p) for p in paths]).to(self.device)
        with torch.enable_grad():
            fmap = model.backbone(x)  # type: ignore[attr-defined]
            fmap.retain_grad()
            pooled = model.pool(fmap)  # type: ignore[attr-defined]
            feat = model.retrieval_feature(pooled, model.bnneck(pooled))  # type: ignore[attr-defined]
            if reference is None:
                ref = feat.detach()
            else:
                ref = model.extract(self._tensor(reference)[None].to(self.device)).expand_as(feat)  # type: ignore[attr-defined]
            (feat * ref).sum().backward()
        weights = fmap.grad.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((weights * fmap.detach()).sum(dim=1)).cpu().numpy()
        out = []
        for c in cam:
            hi = float(c.max())
            out.append((c / hi if hi > 0 else c).astype(np.float32))
        model.zero_grad(set_to_none=True)  # type: ignore[attr-defined]
        return out

    def for_crop(self, path: Path, reference: Path | None) -> np.ndarray:
        """One crop's map, cached."""
        key = (str(path), "" if reference is None else str(reference))
        if key not in self._cache:
            self._cache[key] = self.maps([path], reference)[0]
        return self._cache[key]
