# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""PUCT Monte Carlo tree search over C arrays.

The tree is two growable arrays of C structs: nodes and edges. A node owns a contiguous run of edges
(its legal moves, sorted by prior) and holds its visit count, value sum and virtual loss; an edge holds
only its move, prior and the index of its child node (-1 until the edge is first visited), so that
the many edges never visited cost little. Node: 40 bytes; edge: 12 bytes. The arrays grow up to a byte budget
(``Tree.set_budget``); once it is spent the tree adds no edges, and new leaves only carry their value.

Network results are kept in :class:`NNCache`, a fixed-size C table keyed by the position key, holding
per legal move the quantized logit (relative to the best move) instead of the priors.

Rules come from ``movegen.c``: each leaf position is rebuilt by playing the path's moves on a copy of
the root position (a C struct), its legal moves generated, and terminal states (mate, stalemate,
insufficient material, 50 moves, repetition against the game history and the path) recognised here,
with no Python object on the way. Network evaluations go through Python callables in batches gathered
with virtual loss; see ``search.mcts`` for the driver. A leaf goes to the network as azengine's 16 bitboards
with 4608-index policy, or for lc0 networks as lc0's 112 (8 positions of history) with lc0's 1858-move
index per legal move (``lc0input.pxi``). :class:`Position` exposes the C rules to Python
for the tests, which check them against python-chess.
"""

from libc.math cimport exp, log, sqrt
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy

from collections import namedtuple

import chess
import numpy as np

cimport numpy as cnp

cnp.import_array()

# Node states
cdef enum:
    UNEXPANDED = 0
    PENDING = 1
    EXPANDED = 2
    TERMINAL = 3

# Outcomes of selecting one playout
cdef enum:
    SEL_LEAF = 0
    SEL_COLLISION = 1
    SEL_TERMINAL = 2
    SEL_REVISIT = 3  # the budget holds no new node below this expanded one: back up its own value again

DEF MAX_MOVES = 256
DEF MAX_DEPTH = 500      # longest playout path in plies
DEF CACHE_MOVES = 60     # positions with more legal moves are not cached
DEF LOGIT_SCALE = 1024.0  # NN cache: logits relative to the best move in steps of 1/1024
DEF NODE_BUDGET_SHARE = 8  # 1/8 of the tree's byte budget goes to nodes, the rest to edges
DEF QUEEN_PROMOTION = 5  # promotion field of a move code: python-chess's piece type
DEF PROBE_CACHE_SIZE = 1000000  # tablebase results kept by position key; emptied when full

cdef struct Edge:
    int32_t child        # the node this move leads to, -1 until first visited
    float prior
    uint16_t move

cdef struct Node:
    double wsum          # value sum from this node's side to move, own evaluation included
    uint64_t key         # position key (transpositions, repetitions)
    int32_t first_edge
    int32_t n            # visits through this node, own evaluation included
    float dsum           # draw-probability sum (WDL networks; 0 for networks without a draw head)
    int16_t num_edges
    int16_t mate         # proven result: +(plies+1) side to move mates, -(plies+1) it is mated, 0 unknown
    int16_t vl           # virtual loss: playouts selected through this node and not yet backed up
    uint8_t state
    uint8_t excluded     # root edges outside ``searchmoves`` are skipped (flag on the child's parent)

cdef struct CacheEntry:
    uint64_t key
    float value
    float draw                     # draw probability (0 for networks without a draw head)
    uint16_t num                   # legal moves (0: empty slot)
    uint16_t logit[CACHE_MOVES]    # (best logit - logit) * LOGIT_SCALE per legal move, generation order

MAX_TREE_DEPTH = MAX_DEPTH
NN_CACHE_ENTRY_BYTES = sizeof(CacheEntry)
NODE_UNEXPANDED, NODE_PENDING, NODE_EXPANDED, NODE_TERMINAL = UNEXPANDED, PENDING, EXPANDED, TERMINAL


class NodeStats(namedtuple("NodeStats", "visits value_sum mate state num_edges draw_sum")):
    """A node: visits, value sum (side to move there), proven mate, state (``NODE_*``), edge count."""

    __slots__ = ()

    @property
    def expanded(self):
        """Whether the node has its edges."""
        return self.state == EXPANDED


EdgeStats = namedtuple("EdgeStats", "move visits value_sum prior child_mate draw_sum")
EdgeStats.__doc__ = """An edge: packed move, visits, value sum (parent's view), prior, proven mate of the child,
draw-probability sum of the child."""

BestChild = namedtuple("BestChild", "move child")
BestChild.__doc__ = """The most visited edge of a node: its packed move and child node (-1, -1 when none)."""

_PROMO_PIECE = [None, None, chess.KNIGHT, chess.BISHOP, chess.ROOK, chess.QUEEN, None, None]

# Policy plane of (from, to) from the mover's side, -1 where no queen-line or knight move exists.
cdef int16_t PLANE_OF[64][64]


def _init_tables(plane_of):
    cdef int a, b
    for a in range(64):
        for b in range(64):
            PLANE_OF[a][b] = plane_of[a, b]


include "position.pxi"
include "lc0input.pxi"
include "tree.pxi"
include "nncache.pxi"
include "runner.pxi"
