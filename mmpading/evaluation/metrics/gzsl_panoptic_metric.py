"""Generalized zero-shot panoptic quality: PQ / SQ / RQ seen, unseen, HM."""
from __future__ import annotations

import os
import os.path as osp
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from mmdet.evaluation import CocoPanopticMetric
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmengine import fileio
from mmengine.logging import MMLogger, print_log
from panopticapi.evaluation import PQStat

from mmpading.datasets.splits import ZeroShotSplit
from mmpading.registry import METRICS

from .gzsl_utils import (
    ALL,
    HM,
    REFERENCE_BACKEND,
    ROW_TITLES,
    SEEN,
    UNSEEN,
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

PQ_NAMES = ('PQ', 'SQ', 'RQ')
THINGS, STUFF = 'things', 'stuff'
KEY_SUFFIXES = {
    SEEN: '_seen',
    UNSEEN: '_unseen',
    HM: '_hm',
    ALL: '',
    THINGS: '_th',
    STUFF: '_st',
}
# hotcoco evaluates this many images per PanopticEval call: one call per
# batch costs more in building the call and reading its per-class results
# than in the matching itself.
HOTCOCO_CHUNK_IMAGES = 100
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
PALETTE_SIZE = 256


def segment_index_map(pan: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a panoptic map and each pixel's position
    among them.

    Equal to ``np.unique(pan, return_inverse=True)`` (the index map in
    ``pan``'s shape, uint8 when there are at most 256 values), from the
    runs of equal pixels: a map of a few segments has a few thousand runs,
    so this is several times faster than a histogram or a sort of the
    pixels.
    """
    flat = pan.ravel()
    if flat.size == 0:
        return flat[:0].copy(), np.zeros(pan.shape, np.uint8)
    starts = np.concatenate(
        ([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1))
    ids, run_index = np.unique(flat[starts], return_inverse=True)
    dtype = np.uint8 if len(ids) <= PALETTE_SIZE else np.int64
    index = np.repeat(run_index.astype(dtype),
                      np.diff(starts, append=flat.size))
    return ids, index.reshape(pan.shape)


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return (struct.pack('>I', len(body)) + tag + body +
            struct.pack('>I', zlib.crc32(body, zlib.crc32(tag))))


def encode_palette_png(index: np.ndarray, colours: np.ndarray) -> bytes:
    """An 8-bit palette PNG of an index map.

    Args:
        index (np.ndarray): (H, W) uint8 palette indices.
        colours (np.ndarray): (N, 3) uint8 RGB palette, N <= 256.

    Returns:
        bytes: The PNG file. One byte per pixel, the ``Up`` filter and
        zlib's RLE strategy: about 3x faster to write than OpenCV's RGB PNG
        of the same map (which spends its time compressing 3 bytes per
        pixel), and a few KB.
    """
    height, width = index.shape
    # PNG rows: a filter byte (2 = Up: difference to the row above, mostly
    # 0 in a segment map), then the row.
    rows = np.empty((height, width + 1), np.uint8)
    rows[:, 0] = 2
    rows[0, 1:] = index[0]
    np.subtract(index[1:], index[:-1], out=rows[1:, 1:])
    compressor = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    data = compressor.compress(rows) + compressor.flush()
    header = struct.pack('>IIBBBBB', width, height, 8, 3, 0, 0, 0)
    return (PNG_SIGNATURE + _png_chunk(b'IHDR', header) +
            _png_chunk(b'PLTE', np.ascontiguousarray(colours).tobytes()) +
            _png_chunk(b'IDAT', data) + _png_chunk(b'IEND', b''))


@dataclass
class _PendingImage:
    """A processed image whose PNG hotcoco has not matched yet.

    ``slot`` is the image's entry in ``results``: each image gets one
    :class:`PQStat`, as with upstream's per-image statistics, so that
    mmengine's ``collect_results`` drops the same (padded) entries for both
    backends.
    """

    slot: int
    image: dict
    gt_annotation: dict
    pred_annotation: dict


@METRICS.register_module()
class GZSLPanopticMetric(CocoPanopticMetric):
    """Panoptic quality of the generalized zero-shot protocol.

    The matching of predicted and ground-truth segments and the per-class
    TP / FP / FN / IoU counts are mmdet's :class:`CocoPanopticMetric` (on
    panopticapi's :class:`PQStat`) or, with ``eval_backend='hotcoco'``,
    hotcoco's ``PanopticEval`` (panopticapi's protocol in Rust, equal to
    1e-6 on every key in the tests and the benchmark); per-class PQ / SQ /
    RQ come from ``PQStat.pq_average``. This class then averages them over
    the seen and the unseen classes and takes the harmonic mean.

    A class counts in a mean only if the evaluated images hold at least one
    (non-crowd) ground-truth segment of it (``tp + fn > 0``). A class with no
    ground truth but with predicted segments has only false positives;
    panopticapi would score it 0 and average it in, here it is left out of
    every mean (seen / unseen / all / things / stuff) and listed in the log
    and in :attr:`classes_without_gt`, with its number of false positives.
    A mean without any class left is NaN.

    Returned keys (in percent; mmengine prefixes them with
    ``gzsl_panoptic/``): ``PQ_seen, SQ_seen, RQ_seen, PQ_unseen, ...,
    PQ_hm, SQ_hm, RQ_hm``, all classes ``PQ, SQ, RQ``, things ``PQ_th, SQ_th,
    RQ_th``, stuff ``PQ_st, SQ_st, RQ_st``; with ``classwise=True`` also
    ``PQ/<class>``, ``SQ/<class>``, ``RQ/<class>`` for every class with
    ground truth.

    Inputs are mmdet's panoptic data samples: ``pred_panoptic_seg.sem_seg``
    (1, H, W) with ``id = label + instance * INSTANCE_OFFSET`` and
    ``len(classes)`` for VOID, ``img_id``, ``img_path``, ``ori_shape``; the
    ground truth is read from ``ann_file`` and ``seg_prefix`` (or, without
    ``ann_file``, from the samples' ``segments_info`` and the PNGs in
    ``seg_prefix``), exactly as upstream.

    Args:
        zero_shot_split (str | dict | ZeroShotSplit, optional): Split name
            (e.g. ``'zsp_coco'``), split JSON file or
            ``dict(seen=[...], unseen=[...])``. Defaults to the
            evaluated data set's split (``dataset_meta['seen_classes']`` /
            ``['unseen_classes']``, set by the zero-shot data sets).
        unseen_classes (Sequence[str], optional): Unseen class names, every
            other class is seen. Instead of ``zero_shot_split``.
        ann_file (str, optional): COCO panoptic annotation file.
        seg_prefix (str, optional): Folder of the ground-truth panoptic PNGs.
            Required unless ``format_only``.
        classwise (bool): Also log and return per-class PQ / SQ / RQ.
        format_only (bool): Only write the results (upstream behaviour).
        outfile_prefix (str, optional): Where the predicted PNGs (folder
            ``{outfile_prefix}.panoptic``) and, with ``format_only``, the
            JSON go; a temporary folder otherwise.
        nproc (int): Passed to upstream (used with ``format_only`` only).
        backend_args (dict, optional): File backend arguments.
        collect_device (str): 'cpu' or 'gpu'.
        prefix (str, optional): Key prefix; defaults to ``gzsl_panoptic``.
        eval_backend (str): What matches the segments: ``'reference'``
            (mmdet + panopticapi, per batch, the default) or ``'hotcoco'``
            (``pip install hotcoco==1.3.0``; local files only; up to
            :data:`HOTCOCO_CHUNK_IMAGES` images per call). In
            ``{outfile_prefix}.panoptic`` both write the same RGB PNGs; in
            the temporary folder hotcoco's are palette PNGs of the same
            ids.
    """

    default_prefix: str | None = 'gzsl_panoptic'

    def __init__(self,
                 zero_shot_split: str | dict | ZeroShotSplit | None = None,
                 unseen_classes: Sequence[str] | None = None,
                 ann_file: str | None = None,
                 seg_prefix: str | None = None,
                 classwise: bool = False,
                 format_only: bool = False,
                 outfile_prefix: str | None = None,
                 nproc: int = 32,
                 backend_args: dict | None = None,
                 collect_device: str = 'cpu',
                 prefix: str | None = None,
                 eval_backend: str = REFERENCE_BACKEND) -> None:
        # Upstream's __del__ reads it, also when a check below refuses
        # ann_file before upstream's __init__ set it.
        self.tmp_dir = None
        self._hotcoco = check_eval_backend(type(self).__name__, eval_backend,
                                           backend_args)
        self.eval_backend = eval_backend
        # A bad ann_file fails inside pycocotools otherwise.
        with checked_metric_ann_file(
                type(self).__name__, ann_file,
                lambda: getattr(self, '_coco_api', None), format_only,
                backend_args):
            super().__init__(
                ann_file=ann_file,
                seg_prefix=seg_prefix,
                classwise=classwise,
                format_only=format_only,
                outfile_prefix=outfile_prefix,
                nproc=nproc,
                backend_args=backend_args,
                collect_device=collect_device,
                prefix=prefix)
        self.seen_unseen = SeenUnseenSpec(zero_shot_split, unseen_classes,
                                          owner=type(self).__name__)
        if seg_prefix is None and not format_only:
            raise ValueError(
                f'{type(self).__name__} needs `seg_prefix`, the folder of '
                'the ground-truth panoptic PNGs (e.g. '
                "'data/coco/annotations/panoptic_val2017/').")
        if seg_prefix is not None and not format_only and not fileio.isdir(
                seg_prefix, backend_args=backend_args):
            # Checked now: the PNGs are only read after the whole inference.
            raise FileNotFoundError(
                f'{type(self).__name__}: seg_prefix {seg_prefix!r} is not a '
                'folder. Fix: give the folder of the ground-truth panoptic '
                "PNGs (e.g. 'data/coco/annotations/panoptic_val2017/'; it "
                'is not joined with data_root).')
        self.classes_without_gt: dict[str, list[str]] = {}
        # hotcoco: processed images whose PNGs are not matched yet.
        self._hotcoco_pending: list[_PendingImage] = []

    def class_groups(self) -> ClassGroups:
        """Seen / unseen class indices of the data set being evaluated."""
        return resolve_class_groups(self.seen_unseen, self.dataset_meta)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Match one batch of predictions to ground truth (PQ statistics).

        Unlike upstream, the statistics are also computed per batch when
        ``outfile_prefix`` is set (the predicted PNGs are then kept in
        ``{outfile_prefix}.panoptic``); only ``format_only`` defers to the
        upstream JSON path. With hotcoco the matching of the batch's PNGs
        waits for more images (see :meth:`_compute_batch_pq_stats`).
        """
        # A wrong split or annotation file fails on the first batch, not
        # after the whole set.
        self.class_groups()
        self._label_categories()
        if self.format_only:
            super().process(data_batch, data_samples)
        else:
            self._compute_batch_pq_stats(data_samples)

    def _compute_batch_pq_stats(self, data_samples: Sequence[dict]) -> None:
        """PQ statistics of one batch, from the chosen ``eval_backend``.

        With hotcoco the batch's PNGs are written now and matched with
        those of later batches, :data:`HOTCOCO_CHUNK_IMAGES` images per
        call, on this rank (each rank reads only its own PNGs, as with
        upstream's per-image statistics); :meth:`evaluate` matches what is
        left before the ranks' results are collected.
        """
        if self._hotcoco is None:
            super()._compute_batch_pq_stats(data_samples)
            return
        pending = self._hotcoco_pending
        for data_sample in data_samples:
            segm_file = self._segm_file(data_sample)
            if any(item.image['file_name'] == segm_file
                   for item in pending):
                # Another image of the same file name: the waiting PNGs
                # are matched before one is overwritten (an image follows,
                # so the newest is not the rank's last).
                self._hotcoco_match(pending)
                pending.clear()
            pending.append(_PendingImage(
                len(self.results),
                *self._hotcoco_annotations(data_sample, segm_file)))
            self.results.append(PQStat())
            # The newest image waits: if it is this rank's last, it is
            # matched on its own (see evaluate).
            if len(pending) > HOTCOCO_CHUNK_IMAGES:
                self._hotcoco_match(pending[:-1])
                del pending[:-1]

    def evaluate(self, size: int) -> dict:
        """Match the images hotcoco has not matched yet, then evaluate as
        mmengine does (collect the ranks' results, compute the metrics).

        Run on every rank. The last image of the rank is matched on its
        own, so its :class:`PQStat` is its own entry of ``results`` as with
        the reference: mmengine's ``collect_results`` drops the last
        entries of the ranks with a padded (repeated) sample, and then
        drops the same images for both backends.
        """
        if self._hotcoco is not None and self._hotcoco_pending:
            *earlier, last = self._hotcoco_pending
            if earlier:
                self._hotcoco_match(earlier)
            self._hotcoco_match([last])
            self._hotcoco_pending.clear()
        return super().evaluate(size)

    def _prediction_segments(self, data_sample: dict, segm_file: str,
                             label2cat: dict | None) -> list[dict]:
        """Write a predicted panoptic PNG for hotcoco and return its
        ``segments_info`` (the segments upstream's ``_parse_predictions``
        lists; VOID pixels are 0 in the PNG as upstream writes them).

        Unlike upstream, the sample's prediction is not changed in place
        (upstream writes VOID into it). In the temporary folder, which only
        hotcoco reads, the PNG is a palette PNG (one byte per pixel; hotcoco
        expands the palette to the same RGB ids); with ``outfile_prefix``
        (the PNGs are kept, e.g. for panopticapi, which does not expand a
        palette) and for maps of more than 256 segments, an RGB PNG as
        upstream's. hotcoco takes the segment areas from the PNG, as
        panopticapi does, so none are computed here.
        """
        pan = data_sample['pred_panoptic_seg']['sem_seg'].cpu().numpy()[0]
        num_classes = len(self.dataset_meta['classes'])
        ignore_index = data_sample['pred_panoptic_seg'].get(
            'ignore_index', num_classes)
        ids, index = segment_index_map(pan)
        labels = ids % INSTANCE_OFFSET
        is_void = (labels == num_classes) | (labels == ignore_index)
        segments_info = [
            dict(id=int(seg_id),
                 category_id=label2cat[label] if label2cat else int(label))
            for seg_id, label in zip(ids[~is_void].tolist(),
                                     labels[~is_void].tolist())
        ]
        # panopticapi's id of a pixel is R + 256 G + 256^2 B: the three low
        # bytes of a little-endian uint32; VOID is 0.
        colours = np.where(is_void, 0, ids).astype('<u4').view(
            np.uint8).reshape(-1, 4)[:, :3]
        # Upstream's mmcv.imwrite makes the folder too.
        os.makedirs(self.seg_out_dir, exist_ok=True)
        path = osp.join(self.seg_out_dir, segm_file)
        if self.tmp_dir is not None and len(ids) <= PALETTE_SIZE:
            with open(path, 'wb') as file:
                file.write(encode_palette_png(index, colours))
            return segments_info
        bgr = np.ascontiguousarray(colours[index][..., ::-1])
        if not cv2.imwrite(path, bgr):
            raise OSError(f'{type(self).__name__}: cannot write the '
                          f'predicted panoptic PNG {path}.')
        return segments_info

    @staticmethod
    def _segm_file(data_sample: dict) -> str:
        """The predicted PNG's file name, as upstream names it."""
        return osp.basename(data_sample['img_path']).replace('.jpg', '.png')

    def _hotcoco_annotations(self, data_sample: dict, segm_file: str
                             ) -> tuple[dict, dict, dict]:
        """Write an image's predicted PNG; return the image and its
        ground-truth and predicted annotations in the COCO panoptic format.

        The ground truth is what upstream takes: the segments of
        ``ann_file`` (areas from the file, as panopticapi), or without it
        the sample's ``segments_info`` (areas from the PNG, as upstream).
        """
        categories = self._label_categories()
        label2cat = None if self._coco_api is None else dict(
            enumerate(categories))
        img_id = data_sample['img_id']
        pred_annotation = dict(
            image_id=img_id, file_name=segm_file,
            segments_info=self._prediction_segments(data_sample, segm_file,
                                                    label2cat))
        if self._coco_api is not None:
            segments_info = [
                dict(id=segment['id'], category_id=segment['category_id'],
                     iscrowd=segment.get('iscrowd', 0), area=segment['area'])
                for segment in self._coco_api.imgToAnns[img_id]
            ]
        else:
            # As upstream: a thing class's segment that the data set does
            # not mark as a thing instance is a crowd region.
            segments_info = [
                dict(id=segment['id'], category_id=segment['category'],
                     iscrowd=int(
                         categories[segment['category']]['isthing'] == 1
                         and not segment['is_thing']))
                for segment in data_sample['segments_info']
            ]
        gt_annotation = dict(image_id=img_id, file_name=segm_file,
                             segments_info=segments_info)
        image = dict(id=img_id, file_name=segm_file,
                     height=data_sample['ori_shape'][0],
                     width=data_sample['ori_shape'][1])
        return image, gt_annotation, pred_annotation

    def _hotcoco_match(self, pending: Sequence[_PendingImage]) -> None:
        """Per-class TP / FP / FN / IoU of the ``pending`` images from one
        hotcoco ``PanopticEval``, as the :class:`PQStat` upstream would
        return, stored in the first image's entry of ``results`` (the
        others keep their empty one)."""
        images = [item.image for item in pending]
        category_list = [
            dict(id=cat_id, name=category['name'],
                 isthing=category['isthing'])
            for cat_id, category in self._label_categories().items()
        ]
        evaluation = self._hotcoco.panoptic.PanopticEval(
            dict(images=images,
                 annotations=[item.gt_annotation for item in pending],
                 categories=category_list),
            dict(images=images,
                 annotations=[item.pred_annotation for item in pending],
                 categories=category_list),
            gt_folder=self.seg_prefix,
            pred_folder=self.seg_out_dir)
        evaluation.evaluate()
        pq_stat = PQStat()
        for cat_id, counts in evaluation.results()['per_class'].items():
            # panopticapi's PQStat only holds the classes it touched.
            if counts['tp'] + counts['fp'] + counts['fn'] == 0:
                continue
            entry = pq_stat[cat_id]
            entry.iou += counts['iou']
            entry.tp += counts['tp']
            entry.fp += counts['fp']
            entry.fn += counts['fn']
        self.results[pending[0].slot] = pq_stat

    def _label_categories(self) -> dict:
        """Panopticapi categories keyed as the PQ statistics are, in the
        order of ``dataset_meta['classes']``."""
        class_names = self.dataset_meta['classes']
        # Called a few times per batch: cached for the same classes and
        # annotation file.
        key = (tuple(class_names),
               tuple(self.dataset_meta.get('thing_classes', ())),
               id(self._coco_api))
        cached = getattr(self, '_categories_cache', None)
        if cached is not None and cached[0] == key:
            return cached[1]
        categories = self._categories_of(class_names)
        self._categories_cache = (key, categories)
        return categories

    def _categories_of(self, class_names: Sequence[str]) -> dict:
        """:meth:`_label_categories`, not cached."""
        if self._coco_api is None:
            thing_classes = set(self.dataset_meta.get('thing_classes', ()))
            return {
                label: dict(id=label, name=name,
                            isthing=int(name in thing_classes))
                for label, name in enumerate(class_names)
            }
        # Same label -> category id mapping as upstream's batch statistics.
        cat_ids = category_ids_in_class_order(self._coco_api, class_names,
                                              type(self).__name__)
        return {cat_id: self._coco_api.cats[cat_id] for cat_id in cat_ids}

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Sum the PQ statistics and summarise them per group.

        Args:
            results (list): :class:`PQStat` of each processed image (with
                hotcoco: of the first image of each call, empty for the
                others).

        Returns:
            dict[str, float]: Flat metric keys (see the class docstring).
        """
        if self.format_only:
            return super().compute_metrics(results)
        logger: MMLogger = MMLogger.get_current_instance()
        groups = self.class_groups()

        pq_stat = PQStat()
        for batch_stat in results:
            pq_stat += batch_stat
        categories = self._label_categories()
        keys = list(categories)
        counts = [pq_stat.pq_per_cat.get(key) for key in keys]
        if any(c is not None and c.tp + c.fp + c.fn > 0 for c in counts):
            _, per_class_results = pq_stat.pq_average(
                categories, isthing=None)
        else:
            # pq_average divides by the number of scored classes: none here.
            per_class_results = {
                key: dict(pq=0.0, sq=0.0, rq=0.0) for key in keys
            }
        per_class = {
            name: 100 * np.array(
                [per_class_results[key][name.lower()] for key in keys])
            for name in PQ_NAMES
        }
        has_gt = np.array(
            [c is not None and c.tp + c.fn > 0 for c in counts])
        false_positives = [c.fp if c is not None else 0 for c in counts]
        is_thing = [categories[key]['isthing'] == 1 for key in keys]
        extra_groups = {
            THINGS: [i for i, thing in enumerate(is_thing) if thing],
            STUFF: [i for i, thing in enumerate(is_thing) if not thing],
        }
        summary, group_counts = summarize_groups(per_class, has_gt, groups,
                                                 extra_groups)

        self.classes_without_gt = classes_without_gt(has_gt, groups)
        notes = {
            groups.class_names[i]: f'{fp} false positive segment(s)'
            for i, fp in enumerate(false_positives) if fp and not has_gt[i]
        }
        row_titles = {**ROW_TITLES, THINGS: 'things', STUFF: 'stuff'}
        print_log(
            f'GZSL panoptic results (split {groups.split_name!r}):\n' +
            format_summary_table(summary, group_counts, PQ_NAMES,
                                 row_titles) + '\n' +
            describe_classes_without_gt(self.classes_without_gt, notes),
            logger=logger)

        metrics = flatten_summary(summary, KEY_SUFFIXES)
        if self.classwise:
            print_log(
                'GZSL panoptic results per class:\n' +
                format_classwise_table(per_class, has_gt, groups),
                logger=logger)
            for index, class_name in enumerate(groups.class_names):
                if has_gt[index]:
                    for name in PQ_NAMES:
                        metrics[f'{name}/{class_name}'] = float(
                            per_class[name][index])
        return metrics
