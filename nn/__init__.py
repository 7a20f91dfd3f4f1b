"""A multilayer perceptron written from scratch in numpy.

This package imports numpy and the standard library only: no Prefect,
matplotlib, joblib or scikit-learn.

Modules:

- ``model``: :class:`~nn.model.MLP` (parameters and batched inference);
- ``backprop``: the one forward pass and backward pass, over preallocated buffers;
- ``step``: the training step (forward, loss, backward, update) used by ``train``;
- ``activations``, ``losses``, ``init``: the pieces of the network, each beside its gradient;
- ``optim``: SGD (momentum, Nesterov) and Adam, holding their state; the subnormal flush;
- ``schedules``: learning-rate schedules as pure functions of the epoch;
- ``config``, ``train``: :class:`~nn.train.TrainConfig` and :func:`~nn.train.train`;
- ``io``: ``.npz`` + JSON model files, written atomically and validated on loading;
- ``atomic``: atomic writes of files and directories, for ``io`` and the pipeline;
- ``errors``: the project's exception classes.
"""
