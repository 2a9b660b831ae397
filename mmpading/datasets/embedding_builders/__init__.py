"""Builders of class embedding files (``mmpading.class_embeddings/v1``).

- :mod:`.clip_text_embeddings`: CLIP text embeddings with PADing's prompt
  ensemble (``IMAGENET_TEMPLATES_SELECT``; other named sets as options),
  from a user's OpenAI or mmseg-format CLIP checkpoint.
- :mod:`.word2vec_embeddings`: the word2vec files of the ZSI literature.
- :mod:`.class_lists`: the class lists they are built for.

The command line is ``tools/misc/build_class_embeddings.py``; see
``docs/class_embeddings.md``.
"""
from .class_lists import (
    class_list_names,
    read_class_names_file,
    resolve_class_names,
    resolve_column_names,
)
from .clip_text_embeddings import (
    DEFAULT_PROMPT_TEMPLATES,
    IMAGENET_SELECT_PROMPT_TEMPLATES,
    PADING_PROMPT_TEMPLATES,
    PROMPT_TEMPLATE_SETS,
    SINGLE_PROMPT_TEMPLATES,
    VILD8_PROMPT_TEMPLATES,
    CLIPTextConfig,
    build_clip_class_embeddings,
    build_clip_text_encoder,
    class_prompts,
    encode_class_names,
    ensemble_prompt_embeddings,
    load_clip_text_encoder,
    openai_to_mmseg_key,
    prompt_variants,
    read_clip_text_weights,
    resolve_prompt_templates,
    tokenize_prompts,
)
from .word2vec_embeddings import (
    convert_word2vec_file,
    read_word2vec_matrix,
    word2vec_class_embeddings,
)

__all__ = [
    'DEFAULT_PROMPT_TEMPLATES', 'IMAGENET_SELECT_PROMPT_TEMPLATES',
    'PADING_PROMPT_TEMPLATES', 'PROMPT_TEMPLATE_SETS',
    'SINGLE_PROMPT_TEMPLATES', 'VILD8_PROMPT_TEMPLATES', 'CLIPTextConfig',
    'build_clip_class_embeddings', 'build_clip_text_encoder',
    'class_prompts', 'encode_class_names', 'ensemble_prompt_embeddings',
    'load_clip_text_encoder', 'openai_to_mmseg_key', 'prompt_variants',
    'read_clip_text_weights', 'resolve_prompt_templates', 'tokenize_prompts',
    'convert_word2vec_file', 'read_word2vec_matrix',
    'word2vec_class_embeddings', 'class_list_names', 'read_class_names_file',
    'resolve_class_names', 'resolve_column_names'
]
