"""A multilayer perceptron written from scratch in numpy.

Start with :mod:`nn.backprop`: the forward pass, backpropagation and the SGD step,
written to be read, in the notation of the maths. This package imports numpy and
the standard library only: no Prefect, matplotlib, joblib or scikit-learn.

Modules:

- ``backprop``: the readable forward pass, backward pass and SGD step (inference runs it);
- ``activations``, ``losses``, ``init``: the pieces of the network, each beside its gradient;
- ``model``: :class:`~nn.model.MLP` (parameters and batched inference);
- ``step``: the fused training step, the same maths over buffers allocated once;
- ``optim``: SGD (momentum, Nesterov) and Adam, holding their state; the subnormal flush;
- ``schedules``: learning-rate schedules as pure functions of the epoch;
- ``config``, ``train``: :class:`~nn.train.TrainConfig` and :func:`~nn.train.train`;
- ``batches``: minibatches, optionally prepared one step ahead in a thread;
- ``io``, ``checkpoint``: ``.npz`` + JSON model files and checkpoints, written atomically
  and validated on loading;
- ``errors``: the network's exception classes.
"""
