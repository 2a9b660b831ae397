"""Write a class embedding file (mmpading.class_embeddings/v1).

Two sources:

clip      CLIP text embeddings of class names: mmseg's CLIPTextEncoder with
          the weights of a CLIP checkpoint (OpenAI TorchScript .pt, e.g.
          ViT-B-16.pt, or mmseg-converted), PADing's 8 prompt templates
          (IMAGENET_TEMPLATES_SELECT; --templates picks another set)
          averaged after L2 normalisation, renormalised; a name "a, b" is
          prompted as "a" and as "b". Nothing is downloaded.
word2vec  The word2vec files of the ZSI literature (word_w2v_withbg_*.txt:
          300 rows x (1 + K) columns, column 0 background), columns named
          by the split they belong to.

Examples::

    python tools/misc/build_class_embeddings.py clip \\
        --checkpoint checkpoints/ViT-B-16.pt --classes coco_panoptic \\
        --out data/coco/embeddings/clip_vit-b16_coco_panoptic.json
    python tools/misc/build_class_embeddings.py word2vec \\
        word_w2v_withbg_48_17.txt --split zsi_48_17 \\
        --out data/coco/embeddings/word2vec_zsi_48_17.json

Exit status: 0 = written, 2 = an input could not be used (the message says
which and why). See docs/class_embeddings.md.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

from mmpading.datasets.embedding_builders import (
    DEFAULT_PROMPT_TEMPLATES,
    PROMPT_TEMPLATE_SETS,
    build_clip_class_embeddings,
    class_list_names,
    convert_word2vec_file,
    resolve_class_names,
    resolve_column_names,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True,
                                     metavar='{clip,word2vec}')
    names = ', '.join(class_list_names())

    clip = commands.add_parser(
        'clip', help='CLIP text embeddings of class names',
        description='CLIP text embeddings of class names, with the prompt '
        "templates of PADing's get_embeddings (IMAGENET_TEMPLATES_SELECT) by "
        'default (see docs/class_embeddings.md).')
    clip.add_argument('--checkpoint', required=True, metavar='FILE',
                      help='CLIP weights: OpenAI TorchScript .pt (e.g. '
                      'ViT-B-16.pt) or mmseg format (clip2mmseg.py output, '
                      'an mmseg checkpoint with text_encoder.* weights, or '
                      'a CLIPTextEncoder state dict)')
    clip.add_argument('--classes', required=True, metavar='LIST',
                      help=f'class list: a name ({names}), a split JSON '
                      'file, or a text file with one class per line')
    clip.add_argument('--out', required=True, metavar='FILE',
                      help='output .json (folders are created)')
    clip.add_argument('--num-heads', type=int, default=None, metavar='N',
                      help='attention heads of the text encoder (default: '
                      'width // 64, i.e. 8 for ViT-B/16)')
    clip.add_argument('--templates', default=DEFAULT_PROMPT_TEMPLATES,
                      choices=list(PROMPT_TEMPLATE_SETS),
                      help='prompt template set: imagenet_select (PADing\'s '
                      'IMAGENET_TEMPLATES_SELECT, 8 templates), single '
                      '(PADing\'s "A photo of a {} in the scene"), vild8 '
                      '(the first 8 ViLD-style templates, mmpading\'s '
                      'former default) (default: %(default)s)')
    clip.add_argument('--device', default='cpu',
                      help='device to run the encoder on, e.g. cuda '
                      '(default: %(default)s)')

    word2vec = commands.add_parser(
        'word2vec', help='convert a ZSI word2vec file',
        description='Convert a ZSI word2vec file (word_w2v_withbg_*.txt) '
        'to a class embedding file.')
    word2vec.add_argument('input', metavar='W2V_FILE',
                          help='word_w2v_withbg_48_17.txt or '
                          'word_w2v_withbg_65_15.txt (or the same format)')
    word2vec.add_argument('--split', '--classes', dest='classes',
                          required=True, metavar='LIST',
                          help='names of the columns 1..K, in order: the '
                          'split the file belongs to (zsi_48_17, zsi_65_15: '
                          'seen then unseen), a split JSON file, or a text '
                          'file with one name per line; names go through '
                          'the COCO alias table')
    word2vec.add_argument('--out', required=True, metavar='FILE',
                          help='output .json (folders are created)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == 'clip':
            class_names, classes_from = resolve_class_names(args.classes)
        else:
            class_names, classes_from = resolve_column_names(args.classes)
        out_dir = osp.dirname(osp.abspath(args.out))
        os.makedirs(out_dir, exist_ok=True)
        if args.command == 'clip':
            print(f'Encoding {len(class_names)} classes ({classes_from}) '
                  f'with {args.checkpoint}')
            source = build_clip_class_embeddings(
                args.checkpoint, class_names, args.out,
                classes_from=classes_from, num_heads=args.num_heads,
                device=args.device, templates=args.templates,
                progress=True)
        else:
            source = convert_word2vec_file(args.input, class_names, args.out,
                                           columns_from=classes_from)
    except (OSError, KeyError, ValueError, RuntimeError) as error:
        message = error.args[0] if isinstance(error, KeyError) else error
        print(f'error: {message}', file=sys.stderr)
        return 2
    print(f'Wrote {len(class_names)} class embeddings to {args.out}\n'
          f'  source: {source}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
