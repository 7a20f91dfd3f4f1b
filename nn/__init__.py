"""A multilayer perceptron written from scratch in numpy (and the standard library only).

Start with :mod:`nn.backprop`: the forward pass, backpropagation and the SGD step,
written to be read, in the notation of the maths. Then ``activations``, ``losses``,
``init`` (the pieces), ``model`` (:class:`~nn.model.MLP`, inference), ``step`` (the
fused training step), ``optim``, ``schedules``, ``config``, ``batches``, ``train``
(:func:`~nn.train.train`), ``io`` and ``checkpoint`` (model files), ``errors``.
"""
