"""MTCNN (Zhang et al., 2016, "Joint face detection and alignment using multi-task cascaded convolutional networks"):
three small CNNs in a cascade that find faces down to 12 px, the size of a bystander's face in a pedestrian crop.

Why it is here: BlazeFace and the person detector miss most bystanders' faces of 12-25 px, above all those cut by the
crop's border; MTCNN's first network slides a 12-px window over an image pyramid and finds part of them
(``docs/concepts/occlusion-rule.md`` has the figures).

The networks, the pyramid, the two refinement stages and the non-maximum suppression are implemented here; only the
trained weights come from outside, and they are never downloaded. They are the three files ``pnet.pt``, ``rnet.pt`` and
``onet.pt`` (plain PyTorch state dicts, 2 MB in all) that the MIT-licensed ``facenet-pytorch`` wheel ships. They are
looked up in this order:

1. the folder named by the environment variable :data:`WEIGHTS_ENV` (``off`` turns MTCNN off);
2. the ``data/`` folder of an installed ``facenet-pytorch`` (``pip install --no-deps facenet-pytorch==2.6.0``: its
   own requirements pin an old torch and torchvision, and the package is never imported, its files are only read).

Without them :func:`weights_dir` is ``None`` and face masking runs without this source (the data card says so).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from opreid_bench.errors import OpreidError
from opreid_bench.torch_files import load_torch_file

Box = tuple[int, int, int, int]  # (left, top, right, bottom) in pixels, right/bottom exclusive

WEIGHTS_ENV = "OPREID_MTCNN_WEIGHTS"
WEIGHT_FILES = ("pnet.pt", "rnet.pt", "onet.pt")
THRESHOLDS = (0.6, 0.7, 0.7)  # the published score thresholds of the three stages, unchanged
PYRAMID_FACTOR = 0.709  # each pyramid level is this much smaller (the published value: half the area)
MIN_FACE = 12  # px of the upscaled image: the first network's window
UPSCALE = 3.0  # a crop is upscaled this much first, so a 4-px face reaches the 12-px window
MAX_PIXELS = 4_000_000  # the upscaled image's cap: a full camera frame is upscaled less (memory)


class PNet(nn.Module):
    """Proposal network: a fully convolutional 12-px face/not-face classifier with box regression."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), F.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """Refinement network: rescores and refines the proposals at 24 x 24."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).reshape(len(x), -1)  # the weights' (w, h, c) order
        x = self.prelu4(self.dense4(x))
        return self.dense5_2(x), F.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output network: the final score and box at 48 x 48 (its five facial landmarks are not used here)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).reshape(len(x), -1)
        x = self.prelu5(self.dense5(x))
        return self.dense6_2(x), F.softmax(self.dense6_1(x), dim=1)


def weights_dir() -> Path | None:
    """The folder holding MTCNN's three weight files (module docstring), or ``None`` when none is installed (or
    :data:`WEIGHTS_ENV` is ``off``).

    A folder named by :data:`WEIGHTS_ENV` that lacks a file is an error naming it: a setting the user made must not
    be dropped silently."""
    env = os.environ.get(WEIGHTS_ENV)
    if env and env.strip().lower() == "off":
        return None
    if env:
        folder = Path(env)
        for name in WEIGHT_FILES:
            if not (folder / name).is_file():
                raise OpreidError(f"{folder / name}: MTCNN weight file missing (set by {WEIGHTS_ENV})")
        return folder
    spec = importlib.util.find_spec("facenet_pytorch")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "data"
        if all((folder / name).is_file() for name in WEIGHT_FILES):
            return folder
    return None


def weights_digest(folder: Path) -> str:
    """Short content hash of the three weight files: part of every fingerprint that MTCNN's output enters."""
    stats = tuple((folder / name).stat() for name in WEIGHT_FILES)
    return _digest(str(folder), tuple((st.st_size, st.st_mtime_ns) for st in stats))


@functools.lru_cache(maxsize=8)
def _digest(folder: str, _stats: tuple[tuple[int, int], ...]) -> str:  # re-read when a file changes
    h = hashlib.sha256()
    for name in WEIGHT_FILES:
        h.update((Path(folder) / name).read_bytes())
    return h.hexdigest()[:16]


def load_networks(folder: Path) -> tuple[PNet, RNet, ONet]:
    """The three networks with the weights in ``folder``, in eval mode (loaded once per content of the files)."""
    return _networks(str(folder), weights_digest(folder))


@functools.lru_cache(maxsize=2)
def _networks(folder: str, _digest: str) -> tuple[PNet, RNet, ONet]:
    nets = (PNet(), RNet(), ONet())
    for net, name in zip(nets, WEIGHT_FILES):
        path = Path(folder) / name
        state = load_torch_file(path, "MTCNN state dict", OpreidError)
        try:
            net.load_state_dict(state)
        except Exception as exc:  # a foreign state dict
            raise OpreidError(f"{path}: not an MTCNN state dict ({type(exc).__name__})") from None
        net.eval()
    return nets


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, *, overlap: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first; ties keep the earlier box.

    ``overlap``: "union" (intersection over union, on continuous coordinates) or "min" (intersection over the
    smaller box, on inclusive pixel ends; it also removes a small box inside a larger one). The two conventions are
    those of facenet-pytorch's MTCNN, whose boxes this reproduces."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    one = 1.0 if overlap == "min" else 0.0
    area = (x2 - x1 + one) * (y2 - y1 + one)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + one)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + one)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if overlap == "min" else area[i] + area[rest] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            overlap_share = np.where(denom > 0, inter / denom, 0.0)  # an empty box overlaps nothing
        order = rest[overlap_share <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Each box grown to a square about its centre (the next network's input is square)."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + (w - side) / 2
    out[:, 1] = boxes[:, 1] + (h - side) / 2
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: np.ndarray, offsets: np.ndarray, *, plus_one: bool = True) -> np.ndarray:
    """Boxes moved by the networks' offsets, which are in units of the box's size."""
    out = boxes.copy()
    extra = 1.0 if plus_one else 0.0
    w = boxes[:, 2] - boxes[:, 0] + extra
    h = boxes[:, 3] - boxes[:, 1] + extra
    out[:, :4] = boxes[:, :4] + offsets * np.stack([w, h, w, h], axis=1)
    return out


def _patches(image: torch.Tensor, boxes: np.ndarray, side: int) -> torch.Tensor:
    """Each box's pixels (clipped to the image) resized to ``side`` x ``side``, scaled as the networks expect."""
    _, _, h, w = image.shape
    out = []
    for x1, y1, x2, y2 in np.trunc(boxes[:, :4]).astype(np.int64).tolist():
        left, top, right, bottom = max(x1, 1) - 1, max(y1, 1) - 1, min(x2, w), min(y2, h)
        if right <= left or bottom <= top:  # wholly outside: an empty patch the network scores as no face
            out.append(torch.full((1, 3, side, side), 127.5))
            continue
        out.append(F.interpolate(image[:, :, top:bottom, left:right], size=(side, side), mode="area"))
    return (torch.cat(out) - 127.5) * 0.0078125


def _proposals(image: torch.Tensor, pnet: PNet, min_face: float, threshold: float) -> np.ndarray:
    """First stage: PNet over the image pyramid; rows (x1, y1, x2, y2, score), boxes regressed and squared."""
    _, _, h, w = image.shape
    scale = 12.0 / min_face
    shortest = min(h, w) * scale
    found = []
    while shortest >= 12:
        level = F.interpolate(image, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
        reg, prob = pnet((level - 127.5) * 0.0078125)
        score = prob[0, 1].numpy()
        ys, xs = np.nonzero(score >= threshold)
        if len(ys):
            cells = np.stack([xs, ys], axis=1).astype(np.float64)
            q1 = np.floor((2 * cells + 1) / scale)
            q2 = np.floor((2 * cells + 12) / scale)
            rows = np.concatenate([q1, q2, score[ys, xs][:, None], reg[0].numpy()[:, ys, xs].T], axis=1)
            found.append(rows[nms(rows[:, :4], rows[:, 4], 0.5)])
        scale *= PYRAMID_FACTOR
        shortest *= PYRAMID_FACTOR
    if not found:
        return np.zeros((0, 5))
    rows = np.concatenate(found)
    rows = rows[nms(rows[:, :4], rows[:, 4], 0.7)]
    boxes = _regress(rows[:, :5], rows[:, 5:9], plus_one=False)
    return _square(boxes)


@torch.no_grad()
def detect(image: np.ndarray, folder: Path, *, min_face: float = MIN_FACE,
           thresholds: tuple[float, float, float] = THRESHOLDS) -> np.ndarray:
    """Faces in an RGB uint8 array (H, W, 3): rows (x1, y1, x2, y2, score) in its pixels, best first.

    Runs on one torch thread (restored afterwards): the networks are small, and a fixed thread count keeps the boxes
    identical whether a crop is masked in the main process or in a worker."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise OpreidError(f"MTCNN needs an RGB uint8 array (H, W, 3), got {image.dtype} {tuple(image.shape)}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _cascade(image, folder, min_face, thresholds)
    finally:
        torch.set_num_threads(threads)


def _cascade(image: np.ndarray, folder: Path, min_face: float, thresholds: tuple[float, float, float]) -> np.ndarray:
    pnet, rnet, onet = load_networks(folder)
    tensor = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None].float()
    boxes = _proposals(tensor, pnet, min_face, thresholds[0])
    for net, side, threshold in ((rnet, 24, thresholds[1]), (onet, 48, thresholds[2])):
        if not len(boxes):
            break
        out = net(_patches(tensor, boxes, side))
        reg, score = out[0].numpy().astype(np.float64), out[-1][:, 1].numpy().astype(np.float64)
        passed = score > threshold
        boxes, reg = np.concatenate([boxes[passed, :4], score[passed, None]], axis=1), reg[passed]
        if net is rnet:
            keep = nms(boxes[:, :4], boxes[:, 4], 0.7)
            boxes = _square(_regress(boxes[keep], reg[keep]))
        else:
            boxes = _regress(boxes, reg)
            boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7, overlap="min")]
    return boxes.reshape(-1, 5)


def detect_faces_mtcnn(image: Image.Image, folder: Path, *, min_face: float = MIN_FACE / UPSCALE,
                       upscale: float = UPSCALE,
                       thresholds: tuple[float, float, float] = THRESHOLDS) -> list[tuple[Box, float]]:
    """Faces MTCNN finds in a crop, as ((left, top, right, bottom), score) in the crop's pixels, sorted by box.

    The crop is upscaled ``upscale`` times (bicubic) first, so that faces of 4-12 px reach the first network's
    12-px window; the pyramid starts at faces of ``min_face`` crop pixels (smaller ones are not searched, which is
    where most of the time goes); ``thresholds`` are the three stages' score thresholds. An image larger than
    :data:`MAX_PIXELS` after upscaling is upscaled less.
    Deterministic: the same image and weights give the same boxes."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    upscale = min(upscale, (MAX_PIXELS / max(1, w * h)) ** 0.5)
    big = rgb.resize((max(1, round(w * upscale)), max(1, round(h * upscale))), Image.BICUBIC)
    rows = detect(np.asarray(big), folder, min_face=max(float(MIN_FACE), min_face * upscale), thresholds=thresholds)
    out: list[tuple[Box, float]] = []
    for x1, y1, x2, y2, score in rows.tolist():
        box = (max(0, int(x1 / upscale)), max(0, int(y1 / upscale)), min(w, int(np.ceil(x2 / upscale))),
               min(h, int(np.ceil(y2 / upscale))))
        if box[2] > box[0] and box[3] > box[1]:
            out.append((box, float(score)))
    return sorted(out)
