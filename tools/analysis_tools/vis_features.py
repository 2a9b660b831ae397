"""t-SNE of real and synthetic class embeddings, one panel per model.

The analogue of the paper's Fig. 5: for each stage-2 model, the frozen
segmenter's class embeddings of queries matched to ground-truth segments
(real features) are shown beside features that the model's generator
synthesises for the unseen classes. A good generator puts its synthetic
unseen features (triangles) next to the real features of the same unseen
class (crosses), apart from the seen classes (dots).

Real features: the validation images run through the frozen model; every
query the Hungarian matcher assigns to a ground-truth segment gives one
feature, labelled with that segment's class (seen classes; unseen classes
too unless ``--no-real-unseen``). Synthetic features: the generator, with
noise, from each unseen class's semantic embedding. One t-SNE is fitted
per panel. A table per model measures the same in the feature space
itself (Euclidean distances, before t-SNE):

- ``real spread``: mean distance of real unseen features to their class
  centroid (the scale a good synthetic cloud should match);
- ``d(own)``: mean distance of synthetic features to the real centroid of
  their class;
- ``d(seen)``: mean distance of synthetic features to the nearest real
  seen-class centroid;
- ``nearest``: the real class whose centroid is nearest to the synthetic
  centroid;
- ``NC acc``: share of synthetic features whose nearest real centroid
  (over all classes with real features) is their own class's.

Examples::

    python tools/analysis_tools/vis_features.py \\
        --model GMMN pading_toy_stage2_gmmn work_dirs/gmmn/iter_1000.pth \\
        --model P pading_toy_stage2_p work_dirs/p/iter_1000.pth \\
        --model PADing pading_toy_stage2 work_dirs/pading/iter_1000.pth \\
        --out docs/results/toy_ablation_tsne.png
    # a config file, another data root, fewer images
    python tools/analysis_tools/vis_features.py --data-root data/toy \\
        --model PADing configs/toy/pading_toy_stage2.py ckpt.pth \\
        --num-images 20 --per-class 30 --out /tmp/tsne.png

``CONFIG`` is a toy config name (``configs/toy/<name>.py``) or a config
file. The models must be stage-2 models with a generator (the projection
baseline synthesises nothing).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.lines import Line2D
from mmengine.utils import ProgressBar

import mmpading  # noqa: F401  (registers components)
from mmpading.apis import (
    build_eval_dataset,
    collate,
    load_model,
    resolve_config,
)

from tool_arguments import add_model_arguments, check_model_arguments

# Legend entries beyond this many classes would hide the panels: then only
# the unseen classes are named.
MAX_LEGEND_CLASSES = 24


@dataclass
class PanelFeatures:
    """The features of one panel (one model).

    Attributes:
        label (str): Panel title.
        real (np.ndarray): Real features, shape (N, C).
        real_labels (np.ndarray): Their classes, shape (N, ).
        synthetic (np.ndarray): Synthetic unseen features, shape (M, C).
        synthetic_labels (np.ndarray): Their classes, shape (M, ).
        class_names (list[str]): The model's classes, in label order.
        seen_ids (list[int]): Its seen classes.
        unseen_ids (list[int]): Its unseen classes.
    """
    label: str
    real: np.ndarray
    real_labels: np.ndarray
    synthetic: np.ndarray
    synthetic_labels: np.ndarray
    class_names: list[str]
    seen_ids: list[int]
    unseen_ids: list[int]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_model_arguments(parser, 'a panel (a stage-2 model)')
    parser.add_argument(
        '--num-images',
        type=int,
        default=100,
        help='images that give real features (the first ones)')
    parser.add_argument(
        '--per-class',
        type=int,
        default=60,
        help='at most this many real features per class (drawn at random) '
        'and exactly this many synthetic features per unseen class')
    parser.add_argument(
        '--no-real-unseen',
        action='store_true',
        help='leave out the real features of unseen classes')
    parser.add_argument('--perplexity', type=float, default=30.0)
    parser.add_argument(
        '--tsne-threads',
        type=int,
        default=1,
        help='OpenMP threads of t-SNE; more help only on idle cores (on '
        'busy ones, spinning threads make it several times slower)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--out',
        default='docs/results/toy_ablation_tsne.png',
        help='PNG to write')
    args = parser.parse_args()
    check_model_arguments(parser, args,
                          positive=('num_images', 'per_class',
                                    'tsne_threads'))
    return args


def real_features(model: torch.nn.Module, dataset, num_images: int,
                  batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Class embeddings of the queries matched to ground-truth segments.

    Args:
        model (nn.Module): A stage-2 model (``frozen_query_features``).
        dataset (BaseDataset): Images with ground truth.
        num_images (int): Use the first ``num_images`` images.
        batch_size (int): Images per forward pass.

    Returns:
        tuple[np.ndarray, np.ndarray]: Features (N, C) and their classes.
    """
    preprocessor = model.data_preprocessor
    features, labels = [], []
    progress = ProgressBar(num_images)
    for start in range(0, num_images, batch_size):
        indices = range(start, min(start + batch_size, num_images))
        with torch.no_grad():
            data = preprocessor(collate(dataset, indices), False)
            # Pad the ground truth to the batch shape as training does, but
            # without training's batch augmentations.
            samples = data['data_samples']
            if getattr(preprocessor, 'pad_mask', False):
                preprocessor.pad_gt_masks(samples)
            if getattr(preprocessor, 'pad_seg', False):
                preprocessor.pad_gt_sem_seg(samples)
            query_features = model.frozen_query_features(
                dict(inputs=data['inputs'], data_samples=samples))
        matched = query_features.matched
        features.append(query_features.embeddings[matched].float().cpu())
        labels.append(query_features.labels[matched].cpu())
        progress.update(len(indices))
    sys.stdout.write('\n')
    return torch.cat(features).numpy(), torch.cat(labels).numpy()


def synthetic_features(learner: torch.nn.Module, per_class: int,
                       seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` generator samples for every unseen class.

    The generator is in eval mode (no dropout) but draws its noise: the
    figure shows the distribution, not the noise-free mean.
    """
    torch.manual_seed(seed)
    labels = learner.unseen_ids.repeat_interleave(per_class)
    with torch.no_grad():
        features = learner.generator(
            learner.class_semantic_embeddings[labels], noise=True)
    return features.float().cpu().numpy(), labels.cpu().numpy()


def subsample(features: np.ndarray, labels: np.ndarray, per_class: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """At most ``per_class`` features of every class, drawn at random."""
    keep = []
    for label in np.unique(labels):
        indices = np.flatnonzero(labels == label)
        if len(indices) > per_class:
            indices = rng.choice(indices, per_class, replace=False)
        keep.append(np.sort(indices))
    keep = np.concatenate(keep) if keep else np.zeros(0, dtype=int)
    return features[keep], labels[keep]


def summarise(panel: PanelFeatures, class_names: list[str],
              seen_ids: set[int]) -> list[dict]:
    """Per unseen class: how the synthetic features sit among the real.

    Distances are Euclidean, in the class-embedding space (before t-SNE).
    See the module docstring for the columns.
    """
    classes = np.unique(panel.real_labels)
    centroids = np.stack(
        [panel.real[panel.real_labels == c].mean(0) for c in classes])
    seen_rows = [i for i, c in enumerate(classes) if c in seen_ids]
    rows = []
    for label in np.unique(panel.synthetic_labels):
        synthetic = panel.synthetic[panel.synthetic_labels == label]
        real = panel.real[panel.real_labels == label]
        distances = np.linalg.norm(
            synthetic[:, None] - centroids[None], axis=-1)
        nearest = classes[np.linalg.norm(
            centroids - synthetic.mean(0), axis=-1).argmin()]
        row = dict(
            name=class_names[label],
            real=len(real),
            synthetic=len(synthetic),
            nearest=class_names[nearest],
            d_seen=float(distances[:, seen_rows].min(1).mean())
            if seen_rows else float('nan'),
            spread=float('nan'),
            d_own=float('nan'),
            nc_acc=float('nan'))
        if len(real):
            own = int(np.flatnonzero(classes == label)[0])
            row.update(
                spread=float(
                    np.linalg.norm(real - centroids[own], axis=-1).mean()),
                d_own=float(distances[:, own].mean()),
                nc_acc=float((distances.argmin(1) == own).mean() * 100))
        rows.append(row)
    return rows


def format_summary(panel: PanelFeatures, rows: list[dict],
                   seen_ids: set[int]) -> str:
    num_seen = int(np.isin(panel.real_labels, list(seen_ids)).sum())
    num_classes_seen = len(set(panel.real_labels.tolist()) & seen_ids)
    lines = [
        f'[{panel.label}] {num_seen} real seen features '
        f'({num_classes_seen} classes), '
        f'{len(panel.real_labels) - num_seen} real unseen, '
        f'{len(panel.synthetic_labels)} synthetic unseen',
        f'  {"unseen class":<18}{"real":>5}{"synth":>6}{"real spread":>12}'
        f'{"d(own)":>8}{"d(seen)":>9}  {"nearest":<18}{"NC acc":>7}'
    ]

    def number(value: float, fmt: str, suffix: str = '') -> str:
        return '-' if np.isnan(value) else format(value, fmt) + suffix

    for row in rows:
        lines.append(
            f'  {row["name"]:<18}{row["real"]:>5}{row["synthetic"]:>6}'
            f'{number(row["spread"], ".2f"):>12}'
            f'{number(row["d_own"], ".2f"):>8}'
            f'{number(row["d_seen"], ".2f"):>9}  {row["nearest"]:<18}'
            f'{number(row["nc_acc"], ".1f", "%"):>7}')
    return '\n'.join(lines)


def class_colours(num_classes: int, unseen_ids: list[int]) -> list:
    """One colour per class, the most distinct ones for unseen classes.

    Up to 20 classes: tab20's strong colours go to the unseen classes
    first, then its light ones. More classes: unseen classes in tab10, seen
    classes in shades of grey.
    """
    order = list(unseen_ids) + [
        label for label in range(num_classes) if label not in unseen_ids
    ]
    colours = [None] * num_classes
    if num_classes <= 20:
        tab20 = plt.get_cmap('tab20')
        palette = [tab20(i) for i in (*range(0, 20, 2), *range(1, 20, 2))]
        for label, colour in zip(order, palette):
            colours[label] = colour
        return colours
    greys = plt.get_cmap('Greys')
    tab10 = plt.get_cmap('tab10')
    for rank, label in enumerate(order):
        colours[label] = tab10(rank % 10) if rank < len(unseen_ids) else \
            greys(0.3 + 0.4 * (label % 5) / 4)
    return colours


def embed_2d(features: np.ndarray, perplexity: float, seed: int,
             threads: int) -> np.ndarray:
    """t-SNE to 2-D; the perplexity shrinks for small point sets."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits
    num_points = len(features)
    if num_points < 4:
        raise ValueError(f'only {num_points} features to embed; use more '
                         'images (--num-images) or a better-trained model')
    perplexity = min(perplexity, (num_points - 1) / 3)
    with threadpool_limits(threads):
        return TSNE(
            n_components=2,
            perplexity=perplexity,
            init='pca',
            learning_rate='auto',
            random_state=seed).fit_transform(features)


def plot(panels: list[PanelFeatures], class_names: list[str],
         unseen_ids: list[int], args: argparse.Namespace) -> None:
    """Fit t-SNE per panel and write the figure."""
    plt.switch_backend('Agg')  # files only, no display
    colours = class_colours(len(class_names), unseen_ids)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5 * len(panels) + 2.2, 5.2), squeeze=False)
    present = set()
    for ax, panel in zip(axes[0], panels):
        points = embed_2d(
            np.concatenate([panel.real, panel.synthetic]), args.perplexity,
            args.seed, args.tsne_threads)
        real_2d = points[:len(panel.real)]
        synthetic_2d = points[len(panel.real):]
        for label in np.unique(panel.real_labels):
            present.add(int(label))
            mask = panel.real_labels == label
            unseen = int(label) in unseen_ids
            ax.scatter(
                *real_2d[mask].T,
                s=22 if unseen else 10,
                marker='x' if unseen else 'o',
                color=colours[label],
                alpha=0.9 if unseen else 0.6,
                linewidths=1.2 if unseen else 0)
        for label in np.unique(panel.synthetic_labels):
            present.add(int(label))
            mask = panel.synthetic_labels == label
            ax.scatter(
                *synthetic_2d[mask].T,
                s=26,
                marker='^',
                color=colours[label],
                edgecolors='black',
                linewidths=0.4,
                alpha=0.9)
        ax.set_title(panel.label, fontsize=13)
        ax.set_xticks([])
        ax.set_yticks([])

    shown = sorted(present) if len(present) <= MAX_LEGEND_CLASSES else \
        [label for label in unseen_ids if label in present]
    handles = [
        Line2D([], [], marker='o', linestyle='', color='grey',
               label='real, seen class'),
        Line2D([], [], marker='x', linestyle='', color='grey',
               label='real, unseen class'),
        Line2D([], [], marker='^', linestyle='', color='grey',
               markeredgecolor='black', label='synthetic, unseen class'),
    ] + [
        Line2D([], [], marker='s', linestyle='', color=colours[label],
               label=class_names[label] +
               (' (unseen)' if label in unseen_ids else ''))
        for label in shown
    ]
    fig.legend(handles=handles, loc='center right', fontsize=8,
               frameon=False)
    fig.suptitle('t-SNE of class embeddings: real seen, real unseen and '
                 'synthetic unseen features')
    fig.tight_layout(rect=(0, 0, 1 - 2.2 / fig.get_figwidth(), 0.95))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=120)
    plt.close(fig)


def collect_panel(label: str, config: str, checkpoint: str, dataset,
                  args: argparse.Namespace,
                  rng: np.random.Generator) -> PanelFeatures:
    """Load one model and gather its real and synthetic features."""
    cfg = resolve_config(config, args.data_root, args.cfg_options)
    model = load_model(cfg, checkpoint, args.device)
    learner = model.learner if getattr(model, 'zero_shot', None) is not None \
        else None
    if learner is None:
        raise ValueError(
            f'{label} ({config}) is not a stage-2 model: it has no '
            'zero-shot learner (model.zero_shot) and so no generator')
    if learner.generator is None:
        raise ValueError(
            f'{label} ({config}) has no feature generator (e.g. the '
            'projection baseline): it synthesises no unseen features')
    num_images = min(args.num_images, len(dataset))
    print(f'{label}: real features of {num_images} {args.split} images',
          flush=True)
    # The matcher samples points at random: the same draws for every panel.
    torch.manual_seed(args.seed)
    real, real_labels = real_features(model, dataset, num_images,
                                      args.batch_size)
    keep = np.isin(real_labels, learner.seen_ids.cpu().numpy())
    if not args.no_real_unseen:
        keep |= np.isin(real_labels, learner.unseen_ids.cpu().numpy())
    real, real_labels = subsample(real[keep], real_labels[keep],
                                  args.per_class, rng)
    if not len(real_labels):
        raise ValueError(
            f'{label}: no query was matched to a seen or unseen segment in '
            f'{num_images} images; use more images (--num-images)')
    synthetic, synthetic_labels = synthetic_features(
        learner, args.per_class, args.seed)
    return PanelFeatures(label, real, real_labels, synthetic,
                         synthetic_labels, list(learner.class_names),
                         learner.seen_ids.tolist(),
                         learner.unseen_ids.tolist())


def main() -> None:
    args = parse_args()
    try:
        # Every panel uses the same images: the first model's data set.
        dataset = build_eval_dataset(
            resolve_config(args.model[0][1], args.data_root,
                           args.cfg_options), args.split)
        panels = [
            collect_panel(label, config, checkpoint, dataset, args,
                          np.random.default_rng(args.seed))
            for label, config, checkpoint in args.model
        ]
        first = panels[0]
        for panel in panels[1:]:
            if (panel.class_names, panel.unseen_ids) != \
                    (first.class_names, first.unseen_ids):
                raise ValueError(
                    f'{panel.label} and {first.label} have different '
                    'classes or unseen splits; compare models of one data '
                    'set and split')
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'{osp.basename(__file__)}: error: {error}')

    seen_ids = set(first.seen_ids)
    print('\nSynthetic unseen features among the real ones (feature space, '
          'Euclidean; NC acc: nearest real centroid is the own class)')
    for panel in panels:
        print(format_summary(
            panel, summarise(panel, first.class_names, seen_ids), seen_ids))
    try:
        plot(panels, first.class_names, first.unseen_ids, args)
    except ValueError as error:
        sys.exit(f'{osp.basename(__file__)}: error: {error}')
    print(f'\nt-SNE figure: {args.out}')


if __name__ == '__main__':
    main()
