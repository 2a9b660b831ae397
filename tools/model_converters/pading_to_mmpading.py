"""Convert a checkpoint of the PADing reference (detectron2) to mmpading.

The reference (github.com/heshuting555/PADing) releases a stage-1
"pretrained" Mask2Former R-50 and a final PADing model per task. This tool
maps either to the keys of mmpading's model (configs/pading), checks the
result against that model (every key filled, no key left over, same
shapes) and writes ``{'state_dict': ..., 'meta': ...}``::

    python tools/model_converters/pading_to_mmpading.py \\
        checkpoints/PADing_panoptic.pth checkpoints/zsp_r50_pading.pth

The layout (zsp, zsi_48_17, zsi_65_15, zss) and stage (pretrain, pading)
are told from the checkpoint; --layout / --stage state them. Every source
key is mapped or listed as ignored; a checkpoint of another layout is
refused, naming the keys no rule maps. See docs/model_conversion.md.

Exit status: 0 = written, 2 = the checkpoint cannot be converted (the
message says why), 1 = DST exists (pass --overwrite).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

import torch

from mmpading.apis.checkpoint_conversion import (
    LAYOUTS,
    STAGES,
    ConversionError,
    build_target_model,
    check_reference_backbone,
    check_state_dict_fits,
    convert_state_dict,
    load_reference_checkpoint,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='reference checkpoint (.pth or .pkl, '
                        "detectron2's {'model': state_dict, ...})")
    parser.add_argument('dst', help='mmpading checkpoint to write (.pth)')
    parser.add_argument(
        '--layout', choices=(*LAYOUTS, 'zsi'),
        help='the released model family (default: told by the class count '
        'of class_embed; zsi: the split told by it)')
    parser.add_argument(
        '--stage', choices=STAGES,
        help='pretrain: stage-1 Mask2Former; pading: final model (default: '
        'pading when the checkpoint has a generator)')
    parser.add_argument(
        '--config',
        help='the mmpading config the result is checked against (default: '
        'configs/pading/<layout>_r50[_pretrain].py of the layout and stage)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace DST when it exists')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if osp.exists(args.dst) and not args.overwrite:
        print(f'{args.dst} exists; pass --overwrite to replace it',
              file=sys.stderr)
        return 1
    try:
        state_dict = load_reference_checkpoint(args.src)
        result = convert_state_dict(state_dict, args.layout, args.stage)
        model = build_target_model(result.layout, result.stage, args.config)
        check_state_dict_fits(result.state_dict, model)
        check_reference_backbone(model)
    except (ConversionError, FileNotFoundError) as error:
        print(f'cannot convert {args.src}: {error}', file=sys.stderr)
        return 2
    print(result.summary())
    folder = osp.dirname(osp.abspath(args.dst))
    os.makedirs(folder, exist_ok=True)
    meta = dict(
        converted_from=osp.basename(args.src),
        converter='tools/model_converters/pading_to_mmpading.py',
        reference_layout=result.layout,
        reference_stage=result.stage)
    torch.save(dict(state_dict=result.state_dict, meta=meta), args.dst)
    print(f'wrote {args.dst} ({len(result.state_dict)} tensors)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
