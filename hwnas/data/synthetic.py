"""A synthetic, learnable person ReID dataset written in exactly the Market-1501 layout and naming.

Every identity has fixed appearance cues (clothing colours and patterns, trousers/shorts/skirt, hair,
hat, bag) that survive the nuisances each image draws: camera background and colour cast, lighting,
position, scale, walking pose, mirroring, occlusion, blur and JPEG quality. So a model can learn it, but
near-identical identities and strong camera effects keep rank-1 below 100%. The gallery also holds
distractors (pid 0000) and junk boxes (pid -1, dropped by the reader), like Market-1501.

``python -m hwnas.data.synthetic --output DIR`` writes ``DIR/bounding_box_train``, ``DIR/query``,
``DIR/bounding_box_test`` and a ``SYNTHETIC.json`` marker with the settings and the expected counts.
"""
from __future__ import annotations

import argparse
import colorsys
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from hwnas._io import dir_mode, make_dirs, remove_empty_dirs, write_json_atomic
from hwnas.data.datasets import SYNTHETIC_MARKER

logger = logging.getLogger(__name__)

# Market-1501's test set (DESIGN 3): 750 ids, 3,368 queries, 13,115 gallery images of those ids,
# 2,798 distractors (pid 0) and 3,819 junk boxes (pid -1): 19,732 files, 15,913 kept.
MARKET_TEST_IDS = 750
MARKET_QUERY = 3368
MARKET_GALLERY_REAL = 13115
MARKET_DISTRACTORS = 2798
MARKET_JUNK = 3819
GENERATOR_VERSION = 2  # bump when the images change, so cached folders are not silently reused


@dataclass(frozen=True)
class Identity:
    """Appearance cues of one person (colours as RGB 0..255 tuples)."""

    top: tuple[int, int, int]
    top2: tuple[int, int, int]
    top_pattern: int  # 0 plain, 1 horizontal stripes, 2 two-tone vertical, 3 chest logo
    bottom: tuple[int, int, int]
    bottom_kind: int  # 0 trousers, 1 shorts, 2 skirt
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    hat: bool
    bag: int  # 0 none, 1 left, 2 right
    bag_color: tuple[int, int, int]
    shoes: tuple[int, int, int]
    width: float
    height: float


@dataclass(frozen=True)
class Camera:
    """Per-camera nuisances: background colours, colour cast (per-channel gain) and blur."""

    bg1: tuple[int, int, int]
    bg2: tuple[int, int, int]
    gain: tuple[float, float, float]
    blur: float


def _color(rng: np.random.Generator, sat: tuple[float, float] = (0.35, 1.0),
           val: tuple[float, float] = (0.25, 0.95)) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val))
    return int(r * 255), int(g * 255), int(b * 255)


def random_identity(rng: np.random.Generator) -> Identity:
    skin_v = rng.uniform(0.35, 0.95)
    return Identity(
        top=_color(rng), top2=_color(rng), top_pattern=int(rng.integers(4)), bottom=_color(rng, (0.0, 0.8)),
        bottom_kind=int(rng.choice(3, p=[0.6, 0.2, 0.2])),
        skin=tuple(int(v * 255) for v in colorsys.hsv_to_rgb(0.07, 0.45, skin_v)),
        hair=_color(rng, (0.0, 0.6), (0.05, 0.6)), hat=bool(rng.random() < 0.2), bag=int(rng.choice(3, p=[0.5, 0.25, 0.25])),
        bag_color=_color(rng), shoes=_color(rng, (0.0, 0.5), (0.05, 0.9)),
        width=float(rng.uniform(0.85, 1.2)), height=float(rng.uniform(0.88, 1.0)),
    )


def random_camera(rng: np.random.Generator) -> Camera:
    gain = tuple(float(g) for g in rng.uniform(0.85, 1.15, size=3))
    return Camera(_color(rng, (0.0, 0.5)), _color(rng, (0.0, 0.5)), gain, float(rng.uniform(0.0, 0.8)))


def _background(rng: np.random.Generator, cam: Camera, h: int, w: int) -> Image.Image:
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    img = (1 - t) * np.array(cam.bg1, np.float32) + t * np.array(cam.bg2, np.float32)
    img = np.broadcast_to(img, (h, w, 3)) + rng.normal(0.0, 8.0, size=(h, w, 3))
    bg = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(bg)
    for _ in range(int(rng.integers(0, 4))):  # clutter
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        draw.rectangle([x0, y0, x0 + rng.uniform(3, w / 2), y0 + rng.uniform(3, h / 3)], fill=_color(rng, (0, 0.6)))
    return bg


def _box(cx: float, top: float, pw: float, ph: float, x0: float, y0: float, x1: float, y1: float) -> list[float]:
    """Rectangle given in person-relative coordinates (x in -0.5..0.5 of width, y in 0..1 of height)."""
    return [cx + x0 * pw, top + y0 * ph, cx + x1 * pw, top + y1 * ph]


def render_person(rng: np.random.Generator, ident: Identity, cam: Camera, height: int, width: int,
                  junk: bool = False) -> Image.Image:
    """One image of ``ident`` seen by ``cam`` at (height, width); ``junk`` draws a badly cropped box."""
    img = _background(rng, cam, height, width)
    draw = ImageDraw.Draw(img)
    ph = height * rng.uniform(0.78, 0.98) * ident.height
    pw = ph * 0.42 * ident.width
    cx = width / 2 + rng.uniform(-0.12, 0.12) * width
    top = (height - ph) * rng.uniform(0.2, 0.8)
    if junk:  # a box that caught only part of a body, shifted off-centre
        cx += rng.choice([-1, 1]) * width * rng.uniform(0.35, 0.6)
        top += rng.uniform(0.3, 0.6) * height
    stride = rng.uniform(-0.1, 0.1)  # walking phase: legs apart
    back = rng.random() < 0.5  # seen from behind: no logo, bag more visible
    legs_end = 0.52 if ident.bottom_kind != 1 else 0.7
    for sign in (-1, 1):
        lx = sign * 0.07 + sign * stride
        draw.rectangle(_box(cx, top, pw, ph, lx - 0.08, 0.52, lx + 0.08, 0.93), fill=ident.skin)  # bare leg
        draw.rectangle(_box(cx, top, pw, ph, lx - 0.09, 0.50, lx + 0.09, legs_end if ident.bottom_kind == 1 else 0.93),
                       fill=ident.bottom)
        draw.rectangle(_box(cx, top, pw, ph, lx - 0.1, 0.93, lx + 0.11, 0.99), fill=ident.shoes)
    if ident.bottom_kind == 2:  # skirt over the thighs
        draw.polygon([tuple(_box(cx, top, pw, ph, -0.2, 0.48, 0.2, 0.48)[:2]),
                      tuple(_box(cx, top, pw, ph, 0.2, 0.48, 0.2, 0.48)[:2]),
                      tuple(_box(cx, top, pw, ph, 0.3, 0.72, 0.3, 0.72)[:2]),
                      tuple(_box(cx, top, pw, ph, -0.3, 0.72, -0.3, 0.72)[:2])], fill=ident.bottom)
    arm = rng.uniform(-0.05, 0.05)
    for sign in (-1, 1):
        draw.rectangle(_box(cx, top, pw, ph, sign * 0.3 - 0.07 + arm * sign, 0.2, sign * 0.3 + 0.07 + arm * sign, 0.5),
                       fill=ident.top)
    torso = _box(cx, top, pw, ph, -0.24, 0.17, 0.24, 0.52)
    draw.rectangle(torso, fill=ident.top)
    _pattern(draw, ident, torso, back)
    hx0, hy0, hx1, hy1 = _box(cx, top, pw, ph, -0.13, 0.02, 0.13, 0.17)
    draw.ellipse([hx0, hy0, hx1, hy1], fill=ident.hair if back else ident.skin)
    draw.rectangle([hx0, hy0, hx1, hy0 + (hy1 - hy0) * 0.35], fill=ident.top2 if ident.hat else ident.hair)
    if ident.bag:
        side = -1 if ident.bag == 1 else 1
        bw = 0.2 if back else 0.1
        draw.rectangle(_box(cx, top, pw, ph, side * 0.26 - bw / 2, 0.22, side * 0.26 + bw / 2, 0.46),
                       fill=ident.bag_color)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return _camera_effects(rng, img, cam)


def _pattern(draw: ImageDraw.ImageDraw, ident: Identity, torso: list[float], back: bool) -> None:
    x0, y0, x1, y1 = torso
    if ident.top_pattern == 1:
        step = (y1 - y0) / 6
        for i in range(1, 6, 2):
            draw.rectangle([x0, y0 + i * step, x1, y0 + (i + 1) * step], fill=ident.top2)
    elif ident.top_pattern == 2:
        draw.rectangle([(x0 + x1) / 2, y0, x1, y1], fill=ident.top2)
    elif ident.top_pattern == 3 and not back:
        cx, cy, s = (x0 + x1) / 2, y0 + (y1 - y0) * 0.35, (x1 - x0) * 0.22
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=ident.top2)


def _camera_effects(rng: np.random.Generator, img: Image.Image, cam: Camera) -> Image.Image:
    h, w = img.height, img.width
    if rng.random() < 0.15:  # occluder in front of the lower body
        draw = ImageDraw.Draw(img)
        y0 = h * rng.uniform(0.55, 0.8)
        x0 = w * rng.uniform(-0.3, 0.5)
        draw.rectangle([x0, y0, x0 + w * rng.uniform(0.3, 0.8), h], fill=_color(rng, (0, 0.5)))
    arr = np.asarray(img, dtype=np.float32)
    light = rng.uniform(0.8, 1.2)
    arr = arr * np.array(cam.gain, np.float32) * light + rng.normal(0.0, 4.0, size=arr.shape)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    radius = cam.blur + rng.uniform(0.0, 0.5)
    return img.filter(ImageFilter.GaussianBlur(radius)) if radius > 0.3 else img


class _Writer:
    """Writes images with unique Market-1501 names ``PPPP_cCsS_FFFFFF_BB.jpg`` and records the items."""

    def __init__(self, rng: np.random.Generator, cams: list[Camera], size: tuple[int, int], bar: Any = None) -> None:
        self.rng, self.cams, self.size = rng, cams, size
        self.frame = 0
        self.bar = bar  # a tqdm bar advanced per image, or None

    def write(self, folder: Path, pid: int, ident: Identity, cam: int, junk: bool = False) -> None:
        self.frame += 1
        name = f"{pid:04d}" if pid >= 0 else "-1"
        path = folder / f"{name}_c{cam + 1}s1_{self.frame:06d}_01.jpg"
        img = render_person(self.rng, ident, self.cams[cam], *self.size, junk=junk)
        img.save(path, quality=int(self.rng.integers(70, 96)))
        if self.bar is not None:
            self.bar.update(1)


def _cameras_for(rng: np.random.Generator, num_cameras: int, n_images: int) -> list[int]:
    """Cameras of one identity's images: every chosen camera (at least 2) gets at least one image."""
    k = int(rng.integers(2, num_cameras + 1)) if num_cameras > 2 else 2
    chosen = rng.permutation(num_cameras)[: min(k, n_images)]
    return [int(chosen[i % len(chosen)]) for i in range(n_images)]


def _test_plan(rng: np.random.Generator, num_ids: int, images_per_id: int,
               market_test_sizes: bool) -> tuple[list[tuple[int, int]], int, int]:
    """Per test identity (queries, gallery images); plus distractor and junk counts."""
    if market_test_sizes:
        q = np.full(MARKET_TEST_IDS, MARKET_QUERY // MARKET_TEST_IDS)
        q[rng.permutation(MARKET_TEST_IDS)[: MARKET_QUERY % MARKET_TEST_IDS]] += 1
        g = np.full(MARKET_TEST_IDS, MARKET_GALLERY_REAL // MARKET_TEST_IDS)
        g[rng.permutation(MARKET_TEST_IDS)[: MARKET_GALLERY_REAL % MARKET_TEST_IDS]] += 1
        return list(zip(q.tolist(), g.tolist())), MARKET_DISTRACTORS, MARKET_JUNK
    nq = max(1, round(images_per_id * 0.2))
    plan = [(nq, images_per_id - nq)] * num_ids
    real = num_ids * (images_per_id - nq)
    return plan, max(1, real // 10), max(1, real // 20)


def generate_synthetic_market(out_dir: str | os.PathLike, *, num_ids: int = 64, images_per_id: int = 12,
                              num_cameras: int = 6, image_size: tuple[int, int] = (128, 64), seed: int = 0,
                              market_test_sizes: bool = False, progress: bool = False) -> Path:
    """Write a synthetic dataset in the Market-1501 layout under ``out_dir`` and return that path.

    ``num_ids`` training identities with ``images_per_id`` images each, and as many different test
    identities, each split into ~20% queries and the rest gallery (every query has a gallery match in
    another camera). ``image_size`` is (height, width) in pixels (Market-1501's boxes are 128 x 64).
    ``market_test_sizes`` makes the test set Market-1501's: 750 ids, 3,368 queries, 15,913 kept gallery images
    (19,732 files with the junk), for benchmarks. The same arguments always write the same files.
    ``progress`` shows a progress bar on stderr (the Market-size test set takes minutes).
    """
    if num_ids < 1 or images_per_id < 3 or num_cameras < 2 or num_cameras > 6:
        from hwnas.errors import UsageError

        raise UsageError(f"bad synthetic dataset size ({num_ids} ids, {images_per_id} images/id, {num_cameras} "
                         "cameras), generate_synthetic_market, expected num_ids >= 1, images_per_id >= 3 and 2 <= "
                         "num_cameras <= 6")
    out = Path(out_dir)
    check_synthetic_size(num_ids, images_per_id, tuple(image_size), out, market_test_sizes,
                         "generate_synthetic_market num_ids/images_per_id", "generate_synthetic_market out_dir")
    dirs = {s: out / d for s, d in (("train", "bounding_box_train"), ("query", "query"),
                                     ("gallery", "bounding_box_test"))}
    for d in dirs.values():
        if d.is_dir() and any(d.iterdir()):
            from hwnas.errors import OutputError

            raise OutputError(f"folder already has files, {d}, expected an empty output folder")
        d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    bar = tqdm(total=num_ids * images_per_id, desc="synthetic images", unit="img", disable=not progress)
    writer = _Writer(rng, [random_camera(rng) for _ in range(num_cameras)], tuple(image_size), bar)
    for pid in range(1, num_ids + 1):
        ident = random_identity(rng)
        for cam in _cameras_for(rng, num_cameras, images_per_id):
            writer.write(dirs["train"], pid, ident, cam)
    plan, n_distractors, n_junk = _test_plan(rng, num_ids, images_per_id, market_test_sizes)
    bar.total += sum(q + g for q, g in plan) + n_distractors + n_junk  # known only now: the plan draws from rng
    bar.refresh()
    first = 2 * max(num_ids, 751) if market_test_sizes else num_ids + 1
    for i, (nq, ng) in enumerate(plan):
        pid, ident = first + i, random_identity(rng)
        cams = _cameras_for(rng, num_cameras, ng)
        for cam in cams:
            writer.write(dirs["gallery"], pid, ident, cam)
        for _ in range(nq):
            writer.write(dirs["query"], pid, ident, int(rng.choice(sorted(set(cams)))))
    for _ in range(n_distractors):
        writer.write(dirs["gallery"], 0, random_identity(rng), int(rng.integers(num_cameras)))
    for _ in range(n_junk):
        writer.write(dirs["gallery"], -1, random_identity(rng), int(rng.integers(num_cameras)), junk=True)
    q_total = sum(q for q, _ in plan)
    counts = {
        "train": {"images": num_ids * images_per_id, "ids": num_ids},
        "query": {"images": q_total, "ids": len(plan)},
        "gallery": {"images": sum(g for _, g in plan) + n_distractors, "ids": len(plan) + 1},
    }
    settings = {"version": GENERATOR_VERSION, "num_ids": num_ids, "images_per_id": images_per_id, "num_cameras": num_cameras,
                "image_size": list(image_size), "seed": seed, "market_test_sizes": market_test_sizes}
    write_json_atomic(out / SYNTHETIC_MARKER, {"generator": "hwnas.data.synthetic", "settings": settings,
                                                "counts": counts, "junk": n_junk})
    bar.close()
    logger.info("synthetic Market-1501 at %s: %s", out, counts)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    from hwnas import _cli

    _cli.add_output(p, "output folder (created; must be new or empty)")
    p.add_argument("--num-ids", type=_cli.int_at_least(2), default=64,
                   help="training identities (and as many test identities); >= 2, as ReID needs negatives")
    p.add_argument("--images-per-id", type=_cli.int_at_least(3), default=12, help="images per identity")
    p.add_argument("--num-cameras", type=_cli.positive_int, choices=range(2, 7), default=6, metavar="2..6", help="cameras")
    _cli.add_input_size(p, (128, 64), "image size HxW in pixels (Market-1501's boxes are 128x64)")
    _cli.add_seed(p)
    p.add_argument("--market-test-sizes", action="store_true",
                   help="test set with Market-1501's sizes (3,368 query + 15,913 gallery) for benchmarks")
    _cli.add_progress(p)


MARKET_TEST_FILES = 19_732  # --market-test-sizes: 3,368 queries + 15,913 kept gallery images + the junk files


def check_synthetic_size(num_ids: int, images_per_id: int, image_size: tuple[int, int], out: Path,
                         market_test_sizes: bool = False, counts_option: str = "--num-ids/--images-per-id",
                         out_option: str = "--output") -> None:
    """Refuse a dataset above :data:`hwnas._limits.MAX_SYNTHETIC_IMAGES` images, or one whose estimated size (JPEG
    at about a tenth of the raw pixels plus a file-system block per file) exceeds the free space at ``out``, before
    anything is written. Raises UsageError / OutputError naming the options."""
    import shutil

    from hwnas._limits import MAX_SYNTHETIC_IMAGES
    from hwnas.errors import OutputError, UsageError

    train = num_ids * images_per_id
    test = MARKET_TEST_FILES if market_test_sizes else train
    images = train + test
    if images > MAX_SYNTHETIC_IMAGES:
        raise UsageError(f"{num_ids} identities x {images_per_id} images + {test:,} test images = {images:,} images, "
                         f"{counts_option}, expected at most {MAX_SYNTHETIC_IMAGES:,}")
    need = images * (image_size[0] * image_size[1] * 3 // 10 + 4096)
    parent = Path(out)
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    try:
        free = shutil.disk_usage(parent).free
    except OSError:
        return  # the output check reports an unusable folder
    if need > free:
        raise OutputError(f"about {need / 2**30:.1f} GiB needed for {images:,} images, {out_option} {out}, expected "
                          f"at most the {free / 2**30:.1f} GiB free there")


def generate_synthetic_market_atomic(out: str | os.PathLike, *, concurrent_ok: bool = False, **settings: Any) -> Path:
    """:func:`generate_synthetic_market` (``settings``: its keyword arguments) into a new temporary sibling folder of
    ``out``, renamed to ``out`` when complete: a killed run never leaves half a dataset, and its temporary folder
    and the parent folders made for it are removed again. An empty folder at ``out`` is replaced (its mode kept;
    a new one gets the umask's, not ``mkdtemp``'s 0700). ``concurrent_ok``: when another run renamed its complete
    copy to ``out`` first, keep that one instead of failing (two runs generating the same settings at once).
    Returns ``out``."""
    import shutil
    import tempfile

    out = Path(out)
    made = make_dirs(out.parent)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))  # unique: runs never share it
    try:
        generate_synthetic_market(tmp, **settings)
        os.chmod(tmp, stat.S_IMODE(out.stat().st_mode) if out.is_dir() else dir_mode())
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        try:
            tmp.replace(out)
        except OSError:
            if not (concurrent_ok and (out / SYNTHETIC_MARKER).is_file()):  # not another run's complete copy
                raise
            logger.info("another run generated %s at the same time: using its copy", out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_empty_dirs(made)  # an interrupted run leaves no empty parent folder
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone after the rename; left only when another run's copy won
    return out


def run(a: argparse.Namespace) -> int:
    """Generate into a temporary sibling folder, then rename: an interrupted run never leaves half a dataset."""
    from hwnas import _cli
    from hwnas.errors import OutputError, UsageError

    if a.output is None:
        raise UsageError("no output folder, --output, expected --output DIR")
    shown = _cli.check_output_dir(a.output)
    out = Path(os.path.realpath(shown))  # a link to a folder, or new/..: the folder it names, checked now
    if out.is_dir() and any(out.iterdir()):
        raise OutputError(f"output folder is not empty, --output {shown}, expected a new or empty folder")
    if a.input_size[0] < 16 or a.input_size[1] < 8:
        raise UsageError(f"image size {a.input_size[0]}x{a.input_size[1]}, --input-size, expected at least 16x8")
    check_synthetic_size(a.num_ids, a.images_per_id, tuple(a.input_size), out, a.market_test_sizes)
    generate_synthetic_market_atomic(out, num_ids=a.num_ids, images_per_id=a.images_per_id,
                                     num_cameras=a.num_cameras, image_size=tuple(a.input_size), seed=a.seed,
                                     market_test_sizes=a.market_test_sizes, progress=not a.no_progress)
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None, *, prog: str = "python -m hwnas.data.synthetic") -> int:
    from hwnas import _cli

    @_cli.command
    def _main(args: list[str] | None = None, *, prog: str = prog) -> int:
        p = _cli.ArgumentParser(prog=prog, description=__doc__)
        add_arguments(p)
        return run(p.parse_args(args))

    return _main(argv, prog=prog)


if __name__ == "__main__":
    raise SystemExit(main())
