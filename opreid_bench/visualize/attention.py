"""Where is the model looking? Grad-CAM on the last feature map of a ReIDModel, for the crops a page shows.

Grad-CAM (Selvaraju et al. 2017) needs a scalar to explain; a ReID model has no class at test time, so the score is
the similarity that decides the ranking: for a gallery crop ``<f(x), f(query)>`` (what in it matches the query), for
the query crop ``<f(x), f(x).detach()>`` (what its own feature is made of). The map is
``ReLU(sum_c mean_hw(d score / d F_c) * F_c)`` on the backbone's last feature map F, scaled to 0..1 per crop.

For ``ours`` (a model with a reconstructive-pooling branch) :class:`RPAttention` shows the RP mask itself,
``softmax(W^m F)`` over the positions of F (paper Eq. 2): where the model's own attention pooling looks, with no
gradient and no reference. RP is a training-time branch, so this is what shaped the training, not what ranks at test
time (the retrieval feature is the global pooling); Grad-CAM answers that second question.
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


class RPAttention:
    """The reconstructive-pooling mask ``softmax(W^m F)`` (RP, Eq. 2) of a model with an RP branch, per crop."""

    def __init__(self, model: object, height: int, width: int, device: str = "cpu") -> None:
        from opreid_bench.data.transforms import build_test_transform
        from opreid_bench.errors import OpreidError

        if getattr(model, "rp_branch", None) is None:
            raise OpreidError("--attention-map rp needs a model trained with reconstructive pooling (ours, or an "
                              "ablation row with RP); use --attention-map gradcam")
        self.model = model
        self.transform = build_test_transform(height, width)
        self.device = device
        self._cache: dict[str, np.ndarray] = {}

    def maps(self, paths: Sequence[Path]) -> list[np.ndarray]:
        """The RP mask (h x w of the last feature map, scaled to 0..1 per crop) of each crop."""
        import torch
        from PIL import Image

        model = self.model
        model.eval()  # type: ignore[attr-defined]
        tensors = []
        for p in paths:
            with Image.open(p) as im:
                tensors.append(self.transform(im.convert("RGB")))
        with torch.no_grad():
            fmap = model.backbone(torch.stack(tensors).to(self.device))  # type: ignore[attr-defined]
            scores = model.rp_branch.pool.mask(fmap)  # type: ignore[attr-defined]  # W^m F, (B, 1, h, w)
            b, _, h, w = scores.shape
            weights = scores.flatten(2).softmax(dim=2).reshape(b, h, w).cpu().numpy()  # RP, Eq. (2)
        return [(m / m.max() if m.max() > 0 else m).astype(np.float32) for m in weights]

    def for_crop(self, path: Path, reference: Path | None = None) -> np.ndarray:
        """One crop's RP mask, cached (``reference`` is ignored: the mask does not depend on a query)."""
        key = str(path)
        if key not in self._cache:
            self._cache[key] = self.maps([path])[0]
        return self._cache[key]
