"""PADing on images: mmdet's ``DetInferencer`` for a PADing checkpoint.

``PADingInferencer('pading_toy_stage2', weights='iter_1000.pth')`` takes
images, a folder or arrays and returns, per image, the three outputs of
the universal model (panoptic, instance, semantic) as JSON-ready values;
it draws the chosen task with :class:`PanopticOverlayVisualizer`, unseen
classes marked ``*``. What differs from upstream's inferencer:

- the model is a toy config name or a config file (no metafile look-up,
  nothing is downloaded), and the checkpoint must fit the config's stage
  (:func:`~mmpading.apis.checkpoint_checks.check_config_checkpoint`): a
  stage-1 or learner-only checkpoint is refused with the fix;
- the classes and the seen / unseen split come from the checkpoint's
  ``meta['dataset_meta']`` (what mmengine saved from the training set),
  else from the config's test set, so that a checkpoint whose class set
  was extended shows its own classes (:attr:`PADingInferencer.classes`);
- the test pipeline loses its annotation loaders (images only);
- the results hold the semantic map and the panoptic ``segments_info``.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import os.path as osp
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import mmcv
import mmengine
import numpy as np
import torch
from mmdet.apis import DetInferencer
from mmdet.apis.det_inferencer import IMG_EXTENSIONS
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.structures import DetDataSample
from mmdet.structures.mask import encode_mask_results, mask2bbox
from mmdet.visualization.palette import get_palette
from mmengine.config import Config, ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.logging import print_log
from mmengine.runner.checkpoint import (
    _load_checkpoint,
    _load_checkpoint_to_model,
)
from panopticapi.utils import id2rgb
from rich.progress import Progress
from torch import nn

from mmpading.models.utils.stage2 import set_dataset_meta
from mmpading.registry import UPSTREAM_SCOPES
from mmpading.utils.compat import CheckpointLoadError
from mmpading.utils.config_utils import cwd_note, rebase_data_root
from mmpading.visualization import PanopticOverlayVisualizer

from .checkpoint_checks import check_config_checkpoint
from .class_extension import ClassExtension, ClassExtensionError, add_classes
from .model_loading import config_dataset_meta, resolve_config

#: Task -> (what the visualizer draws, the model's ``test_cfg`` switch).
TASKS = {
    'panoptic': ('panoptic_seg', 'panoptic_on'),
    'instance': ('instances', 'instance_on'),
    'semantic': ('sem_seg', 'semantic_on'),
}
# Upstream's defaults of those switches (MaskFormerFusionHead).
_TASK_DEFAULTS = {'panoptic_on': True, 'instance_on': False,
                  'semantic_on': False}
# Test-pipeline steps that read ground truth, which raw images lack.
_ANNOTATION_LOADERS = ('LoadAnnotations', 'LoadPanopticAnnotations')
# Unlabelled pixels of a saved panoptic PNG (panopticapi's VOID).
PANOPTIC_VOID = 0


class PADingInferencer(DetInferencer):
    """Panoptic, instance and semantic segmentation of images with PADing.

    Follows :class:`mmdet.apis.DetInferencer`: call it with images and get
    ``{'predictions': [...], 'visualization': [...]}``; ``out_dir`` writes
    ``out_dir/vis/<image>`` (the drawing) and, with ``no_save_pred=False``,
    ``out_dir/preds/<stem>.json`` plus ``<stem>_panoptic_seg.png`` and
    ``<stem>_sem_seg.png``.

    Args:
        model (str | Config, optional): A toy config name (``configs/toy/
            <name>.py``, e.g. ``'pading_toy_stage2'``), a config file or a
            loaded config, of the mmdet scope. None: the config saved in
            the checkpoint's ``meta['cfg']``.
        weights (str): The checkpoint (a trained stage-2 one for a stage-2
            config).
        device (str, optional): E.g. ``'cpu'``, ``'cuda:0'``; None picks
            the available one.
        scope (str, optional): Must be ``'mmdet'`` or None (the config's
            ``default_scope`` is used).
        palette (str): ``'none'`` (the data set's colours), ``'random'``,
            ``'coco'``, ... as upstream.
        show_progress (bool): A progress bar over the images.
        task (str): What :meth:`visualize` draws: ``'panoptic'``,
            ``'instance'`` or ``'semantic'``. The predictions hold every
            output the model's ``test_cfg`` enables, whatever the task.
        data_root (str, optional): Folder that replaces the config's
            ``data_root`` (where the toy configs read the class embeddings
            and the data set's metainfo).
        cfg_options (dict, optional): Dotted config overrides.
        vis_min_size (int): Drawings of smaller images are upscaled
            (nearest) until their shorter side reaches this, so that the
            class keys stay legible (toy images are 128 px).
        add_classes (Sequence[str], optional): Class names to add to the
            checkpoint's before inference, PADing's counterpart of
            upstream's text prompts: the trained generator synthesises
            their features and only the classifier is trained again
            (:func:`mmpading.apis.class_extension.add_classes`, seconds on
            the toy set). Needs ``class_embeddings`` and ``feature_cache``.
            The new classes are unseen ones.
        add_stuff (Sequence[str]): The added classes that are stuff.
        class_embeddings (str, optional): An embedding file with rows for
            ``add_classes`` (the source of the model's own embeddings).
        feature_cache (str, optional): The feature cache of the model's
            segmenter (tools/misc/build_feature_cache.py).
        extension_dir (str, optional): Where the extended checkpoint is
            written (:attr:`extension`); default: a new temporary folder.

    Raises:
        FileNotFoundError: The config, the checkpoint or a data file the
            model needs does not exist (named, with the fix).
        ValueError: The checkpoint does not fit the config (other stage,
            learner only, other class count), the config is not of the
            mmdet scope, or the model does not predict ``task``.
    """

    def __init__(self,
                 model: str | Config | None = None,
                 weights: str | None = None,
                 device: str | None = None,
                 scope: str | None = None,
                 palette: str = 'none',
                 show_progress: bool = True,
                 task: str = 'panoptic',
                 data_root: str | None = None,
                 cfg_options: dict | None = None,
                 vis_min_size: int = 512,
                 add_classes: Sequence[str] | None = None,
                 add_stuff: Sequence[str] = (),
                 class_embeddings: str | None = None,
                 feature_cache: str | None = None,
                 extension_dir: str | None = None) -> None:
        if task not in TASKS:
            raise ValueError(f'task {task!r} unknown; choose one of '
                             f'{", ".join(TASKS)}')
        if weights is None:
            raise ValueError(
                'PADingInferencer needs weights: the checkpoint of a trained '
                'model (a stage-2 iter_*.pth for a stage-2 config); a '
                'randomly initialised classifier predicts nothing useful')
        if scope not in (None, 'mmdet'):
            raise ValueError(
                f'scope {scope!r}: PADingInferencer runs mmdet-scope models '
                '(panoptic / instance configs); for an mmseg (ZSS) config '
                'use tools/test.py')
        if not isinstance(vis_min_size, int) or vis_min_size < 1:
            raise ValueError('vis_min_size must be a positive integer, got '
                             f'{vis_min_size!r}')
        self.task = task
        self.vis_min_size = vis_min_size
        cfg = self._resolve_config(model, weights, data_root, cfg_options)
        _check_config(cfg, weights, task)
        #: What :func:`~mmpading.apis.class_extension.add_classes` wrote
        #: for ``add_classes`` (None without).
        self.extension: ClassExtension | None = None
        if add_classes:
            self.extension = _extend(cfg, weights, add_classes, add_stuff,
                                     class_embeddings, feature_cache,
                                     extension_dir)
            weights = self.extension.checkpoint
        elif class_embeddings or feature_cache:
            raise ValueError('class_embeddings / feature_cache are for '
                             'add_classes; give the names to add')
        # Read once: the classes decide the model's shape before it is
        # built, the weights are loaded into it afterwards.
        self._checkpoint = _read_checkpoint(weights)
        _use_extension_embeddings(cfg, self._checkpoint, cfg_options)
        cfg = fit_config_to_classes(
            cfg, (self._checkpoint.get('meta') or {}).get('dataset_meta'))
        _check_class_embeddings(cfg)
        try:
            super().__init__(model=cfg, weights=weights, device=device,
                             scope='mmdet', palette=palette,
                             show_progress=show_progress)
        finally:
            del self._checkpoint

    # ----------------------------------------------------- config, checks
    @staticmethod
    def _resolve_config(model: str | Config | None, weights: str,
                        data_root: str | None,
                        cfg_options: dict | None) -> Config:
        """The config: by name or file, given, or saved in ``weights``."""
        if isinstance(model, str):
            return resolve_config(model, data_root, cfg_options)
        if isinstance(model, (Config, ConfigDict, dict)):
            cfg = Config(copy.deepcopy(dict(model)),
                         filename=getattr(model, 'filename', None))
        elif model is None:
            if not osp.isfile(weights):
                raise FileNotFoundError(
                    f'weights {weights!r} does not exist{cwd_note(weights)}')
            text = (_read_checkpoint(weights).get('meta') or {}).get('cfg')
            if not text:
                raise ValueError(
                    f'checkpoint {weights!r} holds no config (meta["cfg"]):'
                    ' give the model as a config name or file')
            cfg = Config.fromstring(text, file_format='.py')
        else:
            raise TypeError('model must be a config name, a config file or '
                            f'a Config, got {type(model).__name__}')
        if data_root is not None:
            cfg = rebase_data_root(cfg, data_root)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        return cfg

    # ------------------------------------------------------ model, meta
    def _init_model(self, cfg: Config, weights: str,
                    device: str = 'cpu') -> nn.Module:
        """Build the model, load ``weights``, give it its classes.

        The classes come from the checkpoint (:meth:`_dataset_meta`); a
        stage-2 learner takes its classes and split from them, as in
        training. The checkpoint's tensor shapes must match the model's:
        mmengine would otherwise skip those tensors and leave them random.
        """
        model = UPSTREAM_SCOPES['mmdet'].MODELS.build(cfg.model)
        checkpoint = self._checkpoint
        _check_shapes(model, checkpoint.get('state_dict', checkpoint),
                      weights, cfg)
        dataset_meta = self._dataset_meta(cfg, checkpoint)
        try:
            set_dataset_meta(model, dataset_meta)
        except (FileNotFoundError, ValueError) as error:
            raise ValueError(
                f'the classes of checkpoint {weights!r} do not fit the '
                f'model: {error}. A checkpoint with added classes needs the '
                'class embedding file written with it: pass cfg_options='
                "{'model.zero_shot.class_embeddings': FILE} (--cfg-options "
                'model.zero_shot.class_embeddings=FILE)') from None
        _load_checkpoint_to_model(model, checkpoint)
        model.cfg = cfg
        return model.to(device).eval()

    def _dataset_meta(self, cfg: Config, checkpoint: Mapping) -> dict:
        """Classes, split and palette: the checkpoint's, else the config's.

        Colours are looked up by class name, so that a checkpoint with
        another class order or added classes keeps the data set's
        colours: the ``palette`` argument, else the config's data set,
        else the checkpoint's, else upstream's seeded random palette.
        """
        saved = (checkpoint.get('meta') or {}).get('dataset_meta')
        config_meta = config_dataset_meta(cfg)
        meta = {key.lower(): value for key, value in saved.items()} \
            if saved else dict(config_meta)
        classes = list(meta.get('classes') or ())
        if not classes:
            raise ValueError('neither the checkpoint nor the config\'s test '
                             'data set names the classes')
        fallback = get_palette('random', len(classes))
        if self.palette != 'none':
            palette = get_palette(self.palette, len(classes))
        else:
            colour_of: dict[str, tuple] = {}
            for source in (meta, config_meta):
                names = list(source.get('classes') or ())
                colours = source.get('palette')
                # A palette of another length than its class list cannot
                # be matched to the names.
                if isinstance(colours, (list, tuple)) and \
                        len(colours) == len(names):
                    colour_of.update(zip(names, colours))
            palette = [colour_of.get(name, fallback[index])
                       for index, name in enumerate(classes)]
        meta['palette'] = [tuple(int(c) for c in color)
                           for color in palette[:len(classes)]]
        return meta

    @property
    def dataset_meta(self) -> dict:
        """The model's classes, split and palette (from the checkpoint)."""
        return self.model.dataset_meta

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names, in label order (the checkpoint's)."""
        return tuple(self.dataset_meta['classes'])

    @property
    def unseen_classes(self) -> tuple[str, ...]:
        """The classes held out in training (none for a data set without
        a split)."""
        return tuple(self.dataset_meta.get('unseen_classes', ()))

    # ------------------------------------------------- pipeline, visualizer
    def _init_pipeline(self, cfg: Config):
        """The test pipeline without its annotation loaders."""
        cfg = copy.deepcopy(cfg)
        pipeline = cfg.test_dataloader.dataset.pipeline
        cfg.test_dataloader.dataset.pipeline = [
            step for step in pipeline
            if str(step['type']).split('.')[-1] not in _ANNOTATION_LOADERS
        ]
        return super()._init_pipeline(cfg)

    def _init_collate(self, cfg: Config):
        """The config's ``collate_fn``, else mmengine's ``pseudo_collate``
        (upstream's default, without its registry-scope warning)."""
        if cfg.test_dataloader.get('collate_fn') is None:
            return pseudo_collate
        return super()._init_collate(cfg)

    def _init_visualizer(self, cfg: Config) -> PanopticOverlayVisualizer:
        """The config's visualizer arguments, drawing ``task`` with a
        legend (class keys in the image, unseen classes marked ``*``)."""
        kwargs = dict(cfg.get('visualizer') or {})
        for key in ('type', '_scope_', 'name', 'vis_backends', 'save_dir'):
            kwargs.pop(key, None)
        kwargs.update(draw_kinds=(TASKS[self.task][0], ), legend=True,
                      min_font_size=kwargs.get('min_font_size') or 11)
        visualizer = PanopticOverlayVisualizer(
            name=f'pading_inferencer_{id(self):x}', **kwargs)
        visualizer.dataset_meta = self.model.dataset_meta
        return visualizer

    # ------------------------------------------------------------ inputs
    def _inputs_to_list(self, inputs) -> list:
        """Upstream's list of inputs; missing files and empty folders are
        refused before any work."""
        if isinstance(inputs, str) and not osp.exists(inputs):
            raise FileNotFoundError(
                f'input {inputs!r} is neither an image nor a folder'
                f'{cwd_note(inputs)}')
        listed = super()._inputs_to_list(inputs)
        if isinstance(inputs, str) and osp.isdir(inputs) and not listed:
            raise FileNotFoundError(
                f'input folder {inputs!r} holds no image '
                f'({", ".join(IMG_EXTENSIONS)})')
        for item in listed:
            if isinstance(item, str):
                if not osp.isfile(item):
                    raise FileNotFoundError(
                        f'input image {item!r} does not exist'
                        f'{cwd_note(item)}')
                if not item.lower().endswith(IMG_EXTENSIONS):
                    raise ValueError(
                        f'input {item!r} is not an image file (expected '
                        f'one of {", ".join(IMG_EXTENSIONS)})')
            elif not isinstance(item, np.ndarray):
                raise TypeError('inputs are image paths, folders or arrays '
                                f'(H, W, 3), got {type(item).__name__}')
        return listed

    # -------------------------------------------------------------- call
    def __call__(self,
                 inputs,
                 batch_size: int = 1,
                 return_vis: bool = False,
                 show: bool = False,
                 wait_time: int = 0,
                 no_save_vis: bool = False,
                 draw_pred: bool = True,
                 pred_score_thr: float = 0.3,
                 return_datasamples: bool = False,
                 print_result: bool = False,
                 no_save_pred: bool = True,
                 out_dir: str = '',
                 texts: str | list | None = None,
                 stuff_texts: str | list | None = None,
                 custom_entities: bool = False,
                 tokens_positive: int | list | None = None,
                 **kwargs) -> dict:
        """Segment ``inputs``; upstream's arguments and results.

        Args:
            inputs (str | np.ndarray | Sequence): An image file, a folder
                of images, an (H, W, 3) BGR array, or a list of those.
            batch_size (int): Images per forward.
            texts, stuff_texts, custom_entities, tokens_positive: Upstream's
                open-vocabulary prompts; refused: PADing's classes are the
                checkpoint's (:attr:`classes`).
            Others: as :meth:`DetInferencer.__call__`; ``out_dir`` gets
                ``vis/`` and (``no_save_pred=False``) ``preds/``.

        Returns:
            dict: ``predictions`` (one :meth:`pred2dict` dict, or with
            ``return_datasamples`` one ``DetDataSample``, per image) and
            ``visualization`` (RGB drawings with ``return_vis``).
        """
        if texts is not None or stuff_texts is not None or \
                custom_entities or tokens_positive is not None:
            raise ValueError(
                'PADingInferencer takes no text prompts at call time: its '
                'classes are those of the checkpoint (PADingInferencer.'
                'classes). To segment other classes, add them when building '
                'it: PADingInferencer(..., add_classes=[names], '
                'class_embeddings=FILE, feature_cache=DIR) (demo/'
                'image_demo.py --texts NAME ... --texts-embeddings FILE '
                '--feature-cache DIR).')
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f'batch_size must be a positive integer, got '
                             f'{batch_size!r}')
        preprocess_kwargs, forward_kwargs, visualize_kwargs, \
            postprocess_kwargs = self._dispatch_kwargs(**kwargs)
        images = self._inputs_to_list(inputs)
        results = {'predictions': [], 'visualization': []}
        with Progress(disable=not self.show_progress) as progress:
            bar = progress.add_task('Inference', total=len(images))
            for originals, data in self.preprocess(
                    images, batch_size=batch_size, **preprocess_kwargs):
                preds = self.forward(data, **forward_kwargs)
                drawn = self.visualize(
                    originals, preds, return_vis=return_vis, show=show,
                    wait_time=wait_time, draw_pred=draw_pred,
                    pred_score_thr=pred_score_thr, no_save_vis=no_save_vis,
                    img_out_dir=out_dir, **visualize_kwargs)
                batch = self.postprocess(
                    preds, drawn, return_datasamples=return_datasamples,
                    print_result=print_result, no_save_pred=no_save_pred,
                    pred_out_dir=out_dir, **postprocess_kwargs)
                results['predictions'].extend(batch['predictions'])
                if batch['visualization'] is not None:
                    results['visualization'].extend(batch['visualization'])
                progress.advance(bar, len(preds))
        return results

    def visualize(self, inputs: list, preds: list[DetDataSample],
                  **kwargs) -> list[np.ndarray] | None:
        """Upstream's drawing, one image at a time: each is upscaled to
        ``vis_min_size`` and titled with its name and the task."""
        drawn: list[np.ndarray] = []
        for single, pred in zip(inputs, preds):
            height, width = pred.metainfo['ori_shape'][:2]
            self.visualizer.scale = max(
                1, math.ceil(self.vis_min_size / min(height, width)))
            name = osp.basename(single) if isinstance(single, str) else \
                f'{self.num_visualized_imgs:08d}.jpg'
            self.visualizer.pred_title = f'{name}: {self.task}'
            result = super().visualize([single], [pred], **kwargs)
            if result is None:
                return None
            drawn.extend(result)
        return drawn

    # ----------------------------------------------------------- results
    def pred2dict(self, data_sample: DetDataSample,
                  pred_out_dir: str = '') -> dict:
        """One image's outputs as basic Python / numpy values.

        Keys (those of the outputs the model gives):

        - instance (upstream's): ``labels`` (N, ), ``scores`` (N, ),
          ``bboxes`` (N, 4) x1 y1 x2 y2, ``masks`` (N COCO RLEs);
        - panoptic: ``panoptic_seg`` (H, W, 3) uint8, the segment id
          ``label + instance * INSTANCE_OFFSET`` as panopticapi's RGB
          (``id2rgb``; 0 = void), or ``panoptic_seg_path`` (its PNG) when
          saved; ``segments_info``, one dict per segment: ``id``,
          ``label``, ``label_name``, ``isthing``, ``unseen``, ``area``;
        - semantic: ``sem_seg`` (H, W) int64 class indices, or
          ``sem_seg_path`` (a PNG of the indices, uint8, or uint16 for
          more than 255 classes) when saved.

        With ``pred_out_dir`` the dict goes to
        ``pred_out_dir/preds/<stem>.json`` and the maps beside it.
        """
        classes = self.classes
        unseen = set(self.unseen_classes)
        save = pred_out_dir != ''
        if save:
            if data_sample.get('img_path'):
                stem = osp.splitext(osp.basename(data_sample.img_path))[0]
            else:
                # An array: numbered as its drawing (vis/00000000.jpg).
                stem = f'{self.num_predicted_imgs:08d}'
                self.num_predicted_imgs += 1
            prefix = osp.join(pred_out_dir, 'preds', stem)
        result: dict[str, Any] = {}
        if 'pred_instances' in data_sample:
            instances = data_sample.pred_instances.cpu()
            result['labels'] = instances.labels.tolist()
            result['scores'] = instances.scores.tolist()
            boxes = instances.get('bboxes')
            if 'masks' in instances:
                if boxes is None or boxes.sum() == 0:
                    boxes = mask2bbox(instances.masks)
                rles = encode_mask_results(instances.masks.numpy())
                for rle in rles:
                    if isinstance(rle['counts'], bytes):
                        rle['counts'] = rle['counts'].decode()
                result['masks'] = rles
            if boxes is not None:
                result['bboxes'] = boxes.tolist()
        if 'pred_panoptic_seg' in data_sample:
            ids = data_sample.pred_panoptic_seg.sem_seg[0].cpu().numpy()
            ids = ids.astype(np.int64)
            void = ids % INSTANCE_OFFSET == len(classes)
            ids[void] = PANOPTIC_VOID
            values, areas = np.unique(ids[~void], return_counts=True)
            result['segments_info'] = [
                dict(id=int(value), label=int(value % INSTANCE_OFFSET),
                     label_name=classes[value % INSTANCE_OFFSET],
                     isthing=bool(value >= INSTANCE_OFFSET),
                     unseen=classes[value % INSTANCE_OFFSET] in unseen,
                     area=int(area))
                for value, area in zip(values, areas)
            ]
            rgb = id2rgb(ids).astype(np.uint8)
            if save:
                path = prefix + '_panoptic_seg.png'
                mmcv.imwrite(rgb[..., ::-1], path)
                result['panoptic_seg_path'] = path
            else:
                result['panoptic_seg'] = rgb
        if 'pred_sem_seg' in data_sample:
            labels = data_sample.pred_sem_seg.sem_seg[0].cpu().numpy()
            if save:
                path = prefix + '_sem_seg.png'
                dtype = np.uint8 if len(classes) < 256 else np.uint16
                mmcv.imwrite(labels.astype(dtype), path)
                result['sem_seg_path'] = path
            else:
                result['sem_seg'] = labels.astype(np.int64)
        if save:
            mmengine.dump(result, prefix + '.json')
        return result


# ---------------------------------------------------------------- helpers
def _check_config(cfg: Config, weights: str, task: str) -> None:
    """Refuse what would fail or mislead later, before any build."""
    name = cfg.filename or 'the config'
    scope = cfg.get('default_scope', 'mmdet')
    if scope != 'mmdet':
        raise ValueError(
            f'{name} has default_scope {scope!r}: PADingInferencer runs '
            'mmdet-scope models (panoptic / instance configs); evaluate an '
            'mmseg (ZSS) config with tools/test.py')
    switch = TASKS[task][1]
    test_cfg = cfg.model.get('test_cfg') or {}
    if not test_cfg.get(switch, _TASK_DEFAULTS[switch]):
        raise ValueError(
            f'task {task!r}: the model of {name} does not predict it '
            f"(model.test_cfg.{switch} is off; the stage-2 configs' "
            'UniversalFusionHead gives all three outputs)')
    try:
        note = check_config_checkpoint(cfg, weights, 'test',
                                       source='weights')
    except CheckpointLoadError as error:
        raise ValueError(str(error)) from None
    if note is not None:
        print_log(note, logger='current', level=logging.WARNING)


def _extend(cfg: Config, weights: str, names: Sequence[str],
            stuff: Sequence[str], class_embeddings: str | None,
            feature_cache: str | None,
            extension_dir: str | None) -> ClassExtension:
    """The checkpoint with ``names`` added (written to ``extension_dir``)."""
    if class_embeddings is None or feature_cache is None:
        raise ValueError(
            'add_classes needs class_embeddings (a file with rows for '
            f'{list(names)}) and feature_cache (the cache of the model\'s '
            'segmenter, tools/misc/build_feature_cache.py)')
    for what, path, is_there in (
            ('class_embeddings', class_embeddings, osp.isfile),
            ('feature_cache', feature_cache, osp.isdir)):
        if not is_there(path):
            raise FileNotFoundError(f'{what} {path!r} does not exist'
                                    f'{cwd_note(path)}')
    folder = extension_dir or tempfile.mkdtemp(prefix='pading_classes_')
    os.makedirs(folder, exist_ok=True)
    stem = osp.splitext(osp.basename(weights))[0]
    out = osp.join(folder, f'{stem}+{len(names)}classes.pth')
    try:
        return add_classes(cfg, weights, feature_cache, names,
                           class_embeddings, out, new_stuff=stuff)
    except ClassExtensionError as error:
        raise ValueError(f'add_classes: {error}') from None


def _use_extension_embeddings(cfg: Config, checkpoint: Mapping,
                              cfg_options: dict | None) -> None:
    """A checkpoint with added classes: its class set's embedding file
    (written beside it) for the learner, unless the options name one."""
    extension = (checkpoint.get('meta') or {}).get('class_extension') or {}
    written = extension.get('class_embeddings')
    given = cfg_options and 'model.zero_shot.class_embeddings' in cfg_options
    if written and not given and cfg.model.get('zero_shot') is not None \
            and osp.isfile(written):
        cfg.model.zero_shot.class_embeddings = written


def _check_class_embeddings(cfg: Config) -> None:
    """Refuse a stage-2 config whose class embedding file is missing (the
    toy configs read it under the data root, relative to the current
    folder)."""
    embeddings = (cfg.model.get('zero_shot') or {}).get('class_embeddings')
    if isinstance(embeddings, str) and '::' not in embeddings and \
            not osp.isfile(embeddings):
        raise FileNotFoundError(
            f'class embedding file {embeddings!r} of '
            f'{cfg.filename or "the config"} (model.zero_shot.'
            f'class_embeddings) does not exist{cwd_note(embeddings)}. Run '
            'from the folder that holds the data set or pass data_root '
            '(--data-root DIR); the toy data set: python '
            'tools/dataset_converters/make_toy_dataset.py')


def _read_checkpoint(weights: str) -> dict:
    """The checkpoint dict (``meta``, ``state_dict``) of ``weights``."""
    try:
        checkpoint = _load_checkpoint(weights, map_location='cpu')
    except (RuntimeError, EOFError, OSError, ValueError,
            KeyError) as error:
        raise ValueError(
            f'cannot read checkpoint {weights!r}: {error}') from error
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{weights!r} is not a checkpoint (a dict with '
                         'state_dict and meta)')
    return checkpoint


def fit_config_to_classes(cfg: Config, dataset_meta: Mapping | None) -> Config:
    """The config, its segmenter sized for the checkpoint's class set.

    A checkpoint whose classes were extended after training lists more
    classes in ``meta['dataset_meta']`` than its config's heads have
    (``num_things_classes`` + ``num_stuff_classes``). mmdet's panoptic
    labels put the things first, so the new counts are those of the
    meta's ``thing_classes`` and ``stuff_classes``.

    Args:
        cfg (Config): The model's config (mmdet scope).
        dataset_meta (Mapping, optional): The checkpoint's
            ``meta['dataset_meta']``.

    Returns:
        Config: ``cfg`` itself when the counts agree (or the meta names no
        classes), else a copy with the heads' class counts (and the class
        weights of their classification loss) changed.

    Raises:
        ValueError: The counts differ and the meta does not say which
            classes are things and which stuff.
    """
    classes = list((dataset_meta or {}).get('classes') or ())
    head = cfg.model.get('panoptic_head') or {}
    things = head.get('num_things_classes')
    stuff = head.get('num_stuff_classes')
    if not classes or things is None or stuff is None or \
            len(classes) == things + stuff:
        return cfg
    thing_classes = list(dataset_meta.get('thing_classes') or ())
    stuff_classes = list(dataset_meta.get('stuff_classes') or ())
    if classes != thing_classes + stuff_classes:
        raise ValueError(
            f'the checkpoint names {len(classes)} classes (meta['
            f'"dataset_meta"]) but the model of {cfg.filename or "the config"}'
            f' has {things + stuff} ({things} things + {stuff} stuff), and '
            'the checkpoint does not list its thing_classes and '
            'stuff_classes (things first) to build the model for its '
            'classes: pass the config the checkpoint was made with')
    cfg = copy.deepcopy(cfg)
    counts = dict(num_things_classes=len(thing_classes),
                  num_stuff_classes=len(stuff_classes))
    for part in ('panoptic_head', 'panoptic_fusion_head'):
        if cfg.model.get(part) is not None:
            cfg.model[part].update(counts)
    loss_cls = cfg.model.panoptic_head.get('loss_cls') or {}
    weights = loss_cls.get('class_weight')
    if isinstance(weights, (list, tuple)) and weights:
        # Training only: one weight per class, the no-object one last.
        loss_cls['class_weight'] = [1.0] * len(classes) + [weights[-1]]
    print_log(
        f'the checkpoint lists {len(classes)} classes, the config '
        f'{things + stuff}: the model is built for the checkpoint\'s '
        f'({len(thing_classes)} things + {len(stuff_classes)} stuff)',
        logger='current', level=logging.INFO)
    return cfg


def _check_shapes(model: nn.Module, state_dict: Mapping, weights: str,
                  cfg: Config) -> None:
    """Refuse checkpoint tensors whose shapes differ from the model's."""
    own = model.state_dict()
    wrong = [
        f'{key} {tuple(value.shape)} vs {tuple(own[key].shape)}'
        for key, value in state_dict.items()
        if key in own and isinstance(value, torch.Tensor)
        and tuple(value.shape) != tuple(own[key].shape)
    ]
    if wrong:
        raise ValueError(
            f'checkpoint {weights!r} does not fit the model of '
            f'{cfg.filename or "the config"} (checkpoint vs model shapes: '
            f'{"; ".join(wrong[:3])}{"; ..." if len(wrong) > 3 else ""}): '
            'pass the config the checkpoint was made with (model=None '
            'takes the one saved in the checkpoint)')


__all__ = ['PADingInferencer', 'TASKS', 'fit_config_to_classes']
