"""Panoptic overlays of ground truth and several models, as one image grid.

The analogue of the paper's Fig. 6: one row per validation image, columns
ground truth | model 1 | model 2 | ... Images that show unseen classes come
first (most unseen classes first). Unseen class names carry a ``*`` in the
overlays; each panel's caption lists the unseen classes in the ground
truth, and for a model its pixel accuracy on the ground truth's seen and
unseen pixels of that image. The same accuracies over all shown images are
printed per model.

Examples::

    python tools/analysis_tools/vis_predictions.py \\
        --model GMMN pading_toy_stage2_gmmn work_dirs/gmmn/iter_1000.pth \\
        --model PADing pading_toy_stage2 work_dirs/pading/iter_1000.pth \\
        --out docs/results/toy_ablation_predictions.png
    # stage 1 as a baseline, chosen images
    python tools/analysis_tools/vis_predictions.py --data-root data/toy \\
        --model 'Stage 1' pading_toy_stage1 work_dirs/stage1/iter_600.pth \\
        --model PADing configs/toy/pading_toy_stage2.py ckpt.pth \\
        --indices 3 17 42 --out /tmp/predictions.png

``CONFIG`` is a toy config name (``configs/toy/<name>.py``) or a config
file of a panoptic model. The ground truth comes from the panoptic
annotation files of the first model's data set.
"""
from __future__ import annotations

import argparse
import math
import os
import os.path as osp
import sys
import uuid
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import mmcv
import numpy as np
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.structures import DetDataSample
from mmengine.structures import PixelData
from mmengine.utils import ProgressBar

import mmpading  # noqa: F401  (registers components)
from mmpading.apis import (
    build_eval_dataset,
    collate,
    load_model,
    resolve_config,
)
from mmpading.visualization import PanopticOverlayVisualizer

from tool_arguments import add_model_arguments, check_model_arguments


@dataclass
class Column:
    """One model's predictions on the chosen images.

    Attributes:
        label (str): Column title.
        panoptic (list[np.ndarray]): Panoptic maps (H, W) per image:
            ``label + instance * INSTANCE_OFFSET``, void = ``num_classes``.
        accuracy (dict): Pixel counts ``{'seen': [correct, total],
            'unseen': [correct, total]}`` over all images.
    """
    label: str
    panoptic: list[np.ndarray] = field(default_factory=list)
    accuracy: dict = field(default_factory=lambda: {
        'seen': [0, 0],
        'unseen': [0, 0]
    })


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_model_arguments(parser, 'a column')
    parser.add_argument(
        '--num-images',
        type=int,
        default=6,
        help='rows; images with unseen classes first')
    parser.add_argument(
        '--indices',
        type=int,
        nargs='+',
        help='these data set indices instead (overrides --num-images)')
    parser.add_argument(
        '--min-size',
        type=int,
        default=256,
        help='upscale smaller images (nearest) to this shorter side, so '
        'that the class names stay legible')
    parser.add_argument(
        '--out',
        default='docs/results/toy_ablation_predictions.png',
        help='PNG to write')
    args = parser.parse_args()
    check_model_arguments(parser, args, positive=('num_images', 'min_size'))
    return args


def choose_images(dataset, unseen: set[int], num_images: int) -> list[int]:
    """Indices of images with the most unseen classes, then the rest."""

    def num_unseen(index: int) -> int:
        info = dataset.get_data_info(index)
        return len({s['category'] for s in info['segments_info']} & unseen)

    order = sorted(range(len(dataset)), key=lambda i: (-num_unseen(i), i))
    return order[:num_images]


def ground_truth_panoptic(info: dict, num_classes: int) -> np.ndarray:
    """The panoptic map of an image from its annotation PNG.

    Args:
        info (dict): The data set's data info (``seg_map_path``,
            ``segments_info``).
        num_classes (int): Void label.

    Returns:
        np.ndarray: ``label + instance * INSTANCE_OFFSET`` per pixel (stuff
        has instance 0), ``num_classes`` where no segment is annotated.
    """
    rgb = mmcv.imread(info['seg_map_path'], 'color',
                      channel_order='rgb').astype(np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
    panoptic = np.full(ids.shape, num_classes, dtype=np.int64)
    for instance, segment in enumerate(info['segments_info'], start=1):
        value = segment['category']
        if segment.get('is_thing', True):
            value += instance * INSTANCE_OFFSET
        panoptic[ids == segment['id']] = value
    return panoptic


def predict(model: torch.nn.Module, dataset, indices: list[int],
            batch_size: int) -> list[np.ndarray]:
    """Panoptic maps (H, W) of ``model`` on the images ``indices``."""
    maps = []
    progress = ProgressBar(len(indices))
    for start in range(0, len(indices), batch_size):
        batch = indices[start:start + batch_size]
        with torch.no_grad():
            samples = model.test_step(collate(dataset, batch))
        for sample in samples:
            if 'pred_panoptic_seg' not in sample:
                raise ValueError(
                    'the model predicts no panoptic segmentation; enable '
                    'test_cfg.panoptic_on in its config')
            maps.append(sample.pred_panoptic_seg.sem_seg[0].cpu().numpy())
        progress.update(len(batch))
    sys.stdout.write('\n')
    return maps


def count_accuracy(column: Column, prediction: np.ndarray,
                   truth: np.ndarray, unseen: set[int],
                   num_classes: int) -> dict[str, float]:
    """Add one image's pixel counts to ``column``; return its accuracies.

    Pixels are compared by class (``map % INSTANCE_OFFSET``); unannotated
    pixels do not count, unlabelled predictions count as wrong.
    """
    truth_classes = truth % INSTANCE_OFFSET
    correct = (prediction % INSTANCE_OFFSET) == truth_classes
    annotated = truth_classes != num_classes
    is_unseen = np.isin(truth_classes, list(unseen))
    accuracy = {}
    for group, mask in (('seen', annotated & ~is_unseen),
                        ('unseen', annotated & is_unseen)):
        total = int(mask.sum())
        hits = int((correct & mask).sum())
        column.accuracy[group][0] += hits
        column.accuracy[group][1] += total
        accuracy[group] = hits / total * 100 if total else float('nan')
    return accuracy


def upscale(array: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of the first two axes."""
    if factor == 1:
        return array
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def draw(visualizer: PanopticOverlayVisualizer, image: np.ndarray,
         panoptic: np.ndarray, num_classes: int) -> np.ndarray:
    """The panoptic overlay of ``panoptic`` on ``image`` (RGB)."""
    if not (panoptic != num_classes).any():
        # Nothing to draw (mmdet's drawer fails on an empty map).
        return image
    sample = DetDataSample()
    sample.pred_panoptic_seg = PixelData(
        sem_seg=torch.from_numpy(panoptic[None]))
    visualizer.add_datasample(
        'panel', image, sample, draw_gt=False, draw_pred=True, show=False)
    return visualizer.get_image()


def caption_of(accuracy: dict[str, float], empty: bool) -> str:
    """A model panel's caption: its pixel accuracies on this image."""
    if empty:
        return 'no segment predicted'
    parts = [
        f'{group} {value:.0f}%' for group, value in accuracy.items()
        if not math.isnan(value)
    ]
    return 'pixel acc: ' + ', '.join(parts) if parts else ''


def format_summary(columns: list[Column]) -> str:
    lines = [
        f'{"model":<20}{"seen px acc":>12}{"unseen px acc":>15}',
        '-' * 47
    ]
    for column in columns:
        values = []
        for group in ('seen', 'unseen'):
            hits, total = column.accuracy[group]
            values.append(f'{hits / total * 100:.1f}%' if total else '-')
        lines.append(f'{column.label:<20}{values[0]:>12}{values[1]:>15}')
    return '\n'.join(lines)


def main() -> None:
    args = parse_args()
    try:
        dataset = build_eval_dataset(
            resolve_config(args.model[0][1], args.data_root,
                           args.cfg_options), args.split)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'{osp.basename(__file__)}: error: {error}')
    meta = dataset.metainfo
    classes = list(meta['classes'])
    num_classes = len(classes)
    unseen_names = set(meta.get('unseen_classes', ()))
    unseen = {i for i, name in enumerate(classes) if name in unseen_names}
    if args.indices:
        bad = [i for i in args.indices if not 0 <= i < len(dataset)]
        if bad:
            sys.exit(f'{osp.basename(__file__)}: error: --indices {bad} '
                     f'outside the {len(dataset)} {args.split} images')
        indices = list(args.indices)
    else:
        indices = choose_images(dataset, unseen, args.num_images)
    infos = [dataset.get_data_info(i) for i in indices]
    if any('seg_map_path' not in info for info in infos):
        sys.exit(f'{osp.basename(__file__)}: error: the {args.split} data '
                 'set has no panoptic annotations (seg_map_path)')
    truths = [ground_truth_panoptic(info, num_classes) for info in infos]

    columns = []
    try:
        for label, config, checkpoint in args.model:
            cfg = resolve_config(config, args.data_root, args.cfg_options)
            model = load_model(cfg, checkpoint, args.device)
            print(f'{label}: predicting {len(indices)} images', flush=True)
            columns.append(
                Column(label, predict(model, dataset, indices,
                                      args.batch_size)))
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'{osp.basename(__file__)}: error: {error}')

    # Unseen class names carry a '*' in the overlays.
    visualizer = PanopticOverlayVisualizer(
        name=f'vis_predictions_{uuid.uuid4().hex[:8]}')
    visualizer.dataset_meta = dict(
        classes=[
            name + '*' if i in unseen else name
            for i, name in enumerate(classes)
        ],
        palette=meta.get('palette'))

    plt.switch_backend('Agg')  # files only, no display
    num_rows, num_cols = len(indices), len(columns) + 1
    fig, axes = plt.subplots(
        num_rows,
        num_cols,
        figsize=(3.2 * num_cols, 3.5 * num_rows),
        squeeze=False,
        layout='constrained')
    print('\nImages (data set index: unseen classes in the ground truth)')
    for row, (index, info, truth) in enumerate(zip(indices, infos, truths)):
        image = mmcv.imread(info['img_path'], channel_order='rgb')
        factor = max(1, math.ceil(args.min_size / min(image.shape[:2])))
        image = upscale(image, factor)
        present = sorted({
            classes[s['category']]
            for s in info['segments_info'] if s['category'] in unseen
        })
        print(f'  {index}: {", ".join(present) or "-"}')
        panels = [(draw(visualizer, image, upscale(truth, factor),
                        num_classes), 'unseen: ' + (', '.join(present)
                                                    or 'none'))]
        for column in columns:
            prediction = column.panoptic[row]
            accuracy = count_accuracy(column, prediction, truth, unseen,
                                      num_classes)
            panels.append((draw(visualizer, image,
                                upscale(prediction, factor), num_classes),
                           caption_of(accuracy,
                                      (prediction == num_classes).all())))
        titles = ['Ground truth'] + [column.label for column in columns]
        for col, (ax, (panel, caption)) in enumerate(zip(axes[row], panels)):
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(caption, fontsize=8)
            if row == 0:
                ax.set_title(titles[col], fontsize=12, fontweight='bold')
            if col == 0:
                ax.set_ylabel(f'#{index}', fontsize=9)
    fig.suptitle('Panoptic predictions (* = unseen class)', fontsize=12)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=100)
    plt.close(fig)

    print('\nPixel accuracy over the shown images (by class; ground-truth '
          'seen / unseen pixels)')
    print(format_summary(columns))
    print(f'\nPrediction grid: {args.out}')


if __name__ == '__main__':
    main()
