"""Registry-free algorithms of BANA (plain torch / numpy), one module a step.

* :mod:`.bap`   — background-aware pooling, paper §3.1 eqs. (1)-(4).
* :mod:`.boxes` — box annotation checks shared by all datasets.
"""
