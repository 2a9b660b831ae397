"""A DetLocalVisualizer that draws only the chosen kinds of results."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import mmcv
import numpy as np
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.structures import DetDataSample
from mmdet.visualization import DetLocalVisualizer
from mmdet.visualization.palette import get_palette
from mmengine.structures import InstanceData, PixelData

from mmpading.registry import VISUALIZERS

RESULT_KINDS = ('instances', 'sem_seg', 'panoptic_seg')
# Ground-truth class maps mark unlabelled pixels so (mmdet's convention).
SEM_SEG_IGNORE = 255
UNSEEN_MARK = '*'
# Sizes of the titled layout, in output pixels (fonts in points, as
# matplotlib takes them: 1 pt is 100 / 72 px at mmengine's 100 dpi).
TITLE_FONT = 14
LEGEND_FONT = 12
TITLE_BAND = 36
LEGEND_LINE = 24
LEGEND_PAD = 12
SWATCH = 16
# Width of one character of LEGEND_FONT, generously (DejaVu Sans).
LEGEND_CHAR_WIDTH = 10


@dataclass(frozen=True)
class LegendEntry:
    """One class in an overlay's legend.

    Attributes:
        label (int): Class index into ``dataset_meta['classes']``.
        key (str): What the image shows on the class's segments: the
            1-based class number, ``*``-suffixed for an unseen class.
        name (str): The class name.
        unseen (bool): Whether the class is unseen (held out in training).
        color (tuple[int, int, int]): The class's RGB colour in the overlay.
    """

    label: int
    key: str
    name: str
    unseen: bool
    color: tuple[int, int, int]

    @property
    def text(self) -> str:
        return f'{self.key} {self.name}'


def upscale_map(values: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest-neighbour upscaling of the last two axes."""
    if factor == 1:
        return values
    return values.repeat_interleave(factor, dim=-2).repeat_interleave(
        factor, dim=-1)


@VISUALIZERS.register_module()
class PanopticOverlayVisualizer(DetLocalVisualizer):
    """mmdet's visualizer, restricted to some result kinds; readable.

    A universal model fills ``pred_instances``, ``pred_sem_seg`` and
    ``pred_panoptic_seg``; upstream draws all of them on top of each other.
    This one draws only ``draw_kinds`` (ground truth and prediction side by
    side, as upstream).

    Two gaps of upstream's panoptic drawing are closed: a panoptic data
    set's test pipeline packs the ground truth as ``gt_sem_seg`` (the
    class of every pixel), which is drawn in place of a missing
    ``gt_panoptic_seg``; and a prediction without any segment (all void)
    leaves the image plain instead of failing inside upstream's drawer.

    For small images (the toy set is 128 px) the overlay can be made
    readable: ``scale`` upscales image and maps before upstream draws them
    (labels keep their size in pixels), ``gt_title`` / ``pred_title`` put a
    title above each half, and ``legend`` lists the classes present on the
    right: the segments (and drawn instances) then carry short keys (the
    class number) instead of overlapping names, and unseen classes
    (``dataset_meta['unseen_classes']``) are marked ``*``, explained at the
    foot of the legend.
    ``min_font_size`` lifts upstream's segment labels to a legible size
    (upstream sizes them by area with a floor division: 6.5 pt for every
    segment under 30,000 px). Without these options the drawing is
    upstream's.

    Args:
        name (str): Instance name (mmengine's visualizers are named).
        draw_kinds (Sequence[str]): Any of ``'instances'``, ``'sem_seg'``
            and ``'panoptic_seg'``. Defaults to panoptic only.
        scale (int): Nearest-neighbour upscaling factor. Defaults to 1.
        gt_title (str, optional): Title above the ground truth.
        pred_title (str, optional): Title above the prediction.
        legend (bool): Legend of the classes present, keys in the image.
        min_font_size (int, optional): Smallest font of any text drawn, in
            points.
        **kwargs: Arguments of :class:`DetLocalVisualizer`.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 *args,
                 draw_kinds: Sequence[str] = ('panoptic_seg', ),
                 scale: int = 1,
                 gt_title: str | None = None,
                 pred_title: str | None = None,
                 legend: bool = False,
                 min_font_size: int | None = None,
                 **kwargs) -> None:
        super().__init__(name, *args, **kwargs)
        unknown = [kind for kind in draw_kinds if kind not in RESULT_KINDS]
        if unknown:
            raise ValueError(f'draw_kinds {unknown} unknown; choose from '
                             f'{RESULT_KINDS}')
        if not isinstance(scale, int) or scale < 1:
            raise ValueError(f'scale must be a positive integer, got '
                             f'{scale!r}')
        self.draw_kinds = tuple(draw_kinds)
        self.scale = scale
        self.gt_title = gt_title
        self.pred_title = pred_title
        self.legend = legend
        self.min_font_size = min_font_size

    # ------------------------------------------------------------ entry
    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample: DetDataSample | None = None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: str | None = None,
                       pred_score_thr: float = 0.3,
                       step: int = 0) -> None:
        if data_sample is not None:
            data_sample = self._kept_results(data_sample)
        readable = self.scale != 1 or self.legend or \
            self.gt_title is not None or self.pred_title is not None or \
            self.min_font_size is not None
        if not readable:
            super().add_datasample(name, image, data_sample, draw_gt,
                                   draw_pred, show, wait_time, out_file,
                                   pred_score_thr, step)
            return
        image = mmcv.imrescale(
            np.asarray(image).clip(0, 255).astype(np.uint8), self.scale,
            interpolation='nearest') if self.scale != 1 else image
        entries: list[LegendEntry] = []
        if data_sample is not None:
            entries = self.legend_entries(
                data_sample, pred_score_thr) if self.legend else []
            data_sample = self._upscaled(data_sample, self.legend)
        # Upstream draws the halves; its publishing is done below, once,
        # for the whole titled figure.
        with self._unpublished():
            super().add_datasample(name, image, data_sample, draw_gt,
                                   draw_pred, False, 0, None,
                                   pred_score_thr, step)
        halves = self.get_image()
        titles = [title for title, drawn in (
            (self.gt_title, draw_gt), (self.pred_title, draw_pred))
                  if drawn and data_sample is not None] or [None]
        drawn = self.compose(halves, titles, entries)
        self.set_image(drawn)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(drawn[..., ::-1], out_file)
        else:
            self.add_image(name, drawn, step)

    def draw_texts(self, texts, positions, font_sizes=None, *args,
                   **kwargs):
        """mmengine's ``draw_texts``, no smaller than ``min_font_size``."""
        if self.min_font_size is not None and font_sizes is not None:
            font_sizes = [max(size, self.min_font_size) for size in (
                font_sizes if isinstance(font_sizes, list) else
                [font_sizes] * (1 if isinstance(texts, str) else len(texts)))]
            if isinstance(texts, str):
                font_sizes = font_sizes[0]
        return super().draw_texts(texts, positions, font_sizes, *args,
                                  **kwargs)

    def draw_binary_masks(self, *args, **kwargs):
        """mmengine's ``draw_binary_masks``, without the hidden layers.

        Upstream renders the canvas, blends the mask into that picture and
        shows the result as a new image on top: after k masks the axes hold
        k + 1 images, every one of them redrawn by each later render (the
        cost grows with the square of the number of segments). The newest
        image is opaque and covers the whole canvas, so the ones below it
        never show; dropping them leaves every pixel as upstream draws it.
        """
        result = super().draw_binary_masks(*args, **kwargs)
        for hidden in self.ax_save.images[:-1]:
            hidden.remove()
        return result

    # ------------------------------------------------------------ legend
    def legend_entries(self,
                       data_sample: DetDataSample,
                       pred_score_thr: float | None = None
                       ) -> list[LegendEntry]:
        """The classes present in the ground truth or the prediction.

        Args:
            data_sample (DetDataSample): With any of ``gt_sem_seg``,
                ``gt_panoptic_seg``, ``pred_panoptic_seg``,
                ``pred_sem_seg`` (maps of shape (1, H, W)),
                ``gt_instances``, ``pred_instances`` (``labels`` (N, )).
            pred_score_thr (float, optional): Predicted instances scoring
                at most this are not drawn (upstream's threshold), so not
                listed.

        Returns:
            list[LegendEntry]: Sorted by class index.
        """
        classes = list(self.dataset_meta.get('classes', ()))
        num_classes = len(classes)
        unseen = set(self.dataset_meta.get('unseen_classes', ()))
        palette = get_palette(
            self.mask_color if self.mask_color is not None else
            self.dataset_meta.get('palette'), num_classes)
        labels: set[int] = set()
        for key in ('gt_sem_seg', 'pred_sem_seg'):
            if key in data_sample:
                labels.update(
                    np.unique(np.asarray(data_sample.get(key).sem_seg)))
        for key in ('gt_panoptic_seg', 'pred_panoptic_seg'):
            if key in data_sample:
                ids = np.unique(np.asarray(data_sample.get(key).sem_seg))
                labels.update(ids[ids != num_classes] % INSTANCE_OFFSET)
        for key in ('gt_instances', 'pred_instances'):
            instances = data_sample.get(key)
            if instances is not None and 'labels' in instances:
                kept = torch.as_tensor(instances.labels)
                if key == 'pred_instances' and pred_score_thr is not None \
                        and 'scores' in instances:
                    kept = kept[torch.as_tensor(
                        instances.scores) > pred_score_thr]
                labels.update(kept.cpu().tolist())
        return [
            LegendEntry(
                label=label,
                key=f'{label + 1}{UNSEEN_MARK if classes[label] in unseen else ""}',  # noqa: E501
                name=classes[label],
                unseen=classes[label] in unseen,
                color=tuple(int(c) for c in palette[label]))
            for label in sorted(int(v) for v in labels)
            if 0 <= label < num_classes
        ]

    @staticmethod
    def legend_lines(entries: Sequence[LegendEntry]) -> list[str]:
        """The legend's text: a header, one line per entry, the footnote."""
        lines = ['classes', *(entry.text for entry in entries)]
        if any(entry.unseen for entry in entries):
            lines.append(f'{UNSEEN_MARK} = unseen class')
        return lines

    def legend_keys(self) -> list[str]:
        """Every class's key, by class index (what segments show)."""
        classes = list(self.dataset_meta.get('classes', ()))
        unseen = set(self.dataset_meta.get('unseen_classes', ()))
        return [
            f'{i + 1}{UNSEEN_MARK if name in unseen else ""}'
            for i, name in enumerate(classes)
        ]

    # ------------------------------------------------------------ layout
    def compose(self, halves: np.ndarray, titles: Sequence[str | None],
                entries: Sequence[LegendEntry]) -> np.ndarray:
        """Titles above the drawn halves, the legend on the right.

        Args:
            halves (np.ndarray): Upstream's drawing, (H, n * W, 3) RGB, one
                panel per title.
            titles (Sequence[str | None]): One per panel.
            entries (Sequence[LegendEntry]): The legend (empty: none).

        Returns:
            np.ndarray: The figure, RGB uint8, of shape
            (max(T + H, legend height), n * W + legend width, 3), with T
            the title band (0 without titles).
        """
        height, width = halves.shape[:2]
        panel_width = width // len(titles)
        band = TITLE_BAND if any(t is not None for t in titles) else 0
        lines = self.legend_lines(entries)
        legend_width = 0
        if self.legend:
            legend_width = 2 * LEGEND_PAD + SWATCH + 8 + \
                LEGEND_CHAR_WIDTH * max(len(line) for line in lines)
        legend_height = 2 * LEGEND_PAD + LEGEND_LINE * len(lines) \
            if self.legend else 0
        canvas = np.full(
            (max(band + height, legend_height), width + legend_width, 3),
            255, dtype=np.uint8)
        canvas[band:band + height, :width] = halves
        self.set_image(canvas)
        for index, title in enumerate(titles):
            if title is not None:
                self.draw_texts(
                    title,
                    np.array([panel_width * (index + 0.5), band / 2]),
                    font_sizes=TITLE_FONT,
                    colors=(0, 0, 0),
                    vertical_alignments='center',
                    horizontal_alignments='center')
        if self.legend:
            self._draw_legend(width, lines, entries)
        return self.get_image()

    def _draw_legend(self, left: int, lines: Sequence[str],
                     entries: Sequence[LegendEntry]) -> None:
        x = left + LEGEND_PAD
        rows = [LEGEND_PAD + LEGEND_LINE * (i + 0.5)
                for i in range(len(lines))]
        text_x = [x if i == 0 or i > len(entries) else x + SWATCH + 8
                  for i in range(len(lines))]
        self.draw_texts(
            list(lines),
            np.array(list(zip(text_x, rows))),
            font_sizes=LEGEND_FONT,
            colors=(0, 0, 0),
            vertical_alignments='center',
            horizontal_alignments='left')
        if entries:
            boxes = np.array([[x, row - SWATCH / 2, x + SWATCH,
                               row + SWATCH / 2]
                              for row in rows[1:len(entries) + 1]])
            self.draw_bboxes(
                boxes,
                edge_colors=[(0, 0, 0)] * len(entries),
                face_colors=[entry.color for entry in entries],
                line_widths=1,
                alpha=1.0)

    # ------------------------------------------------------------ helpers
    def _kept_results(self, data_sample: DetDataSample) -> DetDataSample:
        """A copy holding only ``draw_kinds`` (and a drawable GT)."""
        data_sample = data_sample.clone()
        kept = set(self.draw_kinds)
        gt_kept = set(kept)
        if 'panoptic_seg' in kept and 'gt_panoptic_seg' not in data_sample:
            gt_kept.add('sem_seg')
        for kind in RESULT_KINDS:
            for prefix, keep in (('gt_', gt_kept), ('pred_', kept)):
                if kind not in keep and prefix + kind in data_sample:
                    delattr(data_sample, prefix + kind)
        if 'pred_panoptic_seg' in data_sample and not self._has_segments(
                data_sample.pred_panoptic_seg.sem_seg):
            delattr(data_sample, 'pred_panoptic_seg')
        return data_sample

    def _upscaled(self, data_sample: DetDataSample,
                  keys: bool) -> DetDataSample:
        """Maps and instances upscaled; segment labels as legend keys."""
        factor = self.scale
        num_classes = len(self.dataset_meta.get('classes', ()))
        label_names = self.legend_keys() if keys else None
        for key in ('gt_sem_seg', 'pred_sem_seg', 'gt_panoptic_seg',
                    'pred_panoptic_seg'):
            if key not in data_sample:
                continue
            metainfo = {}
            if label_names is not None:
                # Upstream's open-set hook: these names, not the classes.
                metainfo = dict(
                    label_names=label_names,
                    ignore_index=num_classes
                    if key.endswith('panoptic_seg') else SEM_SEG_IGNORE)
            values = data_sample.get(key).sem_seg
            setattr(data_sample, key,
                    PixelData(sem_seg=upscale_map(torch.as_tensor(values),
                                                  factor),
                              metainfo=metainfo))
        for key in ('gt_instances', 'pred_instances'):
            if key in data_sample and (factor != 1 or keys):
                instances = data_sample.get(key)
                scaled = InstanceData(metainfo=instances.metainfo)
                for field, value in instances.items():
                    if field == 'bboxes':
                        value = value * factor
                    elif field == 'masks':
                        value = upscale_map(torch.as_tensor(value), factor)
                    setattr(scaled, field, value)
                if keys and 'labels' in instances:
                    # Upstream labels an instance by its label_names.
                    scaled.label_names = [
                        label_names[int(label)] if 0 <= int(label) < len(
                            label_names) else f'class {int(label)}'
                        for label in torch.as_tensor(instances.labels)]
                setattr(data_sample, key, scaled)
        return data_sample

    @contextmanager
    def _unpublished(self) -> Iterator[None]:
        """Draw without handing the image to the storage backends."""
        backends, self._vis_backends = self._vis_backends, {}
        try:
            yield
        finally:
            self._vis_backends = backends

    def _has_segments(self, panoptic_map) -> bool:
        """Whether a panoptic map has any non-void segment."""
        num_classes = len(self.dataset_meta.get('classes', ()))
        values = np.unique(np.asarray(panoptic_map.cpu()))
        return bool((values != num_classes).any())
