"""Execution plumbing shared by every stage that runs a network.

Training, prediction (and later serving and retrieval) all need the same
things: which devices and precision to use, which rank this process is, a
quiet Lightning, and batched inference over a dataset. They live here so
that data flows one way: ``train`` and ``predict`` both import ``runtime``
and never each other.

* :mod:`trigeo.runtime.options`: ``InferenceOptions``, the inference options of
  every command as one object.
* :mod:`trigeo.runtime.devices`: ``parse_devices``, ``trainer_precision``,
  ``set_cpu_threads``, ``launch_rank`` (torch-free to import).
* :mod:`trigeo.runtime.quiet`: Lightning's banners and summaries go to the
  run's log file, not the console.
* :mod:`trigeo.runtime.inference`: ``run_inference`` on ``Trainer.predict``.
"""
