"""Data layer: LeRobotDataset v3 storage, statistics, normalisation and training windows.

* :mod:`vlaworks.data.lerobot`: ``DatasetWriter`` (atomic), ``LeRobotDataset`` (reader), ``DatasetError``.
* :mod:`vlaworks.data.normalize`: ``Normalizer`` (q99 / meanstd / minmax, checkpointable).
* :mod:`vlaworks.data.dataset`: ``WindowDataset`` (rows made by ``vlaworks.processing.PolicyProcessor``).
* :mod:`vlaworks.data.stats`, :mod:`vlaworks.data.video`, :mod:`vlaworks.data.layout`: the pieces underneath.

Submodules are imported explicitly so that writing data never pulls in torch.
"""
