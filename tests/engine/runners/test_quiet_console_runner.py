"""QuietConsoleRunner: set-up listings in the log file, not on the console."""
import logging
import uuid

import torch
from mmengine.config import Config
from mmengine.model import BaseModel

from mmpading.engine.runners import ConsoleNoiseFilter, QuietConsoleRunner


class TinyModel(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)
        self.norm = torch.nn.BatchNorm1d(2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.norm(self.linear(inputs))


def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord('mmengine', level, __file__, 1, message, None,
                             None)


def test_filter_drops_setup_listings_only():
    noise_filter = ConsoleNoiseFilter()
    for noise in ('Config:\nmodel = dict()',
                  'paramwise_options -- backbone.conv1.weight:lr=0.0005',
                  'Hooks will be executed in the following order:\n...',
                  '\n' + '-' * 60 + '\nSystem environment:\n    sys: x'):
        assert not noise_filter.filter(record(noise))
        # A warning is never dropped, whatever it says.
        assert noise_filter.filter(record(noise, logging.WARNING))
    for kept in ('Iter(train) [ 20/600]  lr: 5e-04  eta: 0:05:00  loss: 3.1',
                 'Epoch(test) [13/13]  gzsl_panoptic/PQ_hm: 5.7',
                 'Load checkpoint from work_dirs/x/iter_600.pth'):
        assert noise_filter.filter(record(kept))


def test_setup_listings_go_to_the_log_file_only(tmp_path, capsys):
    runner = QuietConsoleRunner(
        model=TinyModel(), work_dir=str(tmp_path),
        experiment_name=f'quiet_{uuid.uuid4().hex[:8]}',
        cfg=Config(dict(marker_setting='marker-value')))
    runner.build_optim_wrapper(
        dict(optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4),
             paramwise_cfg=dict(norm_decay_mult=0.0)))
    runner.logger.info('Iter(train) [1/2]  loss: 1.0')
    runner.logger.warning('Config:\nshown because it is a warning')
    console = capsys.readouterr().out
    with open(runner.logger.log_file) as f:
        log = f.read()
    for noise in ('marker-value', 'paramwise_options --',
                  'System environment', 'Hooks will be executed'):
        assert noise in log
        assert noise not in console
    for kept in ('Iter(train) [1/2]', 'shown because it is a warning'):
        assert kept in log and kept in console
