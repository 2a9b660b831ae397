"""PADingInferencer on a tiny toy stage-2 checkpoint (2 iterations)."""
import json
import os
from pathlib import Path

import mmcv
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import PixelData
from panopticapi.utils import rgb2id

from mmpading.apis import PADingInferencer
from mmpading.apis.checkpoint_checks import CheckpointMismatchError
from mmpading.datasets.class_embeddings import (
    load_class_embeddings,
    save_class_embeddings,
)

NUM_CLASSES = 29
UNSEEN = ('blue circle', 'yellow square', 'brown checker')
NEW_CLASS = 'white star'
NUM_THINGS = 20


@pytest.fixture(scope='module')
def inferencer(stage2_checkpoint, tiny_toy_root) -> PADingInferencer:
    return PADingInferencer('pading_toy_stage2', weights=stage2_checkpoint,
                            data_root=tiny_toy_root, device='cpu',
                            show_progress=False)


def val_images(root: str) -> list[str]:
    folder = Path(root) / 'val'
    return sorted(str(path) for path in folder.glob('*.png'))


def test_results_hold_the_three_outputs(inferencer, tiny_toy_root):
    images = val_images(tiny_toy_root)
    results = inferencer(os.path.join(tiny_toy_root, 'val'), batch_size=4)
    predictions = results['predictions']
    assert len(predictions) == len(images) == 6
    assert results['visualization'] == []  # nothing asked for
    for image, result in zip(images, predictions):
        height, width = mmcv.imread(image).shape[:2]
        # Semantic: a class index per pixel.
        sem_seg = result['sem_seg']
        assert sem_seg.shape == (height, width)
        assert sem_seg.min() >= 0 and sem_seg.max() < NUM_CLASSES
        # Panoptic: panopticapi's RGB ids, described by segments_info.
        panoptic = result['panoptic_seg']
        assert panoptic.shape == (height, width, 3)
        assert panoptic.dtype == np.uint8
        ids = rgb2id(panoptic)
        segments = result['segments_info']
        assert set(np.unique(ids)) - {0} == {s['id'] for s in segments}
        for segment in segments:
            assert segment['area'] == int((ids == segment['id']).sum())
            assert 0 <= segment['label'] < NUM_CLASSES
            assert segment['label'] == segment['id'] % 1000
            assert segment['label_name'] == inferencer.classes[
                segment['label']]
            assert segment['unseen'] == (segment['label_name'] in UNSEEN)
            assert segment['isthing'] == (segment['label'] < NUM_THINGS)
        # Instance: upstream's keys, one entry per instance.
        num = len(result['labels'])
        assert num > 0
        assert len(result['scores']) == len(result['bboxes']) == \
            len(result['masks']) == num
        assert all(0 <= label < NUM_CLASSES for label in result['labels'])
        mask = mask_utils.decode(result['masks'][0])
        assert mask.shape == (height, width)


def test_classes_and_split_come_from_the_checkpoint(inferencer,
                                                    stage2_checkpoint):
    saved = torch.load(stage2_checkpoint, map_location='cpu',
                       weights_only=False)['meta']['dataset_meta']
    assert inferencer.classes == tuple(saved['classes'])
    assert set(inferencer.unseen_classes) == set(UNSEEN)
    learner = inferencer.model.zero_shot
    assert sorted(inferencer.classes[i] for i in learner.unseen_ids) == \
        sorted(UNSEEN)
    assert len(inferencer.dataset_meta['palette']) == NUM_CLASSES


def test_saved_files_match_the_returned_results(inferencer, tiny_toy_root,
                                                tmp_path):
    image = val_images(tiny_toy_root)[0]
    stem = Path(image).stem
    returned = inferencer(image)['predictions'][0]
    saved = inferencer(image, out_dir=str(tmp_path),
                       no_save_pred=False)['predictions'][0]
    assert (tmp_path / 'vis' / Path(image).name).is_file()
    preds = tmp_path / 'preds'
    with open(preds / f'{stem}.json') as f:
        dumped = json.load(f)
    assert dumped['panoptic_seg_path'] == str(preds /
                                              f'{stem}_panoptic_seg.png')
    assert dumped['segments_info'] == returned['segments_info']
    assert dumped['labels'] == returned['labels']
    sem_png = mmcv.imread(saved['sem_seg_path'], 'unchanged')
    assert np.array_equal(sem_png, returned['sem_seg'])
    panoptic_png = mmcv.imread(saved['panoptic_seg_path'], 'color',
                               channel_order='rgb')
    assert np.array_equal(panoptic_png, returned['panoptic_seg'])


def test_arrays_are_numbered_like_their_drawings(tiny_toy_root, tmp_path,
                                                stage2_checkpoint):
    inferencer = PADingInferencer(
        'pading_toy_stage2', weights=stage2_checkpoint,
        data_root=tiny_toy_root, show_progress=False)
    path = val_images(tiny_toy_root)[1]
    array = mmcv.imread(val_images(tiny_toy_root)[0])
    results = inferencer([array, path], batch_size=2, out_dir=str(tmp_path),
                         no_save_pred=False)
    assert len(results['predictions']) == 2
    assert sorted(p.name for p in (tmp_path / 'vis').iterdir()) == [
        '00000000.jpg', Path(path).name]
    assert (tmp_path / 'preds' / '00000000.json').is_file()
    assert (tmp_path / 'preds' / f'{Path(path).stem}.json').is_file()


@pytest.mark.parametrize('task', ['panoptic', 'instance', 'semantic'])
def test_each_task_is_drawn(stage2_checkpoint, tiny_toy_root, tmp_path,
                            task):
    inferencer = PADingInferencer(
        'pading_toy_stage2', weights=stage2_checkpoint,
        data_root=tiny_toy_root, show_progress=False, task=task)
    assert inferencer.visualizer.draw_kinds == (
        {'panoptic': 'panoptic_seg', 'instance': 'instances',
         'semantic': 'sem_seg'}[task], )
    image = val_images(tiny_toy_root)[0]
    results = inferencer(image, out_dir=str(tmp_path), return_vis=True,
                         pred_score_thr=0.0)
    [drawn] = results['visualization']
    written = mmcv.imread(str(tmp_path / 'vis' / Path(image).name),
                          channel_order='rgb')
    assert np.array_equal(written, drawn)
    # 64 px toy images are upscaled to the 512 px minimum, plus the title
    # band and the legend.
    assert drawn.shape[0] > 512 and drawn.shape[1] > 512
    assert not (tmp_path / 'preds').exists()  # no_save_pred by default


def test_unseen_classes_are_marked_in_the_drawing(inferencer, monkeypatch):
    texts: list[str] = []
    draw_texts = inferencer.visualizer.draw_texts

    def record(texts_, *args, **kwargs):
        texts.extend([texts_] if isinstance(texts_, str) else texts_)
        return draw_texts(texts_, *args, **kwargs)

    monkeypatch.setattr(inferencer.visualizer, 'draw_texts', record)
    unseen = inferencer.classes.index('brown checker')
    seen = inferencer.classes.index('grey dots')
    sem_seg = torch.full((1, 64, 64), seen)
    sem_seg[:, :, 32:] = unseen
    panoptic = sem_seg.clone()  # stuff: the class is the segment id
    sample = DetDataSample(metainfo=dict(ori_shape=(64, 64)))
    sample.pred_panoptic_seg = PixelData(sem_seg=panoptic)
    sample.pred_sem_seg = PixelData(sem_seg=sem_seg)
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    [drawn] = inferencer.visualize([image], [sample], return_vis=True)
    assert drawn.shape[2] == 3
    # The segment keys and the legend: the unseen class carries the '*'.
    assert f'{unseen + 1}*' in texts
    assert f'{unseen + 1}* brown checker' in texts
    assert f'{seen + 1} grey dots' in texts
    assert '* = unseen class' in texts


# ------------------------------------------------------------ new classes
def extend_checkpoint(checkpoint: str, folder: Path,
                      thing_lists: bool = True) -> tuple[str, str]:
    """A copy of ``checkpoint`` with a new unseen thing class (after the
    toy set's 20 things) whose classifier row wins every query, as a class
    extension would write it, and the embedding file of the new class set.
    """
    loaded = torch.load(checkpoint, map_location='cpu', weights_only=False)
    meta = dict(loaded['meta']['dataset_meta'])
    old = list(meta['classes'])
    classes = old[:NUM_THINGS] + [NEW_CLASS] + old[NUM_THINGS:]
    state = loaded['state_dict']
    for prefix in ('panoptic_head.cls_embed.', 'zero_shot.classifier.'):
        weight, bias = state[prefix + 'weight'], state[prefix + 'bias']
        state[prefix + 'weight'] = torch.cat(
            [weight[:NUM_THINGS], torch.zeros(1, weight.shape[1]),
             weight[NUM_THINGS:]])
        # Far above every other logit (no-object included).
        state[prefix + 'bias'] = torch.cat(
            [bias[:NUM_THINGS], torch.tensor([1e3]), bias[NUM_THINGS:]])
    meta.update(classes=tuple(classes),
                unseen_classes=tuple(meta['unseen_classes']) + (NEW_CLASS, ))
    # The training set's palette, by index of the old classes: now off by
    # one after the new class (the inferencer must not use it so).
    assert len(meta.get('palette') or old) == len(old)
    if thing_lists:
        meta.update(thing_classes=tuple(classes[:NUM_THINGS + 1]),
                    stuff_classes=tuple(classes[NUM_THINGS + 1:]))
    loaded['meta'] = dict(loaded['meta'], dataset_meta=meta)
    out = folder / 'extended.pth'
    torch.save(loaded, out)
    return str(out), str(folder / 'extended.class_embeddings.json')


@pytest.fixture(scope='module')
def extended(stage2_checkpoint, tiny_toy_root,
             tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp('extended')
    checkpoint, embeddings = extend_checkpoint(stage2_checkpoint, folder)
    vectors, names = load_class_embeddings(
        os.path.join(tiny_toy_root, 'class_embeddings.json'))
    rng = np.random.default_rng(0)
    save_class_embeddings(
        embeddings, names + [NEW_CLASS],
        np.concatenate([vectors, rng.normal(size=(1, vectors.shape[1]))]),
        source='test: the toy embeddings and a random row')
    return checkpoint, embeddings


def test_a_checkpoint_with_added_classes_is_shown_with_them(
        extended, tiny_toy_root, tmp_path, monkeypatch):
    checkpoint, embeddings = extended
    inferencer = PADingInferencer(
        'pading_toy_stage2', weights=checkpoint, data_root=tiny_toy_root,
        show_progress=False, task='semantic',
        cfg_options={'model.zero_shot.class_embeddings': embeddings})
    assert len(inferencer.classes) == NUM_CLASSES + 1
    assert inferencer.classes[NUM_THINGS] == NEW_CLASS
    assert NEW_CLASS in inferencer.unseen_classes
    assert inferencer.model.panoptic_head.num_classes == NUM_CLASSES + 1
    # The data set's colours stay with their classes; the new one has its
    # own.
    with open(os.path.join(tiny_toy_root, 'metainfo.json')) as f:
        toy_meta = json.load(f)
    palette = inferencer.dataset_meta['palette']
    stripes = toy_meta['classes'].index('grey stripes')
    assert palette[inferencer.classes.index('grey stripes')] == tuple(
        toy_meta['palette'][stripes])
    assert palette[NUM_THINGS] not in [tuple(c) for c in toy_meta['palette']]

    texts: list[str] = []
    draw_texts = inferencer.visualizer.draw_texts
    monkeypatch.setattr(
        inferencer.visualizer, 'draw_texts',
        lambda t, *a, **k: (texts.extend([t] if isinstance(t, str) else t),
                            draw_texts(t, *a, **k))[1])
    image = val_images(tiny_toy_root)[0]
    [result] = inferencer(image, out_dir=str(tmp_path))['predictions']
    # Its classifier row wins every query: everything is the new class.
    assert (result['sem_seg'] == NUM_THINGS).all()
    # (The 2-iteration segmenter's masks may leave no panoptic segment.)
    assert {s['label_name'] for s in result['segments_info']} <= {NEW_CLASS}
    assert all(s['unseen'] and s['isthing'] for s in result['segments_info'])
    # Upstream's top-100 of the class probabilities over queries x classes
    # holds the new class once for each of the 30 queries (probability ~1);
    # the rest are other classes at probabilities near 0.
    assert result['labels'].count(NUM_THINGS) == 30
    assert f'{NUM_THINGS + 1}* {NEW_CLASS}' in texts


def test_added_classes_need_their_embedding_file(extended, tiny_toy_root):
    checkpoint, _ = extended
    with pytest.raises(ValueError,
                       match='model.zero_shot.class_embeddings') as error:
        PADingInferencer('pading_toy_stage2', weights=checkpoint,
                         data_root=tiny_toy_root, show_progress=False)
    assert NEW_CLASS in str(error.value)


def test_added_classes_without_thing_lists_are_refused(
        stage2_checkpoint, tiny_toy_root, tmp_path):
    checkpoint, _ = extend_checkpoint(stage2_checkpoint, tmp_path,
                                      thing_lists=False)
    with pytest.raises(ValueError, match='thing_classes and stuff_classes'):
        PADingInferencer('pading_toy_stage2', weights=checkpoint,
                         data_root=tiny_toy_root, show_progress=False)


def test_config_saved_in_the_checkpoint_is_used_without_a_model(
        stage2_checkpoint, inferencer):
    from_checkpoint = PADingInferencer(weights=stage2_checkpoint,
                                       show_progress=False)
    assert from_checkpoint.classes == inferencer.classes
    assert type(from_checkpoint.model).__name__ == 'PADing'


# ------------------------------------------------------------- refusals
def test_stage1_checkpoint_is_refused(stage1_checkpoint, tiny_toy_root):
    with pytest.raises(CheckpointMismatchError,
                       match='is a stage-1 checkpoint') as error:
        PADingInferencer('pading_toy_stage2', weights=stage1_checkpoint,
                         data_root=tiny_toy_root)
    assert stage1_checkpoint in str(error.value)


def test_learner_only_checkpoint_is_refused_with_the_merge_command(
        stage2_checkpoint, tiny_toy_root, tmp_path):
    loaded = torch.load(stage2_checkpoint, map_location='cpu',
                        weights_only=False)
    loaded['state_dict'] = {
        key: value for key, value in loaded['state_dict'].items()
        if key.startswith('zero_shot.')
    }
    learner_only = tmp_path / 'learner_only.pth'
    torch.save(loaded, learner_only)
    with pytest.raises(CheckpointMismatchError,
                       match='merge_cached_learner.py') as error:
        PADingInferencer('pading_toy_stage2', weights=str(learner_only),
                         data_root=tiny_toy_root)
    assert str(learner_only) in str(error.value)


def test_missing_checkpoint_and_unknown_config_are_named(tmp_path):
    missing = tmp_path / 'iter_1000.pth'
    with pytest.raises(FileNotFoundError, match='does not exist'):
        PADingInferencer('pading_toy_stage2', weights=str(missing))
    with pytest.raises(FileNotFoundError,
                       match="'pading_toy_stage3' is neither a file"):
        PADingInferencer('pading_toy_stage3', weights=str(missing))


def test_missing_class_embeddings_point_to_the_data_root(
        stage2_checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match='--data-root') as error:
        PADingInferencer('pading_toy_stage2', weights=stage2_checkpoint,
                         data_root=str(tmp_path / 'no_toy'))
    assert 'class_embeddings.json' in str(error.value)


def test_task_without_that_output_is_refused(stage1_checkpoint,
                                             tiny_toy_root):
    with pytest.raises(ValueError, match='test_cfg.semantic_on is off'):
        PADingInferencer('pading_toy_stage1', weights=stage1_checkpoint,
                         data_root=tiny_toy_root, task='semantic')
    with pytest.raises(ValueError, match="task 'depth' unknown"):
        PADingInferencer('pading_toy_stage1', weights=stage1_checkpoint,
                         task='depth')


def test_bad_inputs_and_text_prompts_are_refused(inferencer, tmp_path):
    with pytest.raises(FileNotFoundError, match='neither an image nor a'):
        inferencer(str(tmp_path / 'missing.png'))
    with pytest.raises(FileNotFoundError, match='holds no image'):
        inferencer(str(tmp_path))
    (tmp_path / 'notes.txt').write_text('not an image')
    with pytest.raises(ValueError, match='not an image file'):
        inferencer(str(tmp_path / 'notes.txt'))
    with pytest.raises(ValueError, match='takes no text prompts'):
        inferencer(str(tmp_path / 'notes.txt'), texts='white star')
    with pytest.raises(ValueError, match='batch_size'):
        inferencer(np.zeros((8, 8, 3), np.uint8), batch_size=0)


# ----------------------------------------------------------------- docs
def doc_blocks(page: Path) -> list[str]:
    """The fenced blocks of a docs page, in order."""
    parts = page.read_text().split('```')
    return [part.split('\n', 1)[1] for part in parts[1::2]]


def test_the_docs_example_runs_and_prints_what_the_docs_show(
        stage2_checkpoint, tiny_toy_root, tmp_path, monkeypatch, capsys):
    blocks = doc_blocks(Path(__file__).resolve().parents[2] / 'docs' /
                        'training.md')
    [index] = [i for i, block in enumerate(blocks)
               if block.startswith('from mmpading.apis import '
                                   'PADingInferencer')]
    example, shown = blocks[index], blocks[index + 1].splitlines()
    # The example's files: the toy set and the trained stage-2 model.
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'toy').symlink_to(tiny_toy_root)
    checkpoint = tmp_path / 'work_dirs' / 'pading_toy_stage2' / \
        'iter_1000.pth'
    checkpoint.parent.mkdir(parents=True)
    checkpoint.symlink_to(stage2_checkpoint)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, 'docs/training.md', 'exec'),  # noqa: S102
         {'__name__': 'docs_example'})
    printed = [line for line in capsys.readouterr().out.splitlines()
               if line.startswith(('(', '['))]
    # The classes and the result keys; the rest depends on the model.
    assert printed[:2] == shown[:2]
    assert (tmp_path / 'outputs' / 'vis' / '000010000006.png').is_file()


# ------------------------------------------------------ adding classes
ADDED = 'navy circle'


@pytest.fixture(scope='module')
def class_extension_inputs(tiny_toy_root, stage2_checkpoint,
                           tmp_path_factory):
    """A (synthetic) feature cache of the checkpoint's segmenter and an
    embedding file with a row for ``ADDED``."""
    from _helpers.synthetic_cache import write_synthetic_cache
    work = tmp_path_factory.mktemp('inferencer_add_classes')
    meta = torch.load(stage2_checkpoint, map_location='cpu',
                      weights_only=False)['meta']['dataset_meta']
    cache = write_synthetic_cache(
        str(work / 'cache'), {key: list(value) if isinstance(
            value, tuple) else value for key, value in meta.items()},
        num_rows=4, num_queries=30, feat_dim=128)
    vectors, names = load_class_embeddings(
        os.path.join(tiny_toy_root, 'class_embeddings.json'))
    embeddings = str(work / 'navy.json')
    save_class_embeddings(embeddings, [ADDED],
                          vectors[[names.index('blue circle')]],
                          source='test: the blue circle row')
    return cache, embeddings


def test_add_classes_extends_the_checkpoint_first(
        stage2_checkpoint, tiny_toy_root, class_extension_inputs, tmp_path):
    cache, embeddings = class_extension_inputs
    inferencer = PADingInferencer(
        'pading_toy_stage2', weights=stage2_checkpoint,
        data_root=tiny_toy_root, show_progress=False, add_classes=[ADDED],
        class_embeddings=embeddings, feature_cache=cache,
        extension_dir=str(tmp_path / 'extended'))
    extension = inferencer.extension
    assert extension.added == [ADDED]
    assert Path(extension.checkpoint).parent == tmp_path / 'extended'
    # A thing: after the old things, among the unseen classes.
    assert inferencer.classes[NUM_THINGS] == ADDED
    assert len(inferencer.classes) == NUM_CLASSES + 1
    assert ADDED in inferencer.unseen_classes
    # The learner reads the embedding file written with the checkpoint.
    assert inferencer.model.zero_shot.class_embeddings_file == \
        extension.class_embeddings
    [result] = inferencer(val_images(tiny_toy_root)[0])['predictions']
    assert result['sem_seg'].max() <= NUM_CLASSES


def test_add_classes_refusals(stage2_checkpoint, tiny_toy_root,
                              class_extension_inputs, tmp_path):
    cache, embeddings = class_extension_inputs
    common = dict(weights=stage2_checkpoint, data_root=tiny_toy_root,
                  show_progress=False)
    with pytest.raises(ValueError, match='needs class_embeddings'):
        PADingInferencer('pading_toy_stage2', add_classes=[ADDED], **common)
    with pytest.raises(ValueError, match='are for add_classes'):
        PADingInferencer('pading_toy_stage2', feature_cache=cache, **common)
    with pytest.raises(ValueError, match='already are classes'):
        PADingInferencer('pading_toy_stage2', add_classes=['red circle'],
                         class_embeddings=embeddings, feature_cache=cache,
                         extension_dir=str(tmp_path), **common)
    with pytest.raises(FileNotFoundError, match='feature_cache'):
        PADingInferencer('pading_toy_stage2', add_classes=[ADDED],
                         class_embeddings=embeddings,
                         feature_cache=str(tmp_path / 'nowhere'), **common)
