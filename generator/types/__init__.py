"""Every exercise type, imported here so that the registry is filled.

Adding a type: copy a sibling module, give it a new id, write its two templates
under templates/<id>/, and add one import line below.
"""

from . import conv2d_forward  # noqa: F401
from . import softmax  # noqa: F401
from . import cross_entropy  # noqa: F401
from . import batchnorm_forward  # noqa: F401
from . import cnn_layer_table  # noqa: F401
from . import conv_cost  # noqa: F401
from . import conv2d_backward  # noqa: F401
from . import pooling  # noqa: F401
from . import batchnorm_backward  # noqa: F401
from . import residual_block  # noqa: F401
from . import mlp_forward  # noqa: F401
from . import softmax_regression  # noqa: F401
from . import activation_gradients  # noqa: F401
from . import mlp_backward  # noqa: F401
from . import dropout  # noqa: F401
from . import optimizer_step  # noqa: F401
from . import xavier_init  # noqa: F401
