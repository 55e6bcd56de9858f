"""Registry-free algorithms of BANA and MDH (plain torch / numpy), one module
a concept. Nothing here imports another part of the project.

* :mod:`.boxes` — box annotation checks and box rasterisation.
* :mod:`.bap` — background-aware pooling, paper §3.1 eqs. (1)-(4).
* :mod:`.resample` — feature-grid to image resampling (footnote 3).
* :mod:`.unaries` — u0 and u_c, paper §3.2 eqs. (5)-(7).
* :mod:`.crf` — DenseCRF, its parameter sets, Ycrf.
* :mod:`.retrieval` — prototypes and Yret, eqs. (8)-(9).
* :mod:`.pseudo_labels` — the stage-2 options and the two halves of the job.
* :mod:`.downscale` — stage 2 of a large image at a capped size.
* :mod:`.instance_masks` — per-box pseudo masks and COCO RLE.
* :mod:`.baselines` — Box and GrabCut pseudo labels.
* :mod:`.class_mapping` — classifier rows by class name.
* :mod:`.nal` — stage-3 noise-aware loss and its baselines, eqs. (10)-(14).
* :mod:`.crf_postprocess` — test-time DenseCRF of DeepLab.
* :mod:`.agreement` — agreement-only mask loss of Mask R-CNN.
"""
