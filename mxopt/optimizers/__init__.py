"""The optimizers, one module each: its scalar update rule and its class.

Everything else in :mod:`mxopt` is machinery (the engine that compiles
rules, the base class, schedules, the Trainer, checkpoints); this folder is
where the algorithms are. Every class here is registered under MXNet's name
and re-exported as ``mxopt.<Class>``.
"""
from . import adadelta, adagrad, adam, adamax, adamw, amsgrad, nadam, nag, rmsprop, sgd
from . import groupadagrad, lamb, lars
from .groupadagrad import GroupAdaGrad
from .lamb import LAMB
from .lars import LARS
from .adadelta import AdaDelta
from .adagrad import AdaGrad
from .adam import Adam
from .adamax import Adamax
from .adamw import AdamW
from .amsgrad import AMSGrad
from .nadam import Nadam
from .nag import NAG
from .rmsprop import RMSProp
from .sgd import SGD
from .signum import Signum
from .dcasgd import DCASGD
from .lbsgd import LBSGD
from .ftrl import Ftrl
from .ftml import FTML
from .sgld import SGLD

__all__ = ["AMSGrad", "AdaDelta", "AdaGrad", "Adam", "AdamW", "Adamax", "GroupAdaGrad", "LAMB", "LARS", "NAG",
           "Nadam", "RMSProp", "SGD", "groupadagrad", "lamb", "lars",
           "adadelta", "adagrad", "adam", "adamax", "adamw", "amsgrad", "nadam", "nag", "rmsprop", "sgd"]
__all__ += ["DCASGD", "LBSGD", "Signum", "dcasgd", "lbsgd", "signum"]
__all__ += ["Ftrl", "ftrl"]
__all__ += ["FTML", "ftml"]
__all__ += ["SGLD", "sgld"]
