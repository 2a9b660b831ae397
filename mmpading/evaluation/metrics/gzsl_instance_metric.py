"""Generalized zero-shot instance segmentation / detection: mAP@0.5 and
Recall@100 seen, unseen, HM."""
from __future__ import annotations

import os.path as osp
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
from mmdet.datasets.api_wrappers import COCO, COCOeval
from mmdet.evaluation import CocoMetric
from mmengine.fileio import load
from mmengine.logging import MMLogger, print_log

from mmpading.datasets.splits import ZeroShotSplit
from mmpading.registry import METRICS

from .gzsl_utils import (
    REFERENCE_BACKEND,
    ClassGroups,
    SeenUnseenSpec,
    category_ids_in_class_order,
    check_eval_backend,
    checked_metric_ann_file,
    classes_without_gt,
    describe_classes_without_gt,
    flatten_summary,
    format_classwise_table,
    format_summary_table,
    resolve_class_groups,
    summarize_groups,
)

IOU_TYPES = ('segm', 'bbox')


def _masks_as_leaf(masks: Sequence[dict]) -> np.ndarray:
    """One image's RLE masks as a 1-D object array of the same dicts.

    mmengine's ``BaseMetric.evaluate`` walks every list and dict of the
    collected results (``_to_cpu``) looking for tensors; a list of 100 RLE
    dicts per image made that walk most of the hotcoco path's time. An
    array is a leaf of the walk, pickles the same dicts for
    ``collect_results`` across ranks, and indexes and iterates as the list
    did (``results2json``, ``list.extend`` before hotcoco's ``load_res``).

    Args:
        masks (Sequence[dict]): RLE dicts (``size``, ``counts``).

    Returns:
        np.ndarray: Object array of shape ``(len(masks),)`` holding them.
    """
    leaf = np.empty(len(masks), dtype=object)
    # Element-wise, so that numpy never tries to read a dict as a sequence.
    for index, mask in enumerate(masks):
        leaf[index] = mask
    return leaf


@METRICS.register_module()
class GZSLInstanceMetric(CocoMetric):
    """mAP and recall of the generalized zero-shot instance protocol (ZSI /
    ZSD).

    For each IoU type (``'segm'`` masks, ``'bbox'`` boxes) pycocotools'
    COCOeval (or, with ``eval_backend='hotcoco'``, hotcoco's port of it,
    equal to 1e-6 on every key in the tests and the benchmark) runs at IoU
    0.5 with at most 100 detections per image, over every class. Per class
    (area range 'all'):

    - ``mAP50`` = mean of ``eval['precision'][0, :, k, 0, -1]`` (COCO's
      101-point interpolated precision at IoU 0.5);
    - ``R100`` = ``eval['recall'][0, k, 0, -1]`` (recall with 100
      detections per image at IoU 0.5).

    Both are averaged over the seen and the unseen classes, and the harmonic
    mean is taken. COCOeval marks a class without (non-crowd) ground truth in
    the evaluated images with -1: such a class is left out of every mean and
    listed in the log and in :attr:`classes_without_gt`, with its number of
    detections. A mean without any class left is NaN.

    The evaluated images are the images that went through :meth:`process`
    (upstream scores every image of ``ann_file``, counting unprocessed ones
    as misses).

    Returned keys (in percent; mmengine prefixes them with
    ``gzsl_instance/``), for each IoU type ``t`` in ``metric``:
    ``t_mAP50_seen, t_mAP50_unseen, t_mAP50_hm, t_mAP50`` (all classes),
    ``t_R100_seen, t_R100_unseen, t_R100_hm, t_R100``; with
    ``classwise=True`` also ``t_mAP50/<class>`` and ``t_R100/<class>`` for
    every class with ground truth.

    Inputs are mmdet's data samples: ``pred_instances`` with ``bboxes``
    (x1, y1, x2, y2), ``scores``, ``labels`` and, for ``'segm'``, ``masks``;
    ``img_id`` and ``ori_shape``. Ground truth comes from ``ann_file`` or,
    without it, from the samples' ``instances`` (upstream behaviour).

    Args:
        zero_shot_split (str | dict | ZeroShotSplit, optional): Split name
            (e.g. ``'zsi_48_17'``), split JSON file or
            ``dict(seen=[...], unseen=[...])``. Defaults to the
            evaluated data set's split (``dataset_meta['seen_classes']`` /
            ``['unseen_classes']``, set by the zero-shot data sets).
        unseen_classes (Sequence[str], optional): Unseen class names, every
            other class is seen. Instead of ``zero_shot_split``.
        ann_file (str, optional): COCO instance annotation file.
        metric (str | Sequence[str]): ``'segm'``, ``'bbox'`` or both.
            Defaults to both.
        classwise (bool): Also log and return per-class scores.
        format_only (bool): Only write the results JSON (upstream).
        outfile_prefix (str, optional): Prefix of the result JSON files;
            a temporary folder otherwise.
        backend_args (dict, optional): File backend arguments.
        collect_device (str): 'cpu' or 'gpu'.
        prefix (str, optional): Key prefix; defaults to ``gzsl_instance``.
        sort_categories (bool): Sort the annotation file's categories by id
            (upstream option, for Objects365).
        eval_backend (str): What runs COCOeval: ``'reference'``
            (pycocotools, the default) or ``'hotcoco'``
            (``pip install hotcoco==1.3.0``). hotcoco takes the detections
            from memory; their JSON files are written only with
            ``outfile_prefix``.
    """

    default_prefix: str | None = 'gzsl_instance'
    iou_threshold = 0.5
    max_detections = 100

    def __init__(self,
                 zero_shot_split: str | dict | ZeroShotSplit | None = None,
                 unseen_classes: Sequence[str] | None = None,
                 ann_file: str | None = None,
                 metric: str | Sequence[str] = IOU_TYPES,
                 classwise: bool = False,
                 format_only: bool = False,
                 outfile_prefix: str | None = None,
                 backend_args: dict | None = None,
                 collect_device: str = 'cpu',
                 prefix: str | None = None,
                 sort_categories: bool = False,
                 eval_backend: str = REFERENCE_BACKEND) -> None:
        self._hotcoco = check_eval_backend(type(self).__name__, eval_backend,
                                           backend_args)
        self.eval_backend = eval_backend
        iou_types = [metric] if isinstance(metric, str) else list(metric)
        unsupported = [name for name in iou_types if name not in IOU_TYPES]
        if unsupported or not iou_types:
            raise ValueError(
                f'{type(self).__name__}: `metric` is \'segm\', \'bbox\' or '
                f'a list of both, got {metric!r}.')
        self.seen_unseen = SeenUnseenSpec(zero_shot_split, unseen_classes,
                                          owner=type(self).__name__)
        # A bad ann_file fails inside pycocotools otherwise.
        with checked_metric_ann_file(
                type(self).__name__, ann_file,
                lambda: getattr(self, '_coco_api', None), format_only,
                backend_args):
            super().__init__(
                ann_file=ann_file,
                metric=iou_types,
                classwise=classwise,
                proposal_nums=(self.max_detections, ),
                iou_thrs=[self.iou_threshold],
                format_only=format_only,
                outfile_prefix=outfile_prefix,
                backend_args=backend_args,
                collect_device=collect_device,
                prefix=prefix,
                sort_categories=sort_categories)
        self.classes_without_gt: dict[str, list[str]] = {}

    def class_groups(self) -> ClassGroups:
        """Seen / unseen class indices of the data set being evaluated."""
        return resolve_class_groups(self.seen_unseen, self.dataset_meta)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Store one batch of predictions (and ground truth without
        ``ann_file``), as upstream does."""
        # A wrong split fails on the first batch, not after the whole set.
        self.class_groups()
        if 'segm' in self.metrics:
            for data_sample in data_samples:
                if 'masks' not in data_sample['pred_instances']:
                    raise ValueError(
                        f"{type(self).__name__}: metric 'segm' needs "
                        'pred_instances.masks, which the predictions of '
                        f"image {data_sample.get('img_id')} lack; evaluate "
                        "boxes only with metric='bbox'.")
        first = len(self.results)
        super().process(data_batch, data_samples)
        if self._hotcoco is not None:
            # The reference path keeps upstream's lists untouched.
            for _, result in self.results[first:]:
                if 'masks' in result:
                    result['masks'] = _masks_as_leaf(result['masks'])

    def _evaluate(self, coco_gt: COCO, result_file: str, iou_type: str,
                  img_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Run pycocotools' COCOeval at IoU 0.5 / 100 detections.

        Returns:
            tuple[np.ndarray, np.ndarray]: Per class (``self.cat_ids``
            order) AP and recall as fractions; -1 for a class without
            ground truth.
        """
        predictions = load(result_file)
        if iou_type == 'segm':
            # As upstream: with a box present, COCO takes the box area for
            # the mask's area range.
            for prediction in predictions:
                prediction.pop('bbox', None)
        if predictions:
            coco_dt = coco_gt.loadRes(predictions)
        else:
            # loadRes cannot take an empty list; no detection is valid.
            coco_dt = COCO()
            coco_dt.dataset = dict(images=coco_gt.dataset['images'],
                                   categories=coco_gt.dataset['categories'],
                                   annotations=[])
            coco_dt.createIndex()
        return self._run_coco_eval(COCOeval(coco_gt, coco_dt, iou_type),
                                   img_ids)

    def _run_coco_eval(self, coco_eval: Any,
                       img_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Evaluate with a pycocotools or hotcoco ``COCOeval`` (same API)
        at IoU 0.5 / 100 detections, area range 'all'."""
        params = coco_eval.params
        params.catIds = self.cat_ids
        params.imgIds = img_ids
        params.iouThrs = np.array([self.iou_threshold])
        params.maxDets = [self.max_detections]
        params.areaRng = params.areaRng[:1]
        params.areaRngLbl = params.areaRngLbl[:1]
        coco_eval.evaluate()
        coco_eval.accumulate()
        # precision: (iou, recall point, class, area, max dets)
        precision = np.asarray(coco_eval.eval['precision'])[0, :, :, 0, -1]
        recall = np.asarray(coco_eval.eval['recall'])[0, :, 0, -1]
        has_gt = recall > -1
        average_precision = np.where(has_gt, precision.mean(axis=0), -1.0)
        return average_precision, recall

    def _hotcoco_ground_truth(self, coco_gt: COCO) -> Any:
        """hotcoco's copy of the ground truth (kept for ``ann_file``)."""
        if coco_gt is not self._coco_api:
            return self._hotcoco.COCO(coco_gt.dataset)
        if getattr(self, '_hotcoco_coco_api', None) is None:
            self._hotcoco_coco_api = self._hotcoco.COCO(coco_gt.dataset)
        return self._hotcoco_coco_api

    def _evaluate_hotcoco(self, coco_gt: COCO, preds: Sequence[dict],
                          iou_type: str,
                          img_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Run hotcoco's COCOeval on the detections held in memory.

        They are the rows :meth:`results2json` writes (image id, xywh box,
        score, category id, RLE mask), as columns, without the JSON round
        trip; floats go from float32 to float64 as ``float()`` does there.
        """
        gt = self._hotcoco_ground_truth(coco_gt)
        rows, masks = [], []
        for pred in preds:
            boxes = np.asarray(pred['bboxes'], dtype=np.float64).reshape(-1, 4)
            scores = np.asarray(
                pred.get('mask_scores', pred['scores'])
                if iou_type == 'segm' else pred['scores'], dtype=np.float64)
            labels = np.asarray(pred['labels'], dtype=np.int64)
            if not len(labels):
                continue
            cat_ids = np.asarray(self.cat_ids, dtype=np.float64)[labels]
            rows.append(np.column_stack([
                np.full(len(labels), pred['img_id'], dtype=np.float64),
                boxes[:, :2], boxes[:, 2:] - boxes[:, :2], scores, cat_ids
            ]))
            if iou_type == 'segm':
                masks.extend(pred['masks'])
        if rows:
            detections = gt.load_res(
                np.concatenate(rows),
                segmentation=masks if iou_type == 'segm' else None)
        else:
            # As for pycocotools: load_res is given no empty result list.
            detections = self._hotcoco.COCO(
                dict(images=coco_gt.dataset['images'],
                     categories=coco_gt.dataset['categories'],
                     annotations=[]))
        return self._run_coco_eval(
            self._hotcoco.COCOeval(gt, detections, iou_type), img_ids)

    @staticmethod
    def _pad_to_all_classes(scores: tuple[np.ndarray, np.ndarray],
                            num_classes: int
                            ) -> tuple[np.ndarray, np.ndarray]:
        """Give classes absent from ``ann_file`` the no-ground-truth -1."""
        return tuple(
            np.concatenate([values, np.full(num_classes - len(values), -1.0)])
            for values in scores)

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Run COCOeval per IoU type and summarise it per group.

        Args:
            results (list): ``(gt, prediction)`` pairs from :meth:`process`.

        Returns:
            dict[str, float]: Flat metric keys (see the class docstring).
        """
        if self.format_only:
            return super().compute_metrics(results)
        logger: MMLogger = MMLogger.get_current_instance()
        groups = self.class_groups()
        gts, preds = zip(*results)

        with tempfile.TemporaryDirectory() as tmp_dir:
            outfile_prefix = self.outfile_prefix or osp.join(
                tmp_dir, 'results')
            if self._coco_api is None:
                # Ground truth of this run only, not cached: a later
                # evaluation may see other images.
                coco_gt = COCO(self.gt_to_coco_json(gts, outfile_prefix))
            else:
                coco_gt = self._coco_api
            # A panoptic data set lists stuff classes after the things;
            # they have no instances and are not evaluated here.
            self.cat_ids = category_ids_in_class_order(
                coco_gt, self.dataset_meta['classes'], type(self).__name__,
                trailing_missing_ok=True)
            not_evaluated = list(groups.class_names[len(self.cat_ids):])
            img_ids = sorted({gt['img_id'] for gt in gts})
            unknown = [i for i in img_ids if i not in coco_gt.imgs]
            if unknown:
                raise ValueError(
                    f'{type(self).__name__}: images {unknown[:5]} are not in '
                    'ann_file; use the annotation file of the evaluated '
                    'data set.')
            if self._hotcoco is None or self.outfile_prefix:
                result_files = self.results2json(preds, outfile_prefix)
            scores = {}
            for iou_type in self.metrics:
                if self._hotcoco is None:
                    per_class = self._evaluate(coco_gt, result_files[iou_type],
                                               iou_type, img_ids)
                else:
                    per_class = self._evaluate_hotcoco(coco_gt, preds,
                                                       iou_type, img_ids)
                scores[iou_type] = self._pad_to_all_classes(
                    per_class, len(groups.class_names))

        detections = np.bincount(
            np.concatenate([pred['labels'] for pred in preds]).astype(int),
            minlength=len(groups.class_names))
        metrics = {}
        for iou_type, (average_precision, recall) in scores.items():
            has_gt = recall > -1
            per_class = {
                f'{iou_type}_mAP50': 100 * average_precision,
                f'{iou_type}_R100': 100 * recall,
            }
            summary, counts = summarize_groups(per_class, has_gt, groups)
            self.classes_without_gt = {
                group: [name for name in names if name not in not_evaluated]
                for group, names in classes_without_gt(has_gt,
                                                       groups).items()
            }
            notes = {
                groups.class_names[i]: f'{detections[i]} detection(s)'
                for i in range(len(groups.class_names))
                if detections[i] and not has_gt[i]
            }
            print_log(
                f'GZSL {iou_type} results at IoU {self.iou_threshold}, '
                f'{self.max_detections} detections per image (split '
                f'{groups.split_name!r}):\n' +
                format_summary_table(summary, counts, list(per_class)) +
                '\n' +
                describe_classes_without_gt(self.classes_without_gt, notes) +
                (f'\nNot instance classes of ann_file, not evaluated: '
                 f'{", ".join(not_evaluated)}' if not_evaluated else ''),
                logger=logger)
            metrics.update(flatten_summary(summary))
            if self.classwise:
                print_log(
                    f'GZSL {iou_type} results per class:\n' +
                    format_classwise_table(per_class, has_gt, groups),
                    logger=logger)
                for index, class_name in enumerate(groups.class_names):
                    if has_gt[index]:
                        for name, values in per_class.items():
                            metrics[f'{name}/{class_name}'] = float(
                                values[index])
        return metrics
