"""Softmax and the softmax cross-entropy, numerically stable.

Notation: ``z`` are the logits (m, k), ``y`` the integer labels (m,) in ``[0, k)``,
``p = softmax(z)``. With the row maximum ``c_r = max_j z_rj`` subtracted first,
``p_rj = exp(z_rj - c_r) / s_r`` where ``s_r = sum_j exp(z_rj - c_r)`` lies in
``[1, k]`` (no overflow, no ``log(0)``), and the cross-entropy of row ``r`` is::

    l_r = log(s_r) - (z_{r, y_r} - c_r)

Its gradient with respect to the row's logits is ``p_r - onehot(y_r)``.
:func:`softmax` and :func:`cross_entropy` are the readable forms;
:func:`softmax_cross_entropy` is the fused training step's, over its buffers.
"""

from __future__ import annotations

import numpy as np


def softmax(
    logits: np.ndarray,
    out: np.ndarray | None = None,
    *,
    rowmax: np.ndarray | None = None,
    sums: np.ndarray | None = None,
) -> np.ndarray:
    """Row-wise softmax of ``logits`` (m, k); rows sum to one, same dtype.

    Parameters
    ----------
    logits:
        (m, k) float array; not modified (unless it is ``out``).
    out:
        (m, k) buffer for the probabilities.
    rowmax, sums:
        (m, 1) buffers that receive the row maxima ``c`` and the sums ``s``.

    Returns
    -------
    numpy.ndarray
        ``out``: the probabilities (m, k).
    """
    m = logits.shape[0]
    out = np.empty_like(logits) if out is None else out
    rowmax = np.empty((m, 1), dtype=logits.dtype) if rowmax is None else rowmax
    sums = np.empty((m, 1), dtype=logits.dtype) if sums is None else sums
    np.max(logits, axis=1, keepdims=True, out=rowmax)
    np.subtract(logits, rowmax, out=out)  # shifted logits, row max 0
    np.exp(out, out=out)
    np.sum(out, axis=1, keepdims=True, out=sums)  # in [1, k]
    np.divide(out, sums, out=out)
    return out


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The cross-entropy ``l_r`` (m,) of each row of ``logits`` (m, k) against ``y`` (m,)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(y)), y]


def softmax_cross_entropy(
    logits: np.ndarray,
    flat: np.ndarray,
    out: np.ndarray | None = None,
    *,
    rowmax: np.ndarray | None = None,
    sums: np.ndarray | None = None,
    rowloss: np.ndarray | None = None,
) -> float:
    """Summed cross-entropy of ``logits`` (m, k) against the true classes; ``out`` gets softmax.

    Parameters
    ----------
    logits:
        (m, k) float array; not modified unless it is ``out``.
    flat:
        (m,) integer flat indices ``i * k + y_i`` of the true classes, all within
        ``[0, m * k)``.
    out:
        (m, k) buffer that receives ``softmax(logits)``, possibly ``logits`` itself;
        ``out - onehot(y)`` is the gradient of the returned sum with respect to ``logits``.
    rowmax, sums:
        (m, 1) buffers, as for :func:`softmax`; ``sums`` holds ``log(s)`` on return.
    rowloss:
        (m,) buffer that receives the loss of each row.

    Returns
    -------
    float
        ``sum_i l_i`` in nats: computed per row in the logits' dtype, summed in float64.
    """
    m = logits.shape[0]
    rowmax = np.empty((m, 1), dtype=logits.dtype) if rowmax is None else rowmax
    sums = np.empty((m, 1), dtype=logits.dtype) if sums is None else sums
    rowloss = np.empty(m, dtype=logits.dtype) if rowloss is None else rowloss
    np.take(logits.reshape(-1), flat, out=rowloss, mode="clip")  # z_{i, y_i}; valid indices
    softmax(logits, out, rowmax=rowmax, sums=sums)
    np.subtract(rowloss, rowmax[:, 0], out=rowloss)  # z_{i, y_i} - c_i
    np.log(sums, out=sums)  # s is spent once out holds p
    np.subtract(sums[:, 0], rowloss, out=rowloss)  # l_i
    return float(np.sum(rowloss, dtype=np.float64))
