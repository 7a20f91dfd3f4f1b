"""A multilayer perceptron written from scratch in numpy.

This package imports numpy and the standard library only: no Prefect,
matplotlib, joblib or scikit-learn.
"""
