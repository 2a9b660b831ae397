"""PADing's two stages on a tiny generated toy data set."""

import warnings

import pytest
import torch
from mmdet.models.dense_heads import Mask2FormerHead
from mmdet.models.detectors import Mask2Former
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.runner import Runner, load_checkpoint

from mmpading.models import PADing
from mmpading.models.utils.stage2 import classifier_for_inference
from mmpading.utils.config_utils import toy_config

from _helpers import build_with_dataset_meta, tiny_run_options

FROZEN_PREFIXES = ('backbone.', 'panoptic_head.')


def stage2_runner(root, work_dir, checkpoint, name='pading_toy_stage2',
                  max_iters=2, **options) -> Runner:
    cfg = toy_config(name, root, str(work_dir), **tiny_run_options(max_iters))
    cfg.load_from = checkpoint
    cfg.merge_from_dict(options)
    return Runner.from_cfg(cfg)


def build_toy_model(name: str, root: str, work_dir, **cfg_options):
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = toy_config(name, root, str(work_dir), **tiny_run_options(1))
    cfg.merge_from_dict(cfg_options)
    return cfg, build_with_dataset_meta(cfg)


def test_stage1_is_upstream_mask2former(tiny_toy_root, tmp_path):
    _, model = build_toy_model('pading_toy_stage1', tiny_toy_root, tmp_path)
    assert type(model) is Mask2Former
    assert type(model.panoptic_head) is Mask2FormerHead


def test_stage1_trains_and_evaluates(tiny_toy_root, tmp_path):
    cfg = toy_config('pading_toy_stage1', tiny_toy_root, str(tmp_path),
                     **tiny_run_options(1))
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.val_loop.run()
    for key in ('gzsl_panoptic/PQ_seen', 'gzsl_panoptic/PQ_unseen',
                'gzsl_panoptic/PQ_hm', 'gzsl_instance/segm_mAP50_hm'):
        assert key in metrics
        assert 0.0 <= metrics[key] <= 100.0
    # Seen-only training: no training image shows an unseen class.
    dataset = runner.train_dataloader.dataset
    unseen = set(dataset.metainfo['unseen_classes'])
    classes = dataset.metainfo['classes']
    for index in range(len(dataset)):
        labels = {classes[inst['bbox_label']]
                  for inst in dataset.get_data_info(index)['instances']}
        assert not labels & unseen


def test_matched_labels_are_the_ground_truth_labels(tiny_toy_root,
                                                    tmp_path):
    cfg, model = build_toy_model('pading_toy_stage2', tiny_toy_root,
                                 tmp_path)
    data = next(iter(Runner.build_dataloader(cfg.train_dataloader)))
    data = model.data_preprocessor(data, True)
    # The matching's mask costs are read at random points.
    torch.manual_seed(0)
    query_features = model.frozen_query_features(data)
    batch, queries, channels = query_features.embeddings.shape
    assert (batch, channels) == (len(data['data_samples']), 128)
    assert query_features.labels.shape == (batch, queries)
    for i, sample in enumerate(data['data_samples']):
        # Every ground-truth segment is matched to exactly one query.
        gt_labels = sample.gt_instances.labels.tolist()
        if 'gt_sem_seg' in sample:
            stuff = sample.gt_sem_seg.sem_seg.unique()
            gt_labels += [
                int(c) for c in stuff
                if model.num_things_classes <= int(c) < model.num_classes
            ]
        matched = query_features.labels[i][query_features.matched[i]]
        assert sorted(matched.tolist()) == sorted(gt_labels)

    # The embeddings are what cls_embed classifies in the last layer, and
    # the labels are the matching of upstream's loss (the toy config keeps
    # the training assigner).
    head = model.panoptic_head
    feats = model.extract_feat(data['inputs'])
    cls_scores, _ = head(feats, data['data_samples'])
    assert torch.allclose(head.cls_embed(query_features.embeddings),
                          cls_scores[-1])
    loss_labels = []
    get_targets = head.get_targets

    def recording_get_targets(*args, **kwargs):
        targets = get_targets(*args, **kwargs)
        loss_labels.append(torch.stack(targets[0]))
        return targets

    head.get_targets = recording_get_targets
    # Upstream's loss on the last layer only, from the same random state.
    forward = head.forward
    head.forward = lambda *args: [outputs[-1:] for outputs in forward(*args)]
    torch.manual_seed(0)
    with torch.no_grad():
        head.loss(feats, data['data_samples'])
    assert len(loss_labels) == 1
    assert torch.equal(loss_labels[0], query_features.labels)


def test_upstream_config_with_the_pading_type_builds(tiny_toy_root,
                                                     tmp_path):
    """A stage-1 config becomes stage 2 by its type and the learner."""
    stage2_cfg, _ = build_toy_model('pading_toy_stage2', tiny_toy_root,
                                    tmp_path)
    _, model = build_toy_model(
        'pading_toy_stage1', tiny_toy_root, tmp_path,
        **{'model.type': 'PADing',
           'model.zero_shot': stage2_cfg.model.zero_shot.to_dict()})
    assert type(model) is PADing
    assert type(model.panoptic_head) is Mask2FormerHead
    assert model.learner.classifier.in_features == \
        model.panoptic_head.cls_embed.in_features


def test_configs_of_earlier_versions(tiny_toy_root, tmp_path):
    """stage=2 and the head names still build; stage=1 names Mask2Former."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        _, model = build_toy_model(
            'pading_toy_stage2', tiny_toy_root, tmp_path,
            **{'model.stage': 2,
               'model.panoptic_head.type': 'ZeroShotMask2FormerHead',
               'model.panoptic_head.query_class_cost': 5.0})
    assert any('stage=2' in str(w.message) for w in caught)
    assert model.query_assigner.match_costs[0].weight == 5.0
    with pytest.raises(ValueError, match="type='Mask2Former'"):
        build_toy_model('pading_toy_stage2', tiny_toy_root, tmp_path,
                        **{'model.stage': 1})


def test_learner_feat_dim_must_fit_the_head(tiny_toy_root, tmp_path):
    with pytest.raises(ValueError, match='cls_embed.in_features'):
        build_toy_model('pading_toy_stage2', tiny_toy_root, tmp_path,
                        **{'model.zero_shot.feat_dim': 64})


class SnapshotHook(Hook):
    """Records the generator's weights before the first step."""

    def before_train(self, runner) -> None:
        learner = runner.model.learner
        self.generator = {
            k: v.clone() for k, v in learner.generator.state_dict().items()
        }


def test_stage2_freezes_segmenter_and_trains_learner(tiny_toy_root,
                                                     stage1_checkpoint,
                                                     tmp_path):
    runner = stage2_runner(tiny_toy_root, tmp_path, stage1_checkpoint)
    snapshot = SnapshotHook()
    runner.register_hook(snapshot)
    runner.train()
    stage1 = torch.load(stage1_checkpoint)['state_dict']
    model = runner.model
    state = model.state_dict()
    frozen = [k for k in stage1 if k.startswith(FROZEN_PREFIXES)]
    assert frozen
    for key in frozen:  # parameters and BN statistics alike
        assert torch.equal(state[key], stage1[key]), key
    assert all(not p.requires_grad for m in (model.backbone,
                                             model.panoptic_head)
               for p in m.parameters())
    assert not model.backbone.training and not model.panoptic_head.training
    learner = model.learner
    # The classifier (started as stage 1's cls_embed) and the generator
    # have moved.
    assert not torch.equal(learner.classifier.weight.detach(),
                           stage1['panoptic_head.cls_embed.weight'])
    assert any(not torch.equal(value, learner.generator.state_dict()[key])
               for key, value in snapshot.generator.items())
    metrics = runner.val_loop.run()
    assert 'gzsl_panoptic/PQ_hm' in metrics


def test_classifier_starts_from_cls_embed(tiny_toy_root, stage1_checkpoint,
                                          tmp_path):
    # With a zero learning rate the classifier keeps its initial weights.
    runner = stage2_runner(
        tiny_toy_root, tmp_path, stage1_checkpoint, max_iters=1,
        **{'optim_wrapper.classifier.optimizer.lr': 0.0,
           'optim_wrapper.classifier.optimizer.weight_decay': 0.0})
    runner.train()
    stage1 = torch.load(stage1_checkpoint)['state_dict']
    classifier = runner.model.learner.classifier
    assert torch.equal(classifier.weight.detach(),
                       stage1['panoptic_head.cls_embed.weight'])
    assert torch.equal(classifier.bias.detach(),
                       stage1['panoptic_head.cls_embed.bias'])


@pytest.mark.parametrize('variant', ['projection', 'gmmn', 'p', 'p_a'])
def test_ablation_configs_run_one_iteration(variant, tiny_toy_root,
                                            stage1_checkpoint, tmp_path):
    runner = stage2_runner(tiny_toy_root, tmp_path, stage1_checkpoint,
                           name=f'pading_toy_stage2_{variant}', max_iters=1)
    runner.train()
    learner = runner.model.learner
    if variant == 'projection':
        assert learner.generator is None
        assert list(runner.optim_wrapper.keys()) == ['classifier']
    else:
        assert learner.generator is not None
        assert set(runner.optim_wrapper.keys()) == {'generator',
                                                     'classifier'}
    expected = {'projection': (None, None), 'gmmn': (None, None),
                'p': (None, None), 'p_a': (None, 'RelationAlignLoss')}
    disentangle, align = expected[variant]
    assert learner.disentangle_head is disentangle
    assert (type(learner.relation_align_loss).__name__
            if learner.relation_align_loss else None) == align


def test_stage2_without_checkpoint_says_so(tiny_toy_root, tmp_path):
    runner = stage2_runner(tiny_toy_root, tmp_path, None, max_iters=1)
    with pytest.raises(RuntimeError, match='load_from'):
        runner.train()


def test_stage2_without_trained_classifier_refuses_to_predict(
        tiny_toy_root, tmp_path):
    """A stage-2 model that never loaded a stage-2 checkpoint would predict
    with a random classifier."""
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = toy_config('pading_toy_stage2', tiny_toy_root, str(tmp_path))
    model = MODELS.build(cfg.model).eval()
    sample = DetDataSample(metainfo=dict(
        img_shape=(64, 64), ori_shape=(64, 64), batch_input_shape=(64, 64),
        scale_factor=(1.0, 1.0)))
    with pytest.raises(RuntimeError) as error:
        model.predict(torch.zeros(1, 3, 64, 64), [sample])
    message = str(error.value)
    assert 'classifier (zero_shot.classifier) was never initialised' in \
        message
    assert 'load_model' in message and "type='Mask2Former'" in message
    model.learner.init_classifier_from(model.panoptic_head.cls_embed)
    assert classifier_for_inference(model) is model.learner.classifier


def test_missing_checkpoint_names_the_path(tiny_toy_root, tmp_path):
    missing = str(tmp_path / 'no_such_stage1.pth')
    runner = stage2_runner(tiny_toy_root, tmp_path, missing, max_iters=1)
    with pytest.raises(FileNotFoundError, match='no_such_stage1.pth'):
        runner.train()


def test_wrong_class_count_names_both_shapes(tiny_toy_root,
                                             stage1_checkpoint, tmp_path):
    checkpoint = torch.load(stage1_checkpoint)
    for key in ('panoptic_head.cls_embed.weight',
                'panoptic_head.cls_embed.bias'):
        checkpoint['state_dict'][key] = checkpoint['state_dict'][key][:-2]
    wrong = tmp_path / 'wrong_classes.pth'
    torch.save(checkpoint, wrong)
    runner = stage2_runner(tiny_toy_root, tmp_path, str(wrong), max_iters=1)
    # Two classes short of the data set's (+ no-object).
    classes = len(runner.cfg.model.panoptic_head.loss_cls.class_weight)
    with pytest.raises(ValueError,
                       match=rf'\({classes - 2}, 128\).*\({classes}, 128\)'):
        runner.train()


class InterruptAt(Hook):

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 == self.iteration:
            raise KeyboardInterrupt


def test_interrupted_stage2_resumes_to_the_same_iteration(
        tiny_toy_root, stage1_checkpoint, tmp_path):
    uninterrupted = stage2_runner(tiny_toy_root, tmp_path / 'full',
                                  stage1_checkpoint, max_iters=4)
    uninterrupted.train()

    interrupted = stage2_runner(tiny_toy_root, tmp_path / 'cut',
                                stage1_checkpoint, max_iters=4)
    interrupted.register_hook(InterruptAt(3))
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    saved = torch.load(tmp_path / 'cut' / 'iter_2.pth')['state_dict']

    # As `tools/train.py --resume`: the latest checkpoint of the work dir.
    resumed = stage2_runner(tiny_toy_root, tmp_path / 'cut', None,
                            max_iters=4, resume=True)
    resumed.load_or_resume()
    # Resumed from iteration 2 with the stage-2 classifier, not stage 1's.
    assert resumed.iter == 2
    assert torch.equal(resumed.model.learner.classifier.weight.detach(),
                       saved['zero_shot.classifier.weight'])
    resumed.train()
    assert resumed.iter == uninterrupted.iter == 4


@pytest.mark.parametrize('segmenter_amp', [True, False])
def test_stage2_frozen_forward_shares_the_amp_context(
        tiny_toy_root, stage1_checkpoint, tmp_path, segmenter_amp,
        cpu_autocast_wrapper):
    """Reference: AMPMULTISTEPTrainer runs forward_train_generator, frozen
    backbone, head and matching included, under autocast()
    (engine_ours/train_loop.py:602-604)."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = toy_config('pading_toy_stage2', tiny_toy_root, str(tmp_path),
                     **tiny_run_options(1))
    cfg.model.segmenter_amp = segmenter_amp
    model = build_with_dataset_meta(cfg)
    load_checkpoint(model, stage1_checkpoint, map_location='cpu')
    model.train()
    learner = model.learner
    optim_wrapper = OptimWrapperDict(
        generator=cpu_autocast_wrapper(torch.optim.Adam(
            learner.generator.parameters(), lr=1e-4)),
        classifier=OptimWrapper(torch.optim.SGD(
            learner.classifier.parameters(), lr=1e-3)))
    dtypes = []
    model.backbone.register_forward_hook(
        lambda module, inputs, output: dtypes.append(output[-1].dtype))
    loader = Runner.build_dataloader(cfg.train_dataloader)
    log_vars = model.train_step(next(iter(loader)), optim_wrapper)
    assert 'cls.loss_cls' in log_vars
    assert dtypes == [torch.bfloat16 if segmenter_amp else torch.float32]


def test_stage2_matches_with_its_own_class_cost(tiny_toy_root,
                                                stage1_checkpoint, tmp_path):
    """Reference: the stage-2 matcher's cost_class is the stage-2 config's
    CLASS_WEIGHT (5.0 for ZSP, PADing_model.py:213-223), stage 1's 2.0."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = toy_config('pading_toy_stage2', tiny_toy_root, str(tmp_path),
                     **tiny_run_options(1))
    cfg.model.query_class_cost = 5.0
    model = build_with_dataset_meta(cfg)
    load_checkpoint(model, stage1_checkpoint, map_location='cpu')
    model.train()
    head = model.panoptic_head
    weights = []
    for assigner in (head.assigner, model.query_assigner):
        original = assigner.assign

        def assign(*args, _original=original, _assigner=assigner,
                   **kwargs):
            weights.append(_assigner.match_costs[0].weight)
            return _original(*args, **kwargs)

        assigner.assign = assign
    batch = next(iter(Runner.build_dataloader(cfg.train_dataloader)))
    optim_wrapper = OptimWrapperDict(
        generator=OptimWrapper(torch.optim.Adam(
            model.learner.generator.parameters(), lr=1e-4)),
        classifier=OptimWrapper(torch.optim.SGD(
            model.learner.classifier.parameters(), lr=1e-3)))
    model.train_step(batch, optim_wrapper)
    assert weights == [5.0] * len(batch['data_samples'])
    # The stage-1 losses (the upstream loss) keep the training assigner.
    weights.clear()
    data = model.data_preprocessor(batch, True)
    with torch.no_grad():
        head.loss(model.extract_feat(data['inputs']), data['data_samples'])
    assert weights and set(weights) == {2.0}
