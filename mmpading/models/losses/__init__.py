from .mmd_loss import MMDLoss
from .relation_align_loss import RelationAlignLoss, softmax_kl

__all__ = ['MMDLoss', 'RelationAlignLoss', 'softmax_kl']
