"""Query by example: M1 descriptors of training photos in faiss, and a kNN predictor.

* :mod:`trigeo.retrieve.index`: :class:`RetrievalIndex` (faiss flat or IVF-PQ,
  photo ids and locations, the model and dataset it was built from).
* :mod:`trigeo.retrieve.build`: :func:`build_index` (``trigeo index build``).
* :mod:`trigeo.retrieve.embed`: descriptors, batched or in memory.
* :mod:`trigeo.retrieve.query`: ``trigeo retrieve`` and its HTML contact sheet.
* :mod:`trigeo.retrieve.knn`: the kNN location rule and :func:`predict_knn`,
  which writes a normal predictions file.

Imports models, runtime, data and mesh; nothing here imports serve.
"""

from __future__ import annotations

__all__ = ["KNN_K", "KNN_RADIUS_KM", "knn_locate"]

from trigeo.retrieve.knn import KNN_K, KNN_RADIUS_KM, knn_locate
