"""Record the reference PADing model's outputs for the output-parity test.

Runs the reference implementation (heshuting555/PADing on detectron2 0.6)
on the CPU with the seeded weights of
:mod:`mmpading.apis.random_reference_weights` and writes, to ``--out``
(default ``tests/data/reference_parity/``):

- ``input.npz``: the input image (``image_rgb``, RGB uint8);
- ``<layout>_outputs.npz`` and ``<layout>_meta.json`` for the layouts in
  ``--outputs``: the reference's outputs for it (post-LayerNorm query
  embeddings, ``new_fc`` logits, for ZSP also the ``class_embed`` and mask
  logits, and the panoptic / instance / semantic results the layout's
  config turns on).

It also checks the converter's key / shape fixtures
(``tests/apis/reference_keys/``, ``--keys-dir``) against the state dicts of
the reference models it builds (``--keys``), or rewrites them with
``--write-keys``.

The reference is imported, never copied: pass its checkout with
``--reference-root``. Its CPU run needs no edit of its files; this script
shims at run time (i) the missing compiled MSDeformAttn op (an empty
module, so the reference's own pure-PyTorch fallback runs), (ii) the CLIP
text embeddings built in ``PADing.get_embeddings`` (replaced by seeded
random unit vectors: inference does not use them and they are not in the
state dict), (iii) ``Tensor.cuda`` while a model is built (the ZSI
word2vec vectors) and (iv) the Pillow aliases detectron2 0.6 needs
(``Image.LINEAR``). See docs/model_conversion.md for the environment.

Example::

    python tools/model_converters/make_reference_parity_fixture.py \\
        --reference-root /tmp/refenv/PADing
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

#: Layout name -> reference config file and overrides. There is no
#: 65/15 ZSI config in the reference; its layout takes the 48/17 files with
#: the 65/15 datasets, class counts and word2vec file.
LAYOUTS = {
    'zsp_pretrain': ('configs/panoptic-segmentation/pretrain.yaml', []),
    'zsp_pading': ('configs/panoptic-segmentation/PADing.yaml', []),
    'zsi_48_17_pretrain': ('configs/instance-segmentation/pretrain.yaml', []),
    'zsi_48_17_pading': ('configs/instance-segmentation/PADing.yaml', []),
    'zsi_65_15_pretrain': ('configs/instance-segmentation/pretrain.yaml', [
        'DATASETS.TRAIN', "('coco_zsi_65_15_train',)", 'DATASETS.TEST',
        "('coco_zsi_65_15_val',)", 'MODEL.SEM_SEG_HEAD.NUM_CLASSES', '65'
    ]),
    'zsi_65_15_pading': ('configs/instance-segmentation/PADing.yaml', [
        'DATASETS.TRAIN', "('coco_zsi_65_15_train',)", 'DATASETS.TEST',
        "('coco_zsi_65_15_val',)", 'MODEL.SEM_SEG_HEAD.NUM_CLASSES', '80',
        'MODEL.MASK_FORMER.VEC_PATH',
        'embeddings/coco/word_w2v_withbg_65_15.txt'
    ]),
    'zss_pretrain': ('configs/semantic-segmentation/pretrain.yaml', []),
    'zss_pading': ('configs/semantic-segmentation/PADing.yaml', []),
}

#: Layout -> its key / shape fixture in --keys-dir (ZSI 65/15 has none:
#: the converter's tests derive it from ZSI 48/17).
KEY_FIXTURES = {
    'zsp_pretrain': 'zsp_pretrain.json',
    'zsp_pading': 'zsp_pading.json',
    'zsi_48_17_pretrain': 'zsi_pretrain.json',
    'zsi_48_17_pading': 'zsi_pading.json',
    'zss_pretrain': 'zss_pretrain.json',
    'zss_pading': 'zss_pading.json',
}

#: The model input (an image already resized by the test-time pipeline;
#: not a multiple of 32 so that padding is exercised) and the original
#: size the outputs are resized to.
INPUT_SIZE = (128, 168)
ORIGINAL_SIZE = (96, 126)
#: Semantic scores are kept on every SEMANTIC_STRIDE-th row and column.
SEMANTIC_STRIDE = 4
#: What is recorded beyond the embeddings, ``new_fc`` logits and the
#: results: the ZSP fixture has everything; the others, to stay small,
#: leave out the mask and ``class_embed`` logits (the same modules as
#: ZSP's) and keep semantic scores on a coarser grid.
FULL_RECORD_LAYOUTS = ('zsp_pading', )
COMPACT_SEMANTIC_STRIDE = 8


def shim_runtime() -> None:
    """Let detectron2 0.6 and the reference import on a CPU-only machine."""
    from PIL import Image
    for old, new in (('LINEAR', 'BILINEAR'), ('CUBIC', 'BICUBIC'),
                     ('ANTIALIAS', 'LANCZOS')):
        if not hasattr(Image, old):
            setattr(Image, old, getattr(Image, new))
    try:
        import MultiScaleDeformableAttention  # noqa: F401
    except ImportError:
        # MSDeformAttnFunction then fails on its first call and the
        # reference falls back to ms_deform_attn_core_pytorch.
        sys.modules['MultiScaleDeformableAttention'] = types.ModuleType(
            'MultiScaleDeformableAttention')


def _random_text_embeddings(self, class_names):
    """Stands in for PADing.get_embeddings (CLIP ViT-B/16 on the GPU)."""
    generator = torch.Generator().manual_seed(len(class_names))
    vectors = torch.randn(len(class_names), 512, generator=generator)
    return vectors / vectors.norm(dim=-1, keepdim=True)


@contextlib.contextmanager
def _cpu_tensors():
    cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = cuda


def build_reference_model(root: Path, layout: str) -> torch.nn.Module:
    """The reference model of ``layout`` on the CPU, in eval mode."""
    import PADing
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model
    from detectron2.projects.deeplab import add_deeplab_config
    from PADing import add_maskformer2_config
    PADing.PADing.get_embeddings = _random_text_embeddings

    config_file, overrides = LAYOUTS[layout]
    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_maskformer2_config(cfg)
    cfg.merge_from_file(str(root / config_file))
    cfg.merge_from_list(list(overrides))
    cfg.MODEL.DEVICE = 'cpu'
    cfg.MODEL.WEIGHTS = ''
    cfg.freeze()
    cwd = os.getcwd()
    os.chdir(root)  # VEC_PATH is relative to the reference's root
    try:
        with _cpu_tensors():
            model = build_model(cfg)
    finally:
        os.chdir(cwd)
    return model.eval()


def synthetic_image(seed: int, num_cells: int = 12) -> np.ndarray:
    """A seeded RGB uint8 image of INPUT_SIZE: flat Voronoi cells + noise.

    Distinct flat regions give the random network's masks distinct
    supports, so that some queries pass the panoptic overlap test.
    """
    rng = np.random.default_rng(seed)
    height, width = INPUT_SIZE
    centres = rng.uniform([0, 0], [height, width], size=(num_cells, 2))
    colours = rng.uniform(0, 255, size=(num_cells, 3))
    rows, cols = np.mgrid[:height, :width]
    distances = (rows[..., None] - centres[:, 0])**2 + (
        cols[..., None] - centres[:, 1])**2
    image = colours[distances.argmin(-1)] + rng.normal(
        0, 6, size=(height, width, 3))
    return np.clip(image.round(), 0, 255).astype(np.uint8)


def run_reference(model: torch.nn.Module,
                  image: np.ndarray,
                  full: bool = True,
                  semantic_stride: int = SEMANTIC_STRIDE) -> dict:
    """Reference inference on one RGB image, with its raw head outputs.

    Args:
        model (nn.Module): The reference model.
        image (np.ndarray): RGB uint8 image, (H, W, 3).
        full (bool): Also keep the mask and ``class_embed`` logits.
        semantic_stride (int): Keep semantic scores on every
            ``semantic_stride``-th row and column.
    """
    predictor = model.sem_seg_head.predictor
    raw = {}

    def keep_outputs(module, args, output):
        raw.update(output)

    handle = predictor.register_forward_hook(keep_outputs)
    tensor = torch.from_numpy(image.transpose(2, 0, 1).copy()).float()
    inputs = [{
        'image': tensor,
        'height': ORIGINAL_SIZE[0],
        'width': ORIGINAL_SIZE[1]
    }]
    try:
        with torch.no_grad():
            result = model(inputs)[0]
            new_fc_logits = model.new_fc(raw['pred_embed'])
    finally:
        handle.remove()

    outputs = {
        'query_embeddings': raw['pred_embed'][0].numpy(),
        'new_fc_logits': new_fc_logits[0].numpy(),
    }
    if full:
        outputs['class_embed_logits'] = raw['pred_logits'][0].numpy()
        outputs['mask_logits'] = raw['pred_masks'][0].numpy()
    if 'panoptic_seg' in result:
        panoptic_seg, segments = result['panoptic_seg']
        outputs['panoptic_seg'] = panoptic_seg.numpy().astype(np.int16)
        outputs['panoptic_segment_ids'] = np.array(
            [s['id'] for s in segments], dtype=np.int16)
        outputs['panoptic_segment_classes'] = np.array(
            [s['category_id'] for s in segments], dtype=np.int16)
        outputs['panoptic_segment_isthing'] = np.array(
            [s['isthing'] for s in segments], dtype=bool)

    if 'instances' in result:
        # The reference's top-k is unsorted: sort by score (then class).
        instances = result['instances']
        scores = instances.scores.numpy()
        labels = instances.pred_classes.numpy()
        masks = instances.pred_masks.numpy().astype(bool)
        order = np.lexsort((labels, -scores))
        outputs['instance_scores'] = scores[order]
        outputs['instance_labels'] = labels[order].astype(np.int16)
        outputs['instance_boxes'] = instances.pred_boxes.tensor.numpy()[order]
        outputs['instance_masks_packed'] = np.packbits(masks[order], axis=-1)

    if 'sem_seg' in result:
        sem_seg = result['sem_seg']
        outputs['semantic_labels'] = sem_seg.argmax(0).numpy().astype(
            np.uint8)
        outputs['semantic_scores_strided'] = sem_seg[:, ::semantic_stride, ::
                                                     semantic_stride].numpy()
    return outputs


def check_or_write_keys(key_shapes: dict, path: Path, write: bool) -> int:
    """Compare a key / shape fixture with the reference (or write it).

    Returns:
        int: 1 if the fixture differs (as a mapping; key order aside), else
        0.
    """
    if write:
        path.write_text(json.dumps(key_shapes, indent=0) + '\n')
        print(f'{path}: wrote {len(key_shapes)} keys')
        return 0
    fixture = json.loads(path.read_text())
    missing = [k for k in key_shapes if k not in fixture]
    extra = [k for k in fixture if k not in key_shapes]
    shapes = [k for k in key_shapes
              if k in fixture and list(fixture[k]) != key_shapes[k]]
    if not (missing or extra or shapes):
        print(f'{path}: the {len(key_shapes)} keys and shapes match')
        return 0
    print(f'{path} differs from the reference: missing {missing[:5]}, '
          f'extra {extra[:5]}, other shapes {shapes[:5]}')
    return 1


def _git_head(path: Path) -> str | None:
    try:
        return subprocess.run(['git', '-C', str(path), 'rev-parse', 'HEAD'],
                              capture_output=True, text=True,
                              check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        '--reference-root',
        type=Path,
        required=True,
        help='checkout of heshuting555/PADing (its configs/ and PADing/)')
    parser.add_argument(
        '--out',
        type=Path,
        default=Path('tests/data/reference_parity'),
        help='output folder (default: %(default)s)')
    parser.add_argument(
        '--keys',
        nargs='*',
        default=list(KEY_FIXTURES),
        choices=list(KEY_FIXTURES),
        help='layouts whose key / shape fixtures are checked (default: all)')
    parser.add_argument(
        '--keys-dir',
        type=Path,
        default=Path('tests/apis/reference_keys'),
        help='folder of the key / shape fixtures (default: %(default)s)')
    parser.add_argument(
        '--write-keys',
        action='store_true',
        help='write the key / shape fixtures instead of checking them')
    parser.add_argument(
        '--outputs',
        nargs='*',
        default=['zsp_pading', 'zsi_48_17_pading', 'zss_pading'],
        choices=list(LAYOUTS),
        help='layouts whose outputs are recorded (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='weight seed')
    parser.add_argument('--image-seed', type=int, default=0)
    parser.add_argument(
        '--reference-commit',
        help='commit of the reference checkout, for the metadata '
        '(default: its git HEAD, when it is a git work tree)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    root = args.reference_root.resolve()
    if not (root / 'PADing' / 'PADing_model.py').is_file():
        raise SystemExit(f'--reference-root {root} is not a checkout of '
                         'heshuting555/PADing (no PADing/PADing_model.py)')
    shim_runtime()
    sys.path.insert(0, str(root))
    # After the shims: mmdet imports detectron2 when it is installed.
    from mmpading.apis.random_reference_weights import (
        RULE_VERSION,
        reference_state_dict,
    )
    args.out.mkdir(parents=True, exist_ok=True)

    image = synthetic_image(args.image_seed)
    if args.outputs:
        np.savez_compressed(args.out / 'input.npz', image_rgb=image)
    mismatches = 0
    for layout in dict.fromkeys(args.keys + args.outputs):
        model = build_reference_model(root, layout)
        own_state = model.state_dict()
        key_shapes = {k: list(v.shape) for k, v in own_state.items()}
        if layout in args.keys:
            mismatches += check_or_write_keys(
                key_shapes, args.keys_dir / KEY_FIXTURES[layout],
                args.write_keys)
        if layout not in args.outputs:
            continue
        state_dict = OrderedDict(reference_state_dict(key_shapes, args.seed))
        # The module versions: without them MaskFormerHead renames the
        # pixel-decoder keys as for its old (version 1) checkpoints.
        state_dict._metadata = own_state._metadata
        model.load_state_dict(state_dict, strict=True)
        full = layout in FULL_RECORD_LAYOUTS
        stride = SEMANTIC_STRIDE if full else COMPACT_SEMANTIC_STRIDE
        outputs = run_reference(model, image, full, stride)
        np.savez_compressed(args.out / f'{layout}_outputs.npz', **outputs)
        import detectron2
        meta = {
            'layout': layout,
            'config': LAYOUTS[layout][0],
            'overrides': LAYOUTS[layout][1],
            'seed': args.seed,
            'image_seed': args.image_seed,
            'rule_version': RULE_VERSION,
            'input_size': list(INPUT_SIZE),
            'original_size': list(ORIGINAL_SIZE),
            'semantic_stride': stride,
            'image_channel_order': 'RGB',
            'reference_commit': args.reference_commit or _git_head(root),
            'detectron2_version': detectron2.__version__,
            'torch_version': torch.__version__,
        }
        (args.out / f'{layout}_meta.json').write_text(
            json.dumps(meta, indent=2) + '\n')
        num_kept = int((torch.from_numpy(outputs['new_fc_logits']).softmax(
            -1).max(-1).values > 0.8).sum())
        counts = {
            name: len(outputs[key])
            for name, key in (('panoptic segments', 'panoptic_segment_ids'),
                              ('instances', 'instance_scores'))
            if key in outputs
        }
        if 'semantic_labels' in outputs:
            counts['semantic classes'] = len(
                np.unique(outputs['semantic_labels']))
        print(f'{layout}: {counts}, {num_kept} queries with score > 0.8')
    if mismatches:
        raise SystemExit(f'{mismatches} key / shape fixture(s) differ from '
                         'the reference (--write-keys rewrites them)')


if __name__ == '__main__':
    main()
