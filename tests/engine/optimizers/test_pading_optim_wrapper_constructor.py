"""Properties of PADingOptimWrapperConstructor."""
import pytest
import torch
from mmengine.model.wrappers import is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict, build_optim_wrapper
from mmengine.registry import MODEL_WRAPPERS, DefaultScope
from torch import nn

import mmpading  # noqa: F401  (registers the constructor)
from mmpading.engine import PADingOptimWrapperConstructor
from mmpading.engine.optimizers.pading_optim_wrapper_constructor import (
    get_submodule_through_wrappers,
)


class Learner(nn.Module):
    """Stands in for ZeroShotLearner: generator, optional D, classifier."""

    def __init__(self, with_disentangle=True):
        super().__init__()
        self.generator = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
        self.disentangle_head = nn.Linear(4, 4) if with_disentangle else None
        self.classifier = nn.Linear(4, 3)

    def optimizer_groups(self):
        # As ZeroShotLearner.optimizer_groups.
        return dict(
            generator=[m for m in (self.generator, self.disentangle_head)
                       if m is not None],
            classifier=[self.classifier])


class Model(nn.Module):
    """A frozen 'segmenter' next to the trainable learner."""

    def __init__(self, **kwargs):
        super().__init__()
        self.backbone = nn.Linear(4, 4).requires_grad_(False)
        self.zero_shot = Learner(**kwargs)


class TinyWrapper(nn.Module):
    """A model wrapper in the mmengine sense once it is registered."""

    def __init__(self, module):
        super().__init__()
        self.module = module


@pytest.fixture
def registered_wrapper():
    # is_model_wrapper() decides by membership in MODEL_WRAPPERS.
    MODEL_WRAPPERS.register_module(module=TinyWrapper)
    try:
        yield TinyWrapper
    finally:
        MODEL_WRAPPERS._module_dict.pop('TinyWrapper')
    assert not is_model_wrapper(TinyWrapper(nn.Linear(1, 1)))


def optimizers_cfg(**generator_overrides):
    """The stage-2 configs' optimizers: no `modules`."""
    generator = dict(optimizer=dict(type='Adam', lr=5e-4))
    generator.update(generator_overrides)
    return dict(
        generator=generator,
        classifier=dict(optimizer=dict(
            type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4)))


def generator_and_classifier_cfg(**generator_overrides):
    generator = dict(
        optimizer=dict(type='Adam', lr=5e-4),
        modules=['zero_shot.generator', 'zero_shot.disentangle_head'])
    generator.update(generator_overrides)
    return dict(
        generator=generator,
        classifier=dict(
            optimizer=dict(
                type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4),
            modules=['zero_shot.classifier']))


def optimised_ids(wrapper):
    return [
        id(param) for group in wrapper.optimizer.param_groups
        for param in group['params']
    ]


def ids(*modules):
    return {id(p) for m in modules for p in m.parameters() if p.requires_grad}


def test_each_optimizer_holds_exactly_its_modules_trainable_params():
    model = Model()
    learner = model.zero_shot
    learner.generator[1].bias.requires_grad_(False)  # frozen: excluded
    wrappers = PADingOptimWrapperConstructor(
        generator_and_classifier_cfg())(model)
    assert isinstance(wrappers, OptimWrapperDict)
    assert set(wrappers.keys()) == {'generator', 'classifier'}

    generator_ids = optimised_ids(wrappers['generator'])
    assert len(generator_ids) == len(set(generator_ids))  # no duplicates
    assert set(generator_ids) == ids(learner.generator,
                                     learner.disentangle_head)
    assert id(learner.generator[1].bias) not in generator_ids
    assert set(optimised_ids(wrappers['classifier'])) == ids(
        learner.classifier)
    assert isinstance(wrappers['generator'].optimizer, torch.optim.Adam)
    classifier_optimizer = wrappers['classifier'].optimizer
    assert isinstance(classifier_optimizer, torch.optim.SGD)
    assert classifier_optimizer.defaults['momentum'] == 0.9
    assert classifier_optimizer.defaults['weight_decay'] == 5e-4
    # The frozen segmenter is in no optimizer.
    everything = set(generator_ids) | set(optimised_ids(wrappers[
        'classifier']))
    assert not ids(model.backbone) & everything
    assert not {id(p) for p in model.backbone.parameters()} & everything


def test_a_path_repeated_or_nested_adds_each_param_once():
    model = Model()
    cfg = generator_and_classifier_cfg(modules=[
        'zero_shot.generator', 'zero_shot.generator.0', 'zero_shot.generator'
    ])
    wrappers = PADingOptimWrapperConstructor(cfg)(model)
    generator_ids = optimised_ids(wrappers['generator'])
    assert len(generator_ids) == len(set(generator_ids))
    assert set(generator_ids) == ids(model.zero_shot.generator)


def test_a_path_that_is_none_is_skipped():
    model = Model(with_disentangle=False)
    assert get_submodule_through_wrappers(
        model, 'zero_shot.disentangle_head') is None
    wrappers = PADingOptimWrapperConstructor(
        generator_and_classifier_cfg())(model)
    assert set(optimised_ids(wrappers['generator'])) == ids(
        model.zero_shot.generator)


@pytest.mark.parametrize('frozen', [False, True])
def test_a_group_without_trainable_params_is_dropped(frozen):
    model = Model()
    if frozen:
        # Every module of the group exists but is frozen.
        model.zero_shot.generator.requires_grad_(False)
        model.zero_shot.disentangle_head.requires_grad_(False)
    else:
        # The projection baseline: no generator at all.
        model.zero_shot.generator = None
        model.zero_shot.disentangle_head = None
    wrappers = PADingOptimWrapperConstructor(
        generator_and_classifier_cfg())(model)
    assert set(wrappers.keys()) == {'classifier'}


def test_sub_modules_inside_model_wrappers_are_reached(registered_wrapper):
    model = Model()
    learner = model.zero_shot
    model.zero_shot = registered_wrapper(learner)  # as DDP wraps it
    wrapped_model = registered_wrapper(model)
    assert is_model_wrapper(wrapped_model)
    assert get_submodule_through_wrappers(wrapped_model,
                                          'zero_shot') is learner
    assert get_submodule_through_wrappers(
        wrapped_model, 'zero_shot.classifier') is learner.classifier
    wrappers = PADingOptimWrapperConstructor(
        generator_and_classifier_cfg())(wrapped_model)
    assert set(optimised_ids(wrappers['generator'])) == ids(
        learner.generator, learner.disentangle_head)
    assert set(optimised_ids(wrappers['classifier'])) == ids(
        learner.classifier)


def test_an_unregistered_wrapper_is_not_stepped_through():
    model = Model()
    model.zero_shot = TinyWrapper(model.zero_shot)
    with pytest.raises(KeyError, match='zero_shot.classifier'):
        get_submodule_through_wrappers(model, 'zero_shot.classifier')


# ------------------------------------------- groups from the learner
@pytest.mark.parametrize('with_disentangle', [True, False])
def test_without_modules_the_learner_gives_the_groups(with_disentangle):
    model = Model(with_disentangle=with_disentangle)
    learner = model.zero_shot
    derived = PADingOptimWrapperConstructor(optimizers_cfg())(model)
    explicit = PADingOptimWrapperConstructor(
        generator_and_classifier_cfg())(Model(
            with_disentangle=with_disentangle))
    assert set(derived.keys()) == {'generator', 'classifier'}
    expected = [learner.generator] + (
        [learner.disentangle_head] if with_disentangle else [])
    assert set(optimised_ids(derived['generator'])) == ids(*expected)
    assert set(optimised_ids(derived['classifier'])) == ids(
        learner.classifier)
    # The same parameters, in the same order, as the former module paths.
    for name in ('generator', 'classifier'):
        assert [p.shape for g in derived[name].optimizer.param_groups
                for p in g['params']] == [
                    p.shape for g in explicit[name].optimizer.param_groups
                    for p in g['params']]


def test_the_learner_is_found_inside_model_wrappers(registered_wrapper):
    model = Model()
    learner = model.zero_shot
    model.zero_shot = registered_wrapper(learner)  # as DDP wraps it
    wrappers = PADingOptimWrapperConstructor(optimizers_cfg())(
        registered_wrapper(model))
    assert set(optimised_ids(wrappers['generator'])) == ids(
        learner.generator, learner.disentangle_head)
    assert set(optimised_ids(wrappers['classifier'])) == ids(
        learner.classifier)


def test_modules_override_the_learners_group():
    model = Model()
    cfg = optimizers_cfg(modules=['zero_shot.generator'])
    wrappers = PADingOptimWrapperConstructor(cfg)(model)
    assert set(optimised_ids(wrappers['generator'])) == ids(
        model.zero_shot.generator)
    # The group without `modules` still comes from the learner.
    assert set(optimised_ids(wrappers['classifier'])) == ids(
        model.zero_shot.classifier)


def test_projection_baseline_builds_only_the_classifier():
    model = Model(with_disentangle=False)
    model.zero_shot.generator = None
    wrappers = PADingOptimWrapperConstructor(optimizers_cfg())(model)
    assert set(wrappers.keys()) == {'classifier'}


def test_without_modules_or_learner_raises_naming_modules():
    model = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(ValueError, match='gives no `modules`'):
        PADingOptimWrapperConstructor(
            dict(classifier=optimizers_cfg()['classifier']))(model)


def test_a_group_the_learner_does_not_have_raises_listing_its_groups():
    cfg = dict(projection=optimizers_cfg()['classifier'])
    with pytest.raises(ValueError, match=r"no optimizer group 'projection'"
                       r".*\['classifier', 'generator'\]"):
        PADingOptimWrapperConstructor(cfg)(Model())


def test_unknown_path_raises_a_key_error_naming_it():
    cfg = generator_and_classifier_cfg()
    cfg['classifier']['modules'] = ['zero_shot.clasifier']
    with pytest.raises(KeyError, match='zero_shot.clasifier'):
        PADingOptimWrapperConstructor(cfg)(Model())


def test_paramwise_cfg_raises():
    with pytest.raises(ValueError, match='paramwise_cfg'):
        PADingOptimWrapperConstructor(
            generator_and_classifier_cfg(),
            paramwise_cfg=dict(norm_decay_mult=0.0))


def test_no_trainable_params_at_all_raises():
    model = Model().requires_grad_(False)
    with pytest.raises(ValueError, match='no trainable parameters'):
        PADingOptimWrapperConstructor(generator_and_classifier_cfg())(model)


def test_buildable_through_build_optim_wrapper():
    model = Model()
    cfg = dict(
        constructor='PADingOptimWrapperConstructor',
        **generator_and_classifier_cfg(type='OptimWrapper',
                                       clip_grad=dict(max_norm=1.0)))
    with DefaultScope.overwrite_default_scope('mmdet'):
        wrappers = build_optim_wrapper(model, cfg)
    assert isinstance(wrappers, OptimWrapperDict)
    assert all(isinstance(w, OptimWrapper) for w in wrappers.values())
    assert wrappers['generator'].clip_grad_kwargs == dict(max_norm=1.0)
    assert set(optimised_ids(wrappers['classifier'])) == ids(
        model.zero_shot.classifier)
    # The config the caller passed is left as it was.
    assert cfg['classifier']['modules'] == ['zero_shot.classifier']


def test_the_papers_optimizers_are_the_defaults():
    """Reference: Adam 5e-4 for the generator (with D), SGD 1e-3, momentum
    0.9, wd 5e-4 for the classifier (docs/parity.md)."""
    model = Model()
    with DefaultScope.overwrite_default_scope('mmdet'):
        wrappers = build_optim_wrapper(
            model, dict(constructor='PADingOptimWrapperConstructor'))
    generator = wrappers['generator'].optimizer
    classifier = wrappers['classifier'].optimizer
    assert isinstance(generator, torch.optim.Adam)
    assert (generator.defaults['lr'], generator.defaults['weight_decay']) \
        == (5e-4, 0.0)
    assert isinstance(classifier, torch.optim.SGD)
    assert {key: classifier.defaults[key]
            for key in ('lr', 'momentum', 'weight_decay')} == dict(
                lr=1e-3, momentum=0.9, weight_decay=5e-4)
    assert set(optimised_ids(wrappers['generator'])) == ids(
        model.zero_shot.generator, model.zero_shot.disentangle_head)


def test_a_partial_group_changes_fields_of_the_default():
    model = Model()
    wrappers = PADingOptimWrapperConstructor(dict(
        classifier=dict(optimizer=dict(lr=2e-3)),
        generator=dict(clip_grad=dict(max_norm=1.0))))(model)
    classifier = wrappers['classifier'].optimizer
    assert isinstance(classifier, torch.optim.SGD)
    assert (classifier.defaults['lr'], classifier.defaults['momentum']) == (
        2e-3, 0.9)
    assert wrappers['generator'].clip_grad_kwargs == dict(max_norm=1.0)
    assert isinstance(wrappers['generator'].optimizer, torch.optim.Adam)


def test_a_default_group_can_be_switched_off():
    wrappers = PADingOptimWrapperConstructor(dict(generator=None))(Model())
    assert set(wrappers.keys()) == {'classifier'}


def test_a_new_group_needs_an_optimizer_type():
    with pytest.raises(ValueError, match="optim_wrapper.projection has no "
                       'optimizer type'):
        PADingOptimWrapperConstructor(dict(projection=dict(
            optimizer=dict(lr=1e-3))))


def test_amp_switches_the_default_groups_too():
    from mmengine.config import Config

    from mmpading.utils.config_utils import enable_amp
    cfg = Config(dict(optim_wrapper=dict(
        constructor='PADingOptimWrapperConstructor',
        classifier=dict(optimizer=dict(lr=2e-3)))))
    enable_amp(cfg)
    assert {name: group['type'] for name, group in
            cfg.optim_wrapper.items() if name != 'constructor'} == dict(
                generator='AmpOptimWrapper', classifier='AmpOptimWrapper')
    assert cfg.optim_wrapper.classifier.optimizer.lr == 2e-3
