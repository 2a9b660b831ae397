"""Models of mmpading; importing a subpackage registers its components."""
from .classifiers import *  # noqa: F401,F403
from .detectors import *  # noqa: F401,F403
from .generators import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .learners import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403
