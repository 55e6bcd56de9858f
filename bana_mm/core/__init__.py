"""Registry-free algorithms of BANA (plain torch / numpy), one module a step.

* :mod:`.bap`   — background-aware pooling, paper §3.1 eqs. (1)-(4).
* :mod:`.boxes` — box annotation checks shared by all datasets.
* :mod:`.pseudo_labels` — stage-2 pseudo labels Ycrf / Yret, paper §3.2
  eqs. (5)-(9) (DenseCRF through pydensecrf).
* :mod:`.nal` — stage-3 noise-aware loss and its baselines, paper §3.3
  eqs. (10)-(14).
"""
