"""t-SNE of triplet-side and softmax-side features of a few identities (the seed's Figures 1-2).

``python -m hwnas.report tsne --checkpoint runs/train/last.pt --synthetic [--output DIR]`` draws, side by side,
``feats_tri`` (the feature the triplet loss sees) and ``feats_fc`` (the feature the classifier reads) of
``--num-ids`` identities, one colour per identity. t-SNE is scikit-learn's (exact solver: it suits the few
hundred points such a figure holds).
"""
from __future__ import annotations

import argparse
import logging
import sys

import numpy as np
import torch

from hwnas import _cli
from hwnas._io import save_figure_atomic
from hwnas._modes import eval_mode
from hwnas.data._cli import add_data_arguments, dataset_from_args
from hwnas.data.loaders import build_test_loader
from hwnas.errors import UsageError
from hwnas.models._output import ReIDOutput
from hwnas.training.checkpoint import model_from_checkpoint

logger = logging.getLogger(__name__)


def tsne(x: np.ndarray, *, perplexity: float = 20.0, iterations: int = 750, seed: int = 0) -> np.ndarray:
    """t-SNE (van der Maaten & Hinton, 2008) of ``x`` (N, D) to (N, 2) with scikit-learn's exact solver
    (``sklearn.manifold.TSNE``, PCA initialisation; features above 50 dimensions are first reduced to 50 by PCA,
    as usual). ``perplexity`` is capped at (N - 1) / 3; ``seed`` fixes the embedding. Raises
    :class:`hwnas.errors.UsageError` (a ``ValueError``) for fewer than 2 points or non-finite features."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2 or not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum()) if x.size else 0
        raise UsageError(f"features of shape {x.shape} with {bad} non-finite value(s), t-SNE input, expected finite "
                         "features of shape (N >= 2, D)")
    x = x - x.mean(0)
    scale = np.abs(x).max()
    if scale > 0:  # t-SNE is invariant to the scale; scikit-learn's float32 distances are not (overflow)
        x = x / scale
    if x.shape[1] > 50 and len(x) > 50:
        x = PCA(n_components=50, random_state=seed).fit_transform(x)
    perplexity = min(perplexity, (len(x) - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, max_iter=max(iterations, 250), init="pca", method="exact",
                learning_rate="auto", random_state=seed).fit_transform(x)


@torch.no_grad()
def neck_features(model: torch.nn.Module, loader, device: torch.device, branch: int = 0
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triplet-side and softmax-side features (eval-mode BN/dropout, training-mode neck output) and pids.

    Afterwards every submodule has its own train/eval mode back.
    """
    tri, fc, pids = [], [], []
    with eval_mode(model):
        model.neck.training = True  # only the neck's own flag: it returns ReIDOutput; its sub-modules stay in eval
        for images, pid, _ in loader:
            out = model(images.to(device))
            if not isinstance(out, ReIDOutput):
                raise UsageError(f"{type(model.neck).__name__} returns no ReIDOutput in training mode, "
                                 f"{getattr(model, 'model_name', type(model).__name__)} neck, expected a neck with "
                                 "training-mode features (bnneck, blneck, fblneck)")
            if branch >= len(out.features):
                raise UsageError(f"branch {branch} does not exist, --branch, expected 0..{len(out.features) - 1} "
                                 f"({type(model.neck).__name__} has {len(out.features)} outputs)")
            tri.append(out.features[branch].float().cpu())
            fc.append(out.softmax_features[branch].float().cpu())
            pids.append(torch.as_tensor(pid))
    if not tri:
        raise UsageError("no images, t-SNE loader, expected at least one image of the chosen identities")
    return torch.cat(tri).numpy(), torch.cat(fc).numpy(), torch.cat(pids).numpy()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=_cli.path, required=True, help="a last.pt written by hwnas train")
    add_data_arguments(parser)
    _cli.add_output(parser, "folder for tsne-<split>-branch<branch>.png (default: the checkpoint's folder)")
    parser.add_argument("--num-ids", type=_cli.int_at_least(2), default=8, help="identities to draw (the seed uses 8)")
    parser.add_argument("--split", choices=("test", "train"), default="test",
                        help="test: query + gallery images of the first test identities; train: training images")
    parser.add_argument("--branch", type=_cli.nonnegative_int, default=0,
                        help="neck output to draw (FBLNeck: 0 global, 1 local)")
    parser.add_argument("--perplexity", type=_cli.positive_float, default=20.0, help="t-SNE perplexity")
    _cli.add_seed(parser)
    _cli.add_device(parser)


def run(args: argparse.Namespace) -> int:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    device = _cli.resolve_device(args.device)
    out_dir = _cli.check_output_dir(args.output if args.output is not None else args.checkpoint.parent)
    model, ckpt = model_from_checkpoint(args.checkpoint, device)
    cfg = ckpt.get("config", {})
    ds = dataset_from_args(args)
    items = ds.train if args.split == "train" else [it for it in ds.query + ds.gallery if it[1] > 0]
    chosen = sorted({pid for _, pid, _ in items})[: args.num_ids]
    items = [it for it in items if it[1] in set(chosen)]
    loader = build_test_loader(items, height=int(cfg.get("height", 256)), width=int(cfg.get("width", 128)))
    tri, fc, pids = neck_features(model, loader, device, args.branch)  # a bad --branch is refused here, before notes
    if len(chosen) < args.num_ids:
        print(f"note: the {args.split} split has {len(chosen)} identities; plotting all of them (--num-ids "
              f"{args.num_ids} asked for more)", file=sys.stderr)
    if args.perplexity > (len(pids) - 1) / 3:
        print(f"note: perplexity {args.perplexity:g} is more than {len(pids)} images allow; using "
              f"{(len(pids) - 1) / 3:.4g} ((N - 1) / 3, --perplexity)", file=sys.stderr)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    colours = plt.get_cmap("tab10" if len(chosen) <= 10 else "tab20")
    for ax, feats, title in ((axes[0], tri, "feats_tri (triplet loss)"), (axes[1], fc, "feats_fc (softmax loss)")):
        emb = tsne(feats, perplexity=args.perplexity, seed=args.seed)
        for k, pid in enumerate(chosen):
            m = pids == pid
            ax.scatter(emb[m, 0], emb[m, 1], s=14, color=colours(k % colours.N), label=f"id {pid}")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].legend(fontsize=7, loc="best", markerscale=1.5)
    fig.suptitle(f"{ckpt['model_name']} epoch {ckpt['epoch']}: {len(pids)} images of {len(chosen)} identities")
    fig.tight_layout()
    out = save_figure_atomic(fig, out_dir / f"tsne-{args.split}-branch{args.branch}.png", dpi=120)
    plt.close(fig)
    print(f"wrote {out}")
    return 0
