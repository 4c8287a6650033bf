"""mxopt: the optimizers of deep learning, derived, explained and compiled.

Each optimizer is one module holding its update rule (a scalar function that
reads like its equation) and its MXNet-compatible class; the engine compiles
the rule for the CPU and for CUDA GPUs.

>>> import numpy as np, mxopt
>>> opt = mxopt.create('adam', learning_rate=0.01)
>>> w = np.zeros(4, np.float32); state = opt.create_state(0, w)
>>> opt.update(0, w, np.ones(4, np.float32), state)
"""
from . import lr_scheduler
from ._engine import UpdateRule
from .optimizer import Optimizer, create, opt_registry, register
from .state import State
from .updater import Updater, get_updater
from . import optimizers
from . import datasets, lineage, models, momentum_scheduler
from .optimization_state import OptimizationState, normgrad
from .optimizers import (NAG, SGD, AdaDelta, AdaGrad, Adam, Adamax, AdamW, AMSGrad, Nadam,
                         RMSProp)
from .optimizers import DCASGD, LBSGD, Signum
from .optimizers import LAMB, LARS, GroupAdaGrad
from .optimizers import Ftrl
from .optimizers import FTML
from .optimizers import SGLD
from .trainer import Trainer
from .gradient_noise import GradientNoise  # annealed gradient noise (Neelakantan et al. 2015)
from . import kvstore  # data-parallel training over MPI (MXNet's KVStore names)

__version__ = "0.1.0"

__all__ = ["AMSGrad", "AdaDelta", "AdaGrad", "Adam", "AdamW", "Adamax", "NAG", "Nadam", "Optimizer",
           "RMSProp", "SGD", "State", "Trainer", "UpdateRule", "Updater", "create", "get_updater",
           "datasets", "lr_scheduler", "models", "momentum_scheduler", "normgrad", "OptimizationState", "opt_registry",
           "register"]
