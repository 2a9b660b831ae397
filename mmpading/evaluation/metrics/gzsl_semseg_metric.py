"""Generalized zero-shot semantic segmentation: mIoU seen, unseen, HM."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from mmengine.logging import MMLogger, print_log
from mmseg.evaluation import IoUMetric

from mmpading.datasets.splits import ZeroShotSplit
from mmpading.registry import METRICS

from .gzsl_utils import (
    REFERENCE_BACKEND,
    ClassGroups,
    SeenUnseenSpec,
    check_eval_backend,
    classes_without_gt,
    describe_classes_without_gt,
    flatten_summary,
    format_classwise_table,
    format_summary_table,
    resolve_class_groups,
    summarize_groups,
)

# mmseg's PixelData holds the map in ``data``, mmdet's in ``sem_seg``.
PIXEL_FIELDS = ('data', 'sem_seg')
# hotcoco refuses labels at or above its number of classes; with at least
# 256 every uint8 label is one (255 too, the usual VOID of a prediction), so
# common maps need no pass before hotcoco's count.
HOTCOCO_MIN_CLASSES = 256


def _label_map(sample: dict, key: str, owner: str) -> torch.Tensor:
    """The (H, W) label map of ``sample[key]``, mmseg or mmdet layout."""
    if key not in sample:
        raise ValueError(
            f'{owner}: a data sample lacks {key!r}; it needs '
            f'`pred_sem_seg` and `gt_sem_seg` (keys: {sorted(sample)}).')
    pixel_data = sample[key]
    for field in PIXEL_FIELDS:
        if field in pixel_data:
            shape = tuple(pixel_data[field].shape)
            label_map = pixel_data[field].squeeze()
            if label_map.dim() != 2:
                raise ValueError(
                    f'{owner}: {key}.{field} must be a label map of shape '
                    f'(1, H, W) or (H, W), got {shape}; take the argmax '
                    'over the class scores first.')
            return label_map
    raise ValueError(f'{owner}: {key} holds neither of {PIXEL_FIELDS}.')


@METRICS.register_module()
class GZSLSemSegMetric(IoUMetric):
    """mIoU of the generalized zero-shot semantic protocol (ZSS).

    Per-class intersection and union are accumulated over the evaluated
    images with mmseg's ``IoUMetric.intersect_and_union`` (or, with
    ``eval_backend='hotcoco'``, from hotcoco's pixel confusion matrix, with
    the same counts) and turned into per-class IoU by
    ``total_area_to_metrics``; the IoUs are then averaged over the seen and
    the unseen classes and the harmonic mean is taken.

    A class with no ground-truth pixel in the evaluated images is left out
    of every mean (mmseg scores such a class 0 when it is predicted) and
    listed in the log and in :attr:`classes_without_gt`, with its number of
    predicted pixels. A mean without any class left is NaN.

    Returned keys (in percent; mmengine prefixes them with
    ``gzsl_semseg/``): ``mIoU_seen, mIoU_unseen, mIoU_hm, mIoU`` (all
    classes) and ``aAcc`` (pixel accuracy); with ``classwise=True`` also
    ``IoU/<class>`` for every class with ground truth.

    Inputs are mmseg data samples (``pred_sem_seg.data`` and
    ``gt_sem_seg.data``) or mmdet ones (``pred_sem_seg.sem_seg`` and
    ``gt_sem_seg.sem_seg``, e.g. the semantic map of mmdet's
    ``LoadPanopticAnnotations``): label maps of shape (1, H, W) whose
    ``ignore_index`` pixels (255, VOID) are not scored.

    Args:
        zero_shot_split (str | dict | ZeroShotSplit, optional): Split name
            (e.g. ``'zss_cocostuff'``), split JSON file or
            ``dict(seen=[...], unseen=[...])``. Defaults to the
            evaluated data set's split (``dataset_meta['seen_classes']`` /
            ``['unseen_classes']``, set by the zero-shot data sets).
        unseen_classes (Sequence[str], optional): Unseen class names, every
            other class is seen. Instead of ``zero_shot_split``.
        ignore_index (int): Ground-truth label that is not scored.
        classwise (bool): Also return per-class IoU (always logged).
        collect_device (str): 'cpu' or 'gpu'.
        output_dir (str, optional): Where to write the predicted maps
            (upstream behaviour).
        format_only (bool): Only write the predicted maps (upstream).
        prefix (str, optional): Key prefix; defaults to ``gzsl_semseg``.
        eval_backend (str): What counts the pixels: ``'reference'``
            (mmseg's histograms, the default) or ``'hotcoco'``
            (``pip install hotcoco==1.3.0``).
    """

    default_prefix: str | None = 'gzsl_semseg'

    def __init__(self,
                 zero_shot_split: str | dict | ZeroShotSplit | None = None,
                 unseen_classes: Sequence[str] | None = None,
                 ignore_index: int = 255,
                 classwise: bool = False,
                 collect_device: str = 'cpu',
                 output_dir: str | None = None,
                 format_only: bool = False,
                 prefix: str | None = None,
                 eval_backend: str = REFERENCE_BACKEND) -> None:
        self._hotcoco = check_eval_backend(type(self).__name__, eval_backend)
        self.eval_backend = eval_backend
        self.seen_unseen = SeenUnseenSpec(zero_shot_split, unseen_classes,
                                          owner=type(self).__name__)
        super().__init__(
            ignore_index=ignore_index,
            iou_metrics=['mIoU'],
            collect_device=collect_device,
            output_dir=output_dir,
            format_only=format_only,
            prefix=prefix)
        self.classwise = classwise
        self.classes_without_gt: dict[str, list[str]] = {}
        # hotcoco: the rank's counts so far, those of its latest image, and
        # the results entries of the images since the last evaluate.
        self._hotcoco_total: Any = None
        self._hotcoco_last: Any = None
        self._hotcoco_slots: tuple[int, int] | None = None

    def class_groups(self) -> ClassGroups:
        """Seen / unseen class indices of the data set being evaluated."""
        return resolve_class_groups(self.seen_unseen, self.dataset_meta)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Accumulate one batch with mmseg's ``IoUMetric.process``, after
        bringing mmdet-style samples into mmseg's layout."""
        # A wrong split fails on the first batch, not after the whole set.
        self.class_groups()
        owner = type(self).__name__
        mmseg_samples = []
        for sample in data_samples:
            converted = dict(sample)
            converted['pred_sem_seg'] = dict(
                data=_label_map(sample, 'pred_sem_seg', owner))
            if not self.format_only:
                converted['gt_sem_seg'] = dict(
                    data=_label_map(sample, 'gt_sem_seg', owner))
            mmseg_samples.append(converted)
        if self._hotcoco is None or self.format_only:
            super().process(data_batch, mmseg_samples)
            return
        for sample in mmseg_samples:
            self._hotcoco_count(sample)
        if self.output_dir is not None:
            # Upstream writes the predicted maps; with format_only it
            # skips its own (here redundant) pixel counts.
            self.format_only = True
            try:
                super().process(data_batch, mmseg_samples)
            finally:
                self.format_only = False

    def _hotcoco_classes(self) -> int:
        """hotcoco's number of classes: the data set's, one extra (for
        labels outside them) and at least :data:`HOTCOCO_MIN_CLASSES`."""
        return max(len(self.dataset_meta['classes']) + 1,
                   HOTCOCO_MIN_CLASSES)

    def _labels_in_range(self, label: np.ndarray, pred: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Labels outside ``[0, num_classes)`` (ground truth other than
        ``ignore_index``) replaced by ``num_classes``."""
        num_classes = len(self.dataset_meta['classes'])
        pred = np.where((pred < 0) | (pred >= num_classes), num_classes,
                        pred)
        outside = ((label < 0) | (label >= num_classes)) & (
            label != self.ignore_index)
        return np.where(outside, num_classes, label), pred

    def _hotcoco_count(self, sample: dict) -> None:
        """Count one image's pixels with hotcoco; append its entry to
        ``results``.

        mmseg counts only labels in ``[0, num_classes)`` and drops
        ``ignore_index`` ground truth; hotcoco counts every label below its
        number of classes (:meth:`_hotcoco_classes`), and the areas leave
        the ones outside the classes out, as mmseg's histograms do. A label
        hotcoco refuses (negative or larger; it then counts nothing) is
        moved to the extra class and the image counted again.

        One entry per image, as mmseg's: the image's counts are kept in
        their own ``SemanticEval`` until the next image is counted, then
        merged into the rank's total, so the rank's last image is its own
        entry (see :meth:`evaluate`); the other entries are None
        placeholders until then.
        """
        evaluation = self._hotcoco.semantic.SemanticEval(
            self._hotcoco_classes(), ignore_index=self.ignore_index)
        pred = sample['pred_sem_seg']['data'].cpu().numpy()
        label = sample['gt_sem_seg']['data'].cpu().numpy()
        try:
            evaluation.update(label, pred)
        except ValueError:
            evaluation.update(*self._labels_in_range(label, pred))
        if self._hotcoco_last is not None:
            if self._hotcoco_total is None:
                self._hotcoco_total = self._hotcoco_last
            else:
                self._hotcoco_total.merge(self._hotcoco_last)
        self._hotcoco_last = evaluation
        slot = len(self.results)
        first = slot if self._hotcoco_slots is None else self._hotcoco_slots[0]
        self._hotcoco_slots = (first, slot)
        self.results.append(None)

    def evaluate(self, size: int) -> dict:
        """Put hotcoco's counts into ``results``, then evaluate as mmengine
        does (collect the ranks' results, compute the metrics).

        Run on every rank. The rank's total goes into the entry of its
        first image, its last image into its own entry: mmengine's
        ``collect_results`` drops the last entries of the ranks with a
        padded (repeated) sample, and so drops the same images as with the
        reference's one entry per image.
        """
        if self._hotcoco is not None and self._hotcoco_last is not None:
            first, last = self._hotcoco_slots
            if self._hotcoco_total is not None:
                self.results[first] = self._hotcoco_areas(
                    self._hotcoco_total)
            self.results[last] = self._hotcoco_areas(self._hotcoco_last)
            self._hotcoco_total = self._hotcoco_last = None
            self._hotcoco_slots = None
        return super().evaluate(size)

    def _hotcoco_areas(self, evaluation: Any) -> tuple[torch.Tensor, ...]:
        """mmseg's ``(intersect, union, pred_area, label_area)`` from a
        hotcoco ``SemanticEval``'s confusion matrix."""
        num_classes = len(self.dataset_meta['classes'])
        # Rows: ground truth, columns: prediction.
        confusion = torch.from_numpy(
            evaluation.confusion().astype(np.float64))
        intersect = confusion.diagonal()[:num_classes].clone()
        pred_area = confusion[:, :num_classes].sum(0)
        label_area = confusion[:num_classes].sum(1)
        union = pred_area + label_area - intersect
        return intersect, union, pred_area, label_area

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Per-class IoU from the summed areas, summarised per group.

        Args:
            results (list): ``(intersect, union, pred_area, label_area)`` per
                image, from mmseg's ``intersect_and_union`` (with hotcoco:
                of the ranks' totals and last images, None for the
                others).

        Returns:
            dict[str, float]: Flat metric keys (see the class docstring).
        """
        if self.format_only:
            return super().compute_metrics(results)
        logger: MMLogger = MMLogger.get_current_instance()
        groups = self.class_groups()

        # Summed in float64: float32 pixel counts lose precision on large
        # data sets.
        # hotcoco's placeholders (see _hotcoco_count) hold nothing.
        results = [areas for areas in results if areas is not None]
        intersect, union, pred_area, label_area = (
            sum(area.double() for area in areas) for areas in zip(*results))
        scores = self.total_area_to_metrics(intersect, union, pred_area,
                                            label_area, ['mIoU'])
        has_gt = label_area.numpy() > 0
        # IoU is NaN (0 / 0) for a class neither present nor predicted.
        per_class = {'mIoU': 100 * np.nan_to_num(scores['IoU'])}
        summary, counts = summarize_groups(per_class, has_gt, groups)

        self.classes_without_gt = classes_without_gt(has_gt, groups)
        predicted = pred_area.numpy()
        notes = {
            groups.class_names[i]: f'{int(predicted[i])} predicted pixel(s)'
            for i in range(len(groups.class_names))
            if predicted[i] and not has_gt[i]
        }
        print_log(
            f'GZSL semantic segmentation results (split '
            f'{groups.split_name!r}):\n' +
            format_summary_table(summary, counts, list(per_class)) + '\n' +
            describe_classes_without_gt(self.classes_without_gt, notes) +
            '\nPer class:\n' +
            format_classwise_table({'IoU': per_class['mIoU']}, has_gt,
                                   groups),
            logger=logger)

        metrics = flatten_summary(summary)
        metrics['aAcc'] = float(100 * scores['aAcc'])
        if self.classwise:
            for index, class_name in enumerate(groups.class_names):
                if has_gt[index]:
                    metrics[f'IoU/{class_name}'] = float(
                        per_class['mIoU'][index])
        return metrics
