"""lc0 (Leela Chess Zero) networks: ``.pb.gz`` files, their 112-plane input and 1858-move policy.

* :func:`read_lc0` reads a file (:mod:`.weights`), :func:`build_lc0_net` makes its torch module
  (:mod:`.network`): planes ``(B, 112, 8, 8)`` -> (policy logits ``(B, 1858)``, WDL logits ``(B, 3)``).
* :func:`encode_lc0` / :func:`encode_lc0_batch` (:mod:`.encoding`): lc0's planes from python-chess boards.
* :func:`move_to_lc0_index` / :func:`lc0_index_to_move` (:mod:`.policy`): lc0's policy index.
* :class:`Lc0Evaluation` (:mod:`.adapter`): an lc0 network as an evaluator module (112 planes in, 1858 logits out).

Only :mod:`.wire`, :mod:`.weights`, :mod:`.encoding` and :mod:`.policy` load without torch.
"""

from __future__ import annotations

from .encoding import encode_lc0, encode_lc0_batch
from .policy import lc0_index_to_move, move_to_lc0_index
from .weights import Lc0Weights, looks_like_lc0, read_lc0

__all__ = ["Lc0Weights", "encode_lc0", "encode_lc0_batch", "lc0_index_to_move", "looks_like_lc0",
           "move_to_lc0_index", "read_lc0"]
